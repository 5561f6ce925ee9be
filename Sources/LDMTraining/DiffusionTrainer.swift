// Training the U-Net and the CLIP-architecture text encoder jointly, from scratch, in the latent
// space of a frozen VAE (as the LDM paper trained its text transformer with the U-Net) — or, for
// the comparison, in pixel space, where x₀ is the image itself (`LatentSpace.pixels`).
//
//   x₀ = s · z,  z ~ q(z|x) of the VAE (pixel space: x₀ = x in [-1, 1]);  t ~ U{0, …, T−1};  ε ~ N(0, I)
//   x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε
//   target: ε (epsilon) or v = √ᾱ_t ε − √(1 − ᾱ_t) x₀ (v_prediction, Salimans & Ho 2022)
//   L = mean_i w_i ‖ε̂_θ(x_t, t, τ(y)) − target‖²
//   Weighting by SNR = ᾱ/(1 − ᾱ). In x₀ terms the ε loss is SNR·‖x̂₀ − x₀‖² and the v loss
//   (SNR + 1)·‖x̂₀ − x₀‖². `min_snr` (Hang et al. 2023) caps the x₀ weight at min(SNR, γ):
//   w = min(SNR, γ)/SNR (ε) or min(SNR, γ)/(SNR + 1) (v). `min_snr_plus_one` (v only) caps the
//   plain v loss instead, x₀ weight min(SNR + 1, γ): w = min(SNR + 1, γ)/(SNR + 1), so the
//   noisiest steps — where layout, size and background are decided — keep weight 1 instead of
//   ≈ SNR ≈ 0. γ = 0 turns weighting off.
//   Zero terminal SNR (Lin et al. 2023, diffusers' `rescale_betas_zero_snr`): ᾱ is rescaled so
//   ᾱ_{T−1} = 0, so the last training step sees pure noise, as sampling does. Without it the
//   scaled-linear schedule leaves √ᾱ_{T−1} ≈ 0.07 of the image in x_{T−1}: the network learns to
//   read the image's mean colour and coarse layout from that leak, and at sampling time takes them
//   from the initial noise instead of the prompt. Needs v-prediction (ε is undefined at SNR 0).
//   High-noise share h (`highNoiseShare`): each sample's t is, with probability h, drawn instead from
//   U{0.6 T, …, T−1}, the steps where a 16×16 latent's coarse layout is still hidden by the noise
//   (a quadrant's average has SNR below ≈ 4 there). Position, size and relation words change the
//   loss only at those steps, so a larger share gives them more of the gradient.
//   Captions are dropped to "" with probability p so the model also learns the unconditional
//   prediction that guidance needs.

import Foundation
import LDMCore
import LDMModels
import LDMDiffusion

/// Settings of a U-Net + text-encoder training run (saved in the run folder).
public struct DiffusionTrainingConfig: Codable, Sendable {
    // U-Net
    public var blockOutChannels: [Int] = [64, 128, 128]
    public var downBlockTypes: [String] = ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]
    public var upBlockTypes: [String] = ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]
    public var layersPerBlock: Int = 1
    public var attentionHeads: Int = 4
    public var normNumGroups: Int = 16
    // Text encoder
    public var textHiddenSize: Int = 128
    public var textLayers: Int = 3
    public var textHeads: Int = 4
    public var textIntermediateSize: Int = 512
    /// Tokens per prompt (the tokenizer's model_max_length and the encoder's positions).
    public var maxTokens: Int = 32
    // Objective
    public var predictionType: String = "v_prediction"
    public var minSNRGamma: Float = 5
    public var captionDropout: Float = 0.1
    public var betaStart: Float = 0.00085, betaEnd: Float = 0.012
    public var trainTimesteps: Int = 1000
    /// Rescale the schedule to zero terminal SNR (see the file header); nil (runs saved before the
    /// setting existed) means false.
    public var zeroTerminalSNR: Bool?
    /// "min_snr" or "min_snr_plus_one" (see the file header); nil means "min_snr".
    public var lossWeighting: String?
    /// The share of samples whose timestep is drawn from the noisiest 40% (see the file header);
    /// nil means 0 (t uniform).
    public var highNoiseShare: Float?
    // Optimisation
    public var batchSize: Int = 32
    public var steps: Int = 20000
    public var learningRate: Float = 5e-4
    /// The text encoder's learning rate as a fraction of `learningRate`; nil means 1. A slower text
    /// encoder keeps its residual stream from growing to hundreds of times the token embeddings,
    /// which drowned words the U-Net had not yet learned to use (see Checkpoints/README.md).
    public var textLearningRateScale: Float?
    /// The learning rate of the U-Net's attention query and key projections (to_q, to_k of every
    /// self- and cross-attention) as a fraction of `learningRate`; nil means 1. At 1e-3 their
    /// weights grew until the cross-attention softmax was one-hot (entropy 0.03–1.8 nats of 3.47),
    /// and a saturated softmax passes no gradient to the queries and keys: every position attended
    /// to the same token, so position and relation words could not be learned.
    public var attentionQKLearningRateScale: Float?
    public var warmupSteps: Int = 500
    /// Weights of the Shapes caption forms in the training stream (CaptionForm order); nil means
    /// the even mix. Kept here so a continued run reads the same stream.
    public var captionMix: [Int]?
    /// Share of Shapes relation samples drawn in the spread layout (ShapesGenerator); nil means 0.
    public var spreadRelations: Double?
    /// Set when the run continued from a compact checkpoint (weights without optimiser moments).
    public var restartStep: Int?
    /// True when the run trains in pixel space (set by the trainer from its `LatentSpace`; absent
    /// for runs on a VAE's latents), so a continued run can tell which it was.
    public var pixelSpace: Bool?
    public var weightDecay: Float = 0.01
    public var maxGradNorm: Float = 1
    public var emaDecay: Float = 0.999
    public var seed: UInt64 = 0
    /// Samples per forward/backward pass: a rank's share of the batch is computed in pieces of at
    /// most this many, their gradients added (gradient accumulation); nil: the share at once.
    public var microBatch: Int?
    public var checkpointEvery: Int = 500
    public var sampleEvery: Int = 1000

    public init() {}

    /// The smallest architecture that still has every block kind (two levels, one with
    /// cross-attention; a one-layer text encoder of width 16): for tests and quick checks.
    public static var tiny: DiffusionTrainingConfig {
        var c = DiffusionTrainingConfig()
        c.blockOutChannels = [8, 16]
        c.downBlockTypes = ["DownBlock2D", "CrossAttnDownBlock2D"]
        c.upBlockTypes = ["CrossAttnUpBlock2D", "UpBlock2D"]
        c.attentionHeads = 2
        c.normNumGroups = 4
        c.textHiddenSize = 16
        c.textLayers = 1
        c.textHeads = 2
        c.textIntermediateSize = 32
        c.maxTokens = 16
        return c
    }

    /// The U-Net configuration for latents of `latentChannels` channels and `latentSize` pixels.
    public func unetConfig(latentChannels: Int, latentSize: Int) -> UNetConfig {
        var c = UNetConfig(sampleSize: latentSize, inChannels: latentChannels, outChannels: latentChannels,
                           downBlockTypes: downBlockTypes, upBlockTypes: upBlockTypes, blockOutChannels: blockOutChannels,
                           layersPerBlock: layersPerBlock, normNumGroups: normNumGroups, crossAttentionDim: textHiddenSize,
                           attentionHeadDim: .one(attentionHeads))
        c.normEps = 1e-5
        return c
    }

    /// The text-encoder configuration for a vocabulary of `vocabSize` tokens.
    public func textConfig(vocabSize: Int) -> CLIPTextConfig {
        var c = CLIPTextConfig(vocabSize: vocabSize, hiddenSize: textHiddenSize, intermediateSize: textIntermediateSize,
                               numHiddenLayers: textLayers, numAttentionHeads: textHeads, maxPositionEmbeddings: maxTokens,
                               hiddenAct: "quick_gelu")
        c.bosTokenId = vocabSize - 2
        c.eosTokenId = vocabSize - 1
        c.padTokenId = vocabSize - 1
        c.projectionDim = textHiddenSize
        return c
    }

    /// ᾱ_t for t = 0 ..< T of the scaled-linear schedule, β_t = (√β₀ + t/(T−1)·(√β₁ − √β₀))²,
    /// rescaled to zero terminal SNR when set — computed as the exported scheduler computes it.
    public var alphasCumprod: [Float] {
        trainingAlphasCumprod(trainSteps: trainTimesteps, betaStart: Double(betaStart), betaEnd: Double(betaEnd),
                              rescaleZeroSNR: zeroTerminalSNR ?? false)
    }

    /// Training timesteps for `count` samples: uniform, with the high-noise share drawn from the
    /// noisiest 40% (see the file header). Without a share it draws exactly what it always drew.
    public func drawTimesteps<R: RandomSource>(count: Int, _ rng: inout R) -> [Int] {
        let T = trainTimesteps
        let u = rng.uniform(count: count)
        var ts = u.map { min(Int($0 * Float(T)), T - 1) }
        if let h = highNoiseShare, h > 0 {
            let low = T * 6 / 10
            let pick = rng.uniform(count: count)
            for i in 0..<count where pick[i] < h { ts[i] = min(low + Int(u[i] * Float(T - low)), T - 1) }
        }
        return ts
    }

    /// The loss weight of a sample at ᾱ (see the file header).
    func lossWeight(alphaCumprod ab: Float) -> Float {
        guard minSNRGamma > 0 else { return 1 }
        let snr = ab / (1 - ab)
        if lossWeighting == "min_snr_plus_one" { return min(snr + 1, minSNRGamma) / (snr + 1) }
        return min(snr, minSNRGamma) / (predictionType == "v_prediction" ? snr + 1 : snr)
    }

    /// Throws when the settings do not go together.
    func validate() throws {
        if let r = textLearningRateScale, !(r > 0 && r <= 1) {
            throw TrainingError.invalidArgument("the text encoder's learning-rate scale must be in (0, 1], not \(r)")
        }
        guard ["epsilon", "v_prediction"].contains(predictionType) else {
            throw TrainingError.invalidArgument("prediction type must be epsilon or v_prediction, not \(predictionType)")
        }
        if let r = attentionQKLearningRateScale, !(r > 0 && r <= 1) {
            throw TrainingError.invalidArgument("the attention query/key learning-rate scale must be in (0, 1], not \(r)")
        }
        if let h = highNoiseShare, !(h >= 0 && h <= 1) {
            throw TrainingError.invalidArgument("the high-noise share must be in [0, 1], not \(h)")
        }
        if let w = lossWeighting, !["min_snr", "min_snr_plus_one"].contains(w) {
            throw TrainingError.invalidArgument("loss weighting must be min_snr or min_snr_plus_one, not \(w)")
        }
        if predictionType == "epsilon" && (zeroTerminalSNR == true || lossWeighting == "min_snr_plus_one") {
            throw TrainingError.invalidArgument("zero terminal SNR and min_snr_plus_one weighting need v_prediction (ε is undefined at SNR 0)")
        }
    }
}

/// Runs (or resumes) diffusion training in a run folder.
public final class DiffusionTrainer {
    public let config: DiffusionTrainingConfig
    /// Where x₀ lives: a frozen VAE's scaled latents, or the pixels.
    public let space: LatentSpace
    /// The frozen VAE; nil in pixel space.
    public var vae: AutoencoderKL? { space.vae }
    public let tokenizer: CLIPTokenizer
    public let unet: UNet2DConditionModel
    public let text: CLIPTextModel
    public let dataset: ImageCaptionDataset
    public let runFolder: URL
    public let state: TrainingState
    var params: [(String, Parameter)] { state.params }
    var ema: EMA { state.ema }
    let alphasCumprod: [Float]
    public private(set) var step = 0

    /// Trains in `space` (a frozen VAE's latents, or the pixels); `captions` teach the tokenizer its
    /// vocabulary when the run folder has none yet.
    public init(config: DiffusionTrainingConfig, space: LatentSpace, dataset: ImageCaptionDataset, captions: [String],
                runFolder: URL) throws {
        guard config.batchSize >= 1, config.steps >= 1 else { throw TrainingError.invalidArgument("batch size and steps must be at least 1") }
        try config.validate()
        guard dataset.imageSize % space.downsamplingFactor == 0 else {
            throw TrainingError.invalidArgument("\(dataset.imageSize)-pixel images do not divide by the VAE's factor \(space.downsamplingFactor)")
        }
        var config = config
        config.pixelSpace = space.isPixelSpace ? true : nil
        self.config = config
        self.space = space
        self.dataset = dataset
        self.runFolder = runFolder
        let tokFolder = runFolder.appendingPathComponent("tokenizer")
        if !FileManager.default.fileExists(atPath: tokFolder.appendingPathComponent("vocab.json").path) {
            var counts: [String: Int] = [:]
            for c in captions { for w in CLIPTokenizer.words(c) { counts[w, default: 0] += 1 } }
            try LearnedVocabulary(wordCounts: counts).save(to: tokFolder, maxLength: config.maxTokens)
        }
        tokenizer = try CLIPTokenizer.load(folder: tokFolder)
        let latentSize = dataset.imageSize / space.downsamplingFactor
        unet = try UNet2DConditionModel(config: config.unetConfig(latentChannels: space.channels, latentSize: latentSize))
        text = try CLIPTextModel(config: config.textConfig(vocabSize: tokenizer.vocabularySize))
        var rng = SwiftRandomSource(seed: config.seed)
        unet.initializeWeights(&rng)
        text.initializeWeights(&rng)
        state = TrainingState(params: unet.namedParameters(prefix: "unet.") + text.namedParameters(prefix: "text_encoder."),
                              weightDecay: config.weightDecay, emaDecay: config.emaDecay, runFolder: runFolder)
        let textScale = config.textLearningRateScale ?? 1
        let qkScale = config.attentionQKLearningRateScale ?? 1
        state.optimizer.learningRateScales = state.params.map { name, _ in
            if name.hasPrefix("text_encoder.") { return textScale }
            return DiffusionTrainer.isAttentionQueryOrKey(name) ? qkScale : 1
        }
        alphasCumprod = config.alphasCumprod
    }

    /// True for the U-Net's attention query and key projection weights ("unet.….attn1.to_q.weight", …).
    static func isAttentionQueryOrKey(_ name: String) -> Bool {
        name.hasPrefix("unet.") && [".attn1.to_q.", ".attn1.to_k.", ".attn2.to_q.", ".attn2.to_k."].contains { name.contains($0) }
    }

    /// Gives the text encoder fresh random weights (and EMA), keeping the U-Net: for a run that
    /// continues a U-Net whose text encoder lost words it cannot get back. Call before training;
    /// the optimiser moments must be fresh too (a compact checkpoint's are).
    public func reinitialiseTextEncoder(seed: UInt64) {
        var rng = SwiftRandomSource(seed: seed)
        text.initializeWeights(&rng)
        for ((name, p), (_, shadow)) in zip(params, ema.shadows) where name.hasPrefix("text_encoder.") {
            shadow.copy(from: p.value)
        }
    }

    /// Trains on the latents of the VAE in `vaeFolder` (config.json + weights).
    public convenience init(config: DiffusionTrainingConfig, vaeFolder: URL, dataset: ImageCaptionDataset, captions: [String],
                            runFolder: URL) throws {
        try self.init(config: config, space: LatentSpace(vaeFolder: vaeFolder), dataset: dataset, captions: captions,
                      runFolder: runFolder)
    }

    /// Loads the newest complete checkpoint of the run folder; returns its step, or nil when there is none.
    @discardableResult
    public func resume() throws -> Int? {
        guard let s = try state.resume() else { return nil }
        step = s
        return s
    }

    /// Loads a checkpoint folder (a compact one restarts the optimiser moments) as step `s`.
    public func load(checkpoint url: URL, step s: Int) throws {
        try state.load(checkpoint: url, step: s)
        step = s
    }

    /// Writes a compact copy of the current state for carrying a run to another machine: F16 weights
    /// and EMA, no optimiser moments, the step in `state.json` and the tokenizer beside them.
    public func saveCompact(to folder: URL) throws {
        let fm = FileManager.default
        let tmp = folder.deletingLastPathComponent().appendingPathComponent(".\(folder.lastPathComponent).tmp")
        try? fm.removeItem(at: tmp)
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        try saveTensors(params.map { ($0.0, $0.1.value) }, to: tmp.appendingPathComponent("model.safetensors"), dtype: .f16)
        try saveTensors(ema.shadows, to: tmp.appendingPathComponent("ema.safetensors"), dtype: .f16)
        try JSONSerialization.data(withJSONObject: ["step": step], options: []).write(to: tmp.appendingPathComponent("state.json"))
        try JSONEncoder().encode(config).write(to: tmp.appendingPathComponent("diffusion-training.json"))
        try fm.copyItem(at: runFolder.appendingPathComponent("tokenizer"), to: tmp.appendingPathComponent("tokenizer"))
        try? fm.removeItem(at: folder)
        try fm.moveItem(at: tmp, to: folder)
    }

    /// Writes a checkpoint of the current state.
    @discardableResult
    public func checkpoint() throws -> URL { try state.save(step: step, settings: config, settingsFile: "diffusion-training.json") }

    /// One optimiser step on batch `step` (this rank's share of it; see DataParallel.swift);
    /// returns the (weighted) loss of the whole batch.
    public func trainStep() throws -> Float {
        let b = config.batchSize
        let mine = state.parallel.localRange(batch: b)
        unet.setTraining(true)
        text.setTraining(true)
        let loss = try state.accumulate(mine, microBatch: config.microBatch) { [try sliceBackward($0)] }[0]
        unet.setTraining(false)
        text.setTraining(false)
        let norm = Float(b * unet.config.inChannels * unet.config.sampleSize * unet.config.sampleSize)
        let total = try state.sumOverRanks([Float(loss)])
        state.update(step: step, schedule: LearningRateSchedule(peak: config.learningRate, warmupSteps: config.warmupSteps,
                                                                totalSteps: config.steps, floor: config.learningRate * 0.05,
                                                                restartStep: config.restartStep),
                     maxGradNorm: config.maxGradNorm)
        step += 1
        return total[0] / norm
    }

    /// Forward and backward of the batch positions `positions` of step `step` from fresh
    /// gradients, with the loss normalised by the whole batch; returns the slice's loss sum.
    func sliceBackward(_ positions: Range<Int>) throws -> Double {
        let b = config.batchSize, n = positions.count
        let (images, captions) = try dataset.trainingBatch(from: step * b + positions.lowerBound, count: n, seed: config.seed)
        var rng = PerSampleRandom(seed: config.seed, sampleIndices: (step * b + positions.lowerBound)..<(step * b + positions.upperBound),
                                  stream: 2)
        // x₀: latents from the frozen VAE, or the images themselves in pixel space.
        let x0 = space.encode(images, &rng)
        // Prompts, with caption dropout for classifier-free guidance.
        let drop = rng.uniform(count: n)
        let ids = (0..<n).map { tokenizer.encode(drop[$0] < config.captionDropout ? "" : captions[$0]).ids }
        // Noise and timesteps.
        let per = x0.count / n
        let ts = config.drawTimesteps(count: n, &rng)
        let noise = rng.normal(count: x0.count)
        let (xt, target) = noisedBatch(x0, noise: noise, timesteps: ts, alphasCumprod: alphasCumprod,
                                       vPrediction: config.predictionType == "v_prediction")
        let weights = ts.map { config.lossWeight(alphaCumprod: alphasCumprod[$0]) }
        unet.zeroGradients()
        text.zeroGradients()
        let ctx = try text(ids).lastHiddenState
        let pred = unet(xt, timesteps: ts.map(Float.init), context: ctx)
        // Loss and backward; normalised by the whole batch, so the pieces' gradients add up to its gradient.
        var loss = 0.0
        let grad = Tensor(uninitialized: pred.shape)
        let norm = Float(b * per)
        for i in 0..<n {
            for j in 0..<per {
                let k = i * per + j
                let d = pred.data[k] - target.data[k]
                loss += Double(weights[i] * d * d)
                grad.data[k] = 2 * weights[i] * d / norm
            }
        }
        let dctx = unet.backward(grad)
        text.backward(dctx)
        return loss
    }

    /// Runs until `config.steps` (or an interrupt), checkpointing periodically and at the end.
    /// `onSample` is called every `sampleEvery` steps with the current step (to draw a sample grid),
    /// on rank 0 only.
    public func run(report: (TrainingProgress) -> Void, onSample: ((Int) throws -> String?)? = nil) throws {
        try state.parallel.check(batch: config.batchSize)
        try runTrainingLoop(step: { step }, totalSteps: config.steps, batchSize: config.batchSize,
                            checkpointEvery: config.checkpointEvery, sampleEvery: config.sampleEvery,
                            stopRequested: { self.state.stopRequested },
                            trainStep: trainStep, checkpoint: checkpoint, periodic: state.parallel.isRoot ? onSample : nil,
                            report: report)
    }

    /// Fresh U-Net and text encoder holding the EMA weights.
    public func emaModels() throws -> (UNet2DConditionModel, CLIPTextModel) {
        let u = try UNet2DConditionModel(config: unet.config)
        let t = try CLIPTextModel(config: text.config)
        state.copyEMA(into: u.namedParameters(prefix: "unet.") + t.namedParameters(prefix: "text_encoder."))
        return (u, t)
    }
}

/// The forward process on a batch: x_t = √ᾱ x₀ + √(1 − ᾱ) ε per sample, and the training target
/// (ε, or v = √ᾱ ε − √(1 − ᾱ) x₀).
func noisedBatch(_ x0: Tensor, noise: [Float], timesteps: [Int], alphasCumprod: [Float], vPrediction: Bool) -> (Tensor, Tensor) {
    let b = timesteps.count, per = x0.count / b
    let xt = Tensor(uninitialized: x0.shape), target = Tensor(uninitialized: x0.shape)
    for i in 0..<b {
        let ab = alphasCumprod[timesteps[i]], sa = ab.squareRoot(), sb = (1 - ab).squareRoot()
        for j in 0..<per {
            let k = i * per + j
            xt.data[k] = sa * x0.data[k] + sb * noise[k]
            target.data[k] = vPrediction ? sa * noise[k] - sb * x0.data[k] : noise[k]
        }
    }
    return (xt, target)
}

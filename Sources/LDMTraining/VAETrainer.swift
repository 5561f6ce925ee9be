// Training the KL autoencoder: L1 + L2 reconstruction and a small KL term.
//
//   z = μ + σ ε,  x̂ = D(z)
//   L = w₁ mean|x̂ − x| + w₂ mean (x̂ − x)² + w_KL · mean ½(μ² + σ² − 1 − log σ²)

import Foundation
import LDMCore
import LDMIO
import LDMModels

/// Settings of a VAE training run (saved in the run folder as `vae-training.json`).
public struct VAETrainingConfig: Codable, Sendable {
    /// Channels per level; the image is halved between levels (2 levels → f = 2, 3 → f = 4, 4 → f = 8).
    public var blockOutChannels: [Int] = [32, 64, 64]
    /// Residual blocks per encoder level.
    public var layersPerBlock: Int = 1
    /// Latent channels.
    public var latentChannels: Int = 4
    /// Group-norm groups.
    public var normNumGroups: Int = 16
    /// Images per step.
    public var batchSize: Int = 16
    /// Total optimiser steps.
    public var steps: Int = 5000
    /// Peak learning rate, warm-up steps.
    public var learningRate: Float = 1e-3
    public var warmupSteps: Int = 200
    /// Loss weights.
    public var l1Weight: Float = 1, l2Weight: Float = 1, klWeight: Float = 1e-5
    /// EMA decay of the weights that are exported.
    public var emaDecay: Float = 0.999
    /// Gradient clipping (global norm).
    public var maxGradNorm: Float = 1
    /// Seed of the initial weights and of every step's noise.
    public var seed: UInt64 = 0
    /// Samples per forward/backward pass (gradient accumulation; see DiffusionTrainingConfig).
    public var microBatch: Int?
    /// Steps between checkpoints and between sample grids.
    public var checkpointEvery: Int = 500
    public var sampleEvery: Int = 500
    /// Held-out images scored for PSNR.
    public var heldOutCount: Int = 64
    /// A trained VAE folder (config.json + weights) to start from instead of random weights.
    public var initialWeights: String? = nil
    /// Train only the decoder (and post_quant_conv); the encoder stays as loaded, so the latents a
    /// diffusion model was trained on do not change and the fine-tuned VAE can replace the old one.
    public var decoderOnly = false

    public init() {}

    /// The model configuration these settings describe.
    public var vaeConfig: VAEConfig {
        VAEConfig(blockOutChannels: blockOutChannels, layersPerBlock: layersPerBlock, latentChannels: latentChannels,
                  normNumGroups: normNumGroups, sampleSize: 64, scalingFactor: 1)
    }
}

/// Runs (or resumes) VAE training in a run folder.
public final class VAETrainer {
    public let config: VAETrainingConfig
    public let vae: AutoencoderKL
    public let dataset: ImageCaptionDataset
    public let heldOut: ImageCaptionDataset
    public let state: TrainingState
    var params: [(String, Parameter)] { state.params }
    var ema: EMA { state.ema }
    public private(set) var step = 0

    public init(config: VAETrainingConfig, dataset: ImageCaptionDataset, heldOut: ImageCaptionDataset, runFolder: URL) throws {
        guard config.batchSize >= 1, config.steps >= 1 else { throw TrainingError.invalidArgument("batch size and steps must be at least 1") }
        self.config = config
        self.dataset = dataset
        self.heldOut = heldOut
        if config.decoderOnly && config.initialWeights == nil {
            throw TrainingError.invalidArgument("training the decoder only needs a trained VAE to start from")
        }
        vae = try AutoencoderKL(config: config.vaeConfig)
        var rng = SwiftRandomSource(seed: config.seed)
        vae.initializeWeights(&rng)
        if let folder = config.initialWeights {
            try vae.load(folder: URL(fileURLWithPath: folder), component: "vae")
        }
        let trained = config.decoderOnly ? vae.namedParameters().filter(VAETrainer.isDecoderParameter) : vae.namedParameters()
        state = TrainingState(params: trained, weightDecay: 0, emaDecay: config.emaDecay, runFolder: runFolder)
    }

    /// Whether a parameter belongs to the decoder side: decoder.* and post_quant_conv.*.
    static func isDecoderParameter(_ named: (String, Parameter)) -> Bool {
        named.0.hasPrefix("decoder.") || named.0.hasPrefix("post_quant_conv.")
    }

    /// Loads the newest complete checkpoint; returns its step, or nil when there is none.
    @discardableResult
    public func resume() throws -> Int? {
        if let (_, url) = store.latest(),
           let data = FileManager.default.contents(atPath: url.appendingPathComponent("vae-training.json").path),
           let saved = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            // A decoder-only run's checkpoints hold the decoder alone: its encoder comes from
            // --init-from, which must be the same VAE again.
            let savedDecoderOnly = saved["decoderOnly"] as? Bool ?? false, savedStart = saved["initialWeights"] as? String
            if savedDecoderOnly != config.decoderOnly || (savedDecoderOnly && savedStart != config.initialWeights) {
                throw TrainingError.badCheckpoint(savedDecoderOnly
                    ? "\(url.path) trains the decoder only, from \(savedStart ?? "?"): resume it with --init-from \(savedStart ?? "?") --decoder-only"
                    : "\(url.path) trains the whole VAE: resume it without --decoder-only")
            }
        }
        guard let s = try state.resume() else { return nil }
        step = s
        return s
    }

    /// Writes a checkpoint of the current state.
    @discardableResult
    public func checkpoint() throws -> URL { try state.save(step: step, settings: config, settingsFile: "vae-training.json") }

    /// One optimiser step on batch `step`; returns the loss.
    public func trainStep() throws -> Float {
        let b = config.batchSize
        vae.setTraining(true)
        if config.decoderOnly {   // the frozen encoder keeps no activations for a backward pass
            vae.encoder.setTraining(false)
            vae.quantConv?.setTraining(false)
        }
        let sums = try state.accumulate(state.parallel.localRange(batch: b), microBatch: config.microBatch, sliceBackward)
        let s = dataset.imageSize, f = config.vaeConfig.downsamplingFactor
        let perImage = 3 * s * s, perLatent = config.latentChannels * (s / f) * (s / f)
        return try finishStep(l1: sums[0], l2: sums[1], kl: sums[2], n: Float(b * perImage), nl: Float(b * perLatent))
    }

    /// Forward and backward of the batch positions `positions` of step `step` from fresh
    /// gradients, the loss normalised by the whole batch; returns the slice's L1, L2 and KL sums.
    func sliceBackward(_ positions: Range<Int>) throws -> [Double] {
        let b = config.batchSize
        let (x, _) = try dataset.trainingBatch(from: step * b + positions.lowerBound, count: positions.count, seed: config.seed)
        var rng = PerSampleRandom(seed: config.seed, sampleIndices: (step * b + positions.lowerBound)..<(step * b + positions.upperBound),
                                  stream: 1)
        vae.zeroGradients()
        // Forward: moments → (μ, log σ²) → z → x̂.
        var moments = vae.encoder(x)
        if let q = vae.quantConv { moments = q(moments) }
        let l = config.latentChannels
        let parts = split(moments, sizes: [l, l], dim: 1)
        let mu = parts[0], logvarRaw = parts[1]
        let eps = rng.normal(count: mu.count)
        let z = Tensor(uninitialized: mu.shape)
        for i in 0..<mu.count {
            let lv = min(max(logvarRaw.data[i], -30), 20)
            z.data[i] = mu.data[i] + expf(0.5 * lv) * eps[i]
        }
        let zq = vae.postQuantConv.map { $0(z) } ?? z
        let xhat = vae.decoder(zq)
        // Loss and its gradient with respect to x̂, normalised by the whole batch (see DataParallel.swift).
        let n = Float(b * (x.count / positions.count)), nl = Float(b * (mu.count / positions.count))
        var l1 = 0.0, l2 = 0.0, kl = 0.0
        let dx = Tensor(uninitialized: x.shape)
        for i in 0..<x.count {
            let d = xhat.data[i] - x.data[i]
            l1 += Double(abs(d)); l2 += Double(d * d)
            let sign: Float = d > 0 ? 1 : (d < 0 ? -1 : 0)
            dx.data[i] = (config.l1Weight * sign + config.l2Weight * 2 * d) / n
        }
        // Backward through the decoder, the sampling and the KL term.
        var dzq = vae.decoder.backward(dx)
        if let pq = vae.postQuantConv { dzq = pq.backward(dzq, needInputGrad: !config.decoderOnly) ?? dzq }
        if config.decoderOnly {
            for i in 0..<mu.count {
                let lv = min(max(logvarRaw.data[i], -30), 20), m = mu.data[i]
                kl += Double(0.5 * (m * m + expf(lv) - 1 - lv))
            }
            return [l1, l2, kl]
        }
        let dmu = Tensor(uninitialized: mu.shape), dlv = Tensor(uninitialized: mu.shape)
        for i in 0..<mu.count {
            let raw = logvarRaw.data[i]
            let lv = min(max(raw, -30), 20)
            let sigma = expf(0.5 * lv), m = mu.data[i]
            let var_ = sigma * sigma
            let klTerm: Float = 0.5 * (m * m + var_ - 1 - lv)
            kl += Double(klTerm)
            let g = dzq.data[i]
            dmu.data[i] = g + config.klWeight * m / nl
            let inRange: Float = (raw > -30 && raw < 20) ? 1 : 0
            let dSample: Float = g * eps[i] * 0.5 * sigma
            let dKL: Float = config.klWeight * 0.5 * (var_ - 1) / nl
            dlv.data[i] = inRange * (dSample + dKL)
        }
        var dmoments = concat([dmu, dlv], dim: 1)
        if let q = vae.quantConv { dmoments = q.backward(dmoments)! }
        _ = vae.encoder.backward(dmoments)
        return [l1, l2, kl]
    }

    /// The optimiser update after a backward pass; returns the step's loss.
    private func finishStep(l1: Double, l2: Double, kl: Double, n: Float, nl: Float) throws -> Float {
        vae.setTraining(false)
        let sums = try state.sumOverRanks([Float(l1), Float(l2), Float(kl)])
        let (l1, l2, kl) = (Double(sums[0]), Double(sums[1]), Double(sums[2]))
        state.update(step: step, schedule: LearningRateSchedule(peak: config.learningRate, warmupSteps: config.warmupSteps,
                                                                totalSteps: config.steps, floor: config.learningRate * 0.05),
                     maxGradNorm: config.maxGradNorm)
        step += 1
        let rec = Double(config.l1Weight) * l1 / Double(n) + Double(config.l2Weight) * l2 / Double(n)
        return Float(rec + Double(config.klWeight) * kl / Double(nl))
    }

    /// Runs until `config.steps` (or an interrupt), checkpointing periodically and at the end, and
    /// scoring held-out reconstructions every `sampleEvery` steps.
    /// On ranks other than 0 there are no held-out scores (rank 0 writes them).
    public func run(report: (TrainingProgress) -> Void) throws {
        try state.parallel.check(batch: config.batchSize)
        try runTrainingLoop(step: { step }, totalSteps: config.steps, batchSize: config.batchSize,
                            checkpointEvery: config.checkpointEvery, sampleEvery: config.sampleEvery,
                            stopRequested: { self.state.stopRequested },
                            trainStep: trainStep, checkpoint: checkpoint,
                            periodic: !state.parallel.isRoot ? nil : { s in
                                let grid = try self.writeReconstructionGrid(step: s)
                                return String(format: "held-out PSNR %.2f dB (EMA weights); %@", try self.heldOutPSNR(useEMA: true), grid)
                            },
                            report: report)
    }

    /// Writes `samples/step-N.png`: eight held-out images (top row) over their EMA reconstructions.
    public func writeReconstructionGrid(step: Int) throws -> String {
        let model = try emaModel()
        let n = 8, size = heldOut.imageSize
        let (x, _) = try heldOut.batch(from: 0, count: n)
        let y = model.decode(model.encode(x).mean)
        var pixels = [UInt8](repeating: 0, count: n * size * 2 * size * 3)
        let plane = size * size, width = n * size
        for (row, t) in [x, y].enumerated() {
            for i in 0..<n { for p in 0..<plane { for c in 0..<3 {
                let v = t.data[(i * 3 + c) * plane + p]
                let px = (row * size + p / size) * width + i * size + p % size
                pixels[px * 3 + c] = UInt8((min(max(v * 0.5 + 0.5, 0), 1) * 255).rounded())
            } } }
        }
        let dir = store.folder.appendingPathComponent("samples")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent(String(format: "step-%07d.png", step)).path
        try PNGImage(width: width, height: 2 * size, channels: 3, pixels: pixels).write(to: path)
        return "reconstructions \(path)"
    }

    var store: CheckpointStore { state.store }

    /// Copies the EMA weights into a fresh model (for export / evaluation); parameters that are not
    /// trained (the encoder of a decoder-only run) are copied as they are.
    public func emaModel() throws -> AutoencoderKL {
        let m = try AutoencoderKL(config: config.vaeConfig)
        let shadows = Dictionary(uniqueKeysWithValues: state.ema.shadows)
        for ((name, p), (_, current)) in zip(m.namedParameters(), vae.namedParameters()) {
            p.value.copy(from: shadows[name] ?? current.value)
        }
        return m
    }

    /// Mean PSNR (dB, images in [0, 1]) of reconstructions x̂ = D(μ) over the held-out set.
    public func heldOutPSNR(useEMA: Bool) throws -> Double {
        let model = useEMA ? try emaModel() : vae
        return try reconstructionPSNR(model, heldOut, count: config.heldOutCount)
    }
}

/// Mean PSNR over `count` images of `dataset`, decoding the posterior mean.
public func reconstructionPSNR(_ vae: AutoencoderKL, _ dataset: ImageCaptionDataset, count: Int, batch: Int = 16) throws -> Double {
    var total = 0.0
    var done = 0
    while done < count {
        let n = min(batch, count - done)
        let (x, _) = try dataset.batch(from: done, count: n)
        let y = vae.decode(vae.encode(x).mean)
        let per = x.count / n
        for i in 0..<n {
            var mse = 0.0
            for j in 0..<per {
                let a = Double(min(max(y.data[i * per + j], -1), 1) + 1) / 2, b = Double(x.data[i * per + j] + 1) / 2
                mse += (a - b) * (a - b)
            }
            mse /= Double(per)
            total += 10 * log10(1 / max(mse, 1e-12))
        }
        done += n
    }
    return total / Double(count)
}

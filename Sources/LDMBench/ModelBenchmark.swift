// `ldm bench unet | vae | text | image`: seconds per call and peak memory of one network (or of a whole
// image), from a model folder or from a known architecture with random weights.

import Foundation
import LDMCore
import LDMModels
import LDMDiffusion

/// Result of timing one network call.
public struct ModelTiming: Codable, Sendable {
    public var network: String
    public var shape: String
    public var parameters: Int
    public var secondsPerCall: Double
    /// The fastest timed call (what `scripts/bench_pytorch.py` reports for PyTorch: best of its calls).
    public var bestSeconds: Double
    public var calls: Int
    /// Most bytes held by tensors during the timed calls.
    public var peakTensorBytes: Int
    /// Peak resident set size of the process so far (VmHWM).
    public var peakResidentBytes: Int
    public var blas: String

    public init(network: String, shape: String, parameters: Int, secondsPerCall: Double, bestSeconds: Double, calls: Int,
                peakTensorBytes: Int, peakResidentBytes: Int, blas: String) {
        self.network = network; self.shape = shape; self.parameters = parameters; self.secondsPerCall = secondsPerCall
        self.bestSeconds = bestSeconds; self.calls = calls; self.peakTensorBytes = peakTensorBytes
        self.peakResidentBytes = peakResidentBytes; self.blas = blas
    }
}

/// Fills a model with small random weights (timing does not depend on their values, but keeps them finite).
public func randomize(_ m: Module, seed: UInt64) {
    var rng = SwiftRandomSource(seed: seed)
    m.initializeWeights(&rng)
}

func time(_ name: String, shape: String, parameters: Int, calls: Int, _ body: () throws -> Void) rethrows -> ModelTiming {
    try body() // warm-up (first-touch of buffers)
    MemoryStatistics.resetPeak()
    OpProfile.reset()
    defer { if OpProfile.enabled { print(OpProfile.report(title: "\(name), \(calls) calls (LDM_PROFILE)")) } }
    var total = 0.0, best = Double.infinity
    for _ in 0..<calls {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        total += seconds
        best = min(best, seconds)
    }
    return ModelTiming(network: name, shape: shape, parameters: parameters, secondsPerCall: total / Double(calls),
                       bestSeconds: best, calls: calls,
                       peakTensorBytes: MemoryStatistics.peakBytes, peakResidentBytes: MemoryStatistics.peakResidentBytes,
                       blas: blasDescription)
}

/// Times U-Net calls on a random latent of `latent`×`latent`, batch `batch`, context of 77 tokens.
public func benchmarkUNet(_ unet: UNet2DConditionModel, latent: Int, batch: Int, calls: Int) -> ModelTiming {
    let (x, ctx, added) = unetInputs(unet.config, latent: latent, batch: batch)
    return time("unet", shape: "latent \(latent)×\(latent), batch \(batch)", parameters: unet.parameterCount, calls: calls) {
        _ = unet(x, timesteps: Array(repeating: 500, count: batch), context: ctx, added: added)
    }
}

/// Relative error (‖bf16 − fp32‖ / ‖fp32‖) of one U-Net call with bf16 products against fp32, on the
/// bench's random inputs.
public func unetPrecisionError(_ unet: UNet2DConditionModel, latent: Int, batch: Int) -> Double {
    let (x, ctx, added) = unetInputs(unet.config, latent: latent, batch: batch)
    let t = [Float](repeating: 500, count: batch)
    let reference = ComputePrecision.with(.fp32) { unet(x, timesteps: t, context: ctx, added: added) }
    let reduced = ComputePrecision.with(.bf16) { unet(x, timesteps: t, context: ctx, added: added) }
    var num = 0.0, den = 0.0
    for i in 0..<reference.count {
        let d = Double(reduced.data[i]) - Double(reference.data[i])
        num += d * d
        den += Double(reference.data[i]) * Double(reference.data[i])
    }
    return (num / max(den, .leastNonzeroMagnitude)).squareRoot()
}

/// The bench's U-Net inputs: random latents and text context (SDXL: pooled text and time ids).
func unetInputs(_ c: UNetConfig, latent: Int, batch: Int) -> (Tensor, Tensor, UNetAddedConditions) {
    var rng = SwiftRandomSource(seed: 1)
    let x = Tensor(shape: [batch, c.inChannels, latent, latent], rng.normal(count: batch * c.inChannels * latent * latent))
    let ctx = Tensor(shape: [batch, 77, c.crossAttentionDim], rng.normal(count: batch * 77 * c.crossAttentionDim))
    var added = UNetAddedConditions()
    if c.takesTextTime, let a = c.additionTimeEmbedDim, let p = c.projectionClassEmbeddingsInputDim {
        // SDXL: pooled text embedding and 6 time ids (1024², no crop).
        let ids = 6, pooled = p - ids * a
        added.textEmbeds = Tensor(shape: [batch, pooled], rng.normal(count: batch * pooled))
        added.timeIds = Tensor(shape: [batch, ids], (0..<batch).flatMap { _ in [1024, 1024, 0, 0, 1024, 1024] })
    }
    if let d = c.timeCondProjDim { added.timestepCond = UNet2DConditionModel.guidanceEmbedding(Array(repeating: 7.5, count: batch), dim: d) }
    return (x, ctx, added)
}

/// Times VAE decodes of a random latent to `size`×`size` pixels, in tiles when `tiling` is given.
public func benchmarkVAEDecode(_ vae: AutoencoderKL, size: Int, batch: Int, calls: Int, tiling: TiledDecoding? = nil) -> ModelTiming {
    var rng = SwiftRandomSource(seed: 2)
    let l = size / vae.config.downsamplingFactor, ch = vae.config.latentChannels
    let z = Tensor(shape: [batch, ch, l, l], rng.normal(count: batch * ch * l * l))
    let how = tiling.map { ", tiles of \($0.tile) latent px, overlap \($0.overlap), \($0.statisticsPasses + 1) passes" } ?? ""
    return time(tiling == nil ? "vae decode" : "vae tiled decode", shape: "\(size)×\(size), batch \(batch)\(how)",
                parameters: vae.decoder.parameterCount, calls: calls) {
        _ = tiling.map { vae.decodeTiled(z, $0) } ?? vae.decode(z)
    }
}

/// Times VAE encodes of a random image of `size`×`size`.
public func benchmarkVAEEncode(_ vae: AutoencoderKL, size: Int, batch: Int, calls: Int) -> ModelTiming {
    var rng = SwiftRandomSource(seed: 3)
    let x = Tensor(shape: [batch, 3, size, size], rng.uniform(count: batch * 3 * size * size).map { $0 * 2 - 1 })
    return time("vae encode", shape: "\(size)×\(size), batch \(batch)", parameters: vae.encoder.parameterCount, calls: calls) {
        _ = vae.encode(x)
    }
}

/// Times text-encoder calls on `batch` sequences of the full 77 tokens.
public func benchmarkText(_ model: CLIPTextModel, batch: Int, calls: Int) throws -> ModelTiming {
    let l = model.config.maxPositionEmbeddings
    let ids = (0..<batch).map { b in (0..<l).map { Int32(($0 * 7 + b) % model.config.vocabSize) } }
    return try time("text encoder", shape: "\(batch)×\(l) tokens", parameters: model.parameterCount, calls: calls) {
        _ = try model(ids)
    }
}

/// Times one whole image as a user makes it, once, without a warm-up (a first image is what users
/// wait for): the text encoder on a prompt and a negative prompt (2 × 77 tokens), `steps` guided
/// DPM++ 2M steps (one U-Net call on a batch of 2 each), the VAE decode. The latent is
/// `size / 8` square, as for Stable Diffusion.
public func benchmarkImage(text: CLIPTextModel, unet: UNet2DConditionModel, vae: AutoencoderKL,
                           size: Int, steps: Int, guidance: Float,
                           progress: (Int, Int) -> Void = { _, _ in }) throws -> ModelTiming {
    var config = DPMSolverMultistepSchedulerConfig()
    config.betaStart = 0.00085
    config.betaEnd = 0.012
    config.betaSchedule = .scaledLinear
    var scheduler = try DPMSolverMultistepScheduler(config: config)
    var random: any RandomSource = SwiftRandomSource(seed: 0)
    let l = text.config.maxPositionEmbeddings, vocabulary = text.config.vocabSize
    let ids = (0..<2).map { b in (0..<l).map { Int32(($0 * 7 + b) % vocabulary) } }
    let side = size / vae.config.downsamplingFactor, channels = unet.config.inChannels
    MemoryStatistics.resetPeak()
    let t0 = DispatchTime.now().uptimeNanoseconds
    let context = try text(ids).lastHiddenState
    try scheduler.setTimesteps(steps)
    var latents = Tensor(shape: [1, channels, side, side], random.normal(count: channels * side * side))
    for (i, t) in scheduler.timesteps.enumerated() {
        let x = scheduler.scaleModelInput(concat([latents, latents], dim: 0), timestep: t)
        let parts = split(unet(x, timesteps: [t, t], context: context), sizes: [1, 1], dim: 0)
        let eps = zipMap(parts[0], parts[1]) { u, c in u + guidance * (c - u) }
        latents = scheduler.step(output: eps, timestep: t, sample: latents, random: &random)
        progress(i + 1, steps)
    }
    _ = vae.decode(scale(latents, 1 / vae.config.scalingFactor))
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    return ModelTiming(network: "image", shape: "\(size)×\(size), \(steps) DPM++ 2M steps, guidance \(guidance)",
                       parameters: text.parameterCount + unet.parameterCount + vae.decoder.parameterCount,
                       secondsPerCall: seconds, bestSeconds: seconds, calls: 1, peakTensorBytes: MemoryStatistics.peakBytes,
                       peakResidentBytes: MemoryStatistics.peakResidentBytes, blas: blasDescription)
}

extension ModelTiming {
    /// One line for the terminal.
    public var summary: String {
        String(format: "%@ (%@, %@ parameters): %.3f s per call over %d calls (best %.3f s); peak tensors %.2f GiB, peak RSS %.2f GiB; %@",
               network, shape, groupedDigits(parameters), secondsPerCall, calls, bestSeconds,
               Double(peakTensorBytes) / 1_073_741_824, Double(peakResidentBytes) / 1_073_741_824, blas)
    }
}

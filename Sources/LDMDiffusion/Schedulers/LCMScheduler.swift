// LCMScheduler.swift — the multistep consistency sampler of latent consistency models (Luo et al.,
// 2023, "Latent Consistency Models", arXiv:2310.04378, Algorithm 3). Matches diffusers'
// schedulers/scheduling_lcm.py (`LCMScheduler`).
//
// The schedule: of the `original_inference_steps` evenly spaced distillation timesteps
// t_k = k·⌊T / original⌋ − 1 (k = 1…original), the run takes `count` evenly spaced by index,
// descending. Each step predicts x₀, applies the consistency boundary condition
//     denoised = c_out(t) · x̂₀ + c_skip(t) · x_t,
//     c_skip = σ_d² / ((s t)² + σ_d²),  c_out = s t / √((s t)² + σ_d²),  σ_d = 0.5, s = timestep_scaling,
// and, except after the last step, noises the result afresh to the next timestep:
//     x_prev = √ᾱ_prev · denoised + √(1 − ᾱ_prev) · z.

import Foundation
import LDMCore

/// Configuration of `LCMScheduler`: the keys and defaults of diffusers' `LCMScheduler.__init__`.
public struct LCMSchedulerConfig: Codable, Sendable, Equatable, CommonSchedulerConfig, ThresholdingConfig,
    ClipSampleConfig {
    public var numTrainTimesteps = 1000
    public var betaStart = 0.00085
    public var betaEnd = 0.012
    public var betaSchedule = BetaSchedule.scaledLinear
    public var trainedBetas: [Double]?
    /// Length of the distillation schedule the inference timesteps are taken from.
    public var originalInferenceSteps = 50
    public var clipSample = false
    public var clipSampleRange = 1.0
    /// ᾱ after the last step: 1 when true, else ᾱ₀.
    public var setAlphaToOne = true
    /// Read for compatibility; the LCM schedule does not use it (nor does diffusers').
    public var stepsOffset = 0
    public var predictionType = PredictionType.epsilon
    public var thresholding = false
    public var dynamicThresholdingRatio = 0.995
    public var sampleMaxValue = 1.0
    /// Read for compatibility; the LCM schedule has its own spacing.
    public var timestepSpacing = TimestepSpacing.leading
    /// s of the boundary condition (10 in the LCM release).
    public var timestepScaling = 10.0
    public var rescaleBetasZeroSnr = false

    public init() {}

    enum CodingKeys: String, CommonSchedulerCodingKey {
        case className = "_class_name"
        case numTrainTimesteps = "num_train_timesteps", betaStart = "beta_start", betaEnd = "beta_end"
        case betaSchedule = "beta_schedule", trainedBetas = "trained_betas"
        case originalInferenceSteps = "original_inference_steps", clipSample = "clip_sample"
        case clipSampleRange = "clip_sample_range", setAlphaToOne = "set_alpha_to_one", stepsOffset = "steps_offset"
        case predictionType = "prediction_type", thresholding, dynamicThresholdingRatio = "dynamic_thresholding_ratio"
        case sampleMaxValue = "sample_max_value", timestepSpacing = "timestep_spacing"
        case timestepScaling = "timestep_scaling", rescaleBetasZeroSnr = "rescale_betas_zero_snr"
    }

    public init(from decoder: Decoder) throws {
        let r = try ConfigReader(decoder, CodingKeys.self, scheduler: LCMScheduler.className)
        let d = LCMSchedulerConfig()
        try readNoiseSchedule(r, defaults: d)
        originalInferenceSteps = try r(.originalInferenceSteps, d.originalInferenceSteps)
        clipSample = try r(.clipSample, d.clipSample)
        clipSampleRange = try r(.clipSampleRange, d.clipSampleRange)
        setAlphaToOne = try r(.setAlphaToOne, d.setAlphaToOne)
        stepsOffset = try r(.stepsOffset, d.stepsOffset)
        predictionType = try r.choice(.predictionType, d.predictionType)
        thresholding = try r(.thresholding, d.thresholding)
        dynamicThresholdingRatio = try r(.dynamicThresholdingRatio, d.dynamicThresholdingRatio)
        sampleMaxValue = try r(.sampleMaxValue, d.sampleMaxValue)
        timestepSpacing = try r.choice(.timestepSpacing, d.timestepSpacing)
        timestepScaling = try r(.timestepScaling, d.timestepScaling)
        rescaleBetasZeroSnr = try r(.rescaleBetasZeroSnr, d.rescaleBetasZeroSnr)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try writeNoiseSchedule(&c, className: LCMScheduler.className)
        try c.encode(originalInferenceSteps, forKey: .originalInferenceSteps)
        try c.encode(clipSample, forKey: .clipSample)
        try c.encode(clipSampleRange, forKey: .clipSampleRange)
        try c.encode(setAlphaToOne, forKey: .setAlphaToOne)
        try c.encode(stepsOffset, forKey: .stepsOffset)
        try c.encode(predictionType, forKey: .predictionType)
        try c.encode(thresholding, forKey: .thresholding)
        try c.encode(dynamicThresholdingRatio, forKey: .dynamicThresholdingRatio)
        try c.encode(sampleMaxValue, forKey: .sampleMaxValue)
        try c.encode(timestepSpacing, forKey: .timestepSpacing)
        try c.encode(timestepScaling, forKey: .timestepScaling)
        try c.encode(rescaleBetasZeroSnr, forKey: .rescaleBetasZeroSnr)
    }
}

/// The LCM multistep sampler.
public struct LCMScheduler: Scheduler {
    public static let className = "LCMScheduler"
    public let config: LCMSchedulerConfig
    let schedule: NoiseSchedule
    let finalAlphaCumprod: Float
    public private(set) var timesteps: [Float] = []
    private var numInferenceSteps = 0
    private var stepIndex: Int?
    private var beginIndex: Int?

    public var initNoiseSigma: Float { 1 }
    public var order: Int { 1 }
    public var predictionType: PredictionType { config.predictionType }
    public var numTrainTimesteps: Int { config.numTrainTimesteps }

    public init(config: LCMSchedulerConfig = LCMSchedulerConfig()) throws {
        try config.requireNoiseSchedule([.linear, .scaledLinear, .squaredcosCapV2], minTrainSteps: 1, scheduler: Self.className)
        try requireRange(config.originalInferenceSteps, 1...config.numTrainTimesteps, key: "original_inference_steps",
                         scheduler: Self.className)
        self.config = config
        schedule = try NoiseSchedule(config, rescaleZeroSNR: config.rescaleBetasZeroSnr)
        finalAlphaCumprod = config.setAlphaToOne ? 1 : schedule.alphasCumprod[0]
    }

    public mutating func setTimesteps(_ count: Int) throws {
        let original = config.originalInferenceSteps
        try requireStepCount(count, limit: original, scheduler: Self.className)
        let k = config.numTrainTimesteps / original
        let origin = (1...original).map { $0 * k - 1 }.reversed().map { $0 }
        // np.floor(np.linspace(0, len, num=count, endpoint=False))
        let step = Double(origin.count) / Double(count)
        timesteps = (0..<count).map { Float(origin[Int((Double($0) * step).rounded(.down))]) }
        numInferenceSteps = count
        stepIndex = nil
        beginIndex = nil
    }

    public mutating func setBeginIndex(_ index: Int) { beginIndex = index }

    public func scaleModelInput(_ sample: Tensor, timestep: Float) -> Tensor { sample }

    /// The index of `timestep` in the run (the second match when it repeats, as diffusers).
    func index(of timestep: Float) -> Int {
        let matches = timesteps.indices.filter { timesteps[$0] == timestep }
        return matches.count > 1 ? matches[1] : (matches.first ?? 0)
    }

    public mutating func step(output: Tensor, timestep: Float, sample: Tensor, random: inout any RandomSource) -> Tensor {
        let index = stepIndex ?? beginIndex ?? self.index(of: timestep)
        let t = Int(timestep)
        let prevT = index + 1 < timesteps.count ? Int(timesteps[index + 1]) : t
        let alphaProd = schedule.alphaProd(t)
        let alphaProdPrev = prevT >= 0 ? schedule.alphaProd(prevT) : finalAlphaCumprod
        // Boundary condition scalings.
        let sigmaData: Float = 0.5
        let scaled = timestep * Float(config.timestepScaling)
        let cSkip = sigmaData * sigmaData / (scaled * scaled + sigmaData * sigmaData)
        let cOut = scaled / (scaled * scaled + sigmaData * sigmaData).squareRoot()
        var x0 = predictedOriginal(output: output, sample: sample, alpha: alphaProd.squareRoot(),
                                   sigma: (1 - alphaProd).squareRoot(), type: config.predictionType)
        x0 = config.limited(x0)
        let denoised = zipMap(x0, sample) { a, x in cOut * a + cSkip * x }
        stepIndex = index + 1
        guard index != numInferenceSteps - 1 else { return denoised }
        let noise = drawNoise(like: output.shape, count: output.count, random: &random)
        let a = alphaProdPrev.squareRoot(), s = (1 - alphaProdPrev).squareRoot()
        return zipMap(denoised, noise) { d, z in a * d + s * z }
    }

    public func addNoise(original: Tensor, noise: Tensor, timestep: Float) -> Tensor {
        addNoiseAlphaProd(original: original, noise: noise, alphaProd: schedule.alphaProd(Int(timestep)))
    }
}

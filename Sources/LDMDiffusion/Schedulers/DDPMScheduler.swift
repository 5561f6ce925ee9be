// DDPMScheduler.swift — ancestral sampling of Ho et al. (2020), "Denoising Diffusion Probabilistic
// Models". Matches diffusers' schedulers/scheduling_ddpm.py (`DDPMScheduler`).

import Foundation
import LDMCore

/// diffusers' `variance_type` of DDPM: which variance the reverse step adds noise with.
public enum DDPMVarianceType: String, Codable, Sendable, CaseIterable {
    /// β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t) · β_t, the posterior variance (formula (7)).
    case fixedSmall = "fixed_small"
    /// The same variance, its square root taken through log and exp.
    case fixedSmallLog = "fixed_small_log"
    /// β_t.
    case fixedLarge = "fixed_large"
    /// log β_t (GLIDE); not supported: it gives NaN noise in diffusers.
    case fixedLargeLog = "fixed_large_log"
    /// Predicted by the model (extra output channels); not supported.
    case learned
    /// Interpolated by the model between the small and large variances; not supported.
    case learnedRange = "learned_range"
}

/// Configuration of `DDPMScheduler`: the keys and defaults of diffusers' `DDPMScheduler.__init__`.
public struct DDPMSchedulerConfig: Codable, Sendable, Equatable, CommonSchedulerConfig, ThresholdingConfig,
    ClipSampleConfig {
    /// Length T of the training noise schedule.
    public var numTrainTimesteps = 1000
    /// β at t = 0.
    public var betaStart = 0.0001
    /// β at t = T − 1.
    public var betaEnd = 0.02
    /// How β grows from `betaStart` to `betaEnd`.
    public var betaSchedule = BetaSchedule.linear
    /// Explicit β_t, replacing the schedule when given.
    public var trainedBetas: [Double]?
    /// Variance of the noise added at each step.
    public var varianceType = DDPMVarianceType.fixedSmall
    /// Clamp the predicted x₀ to ±`clipSampleRange`.
    public var clipSample = true
    /// What the model predicts.
    public var predictionType = PredictionType.epsilon
    /// Dynamic thresholding of x₀ (Imagen); takes precedence over `clipSample`.
    public var thresholding = false
    /// Quantile of |x₀| used by dynamic thresholding.
    public var dynamicThresholdingRatio = 0.995
    /// Bound for `clipSample`.
    public var clipSampleRange = 1.0
    /// Largest threshold dynamic thresholding may use.
    public var sampleMaxValue = 1.0
    /// How inference timesteps are spread over the training steps.
    public var timestepSpacing = TimestepSpacing.leading
    /// Added to every timestep with "leading" spacing (Stable Diffusion uses 1).
    public var stepsOffset = 0
    /// Rescale β to zero terminal SNR (Lin et al., 2023).
    public var rescaleBetasZeroSnr = false

    public init() {}

    enum CodingKeys: String, CommonSchedulerCodingKey {
        case className = "_class_name"
        case numTrainTimesteps = "num_train_timesteps", betaStart = "beta_start", betaEnd = "beta_end"
        case betaSchedule = "beta_schedule", trainedBetas = "trained_betas", varianceType = "variance_type"
        case clipSample = "clip_sample", predictionType = "prediction_type", thresholding
        case dynamicThresholdingRatio = "dynamic_thresholding_ratio", clipSampleRange = "clip_sample_range"
        case sampleMaxValue = "sample_max_value", timestepSpacing = "timestep_spacing", stepsOffset = "steps_offset"
        case rescaleBetasZeroSnr = "rescale_betas_zero_snr"
    }

    public init(from decoder: Decoder) throws {
        let r = try ConfigReader(decoder, CodingKeys.self, scheduler: DDPMScheduler.className)
        let d = DDPMSchedulerConfig()
        try readNoiseSchedule(r, defaults: d)
        varianceType = try r.choice(.varianceType, d.varianceType)
        clipSample = try r(.clipSample, d.clipSample)
        predictionType = try r.choice(.predictionType, d.predictionType)
        thresholding = try r(.thresholding, d.thresholding)
        dynamicThresholdingRatio = try r(.dynamicThresholdingRatio, d.dynamicThresholdingRatio)
        clipSampleRange = try r(.clipSampleRange, d.clipSampleRange)
        sampleMaxValue = try r(.sampleMaxValue, d.sampleMaxValue)
        timestepSpacing = try r.choice(.timestepSpacing, d.timestepSpacing)
        stepsOffset = try r(.stepsOffset, d.stepsOffset)
        rescaleBetasZeroSnr = try r(.rescaleBetasZeroSnr, d.rescaleBetasZeroSnr)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try writeNoiseSchedule(&c, className: DDPMScheduler.className)
        try c.encode(varianceType, forKey: .varianceType)
        try c.encode(clipSample, forKey: .clipSample)
        try c.encode(predictionType, forKey: .predictionType)
        try c.encode(thresholding, forKey: .thresholding)
        try c.encode(dynamicThresholdingRatio, forKey: .dynamicThresholdingRatio)
        try c.encode(clipSampleRange, forKey: .clipSampleRange)
        try c.encode(sampleMaxValue, forKey: .sampleMaxValue)
        try c.encode(timestepSpacing, forKey: .timestepSpacing)
        try c.encode(stepsOffset, forKey: .stepsOffset)
        try c.encode(rescaleBetasZeroSnr, forKey: .rescaleBetasZeroSnr)
    }
}

/// DDPM: x_{t−1} ~ N(μ̃_t(x_t, x̂₀), σ_t² I), the ancestral sampler the model was trained for.
public struct DDPMScheduler: Scheduler {
    /// diffusers' class name (`_class_name`).
    public static let className = "DDPMScheduler"

    /// The configuration this scheduler was built from.
    public let config: DDPMSchedulerConfig
    let schedule: NoiseSchedule
    public private(set) var timesteps: [Float] = []
    /// Steps of the current run (nil: the full training schedule, t − 1 after t).
    private var numInferenceSteps: Int?

    public var initNoiseSigma: Float { 1 }
    public var order: Int { 1 }
    public var predictionType: PredictionType { config.predictionType }
    public var numTrainTimesteps: Int { config.numTrainTimesteps }

    /// Builds the scheduler; throws when the config asks for something not implemented.
    public init(config: DDPMSchedulerConfig = DDPMSchedulerConfig()) throws {
        let name = Self.className
        try config.requireNoiseSchedule([.linear, .scaledLinear, .squaredcosCapV2, .sigmoid, .laplace], minTrainSteps: 1,
                                        scheduler: name)
        try require(config.varianceType, in: [.fixedSmall, .fixedSmallLog, .fixedLarge],
                    key: "variance_type", scheduler: name)
        self.config = config
        schedule = try NoiseSchedule(config, rescaleZeroSNR: config.rescaleBetasZeroSnr)
        timesteps = (0..<config.numTrainTimesteps).reversed().map { Float($0) }
    }

    public mutating func setTimesteps(_ count: Int) throws {
        try requireStepCount(count, limit: config.numTrainTimesteps, scheduler: Self.className)
        numInferenceSteps = count
        timesteps = config.inferenceTimesteps(count, integer: true).map { Float($0) }
    }

    public mutating func setBeginIndex(_ index: Int) {}

    public func scaleModelInput(_ sample: Tensor, timestep: Float) -> Tensor { sample }

    /// The timestep after `t` in the run (−1 after the last); t − 1 before `setTimesteps`.
    func previousTimestep(_ t: Int) -> Int {
        guard let n = numInferenceSteps else { return t - 1 }
        guard let i = timesteps.firstIndex(of: Float(t)) else { return t - config.numTrainTimesteps / n }
        return i == timesteps.count - 1 ? -1 : Int(timesteps[i + 1])
    }

    public mutating func step(output: Tensor, timestep: Float, sample: Tensor,
                              random: inout any RandomSource) -> Tensor {
        let t = Int(timestep)
        let prevT = previousTimestep(t)

        // 1. compute ᾱ_t, ᾱ_{t−1}, β_t = 1 − ᾱ_t/ᾱ_{t−1}
        let alphaProd = schedule.alphaProd(t)
        let alphaProdPrev: Float = prevT >= 0 ? schedule.alphaProd(prevT) : 1
        let betaProd = 1 - alphaProd, betaProdPrev = 1 - alphaProdPrev
        let currentAlpha = alphaProd / alphaProdPrev, currentBeta = 1 - currentAlpha

        // 2. predicted x₀, formula (15): x̂₀ = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t
        var x0 = predictedOriginal(output: output, sample: sample, alpha: alphaProd.squareRoot(),
                                   sigma: betaProd.squareRoot(), type: config.predictionType)

        // 3. clip or threshold x̂₀
        x0 = config.limited(x0)

        // 4. coefficients of x̂₀ and x_t in μ̃_t, formula (7):
        //    μ̃_t = √ᾱ_{t−1} β_t / (1 − ᾱ_t) · x̂₀ + √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · x_t
        let x0Coeff = (alphaProdPrev.squareRoot() * currentBeta) / betaProd
        let xtCoeff = currentAlpha.squareRoot() * betaProdPrev / betaProd

        // 5. predicted previous sample μ̃_t
        var prev = zipMap(x0, sample) { (a, x) in x0Coeff * a + xtCoeff * x }

        // 6. add noise σ_t z, z ~ N(0, I), except at t = 0
        if t > 0 {
            let noise = drawNoise(like: output.shape, count: output.count, random: &random)
            // β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t, clamped away from 0 for the log
            let small = Swift.max(betaProdPrev / betaProd * currentBeta, 1e-20)
            let std: Float
            switch config.varianceType {
            case .fixedSmallLog: std = expf(0.5 * logf(small))
            case .fixedLarge: std = currentBeta.squareRoot()
            default: std = small.squareRoot()
            }
            prev = zipMap(prev, noise) { (p, z) in p + std * z }
        }
        return prev
    }

    /// q(x_t | x₀) = N(√ᾱ_t x₀, (1 − ᾱ_t) I).
    public func addNoise(original: Tensor, noise: Tensor, timestep: Float) -> Tensor {
        addNoiseAlphaProd(original: original, noise: noise, alphaProd: schedule.alphaProd(Int(timestep)))
    }
}

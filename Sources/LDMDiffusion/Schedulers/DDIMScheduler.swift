// DDIMScheduler.swift — denoising diffusion implicit models of Song, Meng & Ermon (2020),
// "Denoising Diffusion Implicit Models" (arXiv:2010.02502). Matches diffusers'
// schedulers/scheduling_ddim.py (`DDIMScheduler`).

import Foundation
import LDMCore

/// Configuration of `DDIMScheduler`: the keys and defaults of diffusers' `DDIMScheduler.__init__`.
public struct DDIMSchedulerConfig: Codable, Sendable, Equatable, CommonSchedulerConfig, ThresholdingConfig,
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
    /// Clamp the predicted x₀ to ±`clipSampleRange`.
    public var clipSample = true
    /// ᾱ "before" the first training step: 1 when true, else ᾱ₀.
    public var setAlphaToOne = true
    /// Added to every timestep with "leading" spacing.
    public var stepsOffset = 0
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
    /// Rescale β to zero terminal SNR (Lin et al., 2023).
    public var rescaleBetasZeroSnr = false

    public init() {}

    enum CodingKeys: String, CommonSchedulerCodingKey {
        case className = "_class_name"
        case numTrainTimesteps = "num_train_timesteps", betaStart = "beta_start", betaEnd = "beta_end"
        case betaSchedule = "beta_schedule", trainedBetas = "trained_betas", clipSample = "clip_sample"
        case setAlphaToOne = "set_alpha_to_one", stepsOffset = "steps_offset", predictionType = "prediction_type"
        case thresholding, dynamicThresholdingRatio = "dynamic_thresholding_ratio"
        case clipSampleRange = "clip_sample_range", sampleMaxValue = "sample_max_value"
        case timestepSpacing = "timestep_spacing", rescaleBetasZeroSnr = "rescale_betas_zero_snr"
    }

    public init(from decoder: Decoder) throws {
        let r = try ConfigReader(decoder, CodingKeys.self, scheduler: DDIMScheduler.className)
        let d = DDIMSchedulerConfig()
        try readNoiseSchedule(r, defaults: d)
        clipSample = try r(.clipSample, d.clipSample)
        setAlphaToOne = try r(.setAlphaToOne, d.setAlphaToOne)
        stepsOffset = try r(.stepsOffset, d.stepsOffset)
        predictionType = try r.choice(.predictionType, d.predictionType)
        thresholding = try r(.thresholding, d.thresholding)
        dynamicThresholdingRatio = try r(.dynamicThresholdingRatio, d.dynamicThresholdingRatio)
        clipSampleRange = try r(.clipSampleRange, d.clipSampleRange)
        sampleMaxValue = try r(.sampleMaxValue, d.sampleMaxValue)
        timestepSpacing = try r.choice(.timestepSpacing, d.timestepSpacing)
        rescaleBetasZeroSnr = try r(.rescaleBetasZeroSnr, d.rescaleBetasZeroSnr)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try writeNoiseSchedule(&c, className: DDIMScheduler.className)
        try c.encode(clipSample, forKey: .clipSample)
        try c.encode(setAlphaToOne, forKey: .setAlphaToOne)
        try c.encode(stepsOffset, forKey: .stepsOffset)
        try c.encode(predictionType, forKey: .predictionType)
        try c.encode(thresholding, forKey: .thresholding)
        try c.encode(dynamicThresholdingRatio, forKey: .dynamicThresholdingRatio)
        try c.encode(clipSampleRange, forKey: .clipSampleRange)
        try c.encode(sampleMaxValue, forKey: .sampleMaxValue)
        try c.encode(timestepSpacing, forKey: .timestepSpacing)
        try c.encode(rescaleBetasZeroSnr, forKey: .rescaleBetasZeroSnr)
    }
}

/// DDIM: the deterministic (η = 0) or partly stochastic non-Markovian sampler, formula (12).
public struct DDIMScheduler: Scheduler {
    /// diffusers' class name (`_class_name`).
    public static let className = "DDIMScheduler"

    /// The configuration this scheduler was built from.
    public let config: DDIMSchedulerConfig
    /// η of formula (16): 0 is deterministic DDIM, 1 the DDPM variance. The Stable Diffusion
    /// pipelines pass 0 unless asked.
    public var eta: Float = 0
    let schedule: NoiseSchedule
    /// ᾱ used after the last step (prev timestep < 0).
    let finalAlphaCumprod: Float
    public private(set) var timesteps: [Float] = []
    private var numInferenceSteps = 1

    public var initNoiseSigma: Float { 1 }
    public var order: Int { 1 }
    public var predictionType: PredictionType { config.predictionType }
    public var numTrainTimesteps: Int { config.numTrainTimesteps }

    /// Builds the scheduler (with the full training schedule as its timesteps until `setTimesteps`).
    public init(config: DDIMSchedulerConfig = DDIMSchedulerConfig()) throws {
        try config.requireNoiseSchedule([.linear, .scaledLinear, .squaredcosCapV2], minTrainSteps: 1, scheduler: Self.className)
        self.config = config
        schedule = try NoiseSchedule(config, rescaleZeroSNR: config.rescaleBetasZeroSnr)
        finalAlphaCumprod = config.setAlphaToOne ? 1 : schedule.alphasCumprod[0]
        numInferenceSteps = config.numTrainTimesteps
        timesteps = (0..<config.numTrainTimesteps).reversed().map { Float($0) }
    }

    public mutating func setTimesteps(_ count: Int) throws {
        try requireStepCount(count, limit: config.numTrainTimesteps, scheduler: Self.className)
        numInferenceSteps = count
        timesteps = config.inferenceTimesteps(count, integer: true).map { Float($0) }
    }

    public mutating func setBeginIndex(_ index: Int) {}

    public func scaleModelInput(_ sample: Tensor, timestep: Float) -> Tensor { sample }

    public mutating func step(output: Tensor, timestep: Float, sample: Tensor,
                              random: inout any RandomSource) -> Tensor {
        let t = Int(timestep)
        // 1. previous timestep t − T/N (whatever the spacing, as diffusers does)
        let prevT = t - config.numTrainTimesteps / numInferenceSteps

        // 2. ᾱ_t and ᾱ_{t−1}
        let alphaProd = schedule.alphaProd(t)
        let alphaProdPrev = prevT >= 0 ? schedule.alphaProd(prevT) : finalAlphaCumprod
        let betaProd = 1 - alphaProd
        let sa = alphaProd.squareRoot(), sb = betaProd.squareRoot()

        // 3. predicted x₀ ("predicted x_0" of formula (12)) and predicted ε
        var x0 = predictedOriginal(output: output, sample: sample, alpha: sa, sigma: sb, type: config.predictionType)
        let eps = predictedNoise(output: output, sample: sample, alpha: sa, sigma: sb, type: config.predictionType)

        // 4. clip or threshold x̂₀
        x0 = config.limited(x0)

        // 5. σ_t(η) = η √((1 − ᾱ_{t−1})/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t−1}), formula (16)
        let variance = ((1 - alphaProdPrev) / betaProd) * (1 - alphaProd / alphaProdPrev)
        let stdDev = eta * variance.squareRoot()

        // 6. "direction pointing to x_t" of formula (12): √(1 − ᾱ_{t−1} − σ_t²) ε
        let dirCoeff = (1 - alphaProdPrev - stdDev * stdDev).squareRoot()

        // 7. x_{t−1} = √ᾱ_{t−1} x̂₀ + direction (+ σ_t z), formula (12)
        let x0Coeff = alphaProdPrev.squareRoot()
        var prev = zipMap(x0, eps) { (a, e) in x0Coeff * a + dirCoeff * e }
        if eta > 0 {
            let noise = drawNoise(like: output.shape, count: output.count, random: &random)
            prev = zipMap(prev, noise) { (p, z) in p + stdDev * z }
        }
        return prev
    }

    /// q(x_t | x₀) = N(√ᾱ_t x₀, (1 − ᾱ_t) I).
    public func addNoise(original: Tensor, noise: Tensor, timestep: Float) -> Tensor {
        addNoiseAlphaProd(original: original, noise: noise, alphaProd: schedule.alphaProd(Int(timestep)))
    }
}

// EulerDiscreteScheduler.swift — Euler's method on the probability-flow ODE in σ, Algorithm 2 of
// Karras et al. (2022), "Elucidating the Design Space of Diffusion-Based Generative Models"
// (without churn). Matches diffusers' schedulers/scheduling_euler_discrete.py
// (`EulerDiscreteScheduler`).

import Foundation
import LDMCore

/// diffusers' `timestep_type` of Euler: what the model receives as its time input.
public enum EulerTimestepType: String, Codable, Sendable, CaseIterable {
    /// The (interpolated) training timestep.
    case discrete
    /// 0.25 · log σ, for v-prediction models trained on continuous time; otherwise like discrete.
    case continuous
}

/// diffusers' `interpolation_type` of Euler: how σ is read off the training schedule.
public enum EulerInterpolationType: String, Codable, Sendable, CaseIterable {
    /// Linear interpolation of σ between training timesteps.
    case linear
    /// Log-linear; not supported.
    case logLinear = "log_linear"
}

/// Configuration of `EulerDiscreteScheduler`: the keys and defaults of diffusers' `EulerDiscreteScheduler.__init__`.
public struct EulerDiscreteSchedulerConfig: Codable, Sendable, Equatable, CommonSchedulerConfig {
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
    /// What the model predicts.
    public var predictionType = PredictionType.epsilon
    /// How σ is read off the training schedule.
    public var interpolationType = EulerInterpolationType.linear
    /// Use the σ spacing of Karras et al. (2022), ρ = 7.
    public var useKarrasSigmas = false
    /// Space σ evenly in log σ.
    public var useExponentialSigmas = false
    /// Beta-distribution σ spacing; not supported.
    public var useBetaSigmas = false
    /// Lower end of Karras / exponential σ (nil: the schedule's).
    public var sigmaMin: Double?
    /// Upper end of Karras / exponential σ (nil: the schedule's).
    public var sigmaMax: Double?
    /// How inference timesteps are spread over the training steps.
    public var timestepSpacing = TimestepSpacing.linspace
    /// What the model receives as its time input.
    public var timestepType = EulerTimestepType.discrete
    /// Added to every timestep with "leading" spacing.
    public var stepsOffset = 0
    /// Rescale β to zero terminal SNR (Lin et al., 2023); the last ᾱ is then set to 2⁻²⁴.
    public var rescaleBetasZeroSnr = false
    /// σ after the last step.
    public var finalSigmasType = FinalSigmasType.zero

    public init() {}

    enum CodingKeys: String, CommonSchedulerCodingKey {
        case className = "_class_name"
        case numTrainTimesteps = "num_train_timesteps", betaStart = "beta_start", betaEnd = "beta_end"
        case betaSchedule = "beta_schedule", trainedBetas = "trained_betas", predictionType = "prediction_type"
        case interpolationType = "interpolation_type", useKarrasSigmas = "use_karras_sigmas"
        case useExponentialSigmas = "use_exponential_sigmas", useBetaSigmas = "use_beta_sigmas"
        case sigmaMin = "sigma_min", sigmaMax = "sigma_max", timestepSpacing = "timestep_spacing"
        case timestepType = "timestep_type", stepsOffset = "steps_offset"
        case rescaleBetasZeroSnr = "rescale_betas_zero_snr", finalSigmasType = "final_sigmas_type"
    }

    public init(from decoder: Decoder) throws {
        let r = try ConfigReader(decoder, CodingKeys.self, scheduler: EulerDiscreteScheduler.className)
        let d = EulerDiscreteSchedulerConfig()
        try readNoiseSchedule(r, defaults: d)
        predictionType = try r.choice(.predictionType, d.predictionType)
        interpolationType = try r.choice(.interpolationType, d.interpolationType)
        useKarrasSigmas = try r(.useKarrasSigmas, d.useKarrasSigmas)
        useExponentialSigmas = try r(.useExponentialSigmas, d.useExponentialSigmas)
        useBetaSigmas = try r(.useBetaSigmas, d.useBetaSigmas)
        sigmaMin = try r.optional(.sigmaMin)
        sigmaMax = try r.optional(.sigmaMax)
        timestepSpacing = try r.choice(.timestepSpacing, d.timestepSpacing)
        timestepType = try r.choice(.timestepType, d.timestepType)
        stepsOffset = try r(.stepsOffset, d.stepsOffset)
        rescaleBetasZeroSnr = try r(.rescaleBetasZeroSnr, d.rescaleBetasZeroSnr)
        finalSigmasType = try r.choice(.finalSigmasType, d.finalSigmasType)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try writeNoiseSchedule(&c, className: EulerDiscreteScheduler.className)
        try c.encode(predictionType, forKey: .predictionType)
        try c.encode(interpolationType, forKey: .interpolationType)
        try c.encode(useKarrasSigmas, forKey: .useKarrasSigmas)
        try c.encode(useExponentialSigmas, forKey: .useExponentialSigmas)
        try c.encode(useBetaSigmas, forKey: .useBetaSigmas)
        try c.encodeOrNull(sigmaMin, forKey: .sigmaMin)
        try c.encodeOrNull(sigmaMax, forKey: .sigmaMax)
        try c.encode(timestepSpacing, forKey: .timestepSpacing)
        try c.encode(timestepType, forKey: .timestepType)
        try c.encode(stepsOffset, forKey: .stepsOffset)
        try c.encode(rescaleBetasZeroSnr, forKey: .rescaleBetasZeroSnr)
        try c.encode(finalSigmasType, forKey: .finalSigmasType)
    }
}

/// Euler: x_{i+1} = x_i + (σ_{i+1} − σ_i) · (x_i − x̂₀)/σ_i.
public struct EulerDiscreteScheduler: SigmaScheduler {
    /// diffusers' class name (`_class_name`).
    public static let className = "EulerDiscreteScheduler"

    /// The configuration this scheduler was built from.
    public let config: EulerDiscreteSchedulerConfig
    let schedule: NoiseSchedule
    private var cursor = SigmaCursor(offSchedule: .nearest)

    public var timesteps: [Float] { cursor.timesteps }
    public var sigmas: [Float] { cursor.sigmas }
    public var initNoiseSigma: Float { cursor.initNoiseSigma(spacing: config.timestepSpacing) }
    public var order: Int { 1 }
    public var predictionType: PredictionType { config.predictionType }
    public var numTrainTimesteps: Int { config.numTrainTimesteps }

    /// Builds the scheduler (set up for the full training schedule until `setTimesteps`).
    public init(config: EulerDiscreteSchedulerConfig = EulerDiscreteSchedulerConfig()) throws {
        let name = Self.className
        try config.requireNoiseSchedule([.linear, .scaledLinear, .squaredcosCapV2], minTrainSteps: 2, scheduler: name)
        try require(config.interpolationType, in: [.linear], key: "interpolation_type", scheduler: name)
        try requireOff(config.useBetaSigmas, key: "use_beta_sigmas", scheduler: name)
        try requireAtMostOne(["use_karras_sigmas": config.useKarrasSigmas, "use_exponential_sigmas": config.useExponentialSigmas])
        self.config = config
        schedule = try NoiseSchedule(config, rescaleZeroSNR: config.rescaleBetasZeroSnr, sigmaScheduler: true)
        try setTimesteps(config.numTrainTimesteps)
    }

    public mutating func setTimesteps(_ count: Int) throws {
        try requireStepCount(count, limit: nil, scheduler: Self.className)
        let (steps, s) = schedule.kDiffusionSigmas(
            at: config.inferenceTimesteps(count, integer: false), count: count,
            spacing: SigmaSpacing(karras: config.useKarrasSigmas, exponential: config.useExponentialSigmas),
            sigmaMin: config.sigmaMin, sigmaMax: config.sigmaMax)
        let last: Float = config.finalSigmasType == .sigmaMin ? schedule.sigmaMin : 0
        let sigmas = s.map { Float($0) } + [last]
        // continuous time (v-prediction only): the model's time input is 0.25 · log σ
        let continuous = config.timestepType == .continuous && config.predictionType == .vPrediction
        let timesteps = continuous ? sigmas.dropLast().map { 0.25 * logf($0) } : steps.map { Float($0) }
        cursor.start(timesteps: timesteps, sigmas: sigmas)
    }

    public mutating func setBeginIndex(_ index: Int) { cursor.beginIndex = index }

    /// x / √(σ² + 1).
    public func scaleModelInput(_ sample: Tensor, timestep: Float) -> Tensor {
        cursor.scaleModelInput(sample, timestep: timestep)
    }

    public mutating func step(output: Tensor, timestep: Float, sample: Tensor,
                              random: inout any RandomSource) -> Tensor {
        let i = min(cursor.current(timestep), sigmas.count - 2)
        // 1. σ_i (no churn: σ̂ = σ_i)
        let sigma = sigmas[i]

        // 2. predicted x₀
        let x0 = sigmaPredictedOriginal(output: output, sample: sample, sigma: sigma, type: config.predictionType)

        // 3. ODE derivative d = (x − x̂₀)/σ and step size dt = σ_{i+1} − σ
        let dt = sigmas[i + 1] - sigma

        // 4. Euler step x_{i+1} = x_i + d · dt
        cursor.advance(past: i)
        return zipMap(sample, x0) { (x, p) in x + ((x - p) / sigma) * dt }
    }

    /// x_σ = x₀ + σ ε.
    public func addNoise(original: Tensor, noise: Tensor, timestep: Float) -> Tensor {
        cursor.addNoise(original: original, noise: noise, timestep: timestep)
    }
}

// EulerAncestralDiscreteScheduler.swift — Euler steps with ancestral noise, k-diffusion's
// `sample_euler_ancestral` (Karras et al. 2022 §3 notation, ancestral split of Song et al. 2021).
// Matches diffusers' schedulers/scheduling_euler_ancestral_discrete.py
// (`EulerAncestralDiscreteScheduler`).

import Foundation
import LDMCore

/// Configuration of `EulerAncestralDiscreteScheduler`: the keys and defaults of diffusers'
/// `EulerAncestralDiscreteScheduler.__init__`.
public struct EulerAncestralDiscreteSchedulerConfig: Codable, Sendable, Equatable, CommonSchedulerConfig {
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
    /// What the model predicts (ε or v).
    public var predictionType = PredictionType.epsilon
    /// How inference timesteps are spread over the training steps.
    public var timestepSpacing = TimestepSpacing.linspace
    /// Added to every timestep with "leading" spacing.
    public var stepsOffset = 0
    /// Rescale β to zero terminal SNR (Lin et al., 2023); the last ᾱ is then set to 2⁻²⁴.
    public var rescaleBetasZeroSnr = false

    public init() {}

    enum CodingKeys: String, CommonSchedulerCodingKey {
        case className = "_class_name"
        case numTrainTimesteps = "num_train_timesteps", betaStart = "beta_start", betaEnd = "beta_end"
        case betaSchedule = "beta_schedule", trainedBetas = "trained_betas", predictionType = "prediction_type"
        case timestepSpacing = "timestep_spacing", stepsOffset = "steps_offset"
        case rescaleBetasZeroSnr = "rescale_betas_zero_snr"
    }

    public init(from decoder: Decoder) throws {
        let r = try ConfigReader(decoder, CodingKeys.self, scheduler: EulerAncestralDiscreteScheduler.className)
        let d = EulerAncestralDiscreteSchedulerConfig()
        try readNoiseSchedule(r, defaults: d)
        predictionType = try r.choice(.predictionType, d.predictionType)
        timestepSpacing = try r.choice(.timestepSpacing, d.timestepSpacing)
        stepsOffset = try r(.stepsOffset, d.stepsOffset)
        rescaleBetasZeroSnr = try r(.rescaleBetasZeroSnr, d.rescaleBetasZeroSnr)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try writeNoiseSchedule(&c, className: EulerAncestralDiscreteScheduler.className)
        try c.encode(predictionType, forKey: .predictionType)
        try c.encode(timestepSpacing, forKey: .timestepSpacing)
        try c.encode(stepsOffset, forKey: .stepsOffset)
        try c.encode(rescaleBetasZeroSnr, forKey: .rescaleBetasZeroSnr)
    }
}

/// Euler ancestral: a deterministic Euler step down to σ_down, then fresh noise of σ_up, with
/// σ_down² + σ_up² = σ_{i+1}².
public struct EulerAncestralDiscreteScheduler: SigmaScheduler {
    /// diffusers' class name (`_class_name`).
    public static let className = "EulerAncestralDiscreteScheduler"

    /// The configuration this scheduler was built from.
    public let config: EulerAncestralDiscreteSchedulerConfig
    let schedule: NoiseSchedule
    private var cursor = SigmaCursor(offSchedule: .nearest)

    public var timesteps: [Float] { cursor.timesteps }
    public var sigmas: [Float] { cursor.sigmas }
    public var initNoiseSigma: Float { cursor.initNoiseSigma(spacing: config.timestepSpacing) }
    public var order: Int { 1 }
    public var predictionType: PredictionType { config.predictionType }
    public var numTrainTimesteps: Int { config.numTrainTimesteps }

    /// Builds the scheduler (set up for the full training schedule until `setTimesteps`).
    public init(config: EulerAncestralDiscreteSchedulerConfig = EulerAncestralDiscreteSchedulerConfig()) throws {
        let name = Self.className
        try config.requireNoiseSchedule([.linear, .scaledLinear, .squaredcosCapV2], minTrainSteps: 2, scheduler: name)
        try require(config.predictionType, in: [.epsilon, .vPrediction], key: "prediction_type", scheduler: name)
        self.config = config
        schedule = try NoiseSchedule(config, rescaleZeroSNR: config.rescaleBetasZeroSnr, sigmaScheduler: true)
        try setTimesteps(config.numTrainTimesteps)
    }

    public mutating func setTimesteps(_ count: Int) throws {
        try requireStepCount(count, limit: nil, scheduler: Self.className)
        let (steps, s) = schedule.kDiffusionSigmas(at: config.inferenceTimesteps(count, integer: false), count: count,
                                                   spacing: .interpolated)
        cursor.start(timesteps: steps.map { Float($0) }, sigmas: s.map { Float($0) } + [0])
    }

    public mutating func setBeginIndex(_ index: Int) { cursor.beginIndex = index }

    /// x / √(σ² + 1).
    public func scaleModelInput(_ sample: Tensor, timestep: Float) -> Tensor {
        cursor.scaleModelInput(sample, timestep: timestep)
    }

    public mutating func step(output: Tensor, timestep: Float, sample: Tensor,
                              random: inout any RandomSource) -> Tensor {
        let i = min(cursor.current(timestep), sigmas.count - 2)
        let sigma = sigmas[i]

        // 1. predicted x₀
        let x0 = sigmaPredictedOriginal(output: output, sample: sample, sigma: sigma, type: config.predictionType)

        // 2. ancestral split of σ_{i+1}: σ_up = √(σ_{i+1}² (σ_i² − σ_{i+1}²)/σ_i²), σ_down = √(σ_{i+1}² − σ_up²)
        let from = sigmas[i], to = sigmas[i + 1]
        let sigmaUp = ((to * to) * (from * from - to * to) / (from * from)).squareRoot()
        let sigmaDown = (to * to - sigmaUp * sigmaUp).squareRoot()

        // 3. Euler step to σ_down: x + (x − x̂₀)/σ · (σ_down − σ)
        let dt = sigmaDown - sigma
        let deterministic = zipMap(sample, x0) { (x, p) in x + ((x - p) / sigma) * dt }

        // 4. add σ_up z, z ~ N(0, I) (drawn at every step, as diffusers does)
        let noise = drawNoise(like: output.shape, count: output.count, random: &random)
        cursor.advance(past: i)
        return zipMap(deterministic, noise) { (x, z) in x + z * sigmaUp }
    }

    /// x_σ = x₀ + σ ε.
    public func addNoise(original: Tensor, noise: Tensor, timestep: Float) -> Tensor {
        cursor.addNoise(original: original, noise: noise, timestep: timestep)
    }
}

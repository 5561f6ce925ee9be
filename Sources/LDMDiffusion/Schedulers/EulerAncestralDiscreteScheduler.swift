// EulerAncestralDiscreteScheduler.swift — Euler steps with ancestral noise, k-diffusion's
// `sample_euler_ancestral` (Karras et al. 2022 §3 notation, ancestral split of Song et al. 2021).
// Matches diffusers' schedulers/scheduling_euler_ancestral_discrete.py
// (`EulerAncestralDiscreteScheduler`).

import Foundation
import LDMCore

/// Configuration of `EulerAncestralDiscreteScheduler`: the keys and defaults of diffusers'
/// `EulerAncestralDiscreteScheduler.__init__`.
public struct EulerAncestralDiscreteSchedulerConfig: Codable, Sendable, Equatable {
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

    enum CodingKeys: String, CodingKey {
        case className = "_class_name"
        case numTrainTimesteps = "num_train_timesteps", betaStart = "beta_start", betaEnd = "beta_end"
        case betaSchedule = "beta_schedule", trainedBetas = "trained_betas", predictionType = "prediction_type"
        case timestepSpacing = "timestep_spacing", stepsOffset = "steps_offset"
        case rescaleBetasZeroSnr = "rescale_betas_zero_snr"
    }

    public init(from decoder: Decoder) throws {
        let r = try ConfigReader(decoder, CodingKeys.self, scheduler: EulerAncestralDiscreteScheduler.className)
        let d = EulerAncestralDiscreteSchedulerConfig()
        numTrainTimesteps = try r(.numTrainTimesteps, d.numTrainTimesteps)
        betaStart = try r(.betaStart, d.betaStart)
        betaEnd = try r(.betaEnd, d.betaEnd)
        betaSchedule = try r.choice(.betaSchedule, d.betaSchedule)
        trainedBetas = try r.optional(.trainedBetas)
        predictionType = try r.choice(.predictionType, d.predictionType)
        timestepSpacing = try r.choice(.timestepSpacing, d.timestepSpacing)
        stepsOffset = try r(.stepsOffset, d.stepsOffset)
        rescaleBetasZeroSnr = try r(.rescaleBetasZeroSnr, d.rescaleBetasZeroSnr)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(EulerAncestralDiscreteScheduler.className, forKey: .className)
        try c.encode(numTrainTimesteps, forKey: .numTrainTimesteps)
        try c.encode(betaStart, forKey: .betaStart)
        try c.encode(betaEnd, forKey: .betaEnd)
        try c.encode(betaSchedule, forKey: .betaSchedule)
        try c.encodeOrNull(trainedBetas, forKey: .trainedBetas)
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
    public private(set) var timesteps: [Float] = []
    public private(set) var sigmas: [Float] = []
    private var cursor = StepCursor()

    public var initNoiseSigma: Float { sigmaInitNoise(sigmas, spacing: config.timestepSpacing) }
    public var order: Int { 1 }
    public var predictionType: PredictionType { config.predictionType }
    public var numTrainTimesteps: Int { config.numTrainTimesteps }

    /// Builds the scheduler (set up for the full training schedule until `setTimesteps`).
    public init(config: EulerAncestralDiscreteSchedulerConfig = EulerAncestralDiscreteSchedulerConfig()) throws {
        let name = Self.className
        try requireRange(config.numTrainTimesteps, 2...1_000_000, key: "num_train_timesteps", scheduler: name)
        try require(config.betaSchedule, in: [.linear, .scaledLinear, .squaredcosCapV2], key: "beta_schedule", scheduler: name)
        try require(config.predictionType, in: [.epsilon, .vPrediction], key: "prediction_type", scheduler: name)
        self.config = config
        var schedule = try NoiseSchedule(trainSteps: config.numTrainTimesteps, betaStart: config.betaStart,
                                     betaEnd: config.betaEnd, schedule: config.betaSchedule,
                                     trainedBetas: config.trainedBetas, rescaleZeroSNR: config.rescaleBetasZeroSnr)
        if config.rescaleBetasZeroSnr { schedule.alphasCumprod[schedule.alphasCumprod.count - 1] = 0x1p-24 }
        self.schedule = schedule
        try setTimesteps(config.numTrainTimesteps)
    }

    public mutating func setTimesteps(_ count: Int) throws {
        guard count >= 1 else {
            throw SchedulerError.invalidStepCount(count, limit: nil, scheduler: Self.className)
        }
        let steps = spacedTimesteps(config.timestepSpacing, count: count, trainSteps: config.numTrainTimesteps,
                                    stepsOffset: config.stepsOffset, integer: false)
        let fp = schedule.sigmas.map { Double($0) }
        sigmas = steps.map { Float(NumPy.interp($0, fp)) } + [0]
        timesteps = steps.map { Float($0) }
        cursor = StepCursor()
    }

    public mutating func setBeginIndex(_ index: Int) { cursor.beginIndex = index }

    private func lookup(_ t: Float) -> Int {
        indexForTimestep(t, in: timesteps) { nearestIndex($0, in: timesteps) }
    }

    /// x / √(σ² + 1).
    public func scaleModelInput(_ sample: Tensor, timestep: Float) -> Tensor {
        scaleBySigma(sample, sigmas[min(cursor.current(timestep, lookup: lookup), sigmas.count - 1)])
    }

    public mutating func step(output: Tensor, timestep: Float, sample: Tensor,
                              random: inout any RandomSource) -> Tensor {
        let i = min(cursor.current(timestep, lookup: lookup), sigmas.count - 2)
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
        cursor.stepIndex = i + 1
        return zipMap(deterministic, noise) { (x, z) in x + z * sigmaUp }
    }

    /// x_σ = x₀ + σ ε.
    public func addNoise(original: Tensor, noise: Tensor, timestep: Float) -> Tensor {
        let sigma = sigmas[min(cursor.noiseLevel(timestep, lookup: lookup), sigmas.count - 1)]
        return zipMap(original, noise) { (x, e) in x + e * sigma }
    }
}

// HeunDiscreteScheduler.swift — Heun's second-order method on the probability-flow ODE in σ,
// Algorithm 1 of Karras et al. (2022), "Elucidating the Design Space of Diffusion-Based
// Generative Models". Matches diffusers' schedulers/scheduling_heun_discrete.py
// (`HeunDiscreteScheduler`): every interval but the last takes two model evaluations, so the
// timesteps repeat (t₀, t₁, t₁, t₂, t₂, …) and `order` is 2.

import Foundation
import LDMCore

/// Configuration of `HeunDiscreteScheduler`: the keys and defaults of diffusers' `HeunDiscreteScheduler.__init__`.
public struct HeunDiscreteSchedulerConfig: Codable, Sendable, Equatable, CommonSchedulerConfig, ClipSampleConfig {
    /// Length T of the training noise schedule.
    public var numTrainTimesteps = 1000
    /// β at t = 0 (Heun's own default is Stable Diffusion's).
    public var betaStart = 0.00085
    /// β at t = T − 1.
    public var betaEnd = 0.012
    /// How β grows from `betaStart` to `betaEnd`.
    public var betaSchedule = BetaSchedule.linear
    /// Explicit β_t, replacing the schedule when given.
    public var trainedBetas: [Double]?
    /// What the model predicts.
    public var predictionType = PredictionType.epsilon
    /// Use the σ spacing of Karras et al. (2022), ρ = 7.
    public var useKarrasSigmas = false
    /// Space σ evenly in log σ.
    public var useExponentialSigmas = false
    /// Beta-distribution σ spacing; not supported.
    public var useBetaSigmas = false
    /// Clamp the predicted x₀ to ±`clipSampleRange`.
    public var clipSample = false
    /// Bound for `clipSample`.
    public var clipSampleRange = 1.0
    /// How inference timesteps are spread over the training steps.
    public var timestepSpacing = TimestepSpacing.linspace
    /// Added to every timestep with "leading" spacing.
    public var stepsOffset = 0

    public init() {}

    enum CodingKeys: String, CommonSchedulerCodingKey {
        case className = "_class_name"
        case numTrainTimesteps = "num_train_timesteps", betaStart = "beta_start", betaEnd = "beta_end"
        case betaSchedule = "beta_schedule", trainedBetas = "trained_betas", predictionType = "prediction_type"
        case useKarrasSigmas = "use_karras_sigmas", useExponentialSigmas = "use_exponential_sigmas"
        case useBetaSigmas = "use_beta_sigmas", clipSample = "clip_sample", clipSampleRange = "clip_sample_range"
        case timestepSpacing = "timestep_spacing", stepsOffset = "steps_offset"
    }

    public init(from decoder: Decoder) throws {
        let r = try ConfigReader(decoder, CodingKeys.self, scheduler: HeunDiscreteScheduler.className)
        let d = HeunDiscreteSchedulerConfig()
        try readNoiseSchedule(r, defaults: d)
        predictionType = try r.choice(.predictionType, d.predictionType)
        useKarrasSigmas = try r(.useKarrasSigmas, d.useKarrasSigmas)
        useExponentialSigmas = try r(.useExponentialSigmas, d.useExponentialSigmas)
        useBetaSigmas = try r(.useBetaSigmas, d.useBetaSigmas)
        clipSample = try r(.clipSample, d.clipSample)
        clipSampleRange = try r(.clipSampleRange, d.clipSampleRange)
        timestepSpacing = try r.choice(.timestepSpacing, d.timestepSpacing)
        stepsOffset = try r(.stepsOffset, d.stepsOffset)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try writeNoiseSchedule(&c, className: HeunDiscreteScheduler.className)
        try c.encode(predictionType, forKey: .predictionType)
        try c.encode(useKarrasSigmas, forKey: .useKarrasSigmas)
        try c.encode(useExponentialSigmas, forKey: .useExponentialSigmas)
        try c.encode(useBetaSigmas, forKey: .useBetaSigmas)
        try c.encode(clipSample, forKey: .clipSample)
        try c.encode(clipSampleRange, forKey: .clipSampleRange)
        try c.encode(timestepSpacing, forKey: .timestepSpacing)
        try c.encode(stepsOffset, forKey: .stepsOffset)
    }
}

/// Heun: d_i = (x_i − x̂₀)/σ_i, x̃ = x_i + (σ_{i+1} − σ_i) d_i; then with d' from the model at x̃,
/// x_{i+1} = x_i + (σ_{i+1} − σ_i) (d_i + d')/2. The last interval (to σ = 0) is a plain Euler step.
public struct HeunDiscreteScheduler: SigmaScheduler {
    /// diffusers' class name (`_class_name`).
    public static let className = "HeunDiscreteScheduler"

    /// The configuration this scheduler was built from.
    public let config: HeunDiscreteSchedulerConfig
    let schedule: NoiseSchedule
    private var cursor = SigmaCursor(offSchedule: .nearest)
    /// State between the two halves of a Heun step: d_i, the step size, and x_i.
    private var prevDerivative: Tensor?
    private var dt: Float?
    private var savedSample: Tensor?

    public var timesteps: [Float] { cursor.timesteps }
    /// σ per entry of `timesteps` (interior σ repeated), plus the final 0.
    public var sigmas: [Float] { cursor.sigmas }
    public var initNoiseSigma: Float { cursor.initNoiseSigma(spacing: config.timestepSpacing) }
    public var order: Int { 2 }
    public var predictionType: PredictionType { config.predictionType }
    public var numTrainTimesteps: Int { config.numTrainTimesteps }
    /// True when the next `step` is the first (Euler) half of a Heun step.
    public var stateInFirstOrder: Bool { dt == nil }

    /// Builds the scheduler (set up for the full training schedule until `setTimesteps`).
    public init(config: HeunDiscreteSchedulerConfig = HeunDiscreteSchedulerConfig()) throws {
        let name = Self.className
        try config.requireNoiseSchedule([.linear, .scaledLinear, .squaredcosCapV2, .exp], minTrainSteps: 2, scheduler: name)
        try requireOff(config.useBetaSigmas, key: "use_beta_sigmas", scheduler: name)
        try requireAtMostOne(["use_karras_sigmas": config.useKarrasSigmas, "use_exponential_sigmas": config.useExponentialSigmas])
        self.config = config
        schedule = try NoiseSchedule(config)
        try setTimesteps(config.numTrainTimesteps)
    }

    public mutating func setTimesteps(_ count: Int) throws {
        try requireStepCount(count, limit: nil, scheduler: Self.className)
        let (steps, s) = schedule.kDiffusionSigmas(
            at: config.inferenceTimesteps(count, integer: false), count: count,
            spacing: SigmaSpacing(karras: config.useKarrasSigmas, exponential: config.useExponentialSigmas))
        // σ: [σ₀, σ₁, σ₁, …, σ_{n−1}, σ_{n−1}, 0]; timesteps: [t₀, t₁, t₁, …, t_{n−1}, t_{n−1}]
        let all = s.map { Float($0) } + [0]
        let t = steps.map { Float($0) }
        cursor.start(timesteps: [t[0]] + t.dropFirst().flatMap { [$0, $0] },
                     sigmas: [all[0]] + all.dropFirst().dropLast().flatMap { [$0, $0] } + [0])
        prevDerivative = nil
        dt = nil
        savedSample = nil
    }

    public mutating func setBeginIndex(_ index: Int) { cursor.beginIndex = index }

    /// x / √(σ² + 1) with the σ of the current entry.
    public func scaleModelInput(_ sample: Tensor, timestep: Float) -> Tensor {
        cursor.scaleModelInput(sample, timestep: timestep)
    }

    public mutating func step(output: Tensor, timestep: Float, sample: Tensor,
                              random: inout any RandomSource) -> Tensor {
        let i = min(max(cursor.current(timestep), stateInFirstOrder ? 0 : 1), sigmas.count - 2)
        // 1. the interval [σ, σ_next]: from this entry (first half) or from the previous one (second half)
        let first = stateInFirstOrder
        let sigma = first ? sigmas[i] : sigmas[i - 1]
        let sigmaNext = first ? sigmas[i + 1] : sigmas[i]

        // 2. predicted x₀ at the noise level the model was evaluated at (σ, then σ_next)
        let sigmaInput = first ? sigma : sigmaNext
        var x0 = sigmaPredictedOriginal(output: output, sample: sample, sigma: sigmaInput, type: config.predictionType)
        x0 = config.clipped(x0)

        // 3. first half: Euler step with d_i; second half: average of d_i and d' from x_i
        let prev: Tensor
        if first {
            let derivative = zipMap(sample, x0) { (x, p) in (x - p) / sigma }
            let h = sigmaNext - sigma
            prevDerivative = derivative
            dt = h
            savedSample = sample
            prev = zipMap(sample, derivative) { (x, d) in x + d * h }
        } else {
            let h = dt ?? 0
            let d0 = prevDerivative ?? Tensor(zeros: sample.shape)
            let start = savedSample ?? sample
            let derivative = zipMap3(sample, x0, d0) { (x, p, dPrev) in (dPrev + (x - p) / sigmaNext) / 2 }
            prev = zipMap(start, derivative) { (x, d) in x + d * h }
            prevDerivative = nil
            dt = nil
            savedSample = nil
        }
        cursor.advance(past: i)
        return prev
    }

    /// x_σ = x₀ + σ ε.
    public func addNoise(original: Tensor, noise: Tensor, timestep: Float) -> Tensor {
        cursor.addNoise(original: original, noise: noise, timestep: timestep)
    }
}

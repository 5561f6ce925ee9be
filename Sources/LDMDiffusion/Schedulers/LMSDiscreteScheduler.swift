// LMSDiscreteScheduler.swift — the linear multistep sampler of Karras et al. (2022), "Elucidating
// the Design Space of Diffusion-Based Generative Models" (k-diffusion's `sample_lms`): Adams–
// Bashforth in σ on the probability-flow ODE dx/dσ = (x − x̂₀)/σ. Matches diffusers'
// schedulers/scheduling_lms_discrete.py (`LMSDiscreteScheduler`).

import Foundation
import LDMCore

/// Configuration of `LMSDiscreteScheduler`: the keys and defaults of diffusers' `LMSDiscreteScheduler.__init__`.
public struct LMSDiscreteSchedulerConfig: Codable, Sendable, Equatable, CommonSchedulerConfig {
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
    /// Use the σ spacing of Karras et al. (2022), ρ = 7, between the schedule's end σ.
    public var useKarrasSigmas = false
    /// Space σ evenly in log σ.
    public var useExponentialSigmas = false
    /// Beta-distribution σ spacing; not supported.
    public var useBetaSigmas = false
    /// What the model predicts.
    public var predictionType = PredictionType.epsilon
    /// How inference timesteps are spread over the training steps.
    public var timestepSpacing = TimestepSpacing.linspace
    /// Added to every timestep with "leading" spacing.
    public var stepsOffset = 0

    public init() {}

    enum CodingKeys: String, CommonSchedulerCodingKey {
        case className = "_class_name"
        case numTrainTimesteps = "num_train_timesteps", betaStart = "beta_start", betaEnd = "beta_end"
        case betaSchedule = "beta_schedule", trainedBetas = "trained_betas", useKarrasSigmas = "use_karras_sigmas"
        case useExponentialSigmas = "use_exponential_sigmas", useBetaSigmas = "use_beta_sigmas"
        case predictionType = "prediction_type", timestepSpacing = "timestep_spacing", stepsOffset = "steps_offset"
    }

    public init(from decoder: Decoder) throws {
        let r = try ConfigReader(decoder, CodingKeys.self, scheduler: LMSDiscreteScheduler.className)
        let d = LMSDiscreteSchedulerConfig()
        try readNoiseSchedule(r, defaults: d)
        useKarrasSigmas = try r(.useKarrasSigmas, d.useKarrasSigmas)
        useExponentialSigmas = try r(.useExponentialSigmas, d.useExponentialSigmas)
        useBetaSigmas = try r(.useBetaSigmas, d.useBetaSigmas)
        predictionType = try r.choice(.predictionType, d.predictionType)
        timestepSpacing = try r.choice(.timestepSpacing, d.timestepSpacing)
        stepsOffset = try r(.stepsOffset, d.stepsOffset)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try writeNoiseSchedule(&c, className: LMSDiscreteScheduler.className)
        try c.encode(useKarrasSigmas, forKey: .useKarrasSigmas)
        try c.encode(useExponentialSigmas, forKey: .useExponentialSigmas)
        try c.encode(useBetaSigmas, forKey: .useBetaSigmas)
        try c.encode(predictionType, forKey: .predictionType)
        try c.encode(timestepSpacing, forKey: .timestepSpacing)
        try c.encode(stepsOffset, forKey: .stepsOffset)
    }
}

/// LMS: x_{i+1} = x_i + Σ_k c_k d_{i−k}, d = (x − x̂₀)/σ, with c_k the integral over [σ_i, σ_{i+1}]
/// of the Lagrange basis polynomial through σ_i, σ_{i−1}, … (up to order 4).
public struct LMSDiscreteScheduler: SigmaScheduler {
    /// diffusers' class name (`_class_name`).
    public static let className = "LMSDiscreteScheduler"

    /// The configuration this scheduler was built from.
    public let config: LMSDiscreteSchedulerConfig
    /// Largest number of past derivatives combined (diffusers' `step(order=4)`).
    public var lmsOrder = 4
    let schedule: NoiseSchedule
    private var cursor = SigmaCursor(offSchedule: .nearest)
    /// d = (x − x̂₀)/σ of the latest steps, oldest first.
    private var derivatives: [Tensor] = []

    public var timesteps: [Float] { cursor.timesteps }
    public var sigmas: [Float] { cursor.sigmas }
    public var initNoiseSigma: Float { cursor.initNoiseSigma(spacing: config.timestepSpacing) }
    public var order: Int { 1 }
    public var predictionType: PredictionType { config.predictionType }
    public var numTrainTimesteps: Int { config.numTrainTimesteps }

    /// Builds the scheduler (set up for the full training schedule until `setTimesteps`).
    public init(config: LMSDiscreteSchedulerConfig = LMSDiscreteSchedulerConfig()) throws {
        let name = Self.className
        try config.requireNoiseSchedule([.linear, .scaledLinear, .squaredcosCapV2], minTrainSteps: 2, scheduler: name)
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
        cursor.start(timesteps: steps.map { Float($0) }, sigmas: s.map { Float($0) } + [0])
        derivatives = []
    }

    public mutating func setBeginIndex(_ index: Int) { cursor.beginIndex = index }

    /// x / √(σ² + 1): the model sees inputs of unit variance.
    public func scaleModelInput(_ sample: Tensor, timestep: Float) -> Tensor {
        cursor.scaleModelInput(sample, timestep: timestep)
    }

    /// ∫_{σ_i}^{σ_{i+1}} ℓ_k(τ) dτ, ℓ_k(τ) = Π_{j≠k} (τ − σ_{i−j})/(σ_{i−k} − σ_{i−j}), j < order:
    /// the Lagrange basis polynomial expanded into monomial coefficients and integrated exactly
    /// (diffusers integrates it numerically with scipy's `quad`, exact for these low degrees).
    func lmsCoefficient(order: Int, index i: Int, current k: Int) -> Double {
        var poly: [Double] = [1]  // coefficients of τ⁰, τ¹, …
        for j in 0..<order where j != k {
            let root = Double(sigmas[i - j]), denom = Double(sigmas[i - k]) - Double(sigmas[i - j])
            var next = [Double](repeating: 0, count: poly.count + 1)
            for (p, c) in poly.enumerated() {
                next[p + 1] += c / denom
                next[p] -= c * root / denom
            }
            poly = next
        }
        func antiderivative(_ x: Double) -> Double {
            var sum = 0.0
            for (p, c) in poly.enumerated().reversed() { sum = sum * x + c / Double(p + 1) }
            return sum * x
        }
        return antiderivative(Double(sigmas[i + 1])) - antiderivative(Double(sigmas[i]))
    }

    public mutating func step(output: Tensor, timestep: Float, sample: Tensor,
                              random: inout any RandomSource) -> Tensor {
        let i = min(cursor.current(timestep), sigmas.count - 2)
        let sigma = sigmas[i]

        // 1. predicted x₀ from the model output
        let x0 = sigmaPredictedOriginal(output: output, sample: sample, sigma: sigma, type: config.predictionType)

        // 2. derivative of the ODE, d = (x − x̂₀)/σ
        derivatives.append(zipMap(sample, x0) { (x, p) in (x - p) / sigma })
        if derivatives.count > lmsOrder { derivatives.removeFirst() }

        // 3. linear multistep coefficients
        let order = min(i + 1, lmsOrder)
        let coeffs = (0..<order).map { Float(lmsCoefficient(order: order, index: i, current: $0)) }

        // 4. x_{i+1} = x_i + Σ_k c_k d_{i−k} (newest derivative first)
        let terms = Array(zip(coeffs, derivatives.reversed()))
        let update = weightedSum(terms.map(\.0), terms.map(\.1))
        cursor.advance(past: i)
        return add(sample, update)
    }

    /// x_σ = x₀ + σ ε.
    public func addNoise(original: Tensor, noise: Tensor, timestep: Float) -> Tensor {
        cursor.addNoise(original: original, noise: noise, timestep: timestep)
    }
}

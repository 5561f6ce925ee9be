// LMSDiscreteScheduler.swift — the linear multistep sampler of Karras et al. (2022), "Elucidating
// the Design Space of Diffusion-Based Generative Models" (k-diffusion's `sample_lms`): Adams–
// Bashforth in σ on the probability-flow ODE dx/dσ = (x − x̂₀)/σ. Matches diffusers'
// schedulers/scheduling_lms_discrete.py (`LMSDiscreteScheduler`).

import Foundation
import LDMCore

/// Configuration of `LMSDiscreteScheduler`: the keys and defaults of diffusers' `LMSDiscreteScheduler.__init__`.
public struct LMSDiscreteSchedulerConfig: Codable, Sendable, Equatable {
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

    enum CodingKeys: String, CodingKey {
        case className = "_class_name"
        case numTrainTimesteps = "num_train_timesteps", betaStart = "beta_start", betaEnd = "beta_end"
        case betaSchedule = "beta_schedule", trainedBetas = "trained_betas", useKarrasSigmas = "use_karras_sigmas"
        case useExponentialSigmas = "use_exponential_sigmas", useBetaSigmas = "use_beta_sigmas"
        case predictionType = "prediction_type", timestepSpacing = "timestep_spacing", stepsOffset = "steps_offset"
    }

    public init(from decoder: Decoder) throws {
        let r = try ConfigReader(decoder, CodingKeys.self, scheduler: LMSDiscreteScheduler.className)
        let d = LMSDiscreteSchedulerConfig()
        numTrainTimesteps = try r(.numTrainTimesteps, d.numTrainTimesteps)
        betaStart = try r(.betaStart, d.betaStart)
        betaEnd = try r(.betaEnd, d.betaEnd)
        betaSchedule = try r.choice(.betaSchedule, d.betaSchedule)
        trainedBetas = try r.optional(.trainedBetas)
        useKarrasSigmas = try r(.useKarrasSigmas, d.useKarrasSigmas)
        useExponentialSigmas = try r(.useExponentialSigmas, d.useExponentialSigmas)
        useBetaSigmas = try r(.useBetaSigmas, d.useBetaSigmas)
        predictionType = try r.choice(.predictionType, d.predictionType)
        timestepSpacing = try r.choice(.timestepSpacing, d.timestepSpacing)
        stepsOffset = try r(.stepsOffset, d.stepsOffset)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(LMSDiscreteScheduler.className, forKey: .className)
        try c.encode(numTrainTimesteps, forKey: .numTrainTimesteps)
        try c.encode(betaStart, forKey: .betaStart)
        try c.encode(betaEnd, forKey: .betaEnd)
        try c.encode(betaSchedule, forKey: .betaSchedule)
        try c.encodeOrNull(trainedBetas, forKey: .trainedBetas)
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
    public private(set) var timesteps: [Float] = []
    public private(set) var sigmas: [Float] = []
    private var cursor = StepCursor()
    /// d = (x − x̂₀)/σ of the latest steps, oldest first.
    private var derivatives: [Tensor] = []

    public var initNoiseSigma: Float { sigmaInitNoise(sigmas, spacing: config.timestepSpacing) }
    public var order: Int { 1 }
    public var predictionType: PredictionType { config.predictionType }
    public var numTrainTimesteps: Int { config.numTrainTimesteps }

    /// Builds the scheduler (set up for the full training schedule until `setTimesteps`).
    public init(config: LMSDiscreteSchedulerConfig = LMSDiscreteSchedulerConfig()) throws {
        let name = Self.className
        try requireRange(config.numTrainTimesteps, 2...1_000_000, key: "num_train_timesteps", scheduler: name)
        try require(config.betaSchedule, in: [.linear, .scaledLinear, .squaredcosCapV2], key: "beta_schedule", scheduler: name)
        try requireOff(config.useBetaSigmas, key: "use_beta_sigmas", scheduler: name)
        if config.useKarrasSigmas && config.useExponentialSigmas {
            throw SchedulerError.conflictingKeys("only one of use_karras_sigmas, use_exponential_sigmas can be true")
        }
        self.config = config
        schedule = try NoiseSchedule(trainSteps: config.numTrainTimesteps, betaStart: config.betaStart,
                                 betaEnd: config.betaEnd, schedule: config.betaSchedule,
                                 trainedBetas: config.trainedBetas)
        try setTimesteps(config.numTrainTimesteps)
    }

    public mutating func setTimesteps(_ count: Int) throws {
        guard count >= 1 else {
            throw SchedulerError.invalidStepCount(count, limit: nil, scheduler: Self.className)
        }
        var steps = spacedTimesteps(config.timestepSpacing, count: count, trainSteps: config.numTrainTimesteps,
                                    stepsOffset: config.stepsOffset, integer: false)
        let trainSigmas = schedule.sigmas
        let fp = trainSigmas.map { Double($0) }
        var s = steps.map { NumPy.interp($0, fp) }
        if config.useKarrasSigmas || config.useExponentialSigmas {
            let logSigmas = trainSigmas.map { logf($0) }
            s = config.useKarrasSigmas
                ? karrasSigmas(sigmaMin: s[s.count - 1], sigmaMax: s[0], count: count)
                : exponentialSigmas(sigmaMin: s[s.count - 1], sigmaMax: s[0], count: count)
            steps = s.map { sigmaToT($0, logSigmas: logSigmas) }
        }
        sigmas = s.map { Float($0) } + [0]
        timesteps = steps.map { Float($0) }
        cursor = StepCursor()
        derivatives = []
    }

    public mutating func setBeginIndex(_ index: Int) { cursor.beginIndex = index }

    private func lookup(_ t: Float) -> Int {
        indexForTimestep(t, in: timesteps) { nearestIndex($0, in: timesteps) }
    }

    /// x / √(σ² + 1): the model sees inputs of unit variance.
    public func scaleModelInput(_ sample: Tensor, timestep: Float) -> Tensor {
        let sigma = sigmas[min(cursor.current(timestep, lookup: lookup), sigmas.count - 1)]
        return scaleBySigma(sample, sigma)
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
        let i = min(cursor.current(timestep, lookup: lookup), sigmas.count - 2)
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
        cursor.stepIndex = i + 1
        return add(sample, update)
    }

    /// x_σ = x₀ + σ ε.
    public func addNoise(original: Tensor, noise: Tensor, timestep: Float) -> Tensor {
        let sigma = sigmas[min(cursor.noiseLevel(timestep, lookup: lookup), sigmas.count - 1)]
        return zipMap(original, noise) { (x, e) in x + e * sigma }
    }
}

// MARK: - Shared by the σ schedulers (LMS, Euler, Euler ancestral, Heun)

/// σ_max for "linspace"/"trailing" spacing, else √(σ_max² + 1) (diffusers' `init_noise_sigma`).
func sigmaInitNoise(_ sigmas: [Float], spacing: TimestepSpacing) -> Float {
    let maxSigma = sigmas.max() ?? 1
    return spacing == .leading ? (maxSigma * maxSigma + 1).squareRoot() : maxSigma
}

/// x / √(σ² + 1).
func scaleBySigma(_ sample: Tensor, _ sigma: Float) -> Tensor {
    let d = (sigma * sigma + 1).squareRoot()
    return map(sample) { $0 / d }
}

/// x̂₀ from a model output at noise level σ (x = x₀ + σ ε, model input x/√(σ² + 1)):
/// ε → x − σ ε; v → v · (−σ/√(σ² + 1)) + x/(σ² + 1); sample → the output itself.
func sigmaPredictedOriginal(output: Tensor, sample: Tensor, sigma: Float, type: PredictionType) -> Tensor {
    switch type {
    case .epsilon:
        return zipMap(sample, output) { (x, e) in x - sigma * e }
    case .vPrediction:
        let c = -sigma / (sigma * sigma + 1).squareRoot(), d = sigma * sigma + 1
        return zipMap(output, sample) { (v, x) in v * c + x / d }
    case .sample:
        return output
    }
}

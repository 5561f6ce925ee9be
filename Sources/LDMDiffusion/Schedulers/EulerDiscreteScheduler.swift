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
public struct EulerDiscreteSchedulerConfig: Codable, Sendable, Equatable {
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

    enum CodingKeys: String, CodingKey {
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
        numTrainTimesteps = try r(.numTrainTimesteps, d.numTrainTimesteps)
        betaStart = try r(.betaStart, d.betaStart)
        betaEnd = try r(.betaEnd, d.betaEnd)
        betaSchedule = try r.choice(.betaSchedule, d.betaSchedule)
        trainedBetas = try r.optional(.trainedBetas)
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
        try c.encode(EulerDiscreteScheduler.className, forKey: .className)
        try c.encode(numTrainTimesteps, forKey: .numTrainTimesteps)
        try c.encode(betaStart, forKey: .betaStart)
        try c.encode(betaEnd, forKey: .betaEnd)
        try c.encode(betaSchedule, forKey: .betaSchedule)
        try c.encodeOrNull(trainedBetas, forKey: .trainedBetas)
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
    public private(set) var timesteps: [Float] = []
    public private(set) var sigmas: [Float] = []
    private var cursor = StepCursor()

    public var initNoiseSigma: Float { sigmaInitNoise(sigmas, spacing: config.timestepSpacing) }
    public var order: Int { 1 }
    public var predictionType: PredictionType { config.predictionType }
    public var numTrainTimesteps: Int { config.numTrainTimesteps }

    /// Builds the scheduler (set up for the full training schedule until `setTimesteps`).
    public init(config: EulerDiscreteSchedulerConfig = EulerDiscreteSchedulerConfig()) throws {
        let name = Self.className
        try requireRange(config.numTrainTimesteps, 2...1_000_000, key: "num_train_timesteps", scheduler: name)
        try require(config.betaSchedule, in: [.linear, .scaledLinear, .squaredcosCapV2], key: "beta_schedule", scheduler: name)
        try require(config.interpolationType, in: [.linear], key: "interpolation_type", scheduler: name)
        try requireOff(config.useBetaSigmas, key: "use_beta_sigmas", scheduler: name)
        if config.useKarrasSigmas && config.useExponentialSigmas {
            throw SchedulerError.conflictingKeys("only one of use_karras_sigmas, use_exponential_sigmas can be true")
        }
        self.config = config
        var schedule = try NoiseSchedule(trainSteps: config.numTrainTimesteps, betaStart: config.betaStart,
                                     betaEnd: config.betaEnd, schedule: config.betaSchedule,
                                     trainedBetas: config.trainedBetas, rescaleZeroSNR: config.rescaleBetasZeroSnr)
        // With zero terminal SNR, ᾱ_{T−1} = 0 would make σ infinite: diffusers uses 2⁻²⁴.
        if config.rescaleBetasZeroSnr { schedule.alphasCumprod[schedule.alphasCumprod.count - 1] = 0x1p-24 }
        self.schedule = schedule
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
            let lo = config.sigmaMin ?? s[s.count - 1], hi = config.sigmaMax ?? s[0]
            s = config.useKarrasSigmas ? karrasSigmas(sigmaMin: lo, sigmaMax: hi, count: count)
                                       : exponentialSigmas(sigmaMin: lo, sigmaMax: hi, count: count)
            steps = s.map { sigmaToT($0, logSigmas: logSigmas) }
        }
        let last: Float = config.finalSigmasType == .sigmaMin ? schedule.sigmaMin : 0
        sigmas = s.map { Float($0) } + [last]
        if config.timestepType == .continuous && config.predictionType == .vPrediction {
            timesteps = sigmas.dropLast().map { 0.25 * logf($0) }
        } else {
            timesteps = steps.map { Float($0) }
        }
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
        // 1. σ_i (no churn: σ̂ = σ_i)
        let sigma = sigmas[i]

        // 2. predicted x₀
        let x0 = sigmaPredictedOriginal(output: output, sample: sample, sigma: sigma, type: config.predictionType)

        // 3. ODE derivative d = (x − x̂₀)/σ and step size dt = σ_{i+1} − σ
        let dt = sigmas[i + 1] - sigma

        // 4. Euler step x_{i+1} = x_i + d · dt
        cursor.stepIndex = i + 1
        return zipMap(sample, x0) { (x, p) in x + ((x - p) / sigma) * dt }
    }

    /// x_σ = x₀ + σ ε.
    public func addNoise(original: Tensor, noise: Tensor, timestep: Float) -> Tensor {
        let sigma = sigmas[min(cursor.noiseLevel(timestep, lookup: lookup), sigmas.count - 1)]
        return zipMap(original, noise) { (x, e) in x + e * sigma }
    }
}

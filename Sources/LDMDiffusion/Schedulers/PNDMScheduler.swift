// PNDMScheduler.swift — pseudo numerical methods for diffusion models of Liu et al. (2022),
// "Pseudo Numerical Methods for Diffusion Models on Manifolds" (arXiv:2202.09778): a Runge–Kutta
// warm-up (PRK) then linear multistep (PLMS). Matches diffusers' schedulers/scheduling_pndm.py
// (`PNDMScheduler`), including Stable Diffusion's `skip_prk_steps` variant.

import Foundation
import LDMCore

/// Configuration of `PNDMScheduler`: the keys and defaults of diffusers' `PNDMScheduler.__init__`.
public struct PNDMSchedulerConfig: Codable, Sendable, Equatable, CommonSchedulerConfig {
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
    /// Skip the Runge–Kutta warm-up and start PLMS with a second-order step (Stable Diffusion).
    public var skipPrkSteps = false
    /// ᾱ "before" the first training step: 1 when true, else ᾱ₀.
    public var setAlphaToOne = false
    /// What the model predicts (ε or v).
    public var predictionType = PredictionType.epsilon
    /// How inference timesteps are spread over the training steps.
    public var timestepSpacing = TimestepSpacing.leading
    /// Added to every timestep with "leading" spacing.
    public var stepsOffset = 0

    public init() {}

    enum CodingKeys: String, CommonSchedulerCodingKey {
        case className = "_class_name"
        case numTrainTimesteps = "num_train_timesteps", betaStart = "beta_start", betaEnd = "beta_end"
        case betaSchedule = "beta_schedule", trainedBetas = "trained_betas", skipPrkSteps = "skip_prk_steps"
        case setAlphaToOne = "set_alpha_to_one", predictionType = "prediction_type"
        case timestepSpacing = "timestep_spacing", stepsOffset = "steps_offset"
    }

    public init(from decoder: Decoder) throws {
        let r = try ConfigReader(decoder, CodingKeys.self, scheduler: PNDMScheduler.className)
        let d = PNDMSchedulerConfig()
        try readNoiseSchedule(r, defaults: d)
        skipPrkSteps = try r(.skipPrkSteps, d.skipPrkSteps)
        setAlphaToOne = try r(.setAlphaToOne, d.setAlphaToOne)
        predictionType = try r.choice(.predictionType, d.predictionType)
        timestepSpacing = try r.choice(.timestepSpacing, d.timestepSpacing)
        stepsOffset = try r(.stepsOffset, d.stepsOffset)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try writeNoiseSchedule(&c, className: PNDMScheduler.className)
        try c.encode(skipPrkSteps, forKey: .skipPrkSteps)
        try c.encode(setAlphaToOne, forKey: .setAlphaToOne)
        try c.encode(predictionType, forKey: .predictionType)
        try c.encode(timestepSpacing, forKey: .timestepSpacing)
        try c.encode(stepsOffset, forKey: .stepsOffset)
    }
}

/// PNDM: the DDIM transfer φ(x_t, ε, t, t−δ) driven by a pseudo-linear-multistep estimate of ε.
public struct PNDMScheduler: Scheduler {
    /// diffusers' class name (`_class_name`).
    public static let className = "PNDMScheduler"
    /// Order of the multistep method (ε from up to 4 past evaluations).
    static let pndmOrder = 4

    /// The configuration this scheduler was built from.
    public let config: PNDMSchedulerConfig
    let schedule: NoiseSchedule
    let finalAlphaCumprod: Float
    public private(set) var timesteps: [Float] = []
    /// Timesteps of the Runge–Kutta warm-up (empty with `skipPrkSteps`), then of the multistep part.
    private(set) var prkTimesteps: [Int] = [], plmsTimesteps: [Int] = []
    private var numInferenceSteps = 1
    /// Model outputs (ε) kept for the multistep formula, oldest first.
    private var ets: [Tensor] = []
    /// Number of `step` calls in this run.
    private var counter = 0
    /// Runge–Kutta accumulator of ε and the sample the current RK step started from.
    private var curModelOutput: Tensor?
    private var curSample: Tensor?

    public var initNoiseSigma: Float { 1 }
    public var order: Int { 1 }
    public var predictionType: PredictionType { config.predictionType }
    public var numTrainTimesteps: Int { config.numTrainTimesteps }

    /// Builds the scheduler (set up for the full training schedule until `setTimesteps`).
    public init(config: PNDMSchedulerConfig = PNDMSchedulerConfig()) throws {
        let name = Self.className
        try config.requireNoiseSchedule([.linear, .scaledLinear, .squaredcosCapV2], minTrainSteps: 1, scheduler: name)
        try require(config.predictionType, in: [.epsilon, .vPrediction], key: "prediction_type", scheduler: name)
        self.config = config
        schedule = try NoiseSchedule(config)
        finalAlphaCumprod = config.setAlphaToOne ? 1 : schedule.alphasCumprod[0]
        try setTimesteps(Swift.max(config.numTrainTimesteps, Self.pndmOrder))
    }

    public mutating func setTimesteps(_ count: Int) throws {
        let name = Self.className, trainSteps = config.numTrainTimesteps
        try requireStepCount(count, limit: nil, scheduler: name)
        if !config.skipPrkSteps && count < Self.pndmOrder {
            throw SchedulerError.scheduleTooShort(count: count, scheduler: name,
                                                  detail: "the Runge-Kutta warm-up (skip_prk_steps false) needs at least 4 steps")
        }
        numInferenceSteps = count
        // Ascending base timesteps.
        let base: [Int]
        switch config.timestepSpacing {
        case .linspace:
            base = NumPy.linspace(0, Double(trainSteps - 1), count).map { Int(NumPy.round($0)) }
        case .leading:
            let ratio = trainSteps / count
            base = (0..<count).map { $0 * ratio + config.stepsOffset }
        case .trailing:
            base = NumPy.arange(Double(trainSteps), 0, -Double(trainSteps) / Double(count))
                .map { Int(NumPy.round($0)) - 1 }.reversed()
        }
        if config.skipPrkSteps {
            // PLMS from the start, the second-to-last base timestep repeated (its second-order step
            // re-evaluates the model there): base[:-1] + base[-2:-1] + base[-1:], descending.
            prkTimesteps = []
            plmsTimesteps = (Array(base.dropLast()) + Array(base.dropLast().suffix(1)) + Array(base.suffix(1))).reversed()
        } else {
            // Four RK steps over the last four base timesteps, each evaluated at t, t − δ/2, t − δ/2, t − δ.
            let half = trainSteps / count / 2
            let last = Array(base.suffix(Self.pndmOrder))
            let prk = last.flatMap { [$0, $0] }.enumerated().map { $1 + ($0 % 2 == 0 ? 0 : half) }
            let repeated = prk.dropLast().flatMap { [$0, $0] }
            prkTimesteps = Array(repeated.dropFirst().dropLast()).reversed()
            plmsTimesteps = Array(base.dropLast(3)).reversed()
        }
        timesteps = (prkTimesteps + plmsTimesteps).map { Float($0) }
        ets = []
        counter = 0
        curModelOutput = nil
        curSample = nil
    }

    public mutating func setBeginIndex(_ index: Int) {}

    public func scaleModelInput(_ sample: Tensor, timestep: Float) -> Tensor { sample }

    public mutating func step(output: Tensor, timestep: Float, sample: Tensor,
                              random: inout any RandomSource) -> Tensor {
        if counter < prkTimesteps.count && !config.skipPrkSteps {
            return stepPRK(output: output, timestep: Int(timestep), sample: sample)
        }
        return stepPLMS(output: output, timestep: Int(timestep), sample: sample)
    }

    /// One of the four evaluations of a Runge–Kutta step, formula (13) of the paper:
    /// ε' = (e₁ + 2e₂ + 2e₃ + e₄)/6.
    private mutating func stepPRK(output: Tensor, timestep: Int, sample: Tensor) -> Tensor {
        let delta = config.numTrainTimesteps / numInferenceSteps
        // 1. the transfer goes from the RK step's start t to t − δ/2 (odd evaluations) or t − δ
        let prevT = timestep - (counter % 2 == 1 ? 0 : delta / 2)
        let t = prkTimesteps[counter / 4 * 4]

        // 2. accumulate ε' with weights 1/6, 1/3, 1/3, 1/6
        var eps = output
        switch counter % 4 {
        case 0:
            curModelOutput = accumulate(curModelOutput, output, Float(1.0 / 6.0))
            ets.append(output)
            curSample = sample
        case 1, 2:
            curModelOutput = accumulate(curModelOutput, output, Float(1.0 / 3.0))
        default:
            eps = accumulate(curModelOutput, output, Float(1.0 / 6.0))
            curModelOutput = nil
        }
        // 3. transfer from the sample the RK step started at
        let prev = transfer(curSample ?? sample, from: t, to: prevT, eps: eps)
        counter += 1
        return prev
    }

    private func accumulate(_ acc: Tensor?, _ x: Tensor, _ w: Float) -> Tensor {
        guard let acc else { return map(x) { 0 + w * $0 } }
        return zipMap(acc, x) { (a, v) in a + w * v }
    }

    /// One linear multistep step, formula (12) of the paper: ε' from the last four ε.
    private mutating func stepPLMS(output: Tensor, timestep: Int, sample: Tensor) -> Tensor {
        let delta = config.numTrainTimesteps / numInferenceSteps
        // 1. previous timestep; the second call of a skip-PRK run re-does the first step
        var t = timestep, prevT = timestep - delta
        if counter != 1 {
            ets = Array(ets.suffix(3))
            ets.append(output)
        } else {
            prevT = timestep
            t = timestep + delta
        }

        // 2. ε' by the Adams–Bashforth formula of the available order
        var x = sample
        var eps: Tensor
        let n = ets.count
        if n == 1 && counter == 0 {
            eps = output
            curSample = sample
        } else if n == 1 && counter == 1 {
            // second-order (Heun) correction of the first step: ε' = (ε₁ + ε₀)/2 from x at the first t
            eps = zipMap(output, ets[n - 1]) { (a, b) in (a + b) / 2 }
            x = curSample ?? sample
            curSample = nil
        } else if n == 2 {
            eps = zipMap(ets[n - 1], ets[n - 2]) { (e1, e2) in (3 * e1 - e2) / 2 }
        } else if n == 3 {
            eps = zipMap3(ets[n - 1], ets[n - 2], ets[n - 3]) { (e1, e2, e3) in (23 * e1 - 16 * e2 + 5 * e3) / 12 }
        } else {
            let w = Float(1.0 / 24.0)
            eps = zipMap4(ets[n - 1], ets[n - 2], ets[n - 3], ets[n - 4]) { (e1, e2, e3, e4) in
                w * (55 * e1 - 59 * e2 + 37 * e3 - 9 * e4)
            }
        }
        // 3. transfer
        let prev = transfer(x, from: t, to: prevT, eps: eps)
        counter += 1
        return prev
    }

    /// The transfer part φ, formula (9) of the paper:
    /// x_{t−δ} = √(ᾱ_{t−δ}/ᾱ_t) x_t − (ᾱ_{t−δ} − ᾱ_t) ε / (ᾱ_t √(1 − ᾱ_{t−δ}) + √(ᾱ_t (1 − ᾱ_t) ᾱ_{t−δ})).
    private func transfer(_ sample: Tensor, from t: Int, to prevT: Int, eps: Tensor) -> Tensor {
        let alphaProd = schedule.alphaProd(t)
        let alphaProdPrev = prevT >= 0 ? schedule.alphaProd(prevT) : finalAlphaCumprod
        let betaProd = 1 - alphaProd, betaProdPrev = 1 - alphaProdPrev
        // ε as it is (ε-prediction), or ε = √ᾱ_t v + √(1 − ᾱ_t) x_t (v-prediction)
        let e = predictedNoise(output: eps, sample: sample, alpha: alphaProd.squareRoot(), sigma: betaProd.squareRoot(),
                               type: config.predictionType)
        let sampleCoeff = (alphaProdPrev / alphaProd).squareRoot()
        let denom = alphaProd * betaProdPrev.squareRoot() + (alphaProd * betaProd * alphaProdPrev).squareRoot()
        let diff = alphaProdPrev - alphaProd
        return zipMap(sample, e) { (x, v) in sampleCoeff * x - diff * v / denom }
    }

    /// q(x_t | x₀) = N(√ᾱ_t x₀, (1 − ᾱ_t) I).
    public func addNoise(original: Tensor, noise: Tensor, timestep: Float) -> Tensor {
        addNoiseAlphaProd(original: original, noise: noise, alphaProd: schedule.alphaProd(Int(timestep)))
    }
}

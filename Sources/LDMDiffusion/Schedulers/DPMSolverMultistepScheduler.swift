// DPMSolverMultistepScheduler.swift — multistep DPM-Solver / DPM-Solver++ of Lu et al. (2022),
// "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models"
// (arXiv:2211.01095), and its SDE variants. Matches diffusers'
// schedulers/scheduling_dpmsolver_multistep.py (`DPMSolverMultistepScheduler`); "DPM++ 2M" is
// algorithm "dpmsolver++" of order 2, "DPM++ 2M Karras" the same on Karras σ.
//
// Notation: α_t = 1/√(σ² + 1), σ_t = σ α_t (so x = α_t x₀ + σ_t ε), λ_t = log α_t − log σ_t,
// h = λ_t − λ_s for a step from s to t.

import Foundation
import LDMCore

/// diffusers' `algorithm_type` of DPM-Solver.
public enum DPMSolverAlgorithm: String, Codable, Sendable, CaseIterable {
    /// DPM-Solver++ (data prediction), the default.
    case dpmsolverPlusPlus = "dpmsolver++"
    /// DPM-Solver++ on the SDE: stochastic, draws noise every step.
    case sdeDpmsolverPlusPlus = "sde-dpmsolver++"
    /// The original DPM-Solver (noise prediction); deprecated in diffusers.
    case dpmsolver
    /// The original DPM-Solver on the SDE; deprecated in diffusers.
    case sdeDpmsolver = "sde-dpmsolver"
    /// Accepted for DEIS configs; becomes "dpmsolver++" (as diffusers does).
    case deis
}

/// diffusers' `solver_type` of DPM-Solver: the second-order update rule.
public enum DPMSolverType: String, Codable, Sendable, CaseIterable {
    case midpoint, heun
    /// UniPC / DEIS solver types, accepted and replaced by "midpoint" (as diffusers does).
    case logrho, bh1, bh2
}

/// Configuration of `DPMSolverMultistepScheduler`: the keys and defaults of diffusers'
/// `DPMSolverMultistepScheduler.__init__`.
public struct DPMSolverMultistepSchedulerConfig: Codable, Sendable, Equatable, CommonSchedulerConfig, ThresholdingConfig {
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
    /// Order of the multistep solver, 1...3 (2 for guided sampling).
    public var solverOrder = 2
    /// What the model predicts.
    public var predictionType = PredictionType.epsilon
    /// Dynamic thresholding of x₀ (Imagen), for "dpmsolver++".
    public var thresholding = false
    /// Quantile of |x₀| used by dynamic thresholding.
    public var dynamicThresholdingRatio = 0.995
    /// Largest threshold dynamic thresholding may use.
    public var sampleMaxValue = 1.0
    /// The solver family.
    public var algorithmType = DPMSolverAlgorithm.dpmsolverPlusPlus
    /// The second-order rule.
    public var solverType = DPMSolverType.midpoint
    /// Lower the order over the last steps when the run has fewer than 15 steps.
    public var lowerOrderFinal = true
    /// Take a first-order (Euler) last step.
    public var eulerAtFinal = false
    /// Use the σ spacing of Karras et al. (2022), ρ = 7.
    public var useKarrasSigmas = false
    /// Space σ evenly in log σ.
    public var useExponentialSigmas = false
    /// Beta-distribution σ spacing; not supported.
    public var useBetaSigmas = false
    /// Space log σ evenly (Lu et al., 2023, "DPM-Solver-v3").
    public var useLuLambdas = false
    /// Flow-matching σ; not supported.
    public var useFlowSigmas = false
    /// Shift of flow-matching σ (unused here).
    public var flowShift = 1.0
    /// σ after the last step.
    public var finalSigmasType = FinalSigmasType.zero
    /// λ below which timesteps are cut off (−∞: none).
    public var lambdaMinClipped = -Double.infinity
    /// Learned variance output channels; only null is supported.
    public var varianceType: String?
    /// How inference timesteps are spread over the training steps.
    public var timestepSpacing = TimestepSpacing.linspace
    /// Added to every timestep with "leading" spacing.
    public var stepsOffset = 0
    /// Rescale β to zero terminal SNR (Lin et al., 2023); the last ᾱ is then set to 2⁻²⁴.
    public var rescaleBetasZeroSnr = false
    /// Resolution-dependent shifting (flow models); not supported.
    public var useDynamicShifting = false
    /// Kind of dynamic shifting (unused here).
    public var timeShiftType = "exponential"

    public init() {}

    enum CodingKeys: String, CommonSchedulerCodingKey {
        case className = "_class_name"
        case numTrainTimesteps = "num_train_timesteps", betaStart = "beta_start", betaEnd = "beta_end"
        case betaSchedule = "beta_schedule", trainedBetas = "trained_betas", solverOrder = "solver_order"
        case predictionType = "prediction_type", thresholding, dynamicThresholdingRatio = "dynamic_thresholding_ratio"
        case sampleMaxValue = "sample_max_value", algorithmType = "algorithm_type", solverType = "solver_type"
        case lowerOrderFinal = "lower_order_final", eulerAtFinal = "euler_at_final"
        case useKarrasSigmas = "use_karras_sigmas", useExponentialSigmas = "use_exponential_sigmas"
        case useBetaSigmas = "use_beta_sigmas", useLuLambdas = "use_lu_lambdas", useFlowSigmas = "use_flow_sigmas"
        case flowShift = "flow_shift", finalSigmasType = "final_sigmas_type", lambdaMinClipped = "lambda_min_clipped"
        case varianceType = "variance_type", timestepSpacing = "timestep_spacing", stepsOffset = "steps_offset"
        case rescaleBetasZeroSnr = "rescale_betas_zero_snr", useDynamicShifting = "use_dynamic_shifting"
        case timeShiftType = "time_shift_type"
    }

    public init(from decoder: Decoder) throws {
        let r = try ConfigReader(decoder, CodingKeys.self, scheduler: DPMSolverMultistepScheduler.className)
        let d = DPMSolverMultistepSchedulerConfig()
        try readNoiseSchedule(r, defaults: d)
        solverOrder = try r(.solverOrder, d.solverOrder)
        predictionType = try r.choice(.predictionType, d.predictionType)
        thresholding = try r(.thresholding, d.thresholding)
        dynamicThresholdingRatio = try r(.dynamicThresholdingRatio, d.dynamicThresholdingRatio)
        sampleMaxValue = try r(.sampleMaxValue, d.sampleMaxValue)
        algorithmType = try r.choice(.algorithmType, d.algorithmType)
        solverType = try r.choice(.solverType, d.solverType)
        lowerOrderFinal = try r(.lowerOrderFinal, d.lowerOrderFinal)
        eulerAtFinal = try r(.eulerAtFinal, d.eulerAtFinal)
        useKarrasSigmas = try r(.useKarrasSigmas, d.useKarrasSigmas)
        useExponentialSigmas = try r(.useExponentialSigmas, d.useExponentialSigmas)
        useBetaSigmas = try r(.useBetaSigmas, d.useBetaSigmas)
        useLuLambdas = try r(.useLuLambdas, d.useLuLambdas)
        useFlowSigmas = try r(.useFlowSigmas, d.useFlowSigmas)
        flowShift = try r(.flowShift, d.flowShift)
        finalSigmasType = try r.choice(.finalSigmasType, d.finalSigmasType)
        lambdaMinClipped = try r(.lambdaMinClipped, d.lambdaMinClipped)
        varianceType = try r.optional(.varianceType)
        timestepSpacing = try r.choice(.timestepSpacing, d.timestepSpacing)
        stepsOffset = try r(.stepsOffset, d.stepsOffset)
        rescaleBetasZeroSnr = try r(.rescaleBetasZeroSnr, d.rescaleBetasZeroSnr)
        useDynamicShifting = try r(.useDynamicShifting, d.useDynamicShifting)
        timeShiftType = try r(.timeShiftType, d.timeShiftType)
        // diffusers re-registers these aliases on construction.
        if algorithmType == .deis { algorithmType = .dpmsolverPlusPlus }
        if [.logrho, .bh1, .bh2].contains(solverType) { solverType = .midpoint }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try writeNoiseSchedule(&c, className: DPMSolverMultistepScheduler.className)
        try c.encode(solverOrder, forKey: .solverOrder)
        try c.encode(predictionType, forKey: .predictionType)
        try c.encode(thresholding, forKey: .thresholding)
        try c.encode(dynamicThresholdingRatio, forKey: .dynamicThresholdingRatio)
        try c.encode(sampleMaxValue, forKey: .sampleMaxValue)
        try c.encode(algorithmType, forKey: .algorithmType)
        try c.encode(solverType, forKey: .solverType)
        try c.encode(lowerOrderFinal, forKey: .lowerOrderFinal)
        try c.encode(eulerAtFinal, forKey: .eulerAtFinal)
        try c.encode(useKarrasSigmas, forKey: .useKarrasSigmas)
        try c.encode(useExponentialSigmas, forKey: .useExponentialSigmas)
        try c.encode(useBetaSigmas, forKey: .useBetaSigmas)
        try c.encode(useLuLambdas, forKey: .useLuLambdas)
        try c.encode(useFlowSigmas, forKey: .useFlowSigmas)
        try c.encode(flowShift, forKey: .flowShift)
        try c.encode(finalSigmasType, forKey: .finalSigmasType)
        if lambdaMinClipped.isFinite { try c.encode(lambdaMinClipped, forKey: .lambdaMinClipped) }
        try c.encodeOrNull(varianceType, forKey: .varianceType)
        try c.encode(timestepSpacing, forKey: .timestepSpacing)
        try c.encode(stepsOffset, forKey: .stepsOffset)
        try c.encode(rescaleBetasZeroSnr, forKey: .rescaleBetasZeroSnr)
        try c.encode(useDynamicShifting, forKey: .useDynamicShifting)
        try c.encode(timeShiftType, forKey: .timeShiftType)
    }
}

/// Multistep DPM-Solver(++): the exponential integrator of the diffusion ODE (or SDE) in λ, with
/// the past data (or noise) predictions as the multistep history.
public struct DPMSolverMultistepScheduler: SigmaScheduler {
    /// diffusers' class name (`_class_name`).
    public static let className = "DPMSolverMultistepScheduler"

    /// The configuration this scheduler was built from.
    public let config: DPMSolverMultistepSchedulerConfig
    let schedule: NoiseSchedule
    private var cursor = SigmaCursor(offSchedule: .last)
    /// Converted model outputs (x̂₀ for "++", ε otherwise), oldest first; `solverOrder` slots.
    private var modelOutputs: [Tensor?] = []
    /// Steps taken so far, up to `solverOrder` (warm-up of the multistep history).
    private var lowerOrderNums = 0

    public var timesteps: [Float] { cursor.timesteps }
    public var sigmas: [Float] { cursor.sigmas }
    public var initNoiseSigma: Float { 1 }
    public var order: Int { 1 }
    public var predictionType: PredictionType { config.predictionType }
    public var numTrainTimesteps: Int { config.numTrainTimesteps }
    private var isDataPrediction: Bool { [.dpmsolverPlusPlus, .sdeDpmsolverPlusPlus].contains(config.algorithmType) }
    private var isSDE: Bool { [.sdeDpmsolverPlusPlus, .sdeDpmsolver].contains(config.algorithmType) }

    /// Builds the scheduler (set up for the full training schedule until `setTimesteps`).
    public init(config: DPMSolverMultistepSchedulerConfig = DPMSolverMultistepSchedulerConfig()) throws {
        let name = Self.className
        var config = config
        if config.algorithmType == .deis { config.algorithmType = .dpmsolverPlusPlus }
        if [.logrho, .bh1, .bh2].contains(config.solverType) { config.solverType = .midpoint }
        try config.requireNoiseSchedule([.linear, .scaledLinear, .squaredcosCapV2], minTrainSteps: 2, scheduler: name)
        try requireRange(config.solverOrder, 1...3, key: "solver_order", scheduler: name)
        try requireOff(config.useBetaSigmas, key: "use_beta_sigmas", scheduler: name)
        try requireOff(config.useFlowSigmas, key: "use_flow_sigmas", scheduler: name)
        try requireOff(config.useDynamicShifting, key: "use_dynamic_shifting", scheduler: name)
        if let v = config.varianceType {
            throw SchedulerError.unsupportedValue(key: "variance_type", value: "\"\(v)\"", scheduler: name, supported: "null")
        }
        try requireAtMostOne(["use_karras_sigmas": config.useKarrasSigmas, "use_exponential_sigmas": config.useExponentialSigmas,
                              "use_lu_lambdas": config.useLuLambdas])
        if config.algorithmType == .sdeDpmsolver && config.solverOrder == 3 {
            throw SchedulerError.conflictingKeys("solver_order 3 is not available with algorithm_type \"sde-dpmsolver\"")
        }
        if [.dpmsolver, .sdeDpmsolver].contains(config.algorithmType) && config.finalSigmasType == .zero {
            throw SchedulerError.conflictingKeys(
                "final_sigmas_type \"zero\" is not supported with algorithm_type \"\(config.algorithmType.rawValue)\"; use \"sigma_min\"")
        }
        self.config = config
        schedule = try NoiseSchedule(config, rescaleZeroSNR: config.rescaleBetasZeroSnr, sigmaScheduler: true)
        try setTimesteps(config.numTrainTimesteps)
    }

    public mutating func setTimesteps(_ count: Int) throws {
        try requireStepCount(count, limit: nil, scheduler: Self.className)
        let trainSteps = config.numTrainTimesteps
        // 1. the last usable training timestep: λ_t = log √ᾱ − log √(1 − ᾱ) must be ≥ lambda_min_clipped
        let clip = Float(config.lambdaMinClipped)
        let clippedCount = schedule.alphasCumprod.reversed().filter { a in
            logf(a.squareRoot()) - logf((1 - a).squareRoot()) < clip
        }.count
        let lastTimestep = trainSteps - clippedCount

        // 2. spacing over N + 1 points, dropping the last (t = 0)
        var steps = multistepTimesteps(config.timestepSpacing, count: count, lastTimestep: lastTimestep,
                                       trainSteps: trainSteps, stepsOffset: config.stepsOffset)

        // 3. σ for each timestep
        let trainSigmas = schedule.sigmas
        let logSigmas = trainSigmas.map { logf($0) }
        let cosine = config.betaSchedule == .squaredcosCapV2
        var s: [Double]
        if config.useKarrasSigmas || config.useExponentialSigmas || config.useLuLambdas {
            let sigmaMin = Double(trainSigmas[0]), sigmaMax = Double(trainSigmas[trainSigmas.count - 1])
            if config.useKarrasSigmas {
                s = karrasSigmas(sigmaMin: sigmaMin, sigmaMax: sigmaMax, count: count)
            } else if config.useExponentialSigmas {
                s = exponentialSigmas(sigmaMin: sigmaMin, sigmaMax: sigmaMax, count: count)
            } else {
                // log σ evenly from log σ_max to log σ_min
                let hi = Double(logSigmas[logSigmas.count - 1]), lo = Double(logSigmas[0])
                s = NumPy.linspace(0, 1, count).map { Foundation.exp(hi + $0 * (lo - hi)) }
            }
            steps = s.map { sigmaToT($0, logSigmas: logSigmas) }
            if (config.useKarrasSigmas || config.useLuLambdas) && !cosine { steps = steps.map(NumPy.round) }
        } else {
            let fp = trainSigmas.map { Double($0) }
            s = steps.map { NumPy.interp($0, fp) }
        }
        let last: Float = config.finalSigmasType == .sigmaMin ? schedule.sigmaMin : 0
        // int64 timesteps (fractional ones truncated, as `.to(torch.int64)` does)
        cursor.start(timesteps: steps.map { Float($0.rounded(.towardZero)) }, sigmas: s.map { Float($0) } + [last])
        modelOutputs = Array(repeating: nil, count: config.solverOrder)
        lowerOrderNums = 0
    }

    public mutating func setBeginIndex(_ index: Int) { cursor.beginIndex = index }

    public func scaleModelInput(_ sample: Tensor, timestep: Float) -> Tensor { sample }

    /// The model output as DPM-Solver++ (x̂₀) or DPM-Solver (ε) uses it.
    private func convertModelOutput(_ output: Tensor, sample: Tensor, index: Int) -> Tensor {
        let (a, s, _) = cursor.alphaSigmaLambda(index)
        if isDataPrediction {
            let x0 = predictedOriginal(output: output, sample: sample, alpha: a, sigma: s, type: config.predictionType)
            return config.thresholded(x0)
        }
        let eps = predictedNoise(output: output, sample: sample, alpha: a, sigma: s, type: config.predictionType)
        guard config.thresholding else { return eps }
        // threshold the x̂₀ that ε implies, and return the ε of the thresholded x̂₀
        let x0 = config.thresholded(predictedOriginal(output: eps, sample: sample, alpha: a, sigma: s, type: .epsilon))
        return predictedNoise(output: x0, sample: sample, alpha: a, sigma: s, type: .sample)
    }

    public mutating func step(output: Tensor, timestep: Float, sample: Tensor,
                              random: inout any RandomSource) -> Tensor {
        let i = min(cursor.current(timestep), timesteps.count - 1)
        let n = timesteps.count, solverOrder = config.solverOrder
        // 1. which order this step can take
        let lowerOrderFinal = i == n - 1 && (config.eulerAtFinal || (config.lowerOrderFinal && n < 15)
                                              || config.finalSigmasType == .zero)
        let lowerOrderSecond = i == n - 2 && config.lowerOrderFinal && n < 15

        // 2. convert and push the model output into the history
        let m = convertModelOutput(output, sample: sample, index: i)
        modelOutputs.removeFirst()
        modelOutputs.append(m)
        let noise: Tensor? = isSDE ? drawNoise(like: output.shape, count: output.count, random: &random) : nil

        // 3. update of order 1, 2 or 3
        let prev: Tensor
        if solverOrder == 1 || lowerOrderNums < 1 || lowerOrderFinal {
            prev = firstOrderUpdate(m, sample: sample, index: i, noise: noise)
        } else if solverOrder == 2 || lowerOrderNums < 2 || lowerOrderSecond {
            prev = secondOrderUpdate(sample: sample, index: i, noise: noise)
        } else {
            prev = thirdOrderUpdate(sample: sample, index: i, noise: noise)
        }
        lowerOrderNums = min(lowerOrderNums + 1, solverOrder)
        cursor.advance(past: i)
        return prev
    }

    /// First order (DDIM in λ), eq. (5) of DPM-Solver++: x_t = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) x̂₀.
    private func firstOrderUpdate(_ m: Tensor, sample x: Tensor, index i: Int, noise: Tensor?) -> Tensor {
        let (at, st, lt) = cursor.alphaSigmaLambda(i + 1), (as_, ss, ls) = cursor.alphaSigmaLambda(i)
        let h = lt - ls
        switch config.algorithmType {
        case .dpmsolver:
            let c1 = at / as_, c2 = st * (expf(h) - 1)
            return zipMap(x, m) { (x, e) in c1 * x - c2 * e }
        case .sdeDpmsolverPlusPlus:
            let c1 = st / ss * expf(-h), c2 = at * (1 - expf(-2 * h)), c3 = st * (1 - expf(-2 * h)).squareRoot()
            return zipMap3(x, m, noise!) { (x, d, z) in c1 * x + c2 * d + c3 * z }
        case .sdeDpmsolver:
            let c1 = at / as_, c2 = 2 * (st * (expf(h) - 1)), c3 = st * (expf(2 * h) - 1).squareRoot()
            return zipMap3(x, m, noise!) { (x, e, z) in c1 * x - c2 * e + c3 * z }
        default:
            let c1 = st / ss, c2 = at * (expf(-h) - 1)
            return zipMap(x, m) { (x, d) in c1 * x - c2 * d }
        }
    }

    /// Multistep second order (Algorithm 2 of DPM-Solver++): D₀ = m₀, D₁ = (m₀ − m₁)/r₀, r₀ = h₀/h.
    private func secondOrderUpdate(sample x: Tensor, index i: Int, noise: Tensor?) -> Tensor {
        let (at, st, lt) = cursor.alphaSigmaLambda(i + 1), (as0, ss0, ls0) = cursor.alphaSigmaLambda(i)
        let ls1 = cursor.alphaSigmaLambda(i - 1).lambda
        let m0 = modelOutputs[modelOutputs.count - 1]!, m1 = modelOutputs[modelOutputs.count - 2]!
        let h = lt - ls0, h0 = ls0 - ls1
        let r0 = h0 / h, invR0 = 1 / r0
        let midpoint = config.solverType == .midpoint
        switch config.algorithmType {
        case .dpmsolver:
            let c1 = at / as0, c2 = st * (expf(h) - 1)
            let c3 = midpoint ? 0.5 * (st * (expf(h) - 1)) : st * ((expf(h) - 1) / h - 1)
            return zipMap3(x, m0, m1) { (x, a, b) in c1 * x - c2 * a - c3 * (invR0 * (a - b)) }
        case .sdeDpmsolverPlusPlus:
            let e2 = expf(-2 * h)
            let c1 = st / ss0 * expf(-h), c2 = at * (1 - e2), c4 = st * (1 - e2).squareRoot()
            let c3 = midpoint ? 0.5 * (at * (1 - e2)) : at * ((1 - e2) / (-2 * h) + 1)
            return zipMap4(x, m0, m1, noise!) { (x, a, b, z) in c1 * x + c2 * a + c3 * (invR0 * (a - b)) + c4 * z }
        case .sdeDpmsolver:
            let c1 = at / as0, c2 = 2 * (st * (expf(h) - 1)), c4 = st * (expf(2 * h) - 1).squareRoot()
            let c3 = midpoint ? st * (expf(h) - 1) : 2 * (st * ((expf(h) - 1) / h - 1))
            return zipMap4(x, m0, m1, noise!) { (x, a, b, z) in c1 * x - c2 * a - c3 * (invR0 * (a - b)) + c4 * z }
        default:
            let c1 = st / ss0, c2 = at * (expf(-h) - 1)
            if midpoint {
                let c3 = 0.5 * (at * (expf(-h) - 1))
                return zipMap3(x, m0, m1) { (x, a, b) in c1 * x - c2 * a - c3 * (invR0 * (a - b)) }
            }
            let c3 = at * ((expf(-h) - 1) / h + 1)
            return zipMap3(x, m0, m1) { (x, a, b) in c1 * x - c2 * a + c3 * (invR0 * (a - b)) }
        }
    }

    /// Multistep third order: D₁ and D₂ from divided differences of the last three outputs.
    private func thirdOrderUpdate(sample x: Tensor, index i: Int, noise: Tensor?) -> Tensor {
        let (at, st, lt) = cursor.alphaSigmaLambda(i + 1), (as0, ss0, ls0) = cursor.alphaSigmaLambda(i)
        let ls1 = cursor.alphaSigmaLambda(i - 1).lambda, ls2 = cursor.alphaSigmaLambda(i - 2).lambda
        let c = modelOutputs.count
        let m0 = modelOutputs[c - 1]!, m1 = modelOutputs[c - 2]!, m2 = modelOutputs[c - 3]!
        let h = lt - ls0, h0 = ls0 - ls1, h1 = ls1 - ls2
        let r0 = h0 / h, r1 = h1 / h
        let w1 = 1 / r0, w2 = 1 / r1, w3 = r0 / (r0 + r1), w4 = 1 / (r0 + r1)
        // D1_0 = (m0 − m1)/r0, D1_1 = (m1 − m2)/r1, D1 = D1_0 + r0/(r0+r1) (D1_0 − D1_1), D2 = (D1_0 − D1_1)/(r0+r1)
        var k0: Float, k1: Float, k2: Float, k3: Float, k4: Float = 0
        if config.algorithmType == .sdeDpmsolverPlusPlus {
            let e2 = expf(-2 * h)
            k0 = st / ss0 * expf(-h)
            k1 = at * (1 - e2)
            k2 = at * ((1 - e2) / (-2 * h) + 1)
            k3 = at * ((1 - e2 - 2 * h) / ((2 * h) * (2 * h)) - 0.5)
            k4 = st * (1 - e2).squareRoot()
        } else if config.algorithmType == .dpmsolver {
            k0 = at / as0
            k1 = -(st * (expf(h) - 1))
            k2 = -(st * ((expf(h) - 1) / h - 1))
            k3 = -(st * ((expf(h) - 1 - h) / (h * h) - 0.5))
        } else {
            k0 = st / ss0
            k1 = -(at * (expf(-h) - 1))
            k2 = at * ((expf(-h) - 1) / h + 1)
            k3 = -(at * ((expf(-h) - 1 + h) / (h * h) - 0.5))
        }
        var result = zipMap4(x, m0, m1, m2) { (x, a, b, c) in
            let d10 = w1 * (a - b), d11 = w2 * (b - c)
            let d1 = d10 + w3 * (d10 - d11), d2 = w4 * (d10 - d11)
            return k0 * x + k1 * a + k2 * d1 + k3 * d2
        }
        if let noise { result = zipMap(result, noise) { (r, z) in r + k4 * z } }
        return result
    }

    /// x_t = α_t x₀ + σ_t ε at the σ of the begin / step index (or of `timestep`).
    public func addNoise(original: Tensor, noise: Tensor, timestep: Float) -> Tensor {
        cursor.addNoiseAlphaSigma(original: original, noise: noise, timestep: timestep)
    }
}

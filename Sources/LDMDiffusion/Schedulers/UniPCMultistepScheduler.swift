// UniPCMultistepScheduler.swift — the unified predictor–corrector of Zhao et al. (2023),
// "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of Diffusion Models"
// (arXiv:2302.04867): a UniP-p predictor and a UniC corrector that reuses the model evaluation of
// the next step. Matches diffusers' schedulers/scheduling_unipc_multistep.py
// (`UniPCMultistepScheduler`), B(h) variants bh1 / bh2.
//
// Notation as DPM-Solver: α_t = 1/√(σ² + 1), σ_t = σ α_t, λ_t = log α_t − log σ_t, h = λ_t − λ_s;
// with data prediction (predict_x0) the formulas run in −h.

import Foundation
import LDMCore

/// diffusers' `solver_type` of UniPC: the choice of B(h) in the UniPC coefficients.
public enum UniPCSolverType: String, Codable, Sendable, CaseIterable {
    /// B(h) = h.
    case bh1
    /// B(h) = e^h − 1 (the default, better for guided sampling).
    case bh2
    /// DPM-Solver solver types, accepted and replaced by "bh2" (as diffusers does).
    case midpoint, heun, logrho
}

/// Configuration of `UniPCMultistepScheduler`: the keys and defaults of diffusers'
/// `UniPCMultistepScheduler.__init__`.
public struct UniPCMultistepSchedulerConfig: Codable, Sendable, Equatable, CommonSchedulerConfig, ThresholdingConfig {
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
    /// Order p of UniP (and p + 1 of UniC), 1...3.
    public var solverOrder = 2
    /// What the model predicts.
    public var predictionType = PredictionType.epsilon
    /// Dynamic thresholding of x₀ (Imagen), with `predictX0`.
    public var thresholding = false
    /// Quantile of |x₀| used by dynamic thresholding.
    public var dynamicThresholdingRatio = 0.995
    /// Largest threshold dynamic thresholding may use.
    public var sampleMaxValue = 1.0
    /// Work with data predictions x̂₀ (UniPC with DPM-Solver++ style updates); else with ε.
    public var predictX0 = true
    /// The B(h) of the coefficients.
    public var solverType = UniPCSolverType.bh2
    /// Lower the order over the last steps.
    public var lowerOrderFinal = true
    /// Step indices after which the corrector is skipped.
    public var disableCorrector: [Int] = []
    /// Use the σ spacing of Karras et al. (2022), ρ = 7.
    public var useKarrasSigmas = false
    /// Space σ evenly in log σ.
    public var useExponentialSigmas = false
    /// Beta-distribution σ spacing; not supported.
    public var useBetaSigmas = false
    /// Flow-matching σ; not supported.
    public var useFlowSigmas = false
    /// Shift of flow-matching σ (unused here).
    public var flowShift = 1.0
    /// How inference timesteps are spread over the training steps.
    public var timestepSpacing = TimestepSpacing.linspace
    /// Added to every timestep with "leading" spacing.
    public var stepsOffset = 0
    /// σ after the last step.
    public var finalSigmasType = FinalSigmasType.zero
    /// Rescale β to zero terminal SNR (Lin et al., 2023); the last ᾱ is then set to 2⁻²⁴.
    public var rescaleBetasZeroSnr = false
    /// Resolution-dependent shifting (flow models); not supported.
    public var useDynamicShifting = false
    /// Kind of dynamic shifting (unused here).
    public var timeShiftType = "exponential"
    /// Lower end of Karras / exponential σ (nil: the schedule's).
    public var sigmaMin: Double?
    /// Upper end of Karras / exponential σ (nil: the schedule's).
    public var sigmaMax: Double?

    public init() {}

    enum CodingKeys: String, CommonSchedulerCodingKey {
        case className = "_class_name"
        case numTrainTimesteps = "num_train_timesteps", betaStart = "beta_start", betaEnd = "beta_end"
        case betaSchedule = "beta_schedule", trainedBetas = "trained_betas", solverOrder = "solver_order"
        case predictionType = "prediction_type", thresholding, dynamicThresholdingRatio = "dynamic_thresholding_ratio"
        case sampleMaxValue = "sample_max_value", predictX0 = "predict_x0", solverType = "solver_type"
        case lowerOrderFinal = "lower_order_final", disableCorrector = "disable_corrector", solverP = "solver_p"
        case useKarrasSigmas = "use_karras_sigmas", useExponentialSigmas = "use_exponential_sigmas"
        case useBetaSigmas = "use_beta_sigmas", useFlowSigmas = "use_flow_sigmas", flowShift = "flow_shift"
        case timestepSpacing = "timestep_spacing", stepsOffset = "steps_offset", finalSigmasType = "final_sigmas_type"
        case rescaleBetasZeroSnr = "rescale_betas_zero_snr", useDynamicShifting = "use_dynamic_shifting"
        case timeShiftType = "time_shift_type", sigmaMin = "sigma_min", sigmaMax = "sigma_max"
        case shiftTerminal = "shift_terminal"
    }

    public init(from decoder: Decoder) throws {
        let name = UniPCMultistepScheduler.className
        let r = try ConfigReader(decoder, CodingKeys.self, scheduler: name)
        let d = UniPCMultistepSchedulerConfig()
        try readNoiseSchedule(r, defaults: d)
        solverOrder = try r(.solverOrder, d.solverOrder)
        predictionType = try r.choice(.predictionType, d.predictionType)
        thresholding = try r(.thresholding, d.thresholding)
        dynamicThresholdingRatio = try r(.dynamicThresholdingRatio, d.dynamicThresholdingRatio)
        sampleMaxValue = try r(.sampleMaxValue, d.sampleMaxValue)
        predictX0 = try r(.predictX0, d.predictX0)
        solverType = try r.choice(.solverType, d.solverType)
        lowerOrderFinal = try r(.lowerOrderFinal, d.lowerOrderFinal)
        disableCorrector = try r(.disableCorrector, d.disableCorrector)
        useKarrasSigmas = try r(.useKarrasSigmas, d.useKarrasSigmas)
        useExponentialSigmas = try r(.useExponentialSigmas, d.useExponentialSigmas)
        useBetaSigmas = try r(.useBetaSigmas, d.useBetaSigmas)
        useFlowSigmas = try r(.useFlowSigmas, d.useFlowSigmas)
        flowShift = try r(.flowShift, d.flowShift)
        timestepSpacing = try r.choice(.timestepSpacing, d.timestepSpacing)
        stepsOffset = try r(.stepsOffset, d.stepsOffset)
        finalSigmasType = try r.choice(.finalSigmasType, d.finalSigmasType)
        rescaleBetasZeroSnr = try r(.rescaleBetasZeroSnr, d.rescaleBetasZeroSnr)
        useDynamicShifting = try r(.useDynamicShifting, d.useDynamicShifting)
        timeShiftType = try r(.timeShiftType, d.timeShiftType)
        sigmaMin = try r.optional(.sigmaMin)
        sigmaMax = try r.optional(.sigmaMax)
        if r.isSet(.solverP) {
            throw SchedulerError.unsupportedValue(key: "solver_p", value: "(a scheduler)", scheduler: name, supported: "null")
        }
        if r.isSet(.shiftTerminal) {
            throw SchedulerError.unsupportedValue(key: "shift_terminal", value: "(set)", scheduler: name,
                                                  supported: "null (it needs use_flow_sigmas)")
        }
        if [.midpoint, .heun, .logrho].contains(solverType) { solverType = .bh2 }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try writeNoiseSchedule(&c, className: UniPCMultistepScheduler.className)
        try c.encode(solverOrder, forKey: .solverOrder)
        try c.encode(predictionType, forKey: .predictionType)
        try c.encode(thresholding, forKey: .thresholding)
        try c.encode(dynamicThresholdingRatio, forKey: .dynamicThresholdingRatio)
        try c.encode(sampleMaxValue, forKey: .sampleMaxValue)
        try c.encode(predictX0, forKey: .predictX0)
        try c.encode(solverType, forKey: .solverType)
        try c.encode(lowerOrderFinal, forKey: .lowerOrderFinal)
        try c.encode(disableCorrector, forKey: .disableCorrector)
        try c.encodeNil(forKey: .solverP)
        try c.encode(useKarrasSigmas, forKey: .useKarrasSigmas)
        try c.encode(useExponentialSigmas, forKey: .useExponentialSigmas)
        try c.encode(useBetaSigmas, forKey: .useBetaSigmas)
        try c.encode(useFlowSigmas, forKey: .useFlowSigmas)
        try c.encode(flowShift, forKey: .flowShift)
        try c.encode(timestepSpacing, forKey: .timestepSpacing)
        try c.encode(stepsOffset, forKey: .stepsOffset)
        try c.encode(finalSigmasType, forKey: .finalSigmasType)
        try c.encode(rescaleBetasZeroSnr, forKey: .rescaleBetasZeroSnr)
        try c.encode(useDynamicShifting, forKey: .useDynamicShifting)
        try c.encode(timeShiftType, forKey: .timeShiftType)
        try c.encodeOrNull(sigmaMin, forKey: .sigmaMin)
        try c.encodeOrNull(sigmaMax, forKey: .sigmaMax)
        try c.encodeNil(forKey: .shiftTerminal)
    }
}

/// UniPC with B(h) = h (bh1) or e^h − 1 (bh2): each step first corrects the previous prediction
/// with the new model output (UniC), then predicts the next sample (UniP).
public struct UniPCMultistepScheduler: SigmaScheduler {
    /// diffusers' class name (`_class_name`).
    public static let className = "UniPCMultistepScheduler"

    /// The configuration this scheduler was built from.
    public let config: UniPCMultistepSchedulerConfig
    let schedule: NoiseSchedule
    private var cursor = SigmaCursor(offSchedule: .last)
    /// Converted model outputs, oldest first; `solverOrder` slots.
    private var modelOutputs: [Tensor?] = []
    private var lowerOrderNums = 0
    /// The sample the last predictor started from (input of the next corrector) and its order.
    private var lastSample: Tensor?
    private var thisOrder = 1

    public var timesteps: [Float] { cursor.timesteps }
    public var sigmas: [Float] { cursor.sigmas }
    public var initNoiseSigma: Float { 1 }
    public var order: Int { 1 }
    public var predictionType: PredictionType { config.predictionType }
    public var numTrainTimesteps: Int { config.numTrainTimesteps }

    /// Builds the scheduler (set up for the full training schedule until `setTimesteps`).
    public init(config: UniPCMultistepSchedulerConfig = UniPCMultistepSchedulerConfig()) throws {
        let name = Self.className
        var config = config
        if [.midpoint, .heun, .logrho].contains(config.solverType) { config.solverType = .bh2 }
        try config.requireNoiseSchedule([.linear, .scaledLinear, .squaredcosCapV2], minTrainSteps: 2, scheduler: name)
        try requireRange(config.solverOrder, 1...3, key: "solver_order", scheduler: name)
        try requireOff(config.useBetaSigmas, key: "use_beta_sigmas", scheduler: name)
        try requireOff(config.useFlowSigmas, key: "use_flow_sigmas", scheduler: name)
        try requireOff(config.useDynamicShifting, key: "use_dynamic_shifting", scheduler: name)
        try requireAtMostOne(["use_karras_sigmas": config.useKarrasSigmas, "use_exponential_sigmas": config.useExponentialSigmas])
        self.config = config
        schedule = try NoiseSchedule(config, rescaleZeroSNR: config.rescaleBetasZeroSnr, sigmaScheduler: true)
        try setTimesteps(config.numTrainTimesteps)
    }

    public mutating func setTimesteps(_ count: Int) throws {
        try requireStepCount(count, limit: nil, scheduler: Self.className)
        let trainSteps = config.numTrainTimesteps
        // 1. spacing over N + 1 points, dropping the last (t = 0)
        var steps = multistepTimesteps(config.timestepSpacing, count: count, lastTimestep: trainSteps,
                                       trainSteps: trainSteps, stepsOffset: config.stepsOffset)
        // 2. σ for each timestep, and the final σ
        let trainSigmas = schedule.sigmas
        var s: [Double]
        var last: Float
        if config.useKarrasSigmas || config.useExponentialSigmas {
            let logSigmas = trainSigmas.map { logf($0) }
            let lo = config.sigmaMin ?? Double(trainSigmas[0])
            let hi = config.sigmaMax ?? Double(trainSigmas[trainSigmas.count - 1])
            s = config.useKarrasSigmas ? karrasSigmas(sigmaMin: lo, sigmaMax: hi, count: count)
                                       : exponentialSigmas(sigmaMin: lo, sigmaMax: hi, count: count)
            steps = s.map { sigmaToT($0, logSigmas: logSigmas) }
            if config.useKarrasSigmas { steps = steps.map(NumPy.round) }
            last = config.finalSigmasType == .sigmaMin ? Float(s[s.count - 1]) : 0
        } else {
            let fp = trainSigmas.map { Double($0) }
            s = steps.map { NumPy.interp($0, fp) }
            last = config.finalSigmasType == .sigmaMin ? schedule.sigmaMin : 0
        }
        cursor.start(timesteps: steps.map { Float($0.rounded(.towardZero)) }, sigmas: s.map { Float($0) } + [last])
        modelOutputs = Array(repeating: nil, count: config.solverOrder)
        lowerOrderNums = 0
        lastSample = nil
        thisOrder = 1
    }

    public mutating func setBeginIndex(_ index: Int) { cursor.beginIndex = index }

    public func scaleModelInput(_ sample: Tensor, timestep: Float) -> Tensor { sample }

    /// The model output as x̂₀ (predict_x0) or ε.
    private func convertModelOutput(_ output: Tensor, sample: Tensor, index: Int) -> Tensor {
        let (a, s, _) = cursor.alphaSigmaLambda(index)
        if config.predictX0 {
            return config.thresholded(predictedOriginal(output: output, sample: sample, alpha: a, sigma: s,
                                                        type: config.predictionType))
        }
        return predictedNoise(output: output, sample: sample, alpha: a, sigma: s, type: config.predictionType)
    }

    public mutating func step(output: Tensor, timestep: Float, sample: Tensor,
                              random: inout any RandomSource) -> Tensor {
        let i = min(cursor.current(timestep), timesteps.count - 1)
        // 1. convert the model output; correct the last prediction with it (UniC)
        let useCorrector = i > 0 && !config.disableCorrector.contains(i - 1) && lastSample != nil
        let m = convertModelOutput(output, sample: sample, index: i)
        var x = sample
        if useCorrector, let last = lastSample { x = corrector(modelOutput: m, lastSample: last, index: i, order: thisOrder) }

        // 2. push the converted output into the history
        modelOutputs.removeFirst()
        modelOutputs.append(m)

        // 3. order of this predictor: lowered at the end of the run and during warm-up
        let wanted = config.lowerOrderFinal ? min(config.solverOrder, timesteps.count - i) : config.solverOrder
        thisOrder = min(wanted, lowerOrderNums + 1)
        lastSample = x

        // 4. predict the next sample (UniP)
        let prev = predictor(sample: x, index: i, order: thisOrder)
        lowerOrderNums = min(lowerOrderNums + 1, config.solverOrder)
        cursor.advance(past: i)
        return prev
    }

    /// The UniPC coefficients for a step of size h from index `s0`, using history entries at the
    /// indices `others` (newest first): r_k = (λ_{s_k} − λ_{s0})/h, and for i = 1…order
    /// R[i−1] = r^{i−1}, b[i−1] = h φ_{i}(hh) · i! / B(h), with hh = −h for data prediction.
    private func coefficients(h: Float, lambdaS0: Float, others: [Int], order: Int)
        -> (rks: [Float], R: [[Float]], b: [Float], hPhi1: Float, bH: Float) {
        var rks = others.map { (cursor.alphaSigmaLambda($0).lambda - lambdaS0) / h }
        rks.append(1)
        let hh = config.predictX0 ? -h : h
        let hPhi1 = expm1f(hh)                 // h φ₁(h) = e^h − 1
        var hPhiK = hPhi1 / hh - 1
        var factorial: Float = 1
        let bH = config.solverType == .bh1 ? hh : expm1f(hh)
        var R: [[Float]] = [], b: [Float] = []
        for k in 1...order {
            R.append(rks.map { Foundation.powf($0, Float(k - 1)) })
            b.append(hPhiK * factorial / bH)
            factorial *= Float(k + 1)
            hPhiK = hPhiK / hh - 1 / factorial
        }
        return (rks, R, b, hPhi1, bH)
    }

    /// UniP-p (B(h) variant), eq. (8) of the paper.
    private func predictor(sample x: Tensor, index i: Int, order: Int) -> Tensor {
        let (at, st, lt) = cursor.alphaSigmaLambda(i + 1), (as0, ss0, ls0) = cursor.alphaSigmaLambda(i)
        let h = lt - ls0
        let c = modelOutputs.count
        let m0 = modelOutputs[c - 1]!
        let others = Array(1..<max(order, 1)).map { i - $0 }
        let coef = coefficients(h: h, lambdaS0: ls0, others: others, order: order)
        // D1_k = (m_k − m0)/r_k for the older outputs
        let d1s: [Tensor] = others.indices.map { k in
            let r = coef.rks[k]
            return zipMap(modelOutputs[c - 2 - k]!, m0) { (mk, a) in (mk - a) / r }
        }
        var rhos: [Float] = []
        if order == 2 { rhos = [0.5] } else if order > 2 {
            rhos = solveLinearSystem(coef.R.dropLast().map { Array($0.dropLast()) }, Array(coef.b.dropLast()))
        }
        let res: Tensor? = d1s.isEmpty ? nil : weightedSum(rhos, d1s)
        let (c1, c2, c3): (Float, Float, Float) = config.predictX0
            ? (st / ss0, at * coef.hPhi1, at * coef.bH)
            : (at / as0, st * coef.hPhi1, st * coef.bH)
        if let res { return zipMap3(x, m0, res) { (x, m, r) in (c1 * x - c2 * m) - c3 * r } }
        return zipMap(x, m0) { (x, m) in (c1 * x - c2 * m) - c3 * 0 }
    }

    /// UniC-p (B(h) variant), eq. (9) of the paper: corrects x_t predicted from `lastSample` with
    /// the model output at t.
    private func corrector(modelOutput mt: Tensor, lastSample x: Tensor, index i: Int, order: Int) -> Tensor {
        let (at, st, lt) = cursor.alphaSigmaLambda(i), (as0, ss0, ls0) = cursor.alphaSigmaLambda(i - 1)
        let h = lt - ls0
        let c = modelOutputs.count
        let m0 = modelOutputs[c - 1]!
        let others = Array(1..<max(order, 1)).map { i - ($0 + 1) }
        let coef = coefficients(h: h, lambdaS0: ls0, others: others, order: order)
        let d1s: [Tensor] = others.indices.map { k in
            let r = coef.rks[k]
            return zipMap(modelOutputs[c - 2 - k]!, m0) { (mk, a) in (mk - a) / r }
        }
        let rhos: [Float] = order == 1 ? [0.5] : solveLinearSystem(coef.R, coef.b)
        let rhoT = rhos[rhos.count - 1]
        let corr: Tensor? = d1s.isEmpty ? nil : weightedSum(Array(rhos.dropLast()), d1s)
        let (c1, c2, c3): (Float, Float, Float) = config.predictX0
            ? (st / ss0, at * coef.hPhi1, at * coef.bH)
            : (at / as0, st * coef.hPhi1, st * coef.bH)
        if let corr {
            return zipMap4(x, m0, corr, mt) { (x, m, r, n) in (c1 * x - c2 * m) - c3 * (r + rhoT * (n - m)) }
        }
        return zipMap3(x, m0, mt) { (x, m, n) in (c1 * x - c2 * m) - c3 * (0 + rhoT * (n - m)) }
    }

    /// x_t = α_t x₀ + σ_t ε at the σ of the begin / step index (or of `timestep`).
    public func addNoise(original: Tensor, noise: Tensor, timestep: Float) -> Tensor {
        cursor.addNoiseAlphaSigma(original: original, noise: noise, timestep: timestep)
    }
}

// AdamW with decoupled weight decay, global-norm gradient clipping, a warm-up + cosine learning-rate
// schedule, and an exponential moving average of the weights.
//
//   m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²
//   θ ← θ − lr · ( m̂ / (√v̂ + ε) + λ θ ),   m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)     (Loshchilov & Hutter, 2019)

import Foundation
import LDMCore
import LDMModels

/// AdamW over a fixed list of named parameters.
public final class AdamW {
    /// The parameters, by checkpoint key.
    public let parameters: [(String, Parameter)]
    /// First and second moment estimates, one per parameter.
    public private(set) var m: [Tensor], v: [Tensor]
    public var beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8
    /// Decoupled weight decay λ (not applied to biases and norm weights).
    public var weightDecay: Float
    /// Steps taken (t in the bias corrections).
    public var step = 0
    /// Per-parameter multipliers of the learning rate (1 unless set), e.g. a slower text encoder.
    public var learningRateScales: [Float]
    let decays: [Bool]

    public init(_ parameters: [(String, Parameter)], weightDecay: Float = 0.01) {
        self.parameters = parameters
        self.weightDecay = weightDecay
        m = parameters.map { Tensor(zeros: $0.1.shape) }
        v = parameters.map { Tensor(zeros: $0.1.shape) }
        decays = parameters.map { $0.1.shape.count >= 2 && !$0.0.contains("embedding") }
        learningRateScales = [Float](repeating: 1, count: parameters.count)
    }

    /// √(Σ‖g‖²) over all gradients.
    public func gradientNorm() -> Float {
        var s = 0.0
        for (_, p) in parameters {
            guard let g = p.grad else { continue }
            var part: Float = 0
            for i in 0..<g.count { part += g.data[i] * g.data[i] }
            s += Double(part)
        }
        return Float(s.squareRoot())
    }

    /// Scales gradients down so their global norm is at most `maxNorm`; returns the norm before clipping.
    @discardableResult
    public func clipGradients(maxNorm: Float) -> Float {
        let norm = gradientNorm()
        if norm > maxNorm && norm.isFinite {
            let s = maxNorm / norm
            for (_, p) in parameters { if let g = p.grad { scaleInPlace(g, s) } }
        }
        return norm
    }

    /// One update with learning rate `lr` (times each parameter's scale); `gradScale` multiplies
    /// every gradient first (1/accumulation).
    public func update(lr: Float, gradScale: Float = 1) {
        step += 1
        let c1 = 1 - powf(beta1, Float(step)), c2 = 1 - powf(beta2, Float(step))
        let b1 = beta1, b2 = beta2, e = eps
        for (k, (_, p)) in parameters.enumerated() {
            guard let g = p.grad else { continue }
            let pm = m[k].data, pv = v[k].data, pg = g.data, pw = p.value.data
            let wd = decays[k] ? weightDecay : 0
            let lr = lr * learningRateScales[k]
            Parallel.forEachChunk(g.count) { r in
                for i in r {
                    let gi = pg[i] * gradScale
                    pm[i] = b1 * pm[i] + (1 - b1) * gi
                    pv[i] = b2 * pv[i] + (1 - b2) * gi * gi
                    let mh = pm[i] / c1, vh = pv[i] / c2
                    pw[i] -= lr * (mh / (vh.squareRoot() + e) + wd * pw[i])
                }
            }
        }
    }

    /// Restores moments saved by `namedState`; `step` is used as their age when the file predates
    /// the saved "adam.step".
    public func restore(step: Int, moments: [String: Tensor]) throws {
        self.step = moments["adam.step"].map { Int($0.data[0]) } ?? step
        for (k, (name, _)) in parameters.enumerated() {
            guard let mm = moments["m." + name], let vv = moments["v." + name], mm.count == m[k].count, vv.count == v[k].count else {
                throw TrainingError.badCheckpoint("optimizer state lacks \(name)")
            }
            m[k].copy(from: mm)
            v[k].copy(from: vv)
        }
    }

    /// The moments by name ("m.<key>", "v.<key>") and their age t ("adam.step", exact below 2²⁴).
    public var namedState: [(String, Tensor)] {
        [("adam.step", Tensor(shape: [1], [Float(step)]))]
            + parameters.indices.flatMap { k in [("m." + parameters[k].0, m[k]), ("v." + parameters[k].0, v[k])] }
    }
}

/// Linear warm-up to `peak`, then cosine decay to `floor` at `totalSteps`.
public struct LearningRateSchedule: Codable, Sendable {
    public var peak: Float
    public var warmupSteps: Int
    public var totalSteps: Int
    public var floor: Float
    /// The step at which the optimiser's moments were last reset (a run continued from weights
    /// only): the rate is warmed up again from there over `warmupSteps`, as fresh AdamW moments
    /// make the first updates about `lr` per parameter whatever the gradient's noise.
    public var restartStep: Int?

    public init(peak: Float, warmupSteps: Int, totalSteps: Int, floor: Float = 0, restartStep: Int? = nil) {
        self.peak = peak; self.warmupSteps = warmupSteps; self.totalSteps = totalSteps; self.floor = floor
        self.restartStep = restartStep
    }

    /// lr(step) for step = 0, 1, … (the step about to be taken).
    public func callAsFunction(_ step: Int) -> Float {
        if let r = restartStep, step >= r, step - r < warmupSteps {
            let again = LearningRateSchedule(peak: peak, warmupSteps: warmupSteps, totalSteps: totalSteps, floor: floor)
            return again(step) * Float(step - r + 1) / Float(warmupSteps)
        }
        if step < warmupSteps { return peak * Float(step + 1) / Float(warmupSteps) }
        let span = max(totalSteps - warmupSteps, 1)
        let progress = min(Float(step - warmupSteps) / Float(span), 1)
        return floor + (peak - floor) * 0.5 * (1 + cosf(Float.pi * progress))
    }
}

/// An exponential moving average of parameters: θ̄ ← d θ̄ + (1 − d) θ.
public final class EMA {
    public let shadows: [(String, Tensor)]
    public var decay: Float

    public init(_ parameters: [(String, Parameter)], decay: Float) {
        shadows = parameters.map { ($0.0, $0.1.value.copy()) }
        self.decay = decay
    }

    /// Moves the average towards the current parameters. Early steps use min(decay, (1+t)/(10+t)).
    public func update(_ parameters: [(String, Parameter)], step: Int) {
        let d = min(decay, Float(1 + step) / Float(10 + step))
        for (k, (_, p)) in parameters.enumerated() {
            let s = shadows[k].1.data, w = p.value.data
            Parallel.forEachChunk(p.value.count) { r in for i in r { s[i] = d * s[i] + (1 - d) * w[i] } }
        }
    }
}

/// Training errors, one line each.
public enum TrainingError: Error, CustomStringConvertible {
    case badCheckpoint(String)
    case invalidArgument(String)
    case dataset(String)
    public var description: String {
        switch self {
        case let .badCheckpoint(m): return "checkpoint: \(m)"
        case let .invalidArgument(m): return m
        case let .dataset(m): return "dataset: \(m)"
        }
    }
}

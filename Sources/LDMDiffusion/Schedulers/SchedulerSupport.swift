// SchedulerSupport.swift — elementwise arithmetic on latents that the schedulers share:
// the prediction conversions, x₀ clipping and dynamic thresholding, the forward process of the
// ᾱ schedulers, a small linear solver.
//
// Everything runs in float32 with the scalar coefficients computed first, as diffusers' torch code
// does (0-dim float32 tensors times a latent tensor).

import Foundation
import LDMCore

/// A new tensor with `f(a[i], b[i], c[i])` at every element; all three share one shape.
func zipMap3(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ f: (Float, Float, Float) -> Float) -> Tensor {
    precondition(a.count == b.count && b.count == c.count, "shape mismatch \(a.shape) \(b.shape) \(c.shape)")
    let out = Tensor(uninitialized: a.shape)
    let pa = a.data, pb = b.data, pc = c.data, po = out.data
    for i in 0..<a.count { po[i] = f(pa[i], pb[i], pc[i]) }
    return out
}

/// A new tensor with `f(a[i], b[i], c[i], d[i])` at every element.
func zipMap4(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ d: Tensor,
             _ f: (Float, Float, Float, Float) -> Float) -> Tensor {
    precondition(a.count == b.count && b.count == c.count && c.count == d.count, "shape mismatch")
    let out = Tensor(uninitialized: a.shape)
    let pa = a.data, pb = b.data, pc = c.data, pd = d.data, po = out.data
    for i in 0..<a.count { po[i] = f(pa[i], pb[i], pc[i], pd[i]) }
    return out
}

/// Σ_k weights[k] · tensors[k], accumulated left to right from 0 (as `sum(...)`/einsum do).
func weightedSum(_ weights: [Float], _ tensors: [Tensor]) -> Tensor {
    precondition(weights.count == tensors.count && !tensors.isEmpty)
    let out = Tensor(zeros: tensors[0].shape)
    let po = out.data
    for (w, t) in zip(weights, tensors) {
        let pt = t.data
        for i in 0..<out.count { po[i] += w * pt[i] }
    }
    return out
}

// MARK: - What the model predicts

/// x̂₀ from a model output, for a sample x_t = α_t x₀ + σ_t ε (α_t = √ᾱ_t and σ_t = √(1 − ᾱ_t) for
/// the ᾱ schedulers; α_t = 1/√(σ² + 1) and σ_t = σ α_t for DPM-Solver and UniPC):
/// ε → (x − σ_t ε)/α_t (formula (15) of Ho et al. 2020); v → α_t x − σ_t v; sample → the output itself.
func predictedOriginal(output: Tensor, sample: Tensor, alpha: Float, sigma: Float, type: PredictionType) -> Tensor {
    switch type {
    case .epsilon: return zipMap(sample, output) { (x, e) in (x - sigma * e) / alpha }
    case .sample: return output
    case .vPrediction: return zipMap(sample, output) { (x, v) in alpha * x - sigma * v }
    }
}

/// ε̂ from a model output, for x_t = α_t x₀ + σ_t ε: ε → the output itself;
/// sample → (x − α_t x̂₀)/σ_t; v → α_t v + σ_t x.
func predictedNoise(output: Tensor, sample: Tensor, alpha: Float, sigma: Float, type: PredictionType) -> Tensor {
    switch type {
    case .epsilon: return output
    case .sample: return zipMap(sample, output) { (x, p) in (x - alpha * p) / sigma }
    case .vPrediction: return zipMap(output, sample) { (v, x) in alpha * v + sigma * x }
    }
}

/// x_t = √ᾱ x₀ + √(1 − ᾱ) ε, the forward process q(x_t | x₀) of the ᾱ-indexed schedulers (DDPM, DDIM, PNDM).
func addNoiseAlphaProd(original: Tensor, noise: Tensor, alphaProd: Float) -> Tensor {
    let a = alphaProd.squareRoot(), b = (1 - alphaProd).squareRoot()
    return zipMap(original, noise) { (x, e) in a * x + b * e }
}

// MARK: - Keeping x̂₀ in range

/// A config with diffusers' dynamic thresholding keys (`thresholding`, `dynamic_thresholding_ratio`,
/// `sample_max_value`).
protocol ThresholdingConfig {
    var thresholding: Bool { get }
    var dynamicThresholdingRatio: Double { get }
    var sampleMaxValue: Double { get }
}

extension ThresholdingConfig {
    /// x̂₀ dynamically thresholded when `thresholding` is on, else unchanged.
    func thresholded(_ x0: Tensor) -> Tensor {
        guard thresholding else { return x0 }
        return dynamicThreshold(x0, ratio: Float(dynamicThresholdingRatio), maxValue: Float(sampleMaxValue))
    }
}

/// A config with diffusers' `clip_sample` / `clip_sample_range` keys.
protocol ClipSampleConfig {
    var clipSample: Bool { get }
    var clipSampleRange: Double { get }
}

extension ClipSampleConfig {
    /// x̂₀ clamped to [−range, range] when `clipSample` is on, else unchanged.
    func clipped(_ x0: Tensor) -> Tensor {
        guard clipSample else { return x0 }
        let range = Float(clipSampleRange)
        return map(x0) { Swift.min(Swift.max($0, -range), range) }
    }
}

extension ThresholdingConfig where Self: ClipSampleConfig {
    /// x̂₀ thresholded when `thresholding` is on, else clipped when `clipSample` is (thresholding
    /// takes precedence, as in diffusers' DDPM and DDIM).
    func limited(_ x0: Tensor) -> Tensor {
        thresholding ? thresholded(x0) : clipped(x0)
    }
}

/// Dynamic thresholding of Saharia et al. (2022), "Imagen", §2.3, per batch item: s = the
/// `ratio`-quantile of |x₀| clamped to [1, maxValue]; x₀ ← clamp(x₀, −s, s) / s
/// (diffusers' `_threshold_sample`; the quantile interpolates linearly as `torch.quantile`).
func dynamicThreshold(_ x: Tensor, ratio: Float, maxValue: Float) -> Tensor {
    let batch = x.shape.first ?? 1
    let per = batch > 0 ? x.count / batch : 0
    let out = Tensor(uninitialized: x.shape)
    guard per > 0 else { return out }
    for b in 0..<batch {
        let src = x.data + b * per, dst = out.data + b * per
        let sorted = (0..<per).map { Swift.abs(src[$0]) }.sorted()
        // torch.quantile: rank = q·(n − 1) in float, lerp between the neighbours.
        let rank = ratio * Float(per - 1)
        let below = Int(rank.rounded(.down)), above = Swift.min(below + 1, per - 1)
        let weight = rank - Float(below)
        let lo = sorted[below], hi = sorted[above]
        let q = weight < 0.5 ? lo + weight * (hi - lo) : hi - (hi - lo) * (1 - weight)
        let s = Swift.min(Swift.max(q, 1), maxValue)
        for i in 0..<per { dst[i] = Swift.min(Swift.max(src[i], -s), s) / s }
    }
    return out
}

/// Solves A x = b (A square, row-major) by Gaussian elimination with partial pivoting in float32,
/// as `torch.linalg.solve` (LAPACK getrf/getrs) does for the UniPC coefficient systems.
func solveLinearSystem(_ a: [[Float]], _ b: [Float]) -> [Float] {
    let n = b.count
    var m = a, rhs = b
    for col in 0..<n {
        var pivot = col
        for r in (col + 1)..<n where Swift.abs(m[r][col]) > Swift.abs(m[pivot][col]) { pivot = r }
        if pivot != col { m.swapAt(pivot, col); rhs.swapAt(pivot, col) }
        let p = m[col][col]
        guard p != 0 else { continue }
        for r in (col + 1)..<n {
            let f = m[r][col] / p
            if f == 0 { continue }
            for c in col..<n { m[r][c] -= f * m[col][c] }
            rhs[r] -= f * rhs[col]
        }
    }
    var x = [Float](repeating: 0, count: n)
    for r in stride(from: n - 1, through: 0, by: -1) {
        var s = rhs[r]
        for c in (r + 1)..<n { s -= m[r][c] * x[c] }
        x[r] = m[r][r] != 0 ? s / m[r][r] : 0
    }
    return x
}

/// Noise for one stochastic update: `count` draws of N(0, 1) in the shape of `like`, taken from
/// `random` as `randn_tensor(shape, generator)` takes them from a torch generator.
func drawNoise(like shape: [Int], count: Int, random: inout any RandomSource) -> Tensor {
    Tensor(shape: shape, random.normal(count: count))
}

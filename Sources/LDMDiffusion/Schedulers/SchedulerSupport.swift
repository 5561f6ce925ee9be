// SchedulerSupport.swift — elementwise arithmetic on latents that the schedulers share:
// the prediction conversions, x₀ clipping and dynamic thresholding, a small linear solver.
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

/// x₀ clamped to [−range, range] (diffusers' `clip_sample`).
func clipSample(_ x: Tensor, range: Float) -> Tensor {
    map(x) { Swift.min(Swift.max($0, -range), range) }
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

/// Where a σ scheduler is in its run (diffusers' `_step_index` and `_begin_index`).
struct StepCursor: Sendable {
    /// Index into `timesteps`/`sigmas` of the next `step`; nil before the first step of a run.
    var stepIndex: Int?
    /// Index the run starts at (img2img), set by `setBeginIndex`; nil: found from the first timestep.
    var beginIndex: Int?

    /// The index the next `step` (and `scaleModelInput`) works at: the running index, else the
    /// begin index, else the position of `timestep` (diffusers' `_init_step_index`).
    func current(_ timestep: Float, lookup: (Float) -> Int) -> Int {
        stepIndex ?? beginIndex ?? lookup(timestep)
    }

    /// The index `add_noise` takes its noise level from: the timestep's position when no begin
    /// index was set, else the running index after the first step (inpainting), else the begin index.
    func noiseLevel(_ timestep: Float, lookup: (Float) -> Int) -> Int {
        guard let beginIndex else { return lookup(timestep) }
        return stepIndex ?? beginIndex
    }
}

// Group norm and layer norm, forward and backward side by side. The forward returns the per-group
// mean and reciprocal standard deviation (`rstd`), exactly what the backward reads.
//
//   y = (x − μ) · rstd · γ + β,   rstd = 1 / √(σ² + ε)        (σ² the biased variance)

import Foundation

/// What a normalisation forward saves for its backward.
public struct NormCache {
    /// Mean of each normalised group (or row).
    public var mean: [Float]
    /// 1/√(var + ε) of each group (or row).
    public var rstd: [Float]

    public init(mean: [Float] = [], rstd: [Float] = []) { self.mean = mean; self.rstd = rstd }
}

/// GroupNorm over x [N, C, ...] with `groups` groups of C/groups channels; γ, β of size C.
/// When `fuseSiLU` the SiLU activation is applied to the output in the same pass. `statistics`, when
/// given, supplies μ and rstd per (sample, group) instead of computing them from x (a tiled decode
/// normalises every tile with whole-image statistics); `eps` is then already inside its rstd.
public func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float,
                      fuseSiLU: Bool = false, statistics: NormCache? = nil,
                      cache: UnsafeMutablePointer<NormCache>? = nil) -> Tensor {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "group norm") }
    let n = x.shape[0], c = x.shape[1]
    precondition(c % groups == 0, "groupNorm: \(c) channels in \(groups) groups")
    let spatial = x.count / max(n * c, 1)
    let cpg = c / groups
    let groupSize = cpg * spatial
    let y = Tensor(uninitialized: x.shape)
    if let statistics {
        precondition(statistics.mean.count == n * groups && statistics.rstd.count == n * groups,
                     "groupNorm: \(statistics.mean.count) fixed statistics for \(n) × \(groups) groups")
    }
    var means = statistics?.mean ?? [Float](repeating: 0, count: n * groups)
    var rstds = statistics?.rstd ?? [Float](repeating: 0, count: n * groups)
    let given = statistics != nil
    let px = x.data, py = y.data
    let pw = weight?.data, pb = bias?.data
    means.withUnsafeMutableBufferPointer { mb in
        rstds.withUnsafeMutableBufferPointer { rb in
            let mp = mb.baseAddress!, rp = rb.baseAddress!
            Parallel.forEach(n * groups, cost: groupSize) { ng in
                let base = px + ng * groupSize
                let m: Float, r: Float
                if given {
                    m = mp[ng]
                    r = rp[ng]
                } else {
                    // Two passes in double for the statistics, as a reference implementation would.
                    var s = 0.0
                    for j in 0..<groupSize { s += Double(base[j]) }
                    let mu = s / Double(groupSize)
                    var v = 0.0
                    for j in 0..<groupSize { let d = Double(base[j]) - mu; v += d * d }
                    r = Float(1 / (v / Double(groupSize) + Double(eps)).squareRoot())
                    m = Float(mu)
                    mp[ng] = m
                    rp[ng] = r
                }
                let g = ng % groups
                for cc in 0..<cpg {
                    let ch = g * cpg + cc
                    let a = r * (pw?[ch] ?? 1)
                    let b = (pb?[ch] ?? 0) - m * a
                    let src = base + cc * spatial, dst = py + ng * groupSize + cc * spatial
                    for j in 0..<spatial { dst[j] = src[j] * a + b }
                    if fuseSiLU { siluVector(dst, dst, spatial) }
                }
            }
        }
    }
    cache?.pointee = NormCache(mean: means, rstd: rstds)
    return y
}

/// Σx and Σx² of each (sample, group) of x [N, C, H, W] over the window `rows` × `columns` only,
/// in double, indexed n · groups + g. A tiled decode pools these over the tiles' own regions into
/// whole-image statistics: μ = Σx / m, σ² = Σx² / m − μ² for m elements per group.
public func groupNormSums(_ x: Tensor, groups: Int, rows: Range<Int>, columns: Range<Int>)
    -> (sums: [Double], squares: [Double]) {
    precondition(x.rank == 4, "groupNormSums needs [N, C, H, W], got \(x.shape)")
    let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    precondition(c % groups == 0, "groupNormSums: \(c) channels in \(groups) groups")
    precondition(rows.lowerBound >= 0 && rows.upperBound <= h && columns.lowerBound >= 0 && columns.upperBound <= w,
                 "groupNormSums: window \(rows) × \(columns) outside \(h) × \(w)")
    let cpg = c / groups
    var sums = [Double](repeating: 0, count: n * groups)
    var squares = [Double](repeating: 0, count: n * groups)
    let px = x.data
    sums.withUnsafeMutableBufferPointer { sb in
        squares.withUnsafeMutableBufferPointer { qb in
            let sp = sb.baseAddress!, qp = qb.baseAddress!
            Parallel.forEach(n * groups, cost: cpg * rows.count * columns.count) { ng in
                var s = 0.0, q = 0.0
                for cc in 0..<cpg {
                    let plane = px + (ng * cpg + cc) * h * w
                    for r in rows {
                        let row = plane + r * w
                        for j in columns { let v = Double(row[j]); s += v; q += v * v }
                    }
                }
                sp[ng] = s
                qp[ng] = q
            }
        }
    }
    return (sums, squares)
}

/// Backward of `groupNorm` (without the fused SiLU): accumulates dγ, dβ and returns dx.
///   x̂ = (x − μ)·rstd,  dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂)),  dx̂ = dy · γ
public func groupNormBackward(_ dy: Tensor, x: Tensor, groups: Int, weight: Tensor?, cache: NormCache,
                              weightGrad: Tensor?, biasGrad: Tensor?) -> Tensor {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "group norm backward") }
    let n = x.shape[0], c = x.shape[1]
    let spatial = x.count / max(n * c, 1)
    let cpg = c / groups, groupSize = cpg * spatial
    let dx = Tensor(uninitialized: x.shape)
    let px = x.data, pd = dy.data, po = dx.data, pw = weight?.data
    let dwg = weightGrad?.data, dbg = biasGrad?.data
    for ng in 0..<n * groups {
        let m = cache.mean[ng], r = cache.rstd[ng], g = ng % groups
        var sumD = 0.0, sumDX = 0.0
        for cc in 0..<cpg {
            let ch = g * cpg + cc
            let gamma = pw?[ch] ?? 1
            let off = ng * groupSize + cc * spatial
            var dGamma: Float = 0, dBeta: Float = 0
            for j in 0..<spatial {
                let xh = (px[off + j] - m) * r
                let d = pd[off + j]
                dGamma += d * xh
                dBeta += d
                let dxh = d * gamma
                sumD += Double(dxh)
                sumDX += Double(dxh * xh)
            }
            dwg?[ch] += dGamma
            dbg?[ch] += dBeta
        }
        let meanD = Float(sumD / Double(groupSize)), meanDX = Float(sumDX / Double(groupSize))
        for cc in 0..<cpg {
            let ch = g * cpg + cc
            let gamma = pw?[ch] ?? 1
            let off = ng * groupSize + cc * spatial
            for j in 0..<spatial {
                let xh = (px[off + j] - m) * r
                po[off + j] = r * (pd[off + j] * gamma - meanD - xh * meanDX)
            }
        }
    }
    return dx
}

/// LayerNorm over the last dimension of x [..., D]; γ, β of size D.
public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float,
                      cache: UnsafeMutablePointer<NormCache>? = nil) -> Tensor {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "layer norm") }
    let d = x.shape.last ?? 1
    let rows = d == 0 ? 0 : x.count / d
    let y = Tensor(uninitialized: x.shape)
    var means = [Float](repeating: 0, count: rows)
    var rstds = [Float](repeating: 0, count: rows)
    let px = x.data, py = y.data, pw = weight?.data, pb = bias?.data
    means.withUnsafeMutableBufferPointer { mb in
        rstds.withUnsafeMutableBufferPointer { rb in
            let mp = mb.baseAddress!, rp = rb.baseAddress!
            Parallel.forEach(rows, cost: d) { i in
                let row = px + i * d
                var s = 0.0
                for j in 0..<d { s += Double(row[j]) }
                let mu = s / Double(d)
                var v = 0.0
                for j in 0..<d { let t = Double(row[j]) - mu; v += t * t }
                let r = Float(1 / (v / Double(d) + Double(eps)).squareRoot())
                let m = Float(mu)
                mp[i] = m
                rp[i] = r
                let out = py + i * d
                for j in 0..<d { out[j] = (row[j] - m) * r * (pw?[j] ?? 1) + (pb?[j] ?? 0) }
            }
        }
    }
    cache?.pointee = NormCache(mean: means, rstd: rstds)
    return y
}

/// Backward of `layerNorm`: accumulates dγ, dβ and returns dx (same formula as group norm, per row).
public func layerNormBackward(_ dy: Tensor, x: Tensor, weight: Tensor?, cache: NormCache,
                              weightGrad: Tensor?, biasGrad: Tensor?) -> Tensor {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "layer norm backward") }
    let d = x.shape.last ?? 1
    let rows = d == 0 ? 0 : x.count / d
    let dx = Tensor(uninitialized: x.shape)
    let px = x.data, pd = dy.data, po = dx.data, pw = weight?.data
    let dwg = weightGrad?.data, dbg = biasGrad?.data
    for i in 0..<rows {
        let m = cache.mean[i], r = cache.rstd[i]
        var sumD: Float = 0, sumDX: Float = 0
        for j in 0..<d {
            let xh = (px[i * d + j] - m) * r
            let g = pd[i * d + j]
            dwg?[j] += g * xh
            dbg?[j] += g
            let dxh = g * (pw?[j] ?? 1)
            sumD += dxh
            sumDX += dxh * xh
        }
        let meanD = sumD / Float(d), meanDX = sumDX / Float(d)
        for j in 0..<d {
            let xh = (px[i * d + j] - m) * r
            po[i * d + j] = r * (pd[i * d + j] * (pw?[j] ?? 1) - meanD - xh * meanDX)
        }
    }
    return dx
}

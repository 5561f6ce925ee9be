// Softmax and multi-head scaled-dot-product attention, forward and backward side by side.
//
//   Attention(Q, K, V) = softmax(Q Kᵀ · scale [+ causal mask]) V,   scale = 1/√d  per head
//
// Queries are processed in chunks so the score matrix held at once is at most `maxScoreFloats`,
// whatever the resolution. Q, K, V are [B, L, heads·d] with each head's d channels adjacent, as
// diffusers' and transformers' attention layers lay them out before `head_to_batch_dim`.

import Foundation

/// Largest score block (queries × keys), in floats, held at once (16 MB).
nonisolated(unsafe) var maxScoreFloats = 4 << 20

/// Score block of one forward attention job (4 MB). Each job's products repack K and V, so blocks
/// of many query rows pay for that; measured on SD's 4096-token attention (8 heads of 40, 2 cores):
/// 62 GFLOP/s with 64 K floats, 83 with 256 K, 87 with 1 M and 2 M, 79 with 4 M.
nonisolated(unsafe) public var scoreBlockFloats = 1 << 20

/// Softmax over the last dimension.
public func softmax(_ x: Tensor) -> Tensor {
    let y = x.copy()
    let n = x.shape.last ?? 1
    let rows = n == 0 ? 0 : x.count / n
    let p = y.data
    Parallel.forEach(rows, cost: n) { r in softmaxRow(p + r * n, n) }
    return y
}

/// In-place softmax of one row: exp(x − max) / Σ exp(x − max).
@inline(__always)
func softmaxRow(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
    let inv = unnormalisedSoftmaxRow(p, n)
    for j in 0..<n { p[j] *= inv }
}

/// Replaces a row by exp(x − max) and returns 1 / Σ exp(x − max); a row of −∞ only (every key
/// masked) becomes zeros and returns 0.
@inline(__always)
func unnormalisedSoftmaxRow(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
    let m = rowMaximum(p, n)
    if m == -Float.infinity { p.update(repeating: 0, count: n); return 0 }
    return 1 / expShiftedInPlace(p, n, shift: m)
}

/// The causal mask on a row of scores of query `query`: keys after it get −∞.
@inline(__always)
func maskFutureKeys(_ row: UnsafeMutablePointer<Float>, query: Int, keys: Int) {
    if query + 1 < keys { (row + query + 1).update(repeating: -.infinity, count: keys - query - 1) }
}

/// max p[0..<n] (−∞ when empty), eight lanes at a time.
@inline(__always)
public func rowMaximum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var lanes = SIMD8<Float>(repeating: -.infinity)
    var j = 0
    while j + 8 <= n {
        let v = UnsafeRawPointer(p + j).loadUnaligned(as: SIMD8<Float>.self)
        lanes.replace(with: v, where: v .> lanes)
        j += 8
    }
    var m = lanes.max()
    while j < n { m = p[j] > m ? p[j] : m; j += 1 }
    return m
}

/// Backward of softmax given its output y: dx = y ⊙ (dy − Σ dy ⊙ y).
public func softmaxBackward(_ dy: Tensor, y: Tensor) -> Tensor {
    let n = y.shape.last ?? 1
    let rows = n == 0 ? 0 : y.count / n
    let dx = Tensor(uninitialized: y.shape)
    let py = y.data, pd = dy.data, po = dx.data
    for r in 0..<rows {
        var dot: Float = 0
        for j in 0..<n { dot += pd[r * n + j] * py[r * n + j] }
        for j in 0..<n { po[r * n + j] = py[r * n + j] * (pd[r * n + j] - dot) }
    }
    return dx
}

/// Query rows per chunk so that one score block stays under `maxScoreFloats`.
@inline(__always)
func queryChunk(_ lq: Int, _ lk: Int) -> Int { max(1, min(lq, maxScoreFloats / max(lk, 1))) }

/// Multi-head attention: q [B, Lq, H·d], k and v [B, Lk, H·d] → [B, Lq, H·d].
/// `causal` masks key j > query i (CLIP's text transformer).
///
/// The work is split into independent jobs — one (batch, head, block of query rows) each — claimed
/// in chunks by the cores, every job running its two products single-threaded on a score block small
/// enough to stay in the core's cache (`scoreBlockFloats`) from QKᵀ through softmax to PV.
public func attention(q: Tensor, k: Tensor, v: Tensor, heads: Int, causal: Bool = false,
                      scale: Float? = nil) -> Tensor {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "attention \(q.shape[1])×\(k.shape[1])") }
    let b = q.shape[0], lq = q.shape[1], lk = k.shape[1], width = q.shape[2]
    precondition(k.shape[0] == b && v.shape[0] == b && k.shape[2] == width && v.shape[1] == lk,
                 "attention shapes q \(q.shape) k \(k.shape) v \(v.shape)")
    let vWidth = v.shape[2]
    precondition(width % heads == 0 && vWidth % heads == 0, "attention: \(width) channels in \(heads) heads")
    let d = width / heads, dv = vWidth / heads
    let alpha = scale ?? 1 / Float(d).squareRoot()
    let out = Tensor(uninitialized: [b, lq, vWidth])
    if b * lq == 0 { return out }
    if lk > 0 && BF16Attention.takes(causal: causal, headWidth: d) {
        BF16Attention.attention(q: q, k: k, v: v, heads: heads, alpha: alpha, into: out)
        return out
    }
    let rowsPerJob = max(1, min(lq, min(maxScoreFloats, scoreBlockFloats) / max(lk, 1)))
    let blocks = (lq + rowsPerJob - 1) / rowsPerJob
    let jobs = b * heads * blocks
    let qd = q.data, kd = k.data, vd = v.data, od = out.data
    Parallel.forEachChunk(jobs, cost: Parallel.minimumParallelWork) { range in
        let scores = allocateScratch(rowsPerJob * max(lk, 1))
        defer { freeScratch(scores, rowsPerJob * max(lk, 1)) }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: rowsPerJob) { inverseSums in
            let inverseSums = inverseSums.baseAddress!
            for job in range {
                let block = job % blocks, h = (job / blocks) % heads, bi = job / (blocks * heads)
                let q0 = block * rowsPerJob, rows = min(rowsPerJob, lq - q0)
                BLAS.gemm(transB: true, m: rows, n: lk, k: d, alpha: alpha, a: qd + (bi * lq + q0) * width + h * d,
                          lda: width, b: kd + bi * lk * width + h * d, ldb: width, c: scores, ldc: lk)
                // Unnormalised probabilities exp(s − max); each output row is divided by its sum after
                // the product, which saves a pass over the scores.
                for r in 0..<rows {
                    let row = scores + r * lk
                    if causal { maskFutureKeys(row, query: q0 + r, keys: lk) }
                    inverseSums[r] = unnormalisedSoftmaxRow(row, lk)
                }
                let o = od + (bi * lq + q0) * vWidth + h * dv
                BLAS.gemm(m: rows, n: dv, k: lk, a: scores, lda: lk, b: vd + bi * lk * vWidth + h * dv,
                          ldb: vWidth, c: o, ldc: vWidth)
                for r in 0..<rows {
                    let s = inverseSums[r], row = o + r * vWidth
                    for j in 0..<dv { row[j] *= s }
                }
            }
        }
    }
    return out
}

/// Backward of `attention`: returns (dq, dk, dv). The probabilities are recomputed chunk by chunk.
///   dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),  dQ = scale · dS K,  dK = scale · dSᵀ Q
public func attentionBackward(_ dOut: Tensor, q: Tensor, k: Tensor, v: Tensor, heads: Int,
                              causal: Bool = false, scale: Float? = nil) -> (Tensor, Tensor, Tensor) {
    let profileToken = OpProfile.start()
    defer { OpProfile.stop(profileToken, "attention \(q.shape[1])×\(k.shape[1]) backward") }
    let b = q.shape[0], lq = q.shape[1], lk = k.shape[1], width = q.shape[2], vWidth = v.shape[2]
    let d = width / heads, dvH = vWidth / heads
    let alpha = scale ?? 1 / Float(d).squareRoot()
    let dq = Tensor(zeros: q.shape), dk = Tensor(zeros: k.shape), dv = Tensor(zeros: v.shape)
    let chunk = queryChunk(lq, lk)
    // One job per (batch, head): each writes only its own slices of dq, dk and dv, so the jobs are
    // shared out over the cores with single-threaded products, as in the forward pass.
    let jobs = b * heads
    if jobs == 0 || lq == 0 { return (dq, dk, dv) }
    let workers = min(Parallel.threadCount, jobs)
    Parallel.forEach(workers, cost: Parallel.minimumParallelWork) { w in
        let p = allocateScratch(chunk * lk)
        let dp = allocateScratch(chunk * lk)
        defer { freeScratch(p, chunk * lk); freeScratch(dp, chunk * lk) }
        var job = w
        while job < jobs {
            let bi = job / heads, h = job % heads
            var q0 = 0
            while q0 < lq {
                let rows = min(chunk, lq - q0)
                let qp = q.data + (bi * lq + q0) * width + h * d
                let kp = k.data + bi * lk * width + h * d
                let vp = v.data + bi * lk * vWidth + h * dvH
                let dop = dOut.data + (bi * lq + q0) * vWidth + h * dvH
                BLAS.gemm(transB: true, m: rows, n: lk, k: d, alpha: alpha, a: qp, lda: width,
                          b: kp, ldb: width, c: p, ldc: lk)
                for r in 0..<rows {
                    let row = p + r * lk
                    if causal { maskFutureKeys(row, query: q0 + r, keys: lk) }
                    softmaxRow(row, lk)
                }
                // dV += Pᵀ dO
                BLAS.gemm(transA: true, m: lk, n: dvH, k: rows, a: p, lda: lk, b: dop, ldb: vWidth,
                          beta: 1, c: dv.data + bi * lk * vWidth + h * dvH, ldc: vWidth)
                // dP = dO Vᵀ
                BLAS.gemm(transB: true, m: rows, n: lk, k: dvH, a: dop, lda: vWidth, b: vp, ldb: vWidth,
                          c: dp, ldc: lk)
                // dS = P ⊙ (dP − rowsum(dP ⊙ P))
                for r in 0..<rows {
                    var dot: Float = 0
                    for j in 0..<lk { dot += dp[r * lk + j] * p[r * lk + j] }
                    for j in 0..<lk { dp[r * lk + j] = p[r * lk + j] * (dp[r * lk + j] - dot) }
                }
                // dQ = scale · dS K ; dK += scale · dSᵀ Q
                BLAS.gemm(m: rows, n: d, k: lk, alpha: alpha, a: dp, lda: lk, b: kp, ldb: width,
                          beta: 1, c: dq.data + (bi * lq + q0) * width + h * d, ldc: width)
                BLAS.gemm(transA: true, m: lk, n: d, k: rows, alpha: alpha, a: dp, lda: lk, b: qp, ldb: width,
                          beta: 1, c: dk.data + bi * lk * width + h * d, ldc: width)
                q0 += rows
            }
            job += workers
        }
    }
    return (dq, dk, dv)
}

// Linear layers and matrix products through cblas_sgemm, forward and backward side by side.
// Weights are PyTorch's [out, in] layout, so checkpoints load without transposes.

/// y = x · Wᵀ + b for x [..., in], W [out, in], b [out] → y [..., out].
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "linear") }
    let inF = weight.shape[1], outF = weight.shape[0]
    precondition(x.shape.last == inF, "linear: input \(x.shape) for weight \(weight.shape)")
    let rows = inF == 0 ? 0 : x.count / inF
    var shape = x.shape
    shape[shape.count - 1] = outF
    let y = Tensor(uninitialized: shape)
    if let bias {
        // Start from the bias in every row, then accumulate the product into it (beta = 1).
        let py = y.data, pb = bias.data
        Parallel.forEachChunk(rows, cost: outF) { r in
            for i in r { (py + i * outF).update(from: pb, count: outF) }
        }
    }
    BLAS.gemm(transB: true, m: rows, n: outF, k: inF, a: x.data, lda: inF, b: weight.data, ldb: inF,
              beta: bias == nil ? 0 : 1, c: y.data, ldc: outF)
    return y
}

/// Backward of `linear`: accumulates dW += dyᵀ·x and db += Σ dy, returns dx = dy·W.
public func linearBackward(_ dy: Tensor, x: Tensor, weight: Tensor,
                           weightGrad: Tensor?, biasGrad: Tensor?, needInputGrad: Bool = true) -> Tensor? {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "linear backward") }
    let inF = weight.shape[1], outF = weight.shape[0]
    let rows = outF == 0 ? 0 : dy.count / outF
    if let weightGrad {
        BLAS.gemm(transA: true, m: outF, n: inF, k: rows, a: dy.data, lda: outF, b: x.data, ldb: inF,
                  beta: 1, c: weightGrad.data, ldc: inF)
    }
    if let biasGrad {
        let pg = biasGrad.data, pd = dy.data
        for i in 0..<rows { for j in 0..<outF { pg[j] += pd[i * outF + j] } }
    }
    guard needInputGrad else { return nil }
    let dx = Tensor(uninitialized: x.shape)
    BLAS.gemm(m: rows, n: inF, k: outF, a: dy.data, lda: outF, b: weight.data, ldb: inF,
              c: dx.data, ldc: inF)
    return dx
}

/// Batched matrix product: a [B, m, k] · b [B, k, n] → [B, m, n] (optionally transposing either).
public func batchedMatmul(_ a: Tensor, _ b: Tensor, transA: Bool = false, transB: Bool = false) -> Tensor {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "batched matmul") }
    precondition(a.rank == 3 && b.rank == 3 && a.shape[0] == b.shape[0], "batchedMatmul \(a.shape) \(b.shape)")
    let batch = a.shape[0]
    let m = transA ? a.shape[2] : a.shape[1], k = transA ? a.shape[1] : a.shape[2]
    let n = transB ? b.shape[1] : b.shape[2]
    precondition((transB ? b.shape[2] : b.shape[1]) == k, "batchedMatmul inner dimensions \(a.shape) \(b.shape)")
    let out = Tensor(uninitialized: [batch, m, n])
    for i in 0..<batch {
        BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k,
                  a: a.data + i * a.shape[1] * a.shape[2], lda: a.shape[2],
                  b: b.data + i * b.shape[1] * b.shape[2], ldb: b.shape[2],
                  c: out.data + i * m * n, ldc: n)
    }
    return out
}

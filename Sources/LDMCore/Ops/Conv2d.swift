// 2-D convolution in NCHW with PyTorch's weight layout [out, in/groups, kh, kw], as im2col + GEMM.
// 1×1 stride-1 convolutions skip im2col (the input already is the column matrix). The column
// buffer is built a band of output rows at a time, so its size stays bounded at any resolution.

/// Geometry of one convolution.
public struct Conv2dShape: Sendable {
    public var inChannels, outChannels, kernelH, kernelW, stride, padding: Int
    public var height, width: Int
    public var outHeight: Int { (height + 2 * padding - kernelH) / stride + 1 }
    public var outWidth: Int { (width + 2 * padding - kernelW) / stride + 1 }
    /// Rows of the column matrix: in · kh · kw.
    public var columnRows: Int { inChannels * kernelH * kernelW }
    var isPointwise: Bool { kernelH == 1 && kernelW == 1 && stride == 1 && padding == 0 }
}

/// Largest column buffer, in floats, built at once (64 MB).
nonisolated(unsafe) var maxColumnFloats = 16 << 20

/// Fills `col` [in·kh·kw, rows·outW] with the input patches for output rows `oy0 ..< oy0+rows` of one image.
@inline(__always)
func im2col(_ x: UnsafePointer<Float>, _ g: Conv2dShape, oy0: Int, rows: Int, col: UnsafeMutablePointer<Float>) {
    let ow = g.outWidth, h = g.height, w = g.width, s = g.stride, p = g.padding
    let kh = g.kernelH, kw = g.kernelW
    let cols = rows * ow
    Parallel.forEach(g.inChannels, cost: kh * kw * cols) { c in
        let plane = x + c * h * w
        for ky in 0..<kh {
            for kx in 0..<kw {
                let dst = col + ((c * kh + ky) * kw + kx) * cols
                for r in 0..<rows {
                    let iy = (oy0 + r) * s - p + ky
                    let d = dst + r * ow
                    if iy < 0 || iy >= h {
                        d.update(repeating: 0, count: ow)
                        continue
                    }
                    let src = plane + iy * w
                    if s == 1 {
                        // Contiguous run: ix = ox - p + kx.
                        let lo = max(0, p - kx), hi = min(ow, w + p - kx)
                        if lo > 0 { d.update(repeating: 0, count: min(lo, ow)) }
                        if hi > lo { (d + lo).update(from: src + lo - p + kx, count: hi - lo) }
                        if hi < ow { (d + max(hi, 0)).update(repeating: 0, count: ow - max(hi, 0)) }
                    } else {
                        for ox in 0..<ow {
                            let ix = ox * s - p + kx
                            d[ox] = (ix >= 0 && ix < w) ? src[ix] : 0
                        }
                    }
                }
            }
        }
    }
}

/// Adds the column-matrix gradient back into the input gradient (the adjoint of `im2col`).
@inline(__always)
func col2im(_ col: UnsafePointer<Float>, _ g: Conv2dShape, oy0: Int, rows: Int, dx: UnsafeMutablePointer<Float>) {
    let ow = g.outWidth, h = g.height, w = g.width, s = g.stride, p = g.padding
    let kh = g.kernelH, kw = g.kernelW
    let cols = rows * ow
    Parallel.forEach(g.inChannels, cost: kh * kw * cols) { c in
        let plane = dx + c * h * w
        for ky in 0..<kh {
            for kx in 0..<kw {
                let src = col + ((c * kh + ky) * kw + kx) * cols
                for r in 0..<rows {
                    let iy = (oy0 + r) * s - p + ky
                    if iy < 0 || iy >= h { continue }
                    let d = plane + iy * w
                    for ox in 0..<ow {
                        let ix = ox * s - p + kx
                        if ix >= 0 && ix < w { d[ix] += src[r * ow + ox] }
                    }
                }
            }
        }
    }
}

/// Output rows per im2col band so that the band's column buffer stays under `maxColumnFloats`.
func bandRows(_ g: Conv2dShape) -> Int {
    max(1, min(g.outHeight, maxColumnFloats / max(1, g.columnRows * g.outWidth)))
}

/// conv2d(x [N, C, H, W], weight [O, C, kh, kw], bias [O]) with equal stride and padding on both axes.
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0) -> Tensor {
    precondition(x.rank == 4 && weight.rank == 4 && weight.shape[1] == x.shape[1],
                 "conv2d: input \(x.shape) for weight \(weight.shape)")
    let g = Conv2dShape(inChannels: x.shape[1], outChannels: weight.shape[0], kernelH: weight.shape[2],
                        kernelW: weight.shape[3], stride: stride, padding: padding,
                        height: x.shape[2], width: x.shape[3])
    let n = x.shape[0], oh = g.outHeight, ow = g.outWidth, k = g.columnRows
    let y = Tensor(uninitialized: [n, g.outChannels, oh, ow])
    let outPlane = oh * ow
    if g.isPointwise {
        for i in 0..<n {
            BLAS.gemm(m: g.outChannels, n: outPlane, k: k, a: weight.data, lda: k,
                      b: x.data + i * g.inChannels * outPlane, ldb: outPlane,
                      c: y.data + i * g.outChannels * outPlane, ldc: outPlane)
        }
    } else {
        let band = bandRows(g)
        let col = UnsafeMutablePointer<Float>.allocate(capacity: k * band * ow)
        defer { col.deallocate() }
        for i in 0..<n {
            let xi = x.data + i * g.inChannels * g.height * g.width
            let yi = y.data + i * g.outChannels * outPlane
            var oy = 0
            while oy < oh {
                let rows = min(band, oh - oy)
                im2col(xi, g, oy0: oy, rows: rows, col: col)
                BLAS.gemm(m: g.outChannels, n: rows * ow, k: k, a: weight.data, lda: k, b: col, ldb: rows * ow,
                          c: yi + oy * ow, ldc: outPlane)
                oy += rows
            }
        }
    }
    if let bias { addChannelBiasInPlace(y, bias) }
    return y
}

/// Backward of `conv2d`: accumulates dW += dy · colᵀ and db += Σ dy; returns dx.
public func conv2dBackward(_ dy: Tensor, x: Tensor, weight: Tensor, stride: Int = 1, padding: Int = 0,
                           weightGrad: Tensor?, biasGrad: Tensor?, needInputGrad: Bool = true) -> Tensor? {
    let g = Conv2dShape(inChannels: x.shape[1], outChannels: weight.shape[0], kernelH: weight.shape[2],
                        kernelW: weight.shape[3], stride: stride, padding: padding,
                        height: x.shape[2], width: x.shape[3])
    let n = x.shape[0], oh = g.outHeight, ow = g.outWidth, k = g.columnRows, outPlane = oh * ow
    if let biasGrad {
        let pb = biasGrad.data, pd = dy.data
        for i in 0..<n {
            for o in 0..<g.outChannels {
                var s: Float = 0
                let row = pd + (i * g.outChannels + o) * outPlane
                for j in 0..<outPlane { s += row[j] }
                pb[o] += s
            }
        }
    }
    let dx: Tensor? = needInputGrad ? Tensor(zeros: x.shape) : nil
    if g.isPointwise {
        for i in 0..<n {
            let dyi = dy.data + i * g.outChannels * outPlane
            let xi = x.data + i * k * outPlane
            if let weightGrad {
                BLAS.gemm(transB: true, m: g.outChannels, n: k, k: outPlane, a: dyi, lda: outPlane,
                          b: xi, ldb: outPlane, beta: 1, c: weightGrad.data, ldc: k)
            }
            if let dx {
                BLAS.gemm(transA: true, m: k, n: outPlane, k: g.outChannels, a: weight.data, lda: k,
                          b: dyi, ldb: outPlane, c: dx.data + i * k * outPlane, ldc: outPlane)
            }
        }
        return dx
    }
    let band = bandRows(g)
    let col = UnsafeMutablePointer<Float>.allocate(capacity: k * band * ow)
    defer { col.deallocate() }
    for i in 0..<n {
        let xi = x.data + i * g.inChannels * g.height * g.width
        let dyi = dy.data + i * g.outChannels * outPlane
        var oy = 0
        while oy < oh {
            let rows = min(band, oh - oy)
            let cols = rows * ow
            if let weightGrad {
                im2col(xi, g, oy0: oy, rows: rows, col: col)
                // dW[O, K] += dy_band[O, cols] · col[K, cols]ᵀ (dy rows have stride outPlane).
                BLAS.gemm(transB: true, m: g.outChannels, n: k, k: cols, a: dyi + oy * ow, lda: outPlane,
                          b: col, ldb: cols, beta: 1, c: weightGrad.data, ldc: k)
            }
            if let dx {
                // dcol[K, cols] = Wᵀ · dy_band, then scatter back.
                BLAS.gemm(transA: true, m: k, n: cols, k: g.outChannels, a: weight.data, lda: k,
                          b: dyi + oy * ow, ldb: outPlane, c: col, ldc: cols)
                col2im(col, g, oy0: oy, rows: rows, dx: dx.data + i * g.inChannels * g.height * g.width)
            }
            oy += rows
        }
    }
    return dx
}

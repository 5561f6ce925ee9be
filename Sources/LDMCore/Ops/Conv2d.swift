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
/// Largest column buffer of several small images side by side (16 MB). Smaller groups keep the
/// buffer in cache between im2col and the GEMM: the training step (batch 32, 16×16 latents) took
/// 1.86–1.93 s with this budget against 1.97 s with the whole batch in one 64 MB buffer.
nonisolated(unsafe) var maxGroupColumnFloats = 4 << 20

/// Fills `col` (rows of length `ld`, starting at column `offset`) with the input patches for output rows
/// `oy0 ..< oy0+rows` of `images` consecutive images: row (c·kh + ky)·kw + kx holds
/// x[c, oy·s − p + ky, ox·s − p + kx], image j in the columns after image j − 1's. Rows are short
/// (one output row is 4–64 floats in the U-Nets here), so the copies are plain loops, not memcpy
/// calls, and the work is split over images × channels at once.
@inline(__always)
func im2col(_ x: UnsafePointer<Float>, _ g: Conv2dShape, oy0: Int, rows: Int, col: UnsafeMutablePointer<Float>,
            ld: Int? = nil, offset: Int = 0, images: Int = 1) {
    let ow = g.outWidth, h = g.height, w = g.width, s = g.stride, p = g.padding
    let kh = g.kernelH, kw = g.kernelW, channels = g.inChannels
    let cols = rows * ow
    let stride = ld ?? cols
    Parallel.forEach(images * channels, cost: kh * kw * cols) { jc in
        let j = jc / channels, c = jc % channels
        let plane = x + (j * channels + c) * h * w
        for ky in 0..<kh {
            for kx in 0..<kw {
                let dst = col + ((c * kh + ky) * kw + kx) * stride + offset + j * cols
                // Output columns whose input column lies inside the image: lo ..< hi.
                let lo = min(ow, max(0, (p - kx + s - 1) / s))
                let hi = max(lo, min(ow, (w + p - kx + s - 1) / s))
                for r in 0..<rows {
                    let iy = (oy0 + r) * s - p + ky
                    let d = dst + r * ow
                    if iy < 0 || iy >= h {
                        for ox in 0..<ow { d[ox] = 0 }
                        continue
                    }
                    let src = plane + iy * w - p + kx
                    for ox in 0..<lo { d[ox] = 0 }
                    if s == 1 {
                        for ox in lo..<hi { d[ox] = src[ox] }
                    } else {
                        for ox in lo..<hi { d[ox] = src[ox * s] }
                    }
                    for ox in hi..<ow { d[ox] = 0 }
                }
            }
        }
    }
}

/// Adds the column-matrix gradient back into the input gradient of `images` consecutive images
/// (the adjoint of `im2col`).
@inline(__always)
func col2im(_ col: UnsafePointer<Float>, _ g: Conv2dShape, oy0: Int, rows: Int, dx: UnsafeMutablePointer<Float>,
            ld: Int? = nil, offset: Int = 0, images: Int = 1) {
    let ow = g.outWidth, h = g.height, w = g.width, s = g.stride, p = g.padding
    let kh = g.kernelH, kw = g.kernelW, channels = g.inChannels
    let cols = rows * ow
    let stride = ld ?? cols
    Parallel.forEach(images * channels, cost: kh * kw * cols) { jc in
        let j = jc / channels, c = jc % channels
        let plane = dx + (j * channels + c) * h * w
        for ky in 0..<kh {
            for kx in 0..<kw {
                let src = col + ((c * kh + ky) * kw + kx) * stride + offset + j * cols
                let lo = min(ow, max(0, (p - kx + s - 1) / s))
                let hi = max(lo, min(ow, (w + p - kx + s - 1) / s))
                for r in 0..<rows {
                    let iy = (oy0 + r) * s - p + ky
                    if iy < 0 || iy >= h { continue }
                    let d = plane + iy * w - p + kx
                    let sr = src + r * ow
                    if s == 1 {
                        for ox in lo..<hi { d[ox] += sr[ox] }
                    } else {
                        for ox in lo..<hi { d[ox * s] += sr[ox] }
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

/// Images whose whole column matrices are built side by side for one GEMM (1 when a single image
/// needs bands). Wide GEMMs keep the BLAS kernel busy when images are small.
func imagesPerGEMM(_ g: Conv2dShape, batch: Int) -> Int {
    let perImage = g.columnRows * g.outHeight * g.outWidth
    return perImage > maxColumnFloats ? 1 : max(1, min(batch, maxGroupColumnFloats / max(perImage, 1)))
}

/// conv2d(x [N, C, H, W], weight [O, C, kh, kw], bias [O]) with equal stride and padding on both axes.
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0) -> Tensor {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "conv2d \(weight.shape[2])×\(weight.shape[3]) im2col") }
    precondition(x.rank == 4 && weight.rank == 4 && weight.shape[1] == x.shape[1],
                 "conv2d: input \(x.shape) for weight \(weight.shape)")
    let g = Conv2dShape(inChannels: x.shape[1], outChannels: weight.shape[0], kernelH: weight.shape[2],
                        kernelW: weight.shape[3], stride: stride, padding: padding,
                        height: x.shape[2], width: x.shape[3])
    let n = x.shape[0], oh = g.outHeight, ow = g.outWidth, k = g.columnRows, o = g.outChannels
    let y = Tensor(uninitialized: [n, o, oh, ow])
    let outPlane = oh * ow, inImage = g.inChannels * g.height * g.width
    let group = imagesPerGEMM(g, batch: n)
    if group > 1 {
        // Several images in one GEMM: col [K, group·HW] → tmp [O, group·HW] → y[i, O, HW].
        let wide = group * outPlane
        let col = g.isPointwise ? nil : allocateScratch(k * wide)
        let tmp = allocateScratch(o * wide)
        defer { col.map { freeScratch($0, k * wide) }; freeScratch(tmp, o * wide) }
        var i0 = 0
        while i0 < n {
            let m = min(group, n - i0)
            let cols = m * outPlane
            let src: UnsafeMutablePointer<Float>
            if let col {
                im2col(x.data + i0 * inImage, g, oy0: 0, rows: oh, col: col, ld: cols, images: m)
                src = col
            } else {
                // 1×1: the input planes are the columns; gather them side by side.
                let gathered = allocateScratch(k * cols)
                for j in 0..<m { for c in 0..<k {
                    (gathered + c * cols + j * outPlane).update(from: x.data + (i0 + j) * inImage + c * outPlane, count: outPlane)
                } }
                src = gathered
            }
            BLAS.gemm(m: o, n: cols, k: k, a: weight.data, lda: k, b: src, ldb: cols, c: tmp, ldc: cols)
            if col == nil { freeScratch(src, k * cols) }
            let py = y.data
            Parallel.forEach(m * o, cost: outPlane) { jo in
                let j = jo / o, oc = jo % o
                (py + ((i0 + j) * o + oc) * outPlane).update(from: tmp + oc * cols + j * outPlane, count: outPlane)
            }
            i0 += m
        }
    } else if g.isPointwise {
        for i in 0..<n {
            BLAS.gemm(m: o, n: outPlane, k: k, a: weight.data, lda: k, b: x.data + i * inImage, ldb: outPlane,
                      c: y.data + i * o * outPlane, ldc: outPlane)
        }
    } else {
        let band = bandRows(g)
        let col = allocateScratch(k * band * ow)
        defer { freeScratch(col, k * band * ow) }
        for i in 0..<n {
            let xi = x.data + i * inImage
            let yi = y.data + i * o * outPlane
            var oy = 0
            while oy < oh {
                let rows = min(band, oh - oy)
                im2col(xi, g, oy0: oy, rows: rows, col: col)
                BLAS.gemm(m: o, n: rows * ow, k: k, a: weight.data, lda: k, b: col, ldb: rows * ow,
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
    let profileToken = OpProfile.start()
    defer { OpProfile.stop(profileToken, "conv2d \(weight.shape[2])×\(weight.shape[3]) backward") }
    let g = Conv2dShape(inChannels: x.shape[1], outChannels: weight.shape[0], kernelH: weight.shape[2],
                        kernelW: weight.shape[3], stride: stride, padding: padding,
                        height: x.shape[2], width: x.shape[3])
    let n = x.shape[0], oh = g.outHeight, ow = g.outWidth, k = g.columnRows, outPlane = oh * ow, o = g.outChannels
    let inImage = g.inChannels * g.height * g.width
    if weightGrad == nil && biasGrad == nil && !needInputGrad { return nil }   // a frozen layer whose dx comes elsewhere
    if let biasGrad {
        let pb = biasGrad.data, pd = dy.data
        for i in 0..<n {
            for oc in 0..<o {
                var s: Float = 0
                let row = pd + (i * o + oc) * outPlane
                for j in 0..<outPlane { s += row[j] }
                pb[oc] += s
            }
        }
    }
    let dx: Tensor? = needInputGrad ? Tensor(zeros: x.shape) : nil
    let group = imagesPerGEMM(g, batch: n)
    if group > 1 {
        let wide = group * outPlane
        let col = allocateScratch(k * wide)
        let dyg = allocateScratch(o * wide)
        defer { freeScratch(col, k * wide); freeScratch(dyg, o * wide) }
        var i0 = 0
        while i0 < n {
            let m = min(group, n - i0)
            let cols = m * outPlane
            // Gather dy [m, O, HW] into [O, m·HW].
            let pd = dy.data
            Parallel.forEach(m * o, cost: outPlane) { jo in
                let j = jo / o, oc = jo % o
                (dyg + oc * cols + j * outPlane).update(from: pd + ((i0 + j) * o + oc) * outPlane, count: outPlane)
            }
            if let weightGrad {
                if g.isPointwise {
                    for j in 0..<m { for c in 0..<k {
                        (col + c * cols + j * outPlane).update(from: x.data + (i0 + j) * inImage + c * outPlane, count: outPlane)
                    } }
                } else {
                    im2col(x.data + i0 * inImage, g, oy0: 0, rows: oh, col: col, ld: cols, images: m)
                }
                BLAS.gemm(transB: true, m: o, n: k, k: cols, a: dyg, lda: cols, b: col, ldb: cols,
                          beta: 1, c: weightGrad.data, ldc: k)
            }
            if let dx {
                BLAS.gemm(transA: true, m: k, n: cols, k: o, a: weight.data, lda: k, b: dyg, ldb: cols, c: col, ldc: cols)
                if g.isPointwise {
                    for j in 0..<m { for c in 0..<k {
                        (dx.data + (i0 + j) * inImage + c * outPlane).update(from: col + c * cols + j * outPlane, count: outPlane)
                    } }
                } else {
                    col2im(col, g, oy0: 0, rows: oh, dx: dx.data + i0 * inImage, ld: cols, images: m)
                }
            }
            i0 += m
        }
        return dx
    }
    if g.isPointwise {
        for i in 0..<n {
            let dyi = dy.data + i * o * outPlane
            let xi = x.data + i * k * outPlane
            if let weightGrad {
                BLAS.gemm(transB: true, m: o, n: k, k: outPlane, a: dyi, lda: outPlane,
                          b: xi, ldb: outPlane, beta: 1, c: weightGrad.data, ldc: k)
            }
            if let dx {
                BLAS.gemm(transA: true, m: k, n: outPlane, k: o, a: weight.data, lda: k,
                          b: dyi, ldb: outPlane, c: dx.data + i * k * outPlane, ldc: outPlane)
            }
        }
        return dx
    }
    let band = bandRows(g)
    let col = allocateScratch(k * band * ow)
    defer { freeScratch(col, k * band * ow) }
    for i in 0..<n {
        let xi = x.data + i * inImage
        let dyi = dy.data + i * o * outPlane
        var oy = 0
        while oy < oh {
            let rows = min(band, oh - oy)
            let cols = rows * ow
            if let weightGrad {
                im2col(xi, g, oy0: oy, rows: rows, col: col)
                // dW[O, K] += dy_band[O, cols] · col[K, cols]ᵀ (dy rows have stride outPlane).
                BLAS.gemm(transB: true, m: o, n: k, k: cols, a: dyi + oy * ow, lda: outPlane,
                          b: col, ldb: cols, beta: 1, c: weightGrad.data, ldc: k)
            }
            if let dx {
                // dcol[K, cols] = Wᵀ · dy_band, then scatter back.
                BLAS.gemm(transA: true, m: k, n: cols, k: o, a: weight.data, lda: k,
                          b: dyi + oy * ow, ldb: outPlane, c: col, ldc: cols)
                col2im(col, g, oy0: oy, rows: rows, dx: dx.data + i * inImage)
            }
            oy += rows
        }
    }
    return dx
}

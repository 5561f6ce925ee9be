// 3×3, stride-1, padding-1 convolution by Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray
// 2016): each 2×2 block of outputs comes from a 4×4 input tile as
//
//   Y = Aᵀ [ Σ_c (G g_kc Gᵀ) ⊙ (Bᵀ d_c B) ] A
//
//        ⎡1  0 −1  0⎤        ⎡1   0   0⎤
//   Bᵀ = ⎢0  1  1  0⎥   G =  ⎢½   ½   ½⎥   Aᵀ = ⎡1 1  1  0⎤
//        ⎢0 −1  1  0⎥        ⎢½  −½   ½⎥        ⎣0 1 −1 −1⎦
//        ⎣0  1  0 −1⎦        ⎣0   0   1⎦
//
// The sum over input channels c, for each of the 16 tile positions ξ, is one GEMM
// U_ξ [out × in] · V_ξ [in × tiles] — 16 multiplies per 4 outputs instead of 36, 2.25× fewer.
// The transforms use only ±1 and ½, so results match the direct convolution to float rounding.
// Tiles are processed in bands so the transformed input and products stay bounded.

/// Largest transformed block (16 · channels · tiles), in floats, held at once (64 MB).
nonisolated(unsafe) var maxWinogradFloats = 16 << 20

/// Whether `conv2dWinograd` applies and pays: 3×3, stride 1, padding 1, at least 32 channels in and
/// out, and enough 2×2 tiles for the 16 products to run at full speed. With the filters transformed
/// on every call (`filtersKept` false) the transform, which costs about as much as products over
/// 2·(in + out) tiles, must be paid for too.
public func winogradPays(inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int,
                         batch: Int, height: Int, width: Int, filtersKept: Bool = false) -> Bool {
    guard kernel == 3 && stride == 1 && padding == 1 && inChannels >= 32 && outChannels >= 32 else { return false }
    let tiles = batch * ((height + 1) / 2) * ((width + 1) / 2)
    return tiles >= (filtersKept ? 128 : 2 * (inChannels + outChannels))
}

/// A 64-bit fingerprint of a tensor's contents (two position-weighted sums of the bit patterns),
/// for caches of values derived from weights that may be changed in place.
public func contentFingerprint(_ t: Tensor) -> UInt64 {
    let bits = UnsafeRawPointer(t.data).assumingMemoryBound(to: UInt32.self)
    var a: UInt32 = 0, b: UInt32 = 0x9E37_79B9
    for i in 0..<t.count {
        a = a &+ bits[i]
        b = b &+ bits[i] &* (UInt32(truncatingIfNeeded: i) | 1)
    }
    return UInt64(a) << 32 | UInt64(b)
}

/// The transformed filters U = G g Gᵀ of a [out, in, 3, 3] weight, as [16, out, in].
public func winogradWeights(_ weight: Tensor) -> Tensor {
    precondition(weight.rank == 4 && weight.shape[2] == 3 && weight.shape[3] == 3, "winograd: weight \(weight.shape)")
    let o = weight.shape[0], c = weight.shape[1], plane = o * c
    let u = Tensor(uninitialized: [16, o, c])
    let pw = weight.data, pu = u.data
    Parallel.forEachChunk(plane, cost: 64) { range in
        for kc in range {
            let g = pw + kc * 9
            // t = G g (4×3), column by column
            let t00 = g[0], t01 = g[1], t02 = g[2]
            let t10 = 0.5 * (g[0] + g[3] + g[6]), t11 = 0.5 * (g[1] + g[4] + g[7]), t12 = 0.5 * (g[2] + g[5] + g[8])
            let t20 = 0.5 * (g[0] - g[3] + g[6]), t21 = 0.5 * (g[1] - g[4] + g[7]), t22 = 0.5 * (g[2] - g[5] + g[8])
            let t30 = g[6], t31 = g[7], t32 = g[8]
            // U = t Gᵀ (4×4), row by row
            @inline(__always) func row(_ r: Int, _ a: Float, _ b: Float, _ e: Float) {
                pu[(4 * r) * plane + kc] = a
                pu[(4 * r + 1) * plane + kc] = 0.5 * (a + b + e)
                pu[(4 * r + 2) * plane + kc] = 0.5 * (a - b + e)
                pu[(4 * r + 3) * plane + kc] = e
            }
            row(0, t00, t01, t02); row(1, t10, t11, t12); row(2, t20, t21, t22); row(3, t30, t31, t32)
        }
    }
    return u
}

/// conv2d(x [N, C, H, W]) with a 3×3 kernel, stride 1, padding 1, from the filters transformed by
/// `winogradWeights` ([16, O, C]) and an optional bias [O] → [N, O, H, W].
public func conv2dWinograd(_ x: Tensor, transformedWeight u: Tensor, bias: Tensor?) -> Tensor {
    precondition(x.rank == 4 && u.rank == 3 && u.shape[0] == 16 && u.shape[2] == x.shape[1],
                 "winograd: input \(x.shape) for transformed weight \(u.shape)")
    let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3], o = u.shape[1]
    let th = (h + 1) / 2, tw = (w + 1) / 2, perImage = th * tw, tiles = n * perImage
    let y = Tensor(uninitialized: [n, o, h, w])
    let band = max(1, min(tiles, maxWinogradFloats / (16 * max(c, o))))
    let v = allocateScratch(16 * c * band)
    let m = allocateScratch(16 * o * band)
    defer { freeScratch(v, 16 * c * band); freeScratch(m, 16 * o * band) }
    let px = x.data, py = y.data, pu = u.data, pb = bias?.data
    var p0 = 0
    while p0 < tiles {
        let count = min(band, tiles - p0)
        // V_ξ[c, p] = (Bᵀ d B)_ξ for the 4×4 input tile of p (zero outside the image).
        Parallel.forEach(c, cost: count * 16) { ch in
            var d = [Float](repeating: 0, count: 16)
            d.withUnsafeMutableBufferPointer { d in
                for q in 0..<count {
                    let p = p0 + q, img = p / perImage, t = p % perImage
                    let y0 = 2 * (t / tw) - 1, x0 = 2 * (t % tw) - 1
                    let src = px + (img * c + ch) * h * w
                    if y0 >= 0 && y0 + 4 <= h && x0 >= 0 && x0 + 4 <= w {
                        for i in 0..<4 { for j in 0..<4 { d[4 * i + j] = src[(y0 + i) * w + x0 + j] } }
                    } else {
                        for i in 0..<4 {
                            let yy = y0 + i
                            for j in 0..<4 {
                                let xx = x0 + j
                                d[4 * i + j] = yy >= 0 && yy < h && xx >= 0 && xx < w ? src[yy * w + xx] : 0
                            }
                        }
                    }
                    // rows: Bᵀ d
                    let base = v + ch * count + q, stride = c * count
                    for r in 0..<4 {
                        // row r of Bᵀ d
                        let a0: Float, a1: Float, a2: Float, a3: Float
                        switch r {
                        case 0: a0 = d[0] - d[8]; a1 = d[1] - d[9]; a2 = d[2] - d[10]; a3 = d[3] - d[11]
                        case 1: a0 = d[4] + d[8]; a1 = d[5] + d[9]; a2 = d[6] + d[10]; a3 = d[7] + d[11]
                        case 2: a0 = d[8] - d[4]; a1 = d[9] - d[5]; a2 = d[10] - d[6]; a3 = d[11] - d[7]
                        default: a0 = d[4] - d[12]; a1 = d[5] - d[13]; a2 = d[6] - d[14]; a3 = d[7] - d[15]
                        }
                        // times B
                        base[(4 * r) * stride] = a0 - a2
                        base[(4 * r + 1) * stride] = a1 + a2
                        base[(4 * r + 2) * stride] = a2 - a1
                        base[(4 * r + 3) * stride] = a1 - a3
                    }
                }
            }
        }
        // M_ξ = U_ξ V_ξ: 16 products [O × C] · [C × count], shared out whole over the cores.
        Parallel.forEach(16, cost: o * c * count) { xi in
            BLAS.gemm(m: o, n: count, k: c, a: pu + xi * o * c, lda: c, b: v + xi * c * count, ldb: count,
                      c: m + xi * o * count, ldc: count)
        }
        // Y = Aᵀ M A for every output channel and tile, plus bias.
        Parallel.forEach(o, cost: count * 16) { k in
            let bk = pb?[k] ?? 0
            let stride = o * count
            for q in 0..<count {
                let src = m + k * count + q
                @inline(__always) func at(_ xi: Int) -> Float { src[xi * stride] }
                // s = Aᵀ m (2×4)
                let s00 = at(0) + at(4) + at(8), s01 = at(1) + at(5) + at(9)
                let s02 = at(2) + at(6) + at(10), s03 = at(3) + at(7) + at(11)
                let s10 = at(4) - at(8) - at(12), s11 = at(5) - at(9) - at(13)
                let s12 = at(6) - at(10) - at(14), s13 = at(7) - at(11) - at(15)
                let p = p0 + q, img = p / perImage, t = p % perImage
                let oy = 2 * (t / tw), ox = 2 * (t % tw)
                let dst = py + (img * o + k) * h * w
                let y00 = s00 + s01 + s02 + bk, y01 = s01 - s02 - s03 + bk
                let y10 = s10 + s11 + s12 + bk, y11 = s11 - s12 - s13 + bk
                dst[oy * w + ox] = y00
                if ox + 1 < w { dst[oy * w + ox + 1] = y01 }
                if oy + 1 < h {
                    dst[(oy + 1) * w + ox] = y10
                    if ox + 1 < w { dst[(oy + 1) * w + ox + 1] = y11 }
                }
            }
        }
        p0 += count
    }
    return y
}

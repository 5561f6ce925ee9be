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

/// Largest transformed block (points · channels · tiles), in floats, held at once (16 MB). The
/// transformed input and the products of a band then stay in the last-level cache between the
/// input transform, the products and the output transform. Measured on the SD VAE decode to 512×512
/// (2 cores, 32 MB L3): 6.91 s with 64 MB bands, 5.56 s with 16 MB or 8 MB, 6.16 s with 4 MB,
/// 7.39 s with 2 MB (the products grow too narrow); the SD U-Net call is unchanged within noise.
nonisolated(unsafe) var maxWinogradFloats = 4 << 20

/// The two Winograd algorithms `conv2dWinograd` runs: output tiles of 2×2 from 4×4 inputs (16
/// products per 4 outputs) or of 4×4 from 6×6 inputs (36 per 16, 4× fewer than direct; filters four
/// times the weight's size, and a little less exact — the transforms multiply by up to 8 and ⅙).
public enum WinogradTile: Sendable, Equatable {
    case f2x2, f4x4

    /// Tile points: 16 or 36.
    public var points: Int { self == .f2x2 ? 16 : 36 }

    /// The transformed filters of a [out, in, 3, 3] weight, [points, out, in].
    public func filters(_ weight: Tensor) -> Tensor {
        let profileToken = OpProfile.start()
        defer { OpProfile.stop(profileToken, "Winograd filter transform F(\(self == .f4x4 ? 4 : 2))") }
        precondition(weight.rank == 4 && weight.shape[2] == 3 && weight.shape[3] == 3, "winograd: weight \(weight.shape)")
        let u = Tensor(uninitialized: [points, weight.shape[0], weight.shape[1]])
        transform(weight.data, count: weight.shape[0] * weight.shape[1], into: u.data)
        return u
    }
}

/// Which Winograd algorithm pays for a convolution, or nil for im2col: 3×3, stride 1, padding 1,
/// at least 32 channels in and out, and enough tiles. Filter transforms and the products they save
/// both grow with in · out, so the break-even points are counts of tiles. Measured on SD's shapes
/// (`ldm bench ops`, 2 cores): with the filters kept, F(4×4) beats F(2×2) from 32 of its tiles and
/// F(2×2) beats im2col from 32 of its tiles. Transformed on every call (≈ 7 ns per F(2×2) filter,
/// ≈ 15 ns per F(4×4) one, eight filters at a time, memory-bound), F(4×4) beats F(2×2) from about
/// 160 tiles, and F(2×2) needs more than 32 tiles: with sgemm at 175 GFLOP/s, 1280 channels at 8×8,
/// batch 2 (32 tiles) take 28 ms by im2col against 24 ms + 19 ms of filter transform by F(2×2). (F(4×4) at 128 tiles
/// — 640 channels at 32×32 — measured faster alone but not inside the SD U-Net, so it stays at 160.)
public func winogradTile(inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int,
                         batch: Int, height: Int, width: Int, filtersKept: Bool = false) -> WinogradTile? {
    guard kernel == 3 && stride == 1 && padding == 1 && inChannels >= 32 && outChannels >= 32 else { return nil }
    let tiles2 = batch * ((height + 1) / 2) * ((width + 1) / 2)
    let tiles4 = batch * ((height + 3) / 4) * ((width + 3) / 4)
    // F(4×4)'s transforms magnify rounding: with bf16 products its error against fp32 is 1.3e-2,
    // against 1.9e-3 for F(2×2) and 1.1e-3 for im2col (192 channels, 16×16), so it is never used
    // where the products would run in bf16. Convolutions whose products stay fp32 (fewer input
    // channels than `OneDNN.takesBF16` admits: the VAE's 128-channel layers) keep it.
    // On large images F(4×4) stays ahead even so: F(2×2) transforms 4 values per output against its
    // 2.25, and bf16 only halves the products' time. SD VAE decode to 512² (AVX512-BF16, 2 cores):
    // 7.5–8.5 s all F(4×4) in fp32, 7.7–9.3 s with F(2×2) in bf16 from 256 channels up.
    let bf16Products = ComputePrecision.current == .bf16 && OneDNN.takesBF16(m: outChannels, n: tiles4, k: inChannels, ldc: tiles4)
        && tiles4 < 1024
    if tiles4 >= (filtersKept ? 32 : 160) && !bf16Products { return .f4x4 }
    if tiles2 >= (filtersKept ? 32 : 64) { return .f2x2 }
    return nil
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

/// The transformed filters U = G g Gᵀ of a [out, in, 3, 3] weight for F(2×2, 3×3), as [16, out, in].
public func winogradWeights(_ weight: Tensor) -> Tensor { WinogradTile.f2x2.filters(weight) }

/// F(2×2, 3×3) filters of `count` 3×3 filters → u [16, count].
func winogradFilters2(_ filters: UnsafePointer<Float>, count: Int, into u: UnsafeMutablePointer<Float>,
                      bits: UnsafeMutablePointer<UInt16>? = nil) {
    transformFilters(filters, count: count, into: u, points: 16, bits: bits) { g, u in
        // t = G g (4×3), column by column
        @inline(__always) func column(_ a: SIMD8<Float>, _ b: SIMD8<Float>, _ e: SIMD8<Float>)
            -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
            (a, 0.5 * (a + b + e), 0.5 * (a - b + e), e)
        }
        let c0 = column(g[0], g[3], g[6]), c1 = column(g[1], g[4], g[7]), c2 = column(g[2], g[5], g[8])
        // U = t Gᵀ (4×4), row by row
        @inline(__always) func row(_ r: Int, _ a: SIMD8<Float>, _ b: SIMD8<Float>, _ e: SIMD8<Float>) {
            let f = column(a, b, e)
            u[4 * r] = f.0; u[4 * r + 1] = f.1; u[4 * r + 2] = f.2; u[4 * r + 3] = f.3
        }
        row(0, c0.0, c1.0, c2.0); row(1, c0.1, c1.1, c2.1); row(2, c0.2, c1.2, c2.2); row(3, c0.3, c1.3, c2.3)
    }
}

/// The transformed filters U = G g Gᵀ of a [out, in, 3, 3] weight for F(4×4, 3×3), as [36, out, in].
public func winogradWeights4(_ weight: Tensor) -> Tensor { WinogradTile.f4x4.filters(weight) }

/// F(4×4, 3×3) filters of `count` 3×3 filters → u [36, count].
func winogradFilters4(_ filters: UnsafePointer<Float>, count: Int, into u: UnsafeMutablePointer<Float>,
                      bits: UnsafeMutablePointer<UInt16>? = nil) {
    transformFilters(filters, count: count, into: u, points: 36, bits: bits) { g, u in
        // t = G g (6×3), column by column
        let c0 = winogradFilterColumn(g[0], g[3], g[6])
        let c1 = winogradFilterColumn(g[1], g[4], g[7])
        let c2 = winogradFilterColumn(g[2], g[5], g[8])
        // U = t Gᵀ (6×6), row by row
        @inline(__always) func row(_ r: Int, _ a: SIMD8<Float>, _ b: SIMD8<Float>, _ e: SIMD8<Float>) {
            let f = winogradFilterColumn(a, b, e)
            u[6 * r] = f.0; u[6 * r + 1] = f.1; u[6 * r + 2] = f.2
            u[6 * r + 3] = f.3; u[6 * r + 4] = f.4; u[6 * r + 5] = f.5
        }
        row(0, c0.0, c1.0, c2.0); row(1, c0.1, c1.1, c2.1); row(2, c0.2, c1.2, c2.2)
        row(3, c0.3, c1.3, c2.3); row(4, c0.4, c1.4, c2.4); row(5, c0.5, c1.5, c2.5)
    }
}

/// Transforms `count` 3×3 filters at `filters` into u [points, count]. Filters go through in runs
/// of 64: a run's taps are first gathered tap by tap, so `transform` works on eight filters at once
/// (g[t] holds tap t of eight filters; it writes point ξ of the eight to u[ξ]), and its output goes
/// to a small buffer that is then written out in contiguous runs.
///
/// With `bits`, the filters go there as bf16 (rounded to nearest even) instead of to `pu`.
@inline(__always)
func transformFilters(_ filters: UnsafePointer<Float>, count plane: Int, into pu: UnsafeMutablePointer<Float>, points: Int,
                      bits: UnsafeMutablePointer<UInt16>? = nil,
                      _ transform: (UnsafePointer<SIMD8<Float>>, UnsafeMutablePointer<SIMD8<Float>>) -> Void) {
    let run = 64, groups = run / 8
    Parallel.forEach((plane + run - 1) / run, cost: run * points * 8) { block in
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: (9 + points) * groups) { buffer in
            let taps = buffer.baseAddress!, out = taps + 9 * groups
            let k0 = block * run, count = min(run, plane - k0)
            let tapFloats = UnsafeMutableRawPointer(taps).assumingMemoryBound(to: Float.self)
            // taps as [group][tap][lane]
            for i in 0..<run {
                let dst = tapFloats + (i / 8) * 72 + i % 8
                if i < count {
                    let src = filters + (k0 + i) * 9
                    for t in 0..<9 { dst[8 * t] = src[t] }
                } else {
                    for t in 0..<9 { dst[8 * t] = 0 }
                }
            }
            for gi in 0..<groups { transform(taps + 9 * gi, out + points * gi) }
            let outFloats = UnsafeRawPointer(out).assumingMemoryBound(to: Float.self)
            if let bits {
                for xi in 0..<points {
                    let dst = bits + xi * plane + k0
                    var i = 0
                    while i < count {
                        let n = min(8, count - i)
                        let b = bfloat16Bits(out[(i / 8) * points + xi])
                        if n == 8 { UnsafeMutableRawPointer(dst + i).storeBytes(of: b, as: SIMD8<UInt16>.self) } else {
                            for l in 0..<n { dst[i + l] = b[l] }
                        }
                        i += 8
                    }
                }
                return
            }
            for xi in 0..<points {
                let dst = pu + xi * plane + k0
                var i = 0
                while i < count {
                    let n = min(8, count - i)
                    (dst + i).update(from: outFloats + ((i / 8) * points + xi) * 8, count: n)
                    i += 8
                }
            }
        }
    }
}

/// G z for F(4×4, 3×3): the filter taps at the points 0, 1, −1, ½·2, ½·−2 and ∞ (scaled).
/// Eight columns at once; ⅙, 1/12 and 1/24 are multiplications by the rounded reciprocals.
@inline(__always)
func winogradFilterColumn(_ a: SIMD8<Float>, _ b: SIMD8<Float>, _ e: SIMD8<Float>)
    -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
    let s = a + e, sixth: Float = 1.0 / 6, twelfth: Float = 1.0 / 12, h = a * (1.0 / 24 as Float) + e * sixth
    return (0.25 * a, -(s + b) * sixth, -(s - b) * sixth, h + b * twelfth, h - b * twelfth, e)
}

/// Bᵀ z for F(4×4, 3×3) on a column of six inputs (of eight tiles).
@inline(__always)
func winogradInputColumn(_ z0: SIMD8<Float>, _ z1: SIMD8<Float>, _ z2: SIMD8<Float>, _ z3: SIMD8<Float>,
                         _ z4: SIMD8<Float>, _ z5: SIMD8<Float>)
    -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
    let a = z4 - 4 * z2, b = z3 - 4 * z1   // rows 1 and 2: a ± b
    let c = z4 - z2, e = 2 * (z3 - z1)     // rows 3 and 4: c ± e
    return (4 * z0 - 5 * z2 + z4, a + b, a - b, c + e, c - e, 4 * z1 - 5 * z3 + z5)
}

/// Aᵀ m for F(4×4, 3×3) on a column of six products (of eight tiles).
@inline(__always)
func winogradOutputColumn(_ m0: SIMD8<Float>, _ m1: SIMD8<Float>, _ m2: SIMD8<Float>, _ m3: SIMD8<Float>,
                          _ m4: SIMD8<Float>, _ m5: SIMD8<Float>) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
    let p = m1 + m2, q = m1 - m2, r = m3 + m4, s = m3 - m4
    return (m0 + p + r, q + 2 * s, p + 4 * r, q + 8 * s + m5)
}

/// conv2d(x [N, C, H, W]) with a 3×3 kernel, stride 1, padding 1, from the filters transformed by
/// `winogradWeights` ([16, O, C], F(2×2, 3×3)) or `winogradWeights4` ([36, O, C], F(4×4, 3×3)) and an
/// optional bias [O] → [N, O, H, W].
public func conv2dWinograd(_ x: Tensor, transformedWeight u: Tensor, bias: Tensor?) -> Tensor {
    precondition(x.rank == 4 && u.rank == 3 && (u.shape[0] == 16 || u.shape[0] == 36) && u.shape[2] == x.shape[1],
                 "winograd: input \(x.shape) for transformed weight \(u.shape)")
    return winogradConvolution(x, tile: u.shape[0] == 36 ? .f4x4 : .f2x2, outChannels: u.shape[1],
                               filters: .transformed(u.data), bias: bias)
}

/// The same from the weight [O, C, 3, 3] itself, its filters transformed as the products need them.
/// When the tiles fit in one band (the usual case below 64×64), a group of output channels at a time
/// goes into a small buffer that stays in the last-level cache for its products, so no transformed
/// copy of the whole weight is ever held (the F(2×2) filters of SD's 2560→1280 convolution are 210 MB,
/// in fresh pages on every call); otherwise all filters are transformed once into working memory.
public func conv2dWinograd(_ x: Tensor, weight: Tensor, tile: WinogradTile, bias: Tensor?) -> Tensor {
    precondition(x.rank == 4 && weight.rank == 4 && weight.shape[1] == x.shape[1] && weight.shape[2] == 3
                 && weight.shape[3] == 3, "winograd: input \(x.shape) for weight \(weight.shape)")
    return winogradConvolution(x, tile: tile, outChannels: weight.shape[0], filters: .weight(weight.data), bias: bias)
}

/// Largest group of transformed filters (points · out · in), in floats, made at once by
/// `conv2dWinograd(_:weight:tile:bias:)` (32 MB). Measured in the SD U-Net call at 64×64, batch 2
/// (2 cores, 32 MB L3; Winograd F(2×2) time and filter transforms over two calls): 4.2–4.6 s with
/// the whole weight transformed into a new tensor, 4.8 s into reused working memory, 3.9 s with
/// 4 MB groups and 3.7 s with 32 MB groups.
nonisolated(unsafe) var maxFilterGroupFloats = 8 << 20

extension WinogradTile {
    /// Transforms `count` 3×3 filters at `filters` into u [points, count].
    func transform(_ filters: UnsafePointer<Float>, count: Int, into u: UnsafeMutablePointer<Float>) {
        if self == .f2x2 { winogradFilters2(filters, count: count, into: u) } else { winogradFilters4(filters, count: count, into: u) }
    }

    /// The same, rounded to bf16 into `bits` [points, count].
    func transform(_ filters: UnsafePointer<Float>, count: Int, intoBF16 bits: UnsafeMutablePointer<UInt16>) {
        let unused = UnsafeMutablePointer<Float>(bitPattern: 1)!   // not written when `bits` is given
        if self == .f2x2 { winogradFilters2(filters, count: count, into: unused, bits: bits) } else {
            winogradFilters4(filters, count: count, into: unused, bits: bits)
        }
    }
}

private enum WinogradFilters {
    case transformed(UnsafePointer<Float>)
    case weight(UnsafePointer<Float>)
}

private func winogradConvolution(_ x: Tensor, tile: WinogradTile, outChannels o: Int, filters: WinogradFilters,
                                 bias: Tensor?) -> Tensor {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "conv2d 3×3 Winograd F(\(tile == .f4x4 ? 4 : 2))") }
    let big = tile == .f4x4
    let a = big ? 6 : 4, m = a - 2, points = a * a   // input tile a×a, output tile m×m
    let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    let th = (h + m - 1) / m, tw = (w + m - 1) / m, perImage = th * tw, tiles = n * perImage
    let y = Tensor(uninitialized: [n, o, h, w])
    let band = max(1, min(tiles, maxWinogradFloats / (points * max(c, o))))
    // With products in bf16, the transforms write their results as bf16 (in the first half of the
    // same buffers), so the products read them as they are: no fp32 copy is made and then converted.
    let bf16 = ComputePrecision.current == .bf16 && OneDNN.takesBF16(m: o, n: band, k: c, ldc: band)
    let v = allocateScratch(points * c * band)
    let vBits = UnsafeMutableRawPointer(v).assumingMemoryBound(to: UInt16.self)
    let prod = allocateScratch(points * o * band)
    defer { freeScratch(v, points * c * band); freeScratch(prod, points * o * band) }
    // The filters as [points, group, C] blocks: all O at once (given, or transformed here when the
    // tiles take several bands), or `group` output channels at a time transformed before their products.
    var pu: UnsafePointer<Float>, group = o, weight: UnsafePointer<Float>? = nil
    var buffer: (pointer: UnsafeMutablePointer<Float>, count: Int)? = nil
    defer { if let buffer { freeScratch(buffer.pointer, buffer.count) } }
    switch filters {
    case .transformed(let u):
        pu = u
        if bf16 {
            let count = points * o * c, bits = allocateScratch((count + 1) / 2)
            buffer = (bits, (count + 1) / 2)
            OneDNN.convert(u, rows: points * o, cols: c, ld: c, transposed: false,
                           into: UnsafeMutableRawPointer(bits).assumingMemoryBound(to: UInt16.self))
            pu = UnsafePointer(bits)
        }
    case .weight(let wt) where tiles > band:
        let count = points * o * c, u = allocateScratch(count)
        buffer = (u, count)
        let t = OpProfile.start()
        if bf16 {
            tile.transform(wt, count: o * c, intoBF16: UnsafeMutableRawPointer(u).assumingMemoryBound(to: UInt16.self))
        } else {
            tile.transform(wt, count: o * c, into: u)
        }
        OpProfile.stop(t, "  filter transform")
        pu = UnsafePointer(u)
    case .weight(let wt):
        // Equal groups, each a multiple of 16 channels where it can be.
        let groups = max(1, (points * o * c + maxFilterGroupFloats - 1) / maxFilterGroupFloats)
        group = min(o, ((o + groups - 1) / groups + 15) / 16 * 16)
        let count = points * group * c, u = allocateScratch(count)
        buffer = (u, count)
        pu = UnsafePointer(u)
        weight = wt
    }
    let uBits = UnsafeRawPointer(pu).assumingMemoryBound(to: UInt16.self)
    let px = x.data, py = y.data, pb = bias?.data
    var p0 = 0
    while p0 < tiles {
        let count = min(band, tiles - p0)
        // V_ξ[c, p] = (Bᵀ d B)_ξ for the a×a input tile of p (zero outside the image).
        let tIn = OpProfile.start()
        // Eight tiles at a time: their a×a inputs gathered lane by lane, transformed as SIMD8 values,
        // and each point's eight results stored together (tiles p…p+7 are adjacent in V).
        Parallel.forEach(c, cost: count * points) { ch in
            withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 2 * points) { buffer in
                let d = buffer.baseAddress!, t = d + points
                let lanesOf = UnsafeMutableRawPointer(d).assumingMemoryBound(to: Float.self)
                let stride = c * count
                var q = 0
                while q < count {
                    let lanes = min(8, count - q)
                    for l in 0..<8 {
                        let dl = lanesOf + l   // element k of lane l at dl[8 k]
                        guard l < lanes else {
                            for k in 0..<points { dl[8 * k] = 0 }
                            continue
                        }
                        let p = p0 + q + l, img = p / perImage, tp = p % perImage
                        let y0 = m * (tp / tw) - 1, x0 = m * (tp % tw) - 1
                        let plane = px + (img * c + ch) * h * w
                        if y0 >= 0 && y0 + a <= h && x0 >= 0 && x0 + a <= w {
                            for i in 0..<a { for j in 0..<a { dl[8 * (a * i + j)] = plane[(y0 + i) * w + x0 + j] } }
                        } else {
                            for i in 0..<a {
                                let yy = y0 + i
                                for j in 0..<a {
                                    let xx = x0 + j
                                    dl[8 * (a * i + j)] = yy >= 0 && yy < h && xx >= 0 && xx < w ? plane[yy * w + xx] : 0
                                }
                            }
                        }
                    }
                    if big { winogradInputTile6(d, t) } else { winogradInputTile4(d, t) }
                    if bf16 {
                        let base = vBits + ch * count + q
                        for xi in 0..<points {
                            let b = bfloat16Bits(t[xi])
                            if lanes == 8 { UnsafeMutableRawPointer(base + xi * stride).storeBytes(of: b, as: SIMD8<UInt16>.self) } else {
                                for l in 0..<lanes { base[xi * stride + l] = b[l] }
                            }
                        }
                        q += 8
                        continue
                    }
                    let base = v + ch * count + q
                    if lanes == 8 {
                        for xi in 0..<points { UnsafeMutableRawPointer(base + xi * stride).storeBytes(of: t[xi], as: SIMD8<Float>.self) }
                    } else {
                        for xi in 0..<points { for l in 0..<lanes { base[xi * stride + l] = t[xi][l] } }
                    }
                    q += 8
                }
            }
        }
        OpProfile.stop(tIn, "  input transform")
        let tProd = OpProfile.start()
        // M_ξ = U_ξ V_ξ: one product [group × C] · [C × count] per tile point and group of output
        // channels, the products of a group shared out whole over the cores.
        var o0 = 0
        while o0 < o {
            let og = min(group, o - o0)
            if let weight {
                let t = OpProfile.start()
                if bf16 {
                    tile.transform(weight + o0 * c * 9, count: og * c, intoBF16: UnsafeMutablePointer(mutating: uBits))
                } else {
                    tile.transform(weight + o0 * c * 9, count: og * c, into: UnsafeMutablePointer(mutating: pu))
                }
                OpProfile.stop(t, "  filter transform")
            }
            Parallel.forEach(points, cost: og * c * count) { xi in
                if bf16 {
                    OneDNN.productBF16(m: og, n: count, k: c, a: uBits + xi * og * c, b: vBits + xi * c * count, bCols: count,
                                       c: prod + xi * o * count + o0 * count, ldc: count)
                } else {
                    BLAS.gemm(m: og, n: count, k: c, a: pu + xi * og * c, lda: c, b: v + xi * c * count, ldb: count,
                              c: prod + xi * o * count + o0 * count, ldc: count)
                }
            }
            o0 += og
        }
        OpProfile.stop(tProd, "  products")
        let tOut = OpProfile.start()
        // Y = Aᵀ M A for every output channel and tile, plus bias.
        Parallel.forEach(o, cost: count * points) { k in
            withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: points + m * m) { buffer in
                let products = buffer.baseAddress!, out = products + points
                let bk = pb?[k] ?? 0, stride = o * count
                var q = 0
                while q < count {
                    let lanes = min(8, count - q)
                    let src = prod + k * count + q
                    if lanes == 8 {
                        for xi in 0..<points { products[xi] = UnsafeRawPointer(src + xi * stride).loadUnaligned(as: SIMD8<Float>.self) }
                    } else {
                        for xi in 0..<points {
                            var lane = SIMD8<Float>()
                            for l in 0..<lanes { lane[l] = src[xi * stride + l] }
                            products[xi] = lane
                        }
                    }
                    if big { winogradOutputTile6(products, out) } else { winogradOutputTile4(products, out) }
                    for l in 0..<lanes {
                        let p = p0 + q + l, img = p / perImage, t = p % perImage
                        let oy = m * (t / tw), ox = m * (t % tw)
                        let dst = py + (img * o + k) * h * w
                        let rows = min(m, h - oy), cols = min(m, w - ox)
                        for i in 0..<rows { for j in 0..<cols { dst[(oy + i) * w + ox + j] = out[m * i + j][l] + bk } }
                    }
                    q += 8
                }
            }
        }
        OpProfile.stop(tOut, "  output transform")
        p0 += count
    }
    return y
}

/// The bf16 bits of eight floats, rounded to nearest even (finite values: the transforms' results).
@inline(__always)
func bfloat16Bits(_ x: SIMD8<Float>) -> SIMD8<UInt16> {
    let u = unsafeBitCast(x, to: SIMD8<UInt32>.self)
    return SIMD8<UInt16>(truncatingIfNeeded: (u &+ 0x7FFF &+ ((u &>> 16) & 1)) &>> 16)
}

/// t[ξ] = (Bᵀ d B)_ξ of eight 4×4 tiles d (row-major), ξ = 0..<16 (F(2×2, 3×3)).
@inline(__always)
func winogradInputTile4(_ d: UnsafePointer<SIMD8<Float>>, _ t: UnsafeMutablePointer<SIMD8<Float>>) {
    for r in 0..<4 {
        // row r of Bᵀ d
        let a0: SIMD8<Float>, a1: SIMD8<Float>, a2: SIMD8<Float>, a3: SIMD8<Float>
        switch r {
        case 0: a0 = d[0] - d[8]; a1 = d[1] - d[9]; a2 = d[2] - d[10]; a3 = d[3] - d[11]
        case 1: a0 = d[4] + d[8]; a1 = d[5] + d[9]; a2 = d[6] + d[10]; a3 = d[7] + d[11]
        case 2: a0 = d[8] - d[4]; a1 = d[9] - d[5]; a2 = d[10] - d[6]; a3 = d[11] - d[7]
        default: a0 = d[4] - d[12]; a1 = d[5] - d[13]; a2 = d[6] - d[14]; a3 = d[7] - d[15]
        }
        // times B
        t[4 * r] = a0 - a2
        t[4 * r + 1] = a1 + a2
        t[4 * r + 2] = a2 - a1
        t[4 * r + 3] = a1 - a3
    }
}

/// t[ξ] = (Bᵀ d B)_ξ of eight 6×6 tiles d (row-major, overwritten), ξ = 0..<36 (F(4×4, 3×3)).
@inline(__always)
func winogradInputTile6(_ d: UnsafeMutablePointer<SIMD8<Float>>, _ t: UnsafeMutablePointer<SIMD8<Float>>) {
    // Bᵀ d, column by column, in place
    for j in 0..<6 {
        let r = winogradInputColumn(d[j], d[6 + j], d[12 + j], d[18 + j], d[24 + j], d[30 + j])
        d[j] = r.0; d[6 + j] = r.1; d[12 + j] = r.2; d[18 + j] = r.3; d[24 + j] = r.4; d[30 + j] = r.5
    }
    // (Bᵀ d) B, row by row
    for i in 0..<6 {
        let row = d + 6 * i
        let r = winogradInputColumn(row[0], row[1], row[2], row[3], row[4], row[5])
        let dst = t + 6 * i
        dst[0] = r.0; dst[1] = r.1; dst[2] = r.2; dst[3] = r.3; dst[4] = r.4; dst[5] = r.5
    }
}

/// out[i] = (Aᵀ M A)_i (2×2, row-major) of eight tiles' 4×4 products src[ξ] (F(2×2, 3×3)).
@inline(__always)
func winogradOutputTile4(_ src: UnsafePointer<SIMD8<Float>>, _ out: UnsafeMutablePointer<SIMD8<Float>>) {
    // s = Aᵀ m (2×4)
    let s00 = src[0] + src[4] + src[8], s01 = src[1] + src[5] + src[9]
    let s02 = src[2] + src[6] + src[10], s03 = src[3] + src[7] + src[11]
    let s10 = src[4] - src[8] - src[12], s11 = src[5] - src[9] - src[13]
    let s12 = src[6] - src[10] - src[14], s13 = src[7] - src[11] - src[15]
    out[0] = s00 + s01 + s02; out[1] = s01 - s02 - s03
    out[2] = s10 + s11 + s12; out[3] = s11 - s12 - s13
}

/// out[i] = (Aᵀ M A)_i (4×4, row-major) of eight tiles' 6×6 products src[ξ] (F(4×4, 3×3)).
@inline(__always)
func winogradOutputTile6(_ src: UnsafePointer<SIMD8<Float>>, _ out: UnsafeMutablePointer<SIMD8<Float>>) {
    withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 24) { s in
        let s = s.baseAddress!
        // s = Aᵀ M (4×6), column by column
        for j in 0..<6 {
            let r = winogradOutputColumn(src[j], src[6 + j], src[12 + j], src[18 + j], src[24 + j], src[30 + j])
            s[j] = r.0; s[6 + j] = r.1; s[12 + j] = r.2; s[18 + j] = r.3
        }
        // out = s A (4×4), row by row
        for i in 0..<4 {
            let row = s + 6 * i
            let r = winogradOutputColumn(row[0], row[1], row[2], row[3], row[4], row[5])
            out[4 * i] = r.0; out[4 * i + 1] = r.1; out[4 * i + 2] = r.2; out[4 * i + 3] = r.3
        }
    }
}

/// W'[c, o, i, j] = W[o, c, kH − 1 − i, kW − 1 − j]: the kernel of the input gradient of a
/// stride-1 convolution with "same" padding (the transposed convolution as a convolution).
public func flippedTransposedKernel(_ w: Tensor) -> Tensor {
    precondition(w.rank == 4, "flippedTransposedKernel: weight \(w.shape)")
    let o = w.shape[0], c = w.shape[1], kh = w.shape[2], kw = w.shape[3], plane = kh * kw
    let out = Tensor(uninitialized: [c, o, kh, kw])
    let src = w.data, dst = out.data
    for oc in 0..<o {
        for ic in 0..<c {
            let s = src + (oc * c + ic) * plane, d = dst + (ic * o + oc) * plane
            for i in 0..<kh { for j in 0..<kw { d[i * kw + j] = s[(kh - 1 - i) * kw + (kw - 1 - j)] } }
        }
    }
    return out
}

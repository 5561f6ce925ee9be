// Elementwise ops and activations, forward and backward side by side.
// Large tensors are split over the cores with `Parallel.forEachChunk`.

import Foundation

// MARK: - Binary ops with broadcasting

/// The result shape of broadcasting `a` against `b` (NumPy rules: align trailing dimensions; a
/// dimension of 1 stretches).
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int] {
    let r = max(a.count, b.count)
    var out = [Int](repeating: 1, count: r)
    for i in 0..<r {
        let da = i < r - a.count ? 1 : a[i - (r - a.count)]
        let db = i < r - b.count ? 1 : b[i - (r - b.count)]
        precondition(da == db || da == 1 || db == 1, "shapes \(a) and \(b) do not broadcast")
        out[i] = da == 1 ? db : da
    }
    return out
}

/// Strides of `shape` seen inside the broadcast shape `out` (0 where the dimension stretches).
private func broadcastStrides(_ shape: [Int], into out: [Int]) -> [Int] {
    let r = out.count
    var strides = [Int](repeating: 0, count: r)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
        let j = i + (r - shape.count)
        strides[j] = shape[i] == 1 ? 0 : s
        s *= shape[i]
    }
    return strides
}

@inline(__always)
private func broadcastBinary<K: BinaryKernel>(_ a: Tensor, _ b: Tensor, _: K.Type) -> Tensor {
    if a.shape == b.shape { return zipMap(a, b, K.self) }
    let shape = broadcastShape(a.shape, b.shape)
    let out = Tensor(uninitialized: shape)
    let sa = broadcastStrides(a.shape, into: shape), sb = broadcastStrides(b.shape, into: shape)
    let inner = shape.last ?? 1
    let outer = inner == 0 ? 0 : out.count / inner
    let r = shape.count
    let pa = a.data, pb = b.data, po = out.data
    let ia = r > 0 ? sa[r - 1] : 0, ib = r > 0 ? sb[r - 1] : 0
    Parallel.forEachChunk(outer, cost: inner) { rows in
        for row in rows {
            // Decompose the row index into the leading dimensions to find both source offsets.
            var rem = row, offA = 0, offB = 0
            for d in stride(from: r - 2, through: 0, by: -1) {
                let idx = rem % shape[d]
                rem /= shape[d]
                offA += idx * sa[d]
                offB += idx * sb[d]
            }
            let o = po + row * inner
            for j in 0..<inner { o[j] = K.apply(pa[offA + j * ia], pb[offB + j * ib]) }
        }
    }
    return out
}

/// a + b with broadcasting.
public func add(_ a: Tensor, _ b: Tensor) -> Tensor { broadcastBinary(a, b, Sum.self) }
enum Sum: BinaryKernel { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a + b } }
enum Difference: BinaryKernel { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a - b } }
enum Product: BinaryKernel { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a * b } }
/// a − b with broadcasting.
public func subtract(_ a: Tensor, _ b: Tensor) -> Tensor { broadcastBinary(a, b, Difference.self) }
/// a · b with broadcasting.
public func multiply(_ a: Tensor, _ b: Tensor) -> Tensor { broadcastBinary(a, b, Product.self) }

/// Sums `grad` (shaped like a broadcast result) back to `shape`: the backward of broadcasting.
public func reduceBroadcast(_ grad: Tensor, to shape: [Int]) -> Tensor {
    if grad.shape == shape { return grad.copy() }
    let out = Tensor(zeros: shape)
    let full = grad.shape
    let s = broadcastStrides(shape, into: full)
    let r = full.count
    let po = out.data, pg = grad.data
    for i in 0..<grad.count {
        var rem = i, off = 0
        for d in stride(from: r - 1, through: 0, by: -1) {
            off += (rem % full[d]) * s[d]
            rem /= full[d]
        }
        po[off] += pg[i]
    }
    return out
}

/// a += b (same element count), in place.
public func addInPlace(_ a: Tensor, _ b: Tensor) {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "add in place") }
    precondition(a.count == b.count, "addInPlace \(a.shape) += \(b.shape)")
    let pa = a.data, pb = b.data
    Parallel.forEachChunk(a.count) { r in for i in r { pa[i] += pb[i] } }
}

/// a += s · b (same element count), in place.
public func addScaledInPlace(_ a: Tensor, _ b: Tensor, scale s: Float) {
    precondition(a.count == b.count, "addScaledInPlace \(a.shape) += \(b.shape)")
    let pa = a.data, pb = b.data
    Parallel.forEachChunk(a.count) { r in for i in r { pa[i] += s * pb[i] } }
}

/// x · s.
public func scale(_ x: Tensor, _ s: Float) -> Tensor { map(x) { $0 * s } }

/// x · s, in place.
public func scaleInPlace(_ x: Tensor, _ s: Float) {
    let p = x.data
    Parallel.forEachChunk(x.count) { r in for i in r { p[i] *= s } }
}

/// An elementwise function known at compile time: loops over it are specialised, inlined and
/// vectorised (a closure captured into the parallel loop would be an opaque call per element).
public protocol UnaryKernel { static func apply(_ x: Float) -> Float }
/// A two-argument elementwise function known at compile time.
public protocol BinaryKernel { static func apply(_ a: Float, _ b: Float) -> Float }

/// K(x) for every element.
@inline(__always)
public func map<K: UnaryKernel>(_ x: Tensor, _: K.Type) -> Tensor {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "map \(K.self)") }
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, po = out.data
    Parallel.forEachChunk(x.count) { r in for i in r { po[i] = K.apply(px[i]) } }
    return out
}

/// K(a, b) for pairs of elements of two tensors of the same element count.
@inline(__always)
public func zipMap<K: BinaryKernel>(_ a: Tensor, _ b: Tensor, _: K.Type) -> Tensor {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "zip \(K.self)") }
    precondition(a.count == b.count, "zipMap \(a.shape) with \(b.shape)")
    let out = Tensor(uninitialized: a.shape)
    let pa = a.data, pb = b.data, po = out.data
    Parallel.forEachChunk(a.count) { r in for i in r { po[i] = K.apply(pa[i], pb[i]) } }
    return out
}

/// Applies `f` to every element.
@inline(__always)
public func map(_ x: Tensor, _ f: (Float) -> Float) -> Tensor {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "map closure") }
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, po = out.data
    Parallel.forEachChunk(x.count) { r in for i in r { po[i] = f(px[i]) } }
    return out
}

/// Adds `bias[c]` to every element of channel c of an [N, C, …] tensor, in place.
public func addChannelBiasInPlace(_ x: Tensor, _ bias: Tensor) {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "channel bias") }
    let n = x.shape[0], c = x.shape[1]
    precondition(bias.count == c, "bias of \(bias.count) for \(c) channels")
    let inner = x.count / max(n * c, 1)
    let px = x.data, pb = bias.data
    Parallel.forEachChunk(n * c, cost: inner) { r in
        for nc in r {
            let b = pb[nc % c]
            let row = px + nc * inner
            for j in 0..<inner { row[j] += b }
        }
    }
}

/// Adds `v[n, c]` to every element of channel c of sample n of an [N, C, H, W] tensor, in place
/// (how the U-Net adds its time embedding).
public func addSampleChannelInPlace(_ x: Tensor, _ v: Tensor) {
    let nc = x.shape[0] * x.shape[1]
    precondition(v.count == nc, "\(v.shape) for \(x.shape)")
    let inner = x.count / max(nc, 1)
    let px = x.data, pv = v.data
    Parallel.forEachChunk(nc, cost: inner) { r in
        for i in r {
            let b = pv[i]
            let row = px + i * inner
            for j in 0..<inner { row[j] += b }
        }
    }
}

// MARK: - Activations

/// SiLU: x · σ(x).
public func silu(_ x: Tensor) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, po = out.data
    Parallel.forEachChunk(x.count) { r in siluVector(px + r.lowerBound, po + r.lowerBound, r.count) }
    return out
}

/// Backward of SiLU: dx = dy · σ(x) · (1 + x · (1 − σ(x))).
public func siluBackward(_ dy: Tensor, _ x: Tensor) -> Tensor { zipMap(dy, x, SiLUGrad.self) }
enum SiLUGrad: BinaryKernel {
    @inline(__always) static func apply(_ g: Float, _ v: Float) -> Float {
        let s = 1 / (1 + fastExp(-v))
        return g * s * (1 + v * (1 - s))
    }
}

/// GELU, exact: x · Φ(x) = ½ x (1 + erf(x / √2)).
public func gelu(_ x: Tensor) -> Tensor { map(x, GELU.self) }
enum GELU: UnaryKernel {
    @inline(__always) static func apply(_ v: Float) -> Float { 0.5 * v * (1 + fastErf(v * 0.70710678118654752)) }
}

/// GEGLU's product: for h [..., 2·inner] (hidden, then gate, along the last dimension) →
/// hidden ⊙ GELU(gate) [..., inner], in one pass and no copies of the halves. The same arithmetic as
/// `multiply(hidden, gelu(gate))`, so the same values.
public func geglu(_ h: Tensor, inner: Int) -> Tensor {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "GEGLU") }
    precondition(h.shape.last == 2 * inner, "geglu: \(h.shape) for inner width \(inner)")
    var shape = h.shape
    shape[shape.count - 1] = inner
    let out = Tensor(uninitialized: shape)
    let rows = inner == 0 ? 0 : h.count / (2 * inner)
    let ph = h.data, po = out.data
    Parallel.forEachChunk(rows, cost: inner) { r in
        for row in r {
            let hidden = ph + row * 2 * inner, gate = hidden + inner, o = po + row * inner
            for j in 0..<inner { o[j] = hidden[j] * GELU.apply(gate[j]) }
        }
    }
    return out
}

/// Backward of exact GELU: dx = dy · (Φ(x) + x · φ(x)).
public func geluBackward(_ dy: Tensor, _ x: Tensor) -> Tensor { zipMap(dy, x, GELUGrad.self) }
enum GELUGrad: BinaryKernel {
    @inline(__always) static func apply(_ g: Float, _ v: Float) -> Float {
        let cdf = 0.5 * (1 + fastErf(v * 0.70710678118654752))
        let pdf = fastExp(-0.5 * v * v) * 0.39894228040143268
        return g * (cdf + v * pdf)
    }
}

/// GELU, tanh approximation: ½ x (1 + tanh(√(2/π) (x + 0.044715 x³))).
public func geluTanh(_ x: Tensor) -> Tensor {
    map(x) { v in 0.5 * v * (1 + tanhf(0.79788456080286536 * (v + 0.044715 * v * v * v))) }
}

/// Backward of tanh-GELU.
public func geluTanhBackward(_ dy: Tensor, _ x: Tensor) -> Tensor {
    zipMap(dy, x) { g, v in
        let u = 0.79788456080286536 * (v + 0.044715 * v * v * v)
        let t = tanhf(u)
        let du = 0.79788456080286536 * (1 + 3 * 0.044715 * v * v)
        return g * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du)
    }
}

/// Quick-GELU (CLIP): x · σ(1.702 x).
public func quickGelu(_ x: Tensor) -> Tensor { map(x, QuickGELU.self) }
enum QuickGELU: UnaryKernel {
    @inline(__always) static func apply(_ v: Float) -> Float { v / (1 + fastExp(-1.702 * v)) }
}

/// Backward of quick-GELU: dx = dy · (σ(1.702x) + 1.702 x σ(1.702x)(1 − σ(1.702x))).
public func quickGeluBackward(_ dy: Tensor, _ x: Tensor) -> Tensor { zipMap(dy, x, QuickGELUGrad.self) }
enum QuickGELUGrad: BinaryKernel {
    @inline(__always) static func apply(_ g: Float, _ v: Float) -> Float {
        let s = 1 / (1 + fastExp(-1.702 * v))
        return g * (s + 1.702 * v * s * (1 - s))
    }
}

/// Applies `f` to pairs of elements of two tensors of the same shape.
@inline(__always)
public func zipMap(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
    precondition(a.count == b.count, "zipMap \(a.shape) with \(b.shape)")
    let out = Tensor(uninitialized: a.shape)
    let pa = a.data, pb = b.data, po = out.data
    Parallel.forEachChunk(a.count) { r in for i in r { po[i] = f(pa[i], pb[i]) } }
    return out
}

// MARK: - Reductions

/// Mean of all elements (accumulated in double).
public func mean(_ x: Tensor) -> Float {
    var s = 0.0
    let p = x.data
    for i in 0..<x.count { s += Double(p[i]) }
    return x.count == 0 ? 0 : Float(s / Double(x.count))
}

/// Population variance of all elements (accumulated in double).
public func variance(_ x: Tensor) -> Float {
    let m = Double(mean(x))
    var s = 0.0
    let p = x.data
    for i in 0..<x.count { let d = Double(p[i]) - m; s += d * d }
    return x.count == 0 ? 0 : Float(s / Double(x.count))
}

/// Mean over the last dimension: [..., n] → [...].
public func meanLastDim(_ x: Tensor) -> Tensor {
    let n = x.shape.last ?? 1
    let rows = n == 0 ? 0 : x.count / n
    let out = Tensor(uninitialized: Array(x.shape.dropLast()))
    let px = x.data, po = out.data
    for r in 0..<rows {
        var s: Float = 0
        for j in 0..<n { s += px[r * n + j] }
        po[r] = s / Float(n)
    }
    return out
}

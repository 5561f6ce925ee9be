// A fast exponential for the hot loops (softmax, SiLU), written as plain scalar code that the
// compiler vectorises inside simple loops:
//
//   eˣ = 2ⁿ · eʳ,  n = round(x / ln 2),  r = x − n ln 2 (in two parts, Cody–Waite),
//   eʳ ≈ 1 + r + r²(1/2 + r(1/6 + r(1/24 + r(1/120 + r/720))))   (|r| ≤ ln2/2)
//
// Relative error below 3·10⁻⁷; inputs are clamped to [−87.3, 88.3] so 2ⁿ stays a normal float
// (results below e⁻⁸⁷ flush towards 0, as softmax and SiLU need).

import Foundation

/// eˣ to within 3·10⁻⁷ relative error.
@inline(__always)
public func fastExp(_ x: Float) -> Float {
    let c = min(max(x, -87.3), 88.3)
    let n = (c * 1.44269504088896341).rounded(.toNearestOrEven)
    let r = c.addingProduct(n, -0.693359375).addingProduct(n, 2.12194440e-4)
    // Fused multiply-adds (one rounding each, and one instruction per term once vectorised).
    var p: Float = 1.0 / 720
    p = (1.0 / 120 as Float).addingProduct(p, r)
    p = (1.0 / 24 as Float).addingProduct(p, r)
    p = (1.0 / 6 as Float).addingProduct(p, r)
    p = (0.5 as Float).addingProduct(p, r)
    p = (r + 1).addingProduct(p, r * r)
    return p * Float(bitPattern: UInt32(bitPattern: Int32(n) &+ 127) &<< 23)
}

/// p[i] = exp(p[i] − shift) for i in 0..<n; returns Σ p[i].
@inline(__always)
public func expShiftedInPlace(_ p: UnsafeMutablePointer<Float>, _ n: Int, shift: Float) -> Float {
    for i in 0..<n { p[i] = fastExp(p[i] - shift) }
    var lanes = SIMD8<Float>(repeating: 0)
    var i = 0
    while i + 8 <= n { lanes += UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self); i += 8 }
    var s = lanes.sum()
    while i < n { s += p[i]; i += 1 }
    return s
}

/// out[i] = x[i] · σ(x[i]) = x / (1 + e⁻ˣ) for i in 0..<n (in place allowed).
@inline(__always)
func siluVector(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { let v = x[i]; out[i] = v / (1 + fastExp(-v)) }
}

/// erf(x) to within 10⁻⁶ absolute error, vectorisable:
///
///   erf(|x|) ≈ 1 − t · P(t) · e^(−x²),  t = 1 / (1 + 0.47047 |x|),  |x| clamped to 4,
///
/// with P of degree 8 fitted by least squares to erfc(x)·e^(x²)/t on [0, 4] (erf(4) = 1 − 1.5·10⁻⁸).
@inline(__always)
public func fastErf(_ x: Float) -> Float {
    let a = min(abs(x), 4)
    let t = 1 / (1 + 0.47047 * a)
    var p: Float = -0.05312927872066052
    p = p * t + 0.29703976503408075
    p = p * t - 0.6237282736922056
    p = p * t + 0.5337775922018837
    p = p * t - 0.1717522066408303
    p = p * t + 0.2672797127387056
    p = p * t + 0.21763231610345266
    p = p * t + 0.2675493208659816
    p = p * t + 0.2653310398034868
    let e = 1 - t * p * fastExp(-a * a)
    return x < 0 ? -e : e
}

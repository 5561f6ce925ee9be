// PyTorch's CPU random generator, reproduced bit for bit.
//
// Matches, for float32 CPU tensors:
//   torch.manual_seed(seed); torch.randn(shape)   →  normal(count: shape.product)
//   torch.manual_seed(seed); torch.rand(shape)    →  uniform(count: shape.product)
// and any sequence of such calls on one generator (the generator's cached normal is carried).
//
// Sources followed (PyTorch 2.x): ATen/core/MT19937RNGEngine.h (engine and seeding),
// ATen/CPUGeneratorImpl.cpp (random, random64, the cached double normal),
// ATen/core/TransformationHelper.h + DistributionsHelper.h (uniform_real, normal_distribution),
// ATen/native/cpu/DistributionTemplates.h (normal_kernel, normal_fill, NormalFill16) and
// ATen/native/cpu/avx_mathfun.h (log256_ps, sincos256_ps), checked against the machine code of
// the torch 2.13 CPU wheel, whose AVX2 kernel fuses several of the multiply–adds below.
//
// randn on `n` elements:
//  - n < 16: one at::normal_distribution<double> draw per element (scalar Box–Muller in double,
//    second value of each pair cached in the generator);
//  - n ≥ 16: normal_fill: n uniform floats first, then Box–Muller in blocks of 16 pairing
//    element i with i + 8; when n is not a multiple of 16 the last 16 elements are drawn again
//    (16 fresh uniforms) and transformed again.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// MT19937 exactly as PyTorch's `at::mt19937` (Matsumoto & Nishimura 1998): 624 words of state,
/// seeded with the low 32 bits of the seed by sᵢ = 1812433253 · (sᵢ₋₁ ⊕ (sᵢ₋₁ >> 30)) + i.
struct MT19937: Sendable {
    private static let n = 624, m = 397
    private var state: [UInt32]
    private var index: Int

    init(seed: UInt64) {
        var s = [UInt32](repeating: 0, count: Self.n)
        s[0] = UInt32(truncatingIfNeeded: seed)
        for j in 1..<Self.n {
            s[j] = 1_812_433_253 &* (s[j - 1] ^ (s[j - 1] >> 30)) &+ UInt32(j)
        }
        state = s
        index = Self.n
    }

    /// The next tempered 32-bit output.
    @inline(__always)
    mutating func next() -> UInt32 {
        if index == Self.n { twist() }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    /// Regenerates all 624 words: sᵢ ← sᵢ₊ₘ ⊕ ((upper(sᵢ) | lower(sᵢ₊₁)) >> 1) ⊕ (sᵢ₊₁ odd ? A : 0).
    private mutating func twist() {
        let n = Self.n, m = Self.m
        state.withUnsafeMutableBufferPointer { s in
            for i in 0..<n {
                let next = s[(i + 1) % n]
                let y = (s[i] & 0x8000_0000) | (next & 0x7FFF_FFFF)
                s[i] = s[(i + m) % n] ^ (y >> 1) ^ ((next & 1) != 0 ? 0x9908_B0DF : 0)
            }
        }
        index = 0
    }
}

/// A random source that reproduces PyTorch's default CPU generator (`torch.manual_seed(seed)`)
/// bit for bit, for float32 `torch.randn` and `torch.rand`.
///
/// PyTorch's float32 `randn` for 16 or more elements runs one of two kernels chosen by the CPU:
/// on x86-64 with AVX2 (what any recent PC or server uses, including AVX-512 machines, where the
/// normal kernel falls back to AVX2) it evaluates logarithm, sine and cosine with the polynomial
/// approximations of `avx_mathfun.h`; elsewhere (ARM, or `ATEN_CPU_CAPABILITY=default`) it calls
/// the C library's `logf` and `sincosf`. `Kernel` picks which one to reproduce; the default is the
/// one PyTorch runs on this architecture. The scalar path (fewer than 16 elements) and `rand` are
/// the same on every CPU (given the same C library).
public struct TorchRandomSource: RandomSource, Sendable {
    /// Which of PyTorch's vectorised `randn` kernels to reproduce (see the type's documentation).
    public enum Kernel: String, Sendable, CaseIterable {
        /// `NormalFill16<float>` of the AVX2 build: avx_mathfun polynomials with fused multiply–adds.
        case avx2
        /// The portable kernel: libm `logf`, `sincosf`, `fmaf` in float.
        case generic
    }

    private var engine: MT19937
    /// The generator's cached second normal of the last scalar (double) Box–Muller pair.
    private var nextDoubleNormal: Double?
    /// The vectorised kernel being reproduced.
    public let kernel: Kernel

    /// The kernel PyTorch runs on this architecture: `.avx2` on x86-64, `.generic` elsewhere.
    public static var nativeKernel: Kernel {
        #if arch(x86_64)
        return .avx2
        #else
        return .generic
        #endif
    }

    /// The state of `torch.manual_seed(seed)` (only the low 32 bits of `seed` reach the engine).
    /// `kernel` defaults to the one PyTorch uses on this architecture (`nativeKernel`).
    public init(seed: UInt64, kernel: Kernel = TorchRandomSource.nativeKernel) {
        engine = MT19937(seed: seed)
        nextDoubleNormal = nil
        self.kernel = kernel
    }

    // MARK: Generator primitives (CPUGeneratorImpl)

    /// `random()`: one 32-bit engine output.
    @inline(__always) mutating func random() -> UInt32 { engine.next() }

    /// `random64()`: two engine outputs, the first as the high word.
    @inline(__always) mutating func random64() -> UInt64 {
        let hi = UInt64(engine.next())
        let lo = UInt64(engine.next())
        return (hi << 32) | lo
    }

    /// `uniform_real_distribution<float>(0, 1)`: (random() & (2²⁴ − 1)) · 2⁻²⁴, exact in float.
    @inline(__always) mutating func uniformFloat() -> Float {
        Float(random() & 0x00FF_FFFF) * 0x1p-24
    }

    /// `uniform_real_distribution<double>(0, 1)`: (random64() & (2⁵³ − 1)) · 2⁻⁵³, exact in double.
    @inline(__always) mutating func uniformDouble() -> Double {
        Double(random64() & 0x001F_FFFF_FFFF_FFFF) * 0x1p-53
    }

    /// `at::normal_distribution<double>(0, 1)`: returns the cached value if there is one; otherwise
    /// u₁, u₂ uniform, r = √(−2 log1p(−u₂)), θ = 2π u₁, caches r sin θ and returns r cos θ.
    mutating func normalDouble() -> Double {
        if let cached = nextDoubleNormal {
            nextDoubleNormal = nil
            return 0.0.addingProduct(cached, 1.0)   // fma(ret, std, mean)
        }
        let u1 = uniformDouble()
        let u2 = uniformDouble()
        let r = (log1p(-u2) * -2.0).squareRoot()
        let theta = (2.0 * Double.pi) * u1
        nextDoubleNormal = r * sin(theta)
        return 0.0.addingProduct(cos(theta) * r, 1.0)
    }

    // MARK: RandomSource

    /// `torch.randn(count)` in float32 (any shape with `count` elements: the tensor is contiguous).
    public mutating func normal(count: Int) -> [Float] {
        guard count > 0 else { return [] }
        if count < 16 {
            return (0..<count).map { _ in Float(normalDouble()) }
        }
        // normal_fill: all uniforms first, then Box–Muller in place on blocks of 16.
        var data = [Float](repeating: 0, count: count)
        for i in 0..<count { data[i] = uniformFloat() }
        let kernel = self.kernel
        data.withUnsafeMutableBufferPointer { d in
            var i = 0
            while i + 16 <= count {
                Self.boxMuller16(d.baseAddress! + i, kernel: kernel)
                i += 16
            }
        }
        if count % 16 != 0 {
            // The tail: the last 16 elements get fresh uniforms and are transformed again.
            for i in (count - 16)..<count { data[i] = uniformFloat() }
            data.withUnsafeMutableBufferPointer { d in
                Self.boxMuller16(d.baseAddress! + count - 16, kernel: kernel)
            }
        }
        return data
    }

    /// `torch.rand(count)` in float32: one `uniformFloat` per element.
    public mutating func uniform(count: Int) -> [Float] {
        (0..<max(count, 0)).map { _ in uniformFloat() }
    }

    // MARK: NormalFill16

    /// Box–Muller on 16 uniforms in place: for j in 0..<8, u₁ = 1 − d[j] ∈ (0, 1], u₂ = d[j + 8],
    /// r = √(−2 ln u₁), θ = 2π u₂, d[j] = r cos θ, d[j + 8] = r sin θ (mean 0, std 1 applied as
    /// fma(n, 1, 0), as PyTorch does).
    @inline(__always)
    static func boxMuller16(_ d: UnsafeMutablePointer<Float>, kernel: Kernel) {
        switch kernel {
        case .avx2:
            for j in 0..<8 {
                let u1 = 1.0 - d[j]
                let u2 = d[j + 8]
                let radius = (AVXMath.log(u1) * -2.0).squareRoot()
                let theta = AVXMath.twoPi * u2
                let (s, c) = AVXMath.sincos(theta)
                d[j] = Float(0).addingProduct(radius * c, 1)
                d[j + 8] = Float(0).addingProduct(radius * s, 1)
            }
        case .generic:
            for j in 0..<8 {
                let u1 = 1.0 - d[j]
                let u2 = d[j + 8]
                let radius = (logf(u1) * -2.0).squareRoot()
                // θ = 2.0f · π (double) · u₂ is computed in double, then stored as float.
                let theta = Float(Double(u2) * (2.0 * Double.pi))
                d[j] = Float(0).addingProduct(radius * cosf(theta), 1)
                d[j + 8] = Float(0).addingProduct(radius * sinf(theta), 1)
            }
        }
    }
}

/// The float logarithm and sine/cosine of `avx_mathfun.h` (Cephes polynomials, after J. Pommier's
/// sse_mathfun), one lane at a time, with the multiply–adds fused exactly where the compiled AVX2
/// kernel of PyTorch fuses them (`fma` below), so every lane rounds as the vector code does.
enum AVXMath {
    /// 2π rounded to float (`_mm256_set1_ps(2.0f * c10::pi<double>)`).
    static let twoPi = Float(2.0 * Double.pi)

    // log256_ps constants.
    private static let minNormPos = Float(bitPattern: 0x0080_0000)
    private static let sqrtHF: Float = 0.707106781186547524
    private static let logP: [Float] = [
        7.0376836292E-2, -1.1514610310E-1, 1.1676998740E-1, -1.2420140846E-1, 1.4249322787E-1,
        -1.6668057665E-1, 2.0000714765E-1, -2.4999993993E-1, 3.3333331174E-1,
    ]
    private static let logQ1: Float = -2.12194440e-4
    private static let logQ2: Float = 0.693359375

    /// ln x for x > 0: x = m · 2ᵉ with m ∈ [√½, √2), ln x = e·q₂ + (m−1) + P(m−1)·(m−1)³ − (m−1)²/2 + e·q₁.
    @inline(__always)
    static func log(_ input: Float) -> Float {
        if !(input > 0) { return .nan }                    // invalid_mask: x ≤ 0 (or NaN) → NaN
        var x = input > minNormPos ? input : minNormPos     // _mm256_max_ps(x, min_norm_pos)
        let exponent = Int32(bitPattern: x.bitPattern >> 23) &- 0x7F
        x = Float(bitPattern: (x.bitPattern & ~UInt32(0x7F80_0000)) | Float(0.5).bitPattern)
        var e = Float(exponent) + 1.0
        let below = x < sqrtHF                              // if x < √½: e -= 1, x = x + x − 1
        let tmp: Float = below ? x : 0
        x = x + -1.0
        e = e - (below ? 1.0 : 0.0)
        x = x + tmp
        let z = x * x
        var y = logP[0]
        for k in 1..<9 { y = logP[k].addingProduct(y, x) }  // y = y·x + pₖ (fused)
        let eq1 = e * logQ1
        y = x * y
        y = eq1.addingProduct(y, z)                          // y·z + e·q₁ (fused)
        y = y.addingProduct(-z, 0.5)                         // y − z·½ (fused)
        x = x + y
        return x.addingProduct(e, logQ2)                     // e·q₂ + x (fused)
    }

    // sincos256_ps constants.
    private static let fourOverPi: Float = 1.27323954473516
    private static let minusDP1: Float = -0.78515625
    private static let minusDP2: Float = -2.4187564849853515625e-4
    private static let minusDP3: Float = -3.77489497744594108e-8
    private static let sinP0: Float = -1.9515295891E-4, sinP1: Float = 8.3321608736E-3
    private static let sinP2: Float = -1.6666654611E-1
    private static let cosP0: Float = 2.443315711809948E-005, cosP1: Float = -1.388731625493765E-003
    private static let cosP2: Float = 4.166664568298827E-002

    /// (sin x, cos x): j = ⌊|x|·4/π⌋ rounded up to even, x' = |x| − j·π/4 (in three parts), then
    /// the sine or cosine polynomial of x' chosen by j mod 4, with the signs set from j.
    @inline(__always)
    static func sincos(_ input: Float) -> (sin: Float, cos: Float) {
        var signSin = input.bitPattern & 0x8000_0000
        var x = Float(bitPattern: input.bitPattern & 0x7FFF_FFFF)
        let scaled = x * fourOverPi
        // cvttps2dq: truncation toward zero (out of range → 0x80000000).
        var j: Int32 = scaled < 2_147_483_648 ? Int32(scaled) : Int32.min
        j = (j &+ 1) & ~1
        let y = Float(j)
        let swapSignSin = UInt32(bitPattern: j & 4) << 29
        let polyMask = (j & 2) == 0
        x = x.addingProduct(y, minusDP1)
        x = x.addingProduct(minusDP2, y)
        x = x.addingProduct(y, minusDP3)
        let signCos = UInt32(bitPattern: ~(j &- 2) & 4) << 29
        signSin ^= swapSignSin

        let z = x * x
        let half = z * 0.5
        var yc = cosP1.addingProduct(cosP0, z)
        yc = cosP2.addingProduct(yc, z)
        yc = z * yc
        yc = (-half).addingProduct(z, yc)                    // z·y − z/2 (fused)
        yc = yc + 1.0
        var ys = sinP1.addingProduct(sinP0, z)
        ys = sinP2.addingProduct(ys, z)
        let t = z * ys
        ys = x.addingProduct(x, t)                           // x·(z·y) + x (fused)

        // Select with masks and recombine exactly as the vector code does.
        let ysin2: Float = polyMask ? ys : 0
        let ysin1: Float = polyMask ? 0 : yc
        let yc2 = yc - ysin1
        let ys2 = ys - ysin2
        let s = ysin2 + ysin1
        let c = ys2 + yc2
        return (Float(bitPattern: s.bitPattern ^ signSin), Float(bitPattern: c.bitPattern ^ signCos))
    }
}

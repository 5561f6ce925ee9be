// Random sources: the one way randomness enters the package (noise for sampling, initial weights,
// data augmentation). A seed plus the kind of source fully determines every draw.
//
// Two kinds:
//  - `TorchRandomSource` (TorchRandom.swift) reproduces PyTorch's CPU generator bit for bit, so a
//    seed gives the same noise as `torch.randn(shape, generator=torch.manual_seed(seed))`.
//  - `SwiftRandomSource` (below) is a small, fast native generator (xoshiro256** + Box–Muller)
//    for when matching PyTorch does not matter.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A stream of random floats. Value types (structs) conform, so copying a source forks the stream:
/// the copy continues with the same draws as the original.
public protocol RandomSource {
    /// The next `count` samples of the standard normal distribution N(0, 1).
    mutating func normal(count: Int) -> [Float]
    /// The next `count` samples of the uniform distribution on [0, 1).
    mutating func uniform(count: Int) -> [Float]
}

/// A fast native source: xoshiro256** (Blackman & Vigna, 2018) seeded through SplitMix64, with
/// normals from the Box–Muller transform computed in double precision.
///
/// Definition (so other implementations can reproduce it):
/// - seeding: the four state words are four successive SplitMix64 outputs starting from `seed`;
/// - `uniform`: u = (x >> 40) · 2⁻²⁴ for each 64-bit output x, a float in [0, 1);
/// - `normal`: per pair, u₁ = ((x₁ >> 11) + 1) · 2⁻⁵³ ∈ (0, 1], u₂ = (x₂ >> 11) · 2⁻⁵³,
///   r = √(−2 ln u₁), θ = 2π u₂, giving r cos θ then r sin θ (rounded to float). An odd `count`
///   discards the last sine, so every call starts on a fresh pair.
public struct SwiftRandomSource: RandomSource, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    /// A source whose stream depends only on `seed`.
    public init(seed: UInt64) {
        var sm = seed
        func splitMix(_ x: inout UInt64) -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix(&sm); s1 = splitMix(&sm); s2 = splitMix(&sm); s3 = splitMix(&sm)
    }

    /// The next 64-bit output of xoshiro256**.
    public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    public mutating func uniform(count: Int) -> [Float] {
        (0..<max(count, 0)).map { _ in Float(next() >> 40) * 0x1p-24 }
    }

    public mutating func normal(count: Int) -> [Float] {
        guard count > 0 else { return [] }
        var out = [Float](repeating: 0, count: count)
        var i = 0
        while i < count {
            let u1 = Double((next() >> 11) + 1) * 0x1p-53
            let u2 = Double(next() >> 11) * 0x1p-53
            let r = (-2 * log(u1)).squareRoot()
            let theta = 2 * Double.pi * u2
            out[i] = Float(r * cos(theta))
            if i + 1 < count { out[i + 1] = Float(r * sin(theta)) }
            i += 2
        }
        return out
    }
}

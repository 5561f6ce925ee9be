// Golden tests for the random sources. TorchRandomSource must match PyTorch bit for bit: the
// fixtures in TorchRandomFixtures.swift come from scripts/make_rng_fixtures.py (torch on the CPU).
import Foundation
import XCTest
@testable import LDMCore

final class RandomTests: XCTestCase {
    /// 64-bit FNV-1a over the little-endian bytes of the bit patterns (as the fixture script).
    private func fnv1a(_ values: [Float]) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for v in values {
            var bits = v.bitPattern
            for _ in 0..<4 {
                h ^= UInt64(bits & 0xFF)
                h = h &* 0x0000_0100_0000_01B3
                bits >>= 8
            }
        }
        return h
    }

    private func hex(_ bits: [UInt32]) -> String {
        bits.map { "0x" + String($0, radix: 16, uppercase: true) }.joined(separator: ",")
    }

    func testMT19937MatchesReferenceOutputs() {
        // The reference MT19937 (std::mt19937, seed 5489) gives 4123659995 as its 10000th output;
        // PyTorch's engine is that same generator.
        var mt = MT19937(seed: 5489)
        var last: UInt32 = 0
        for _ in 0..<10_000 { last = mt.next() }
        XCTAssertEqual(last, 4_123_659_995)
    }

    func testLiteralValues() {
        // python -c "import torch; torch.manual_seed(0); print(torch.randn(4).tolist())"
        // [1.5409960746765137, -0.293428897857666, -2.1787893772125244, 0.5684312582015991]
        var rng = TorchRandomSource(seed: 0)
        XCTAssertEqual(rng.normal(count: 4), [1.5409960746765137, -0.293428897857666, -2.1787893772125244, 0.5684312582015991])

        // python -c "import torch; torch.manual_seed(42); print(torch.randn(1,4,8,8).flatten()[:3].tolist())"
        // [1.9269152879714966, 1.4872840642929077, 0.9007171988487244]
        rng = TorchRandomSource(seed: 42, kernel: .avx2)
        XCTAssertEqual(Array(rng.normal(count: 256).prefix(3)), [1.9269152879714966, 1.4872840642929077, 0.9007171988487244])

        // python -c "import torch; torch.manual_seed(0); print(torch.rand(3).tolist())"
        // [0.49625658988952637, 0.7682217955589294, 0.08847743272781372]
        rng = TorchRandomSource(seed: 0)
        XCTAssertEqual(rng.uniform(count: 3), [0.49625658988952637, 0.7682217955589294, 0.08847743272781372])
    }

    /// Every fixture case: seeds 0, 1, 42 × shapes (4), (17), (1,4,8,8), (2,4,64,64), rand, and
    /// sequences of consecutive draws, for both of PyTorch's normal kernels.
    func testMatchesTorchBitForBit() {
        XCTAssertFalse(TorchRandomFixtures.cases.isEmpty)
        for c in TorchRandomFixtures.cases {
            guard let kernel = TorchRandomSource.Kernel(rawValue: c.kernel) else {
                XCTFail("unknown kernel \(c.kernel)"); continue
            }
            var rng = TorchRandomSource(seed: c.seed, kernel: kernel)
            for (step, d) in c.draws.enumerated() {
                let values = d.kind == "randn" ? rng.normal(count: d.count) : rng.uniform(count: d.count)
                let bits = values.map(\.bitPattern)
                let label = "\(c.kernel) seed \(c.seed) step \(step): \(d.kind)\(d.shape)"
                XCTAssertEqual(values.count, d.count, label)
                if !d.bits.isEmpty {
                    if bits != d.bits {
                        let firstBad = zip(bits, d.bits).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1
                        XCTFail("\(label): first mismatch at \(firstBad): \(hex(Array(bits.prefix(4)))) vs \(hex(Array(d.bits.prefix(4))))")
                    }
                }
                XCTAssertEqual(Array(bits.prefix(8)), d.head, label)
                XCTAssertEqual(Array(bits.suffix(8)), d.tail, label)
                XCTAssertEqual(fnv1a(values), d.fnv1a, label)
            }
        }
    }

    func testConsecutiveDrawsEqualOneSplitStream() {
        // Scalar draws carry the cached second normal: randn(3) + randn(1) == randn(4).
        var a = TorchRandomSource(seed: 3)
        var b = TorchRandomSource(seed: 3)
        XCTAssertEqual(a.normal(count: 3) + a.normal(count: 1), b.normal(count: 4))
        // Copies fork the stream (value semantics).
        var c = a
        XCTAssertEqual(a.normal(count: 40), c.normal(count: 40))
    }

    func testEdgeCounts() {
        var rng = TorchRandomSource(seed: 0)
        XCTAssertEqual(rng.normal(count: 0), [])
        XCTAssertEqual(rng.uniform(count: -1), [])
        var s = SwiftRandomSource(seed: 0)
        XCTAssertEqual(s.normal(count: 0), [])
        XCTAssertEqual(s.uniform(count: 0), [])
    }

    func testAVXMathAccuracy() {
        // The polynomial log and sincos stay within a few ulps of libm on the ranges used.
        var maxLogErr: Float = 0, maxTrigErr: Float = 0
        for i in 1...4096 {
            let u = Float(i) / 4096
            maxLogErr = max(maxLogErr, abs(AVXMath.log(u) - Float(Foundation.log(Double(u)))))
            let t = AVXMath.twoPi * u
            let (s, c) = AVXMath.sincos(t)
            maxTrigErr = max(maxTrigErr, abs(s - Float(Foundation.sin(Double(t)))), abs(c - Float(Foundation.cos(Double(t)))))
        }
        XCTAssertLessThan(maxLogErr, 1e-6)
        XCTAssertLessThan(maxTrigErr, 1e-6)
    }

    func testSwiftRandomSourceIsDeterministicAndWellDistributed() {
        var a = SwiftRandomSource(seed: 1234)
        var b = SwiftRandomSource(seed: 1234)
        XCTAssertEqual(a.normal(count: 1001), b.normal(count: 1001))
        XCTAssertEqual(a.uniform(count: 17), b.uniform(count: 17))
        var other = SwiftRandomSource(seed: 1235)
        XCTAssertNotEqual(a.normal(count: 8), other.normal(count: 8))

        // Pinned values: the definition in the doc comment must not drift.
        var pinned = SwiftRandomSource(seed: 0)
        XCTAssertEqual(pinned.next(), 0x99EC_5F36_CB75_F2B4)

        var rng = SwiftRandomSource(seed: 7)
        let n = 200_000
        let x = rng.normal(count: n)
        let mean = x.reduce(0.0) { $0 + Double($1) } / Double(n)
        let variance = x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(n)
        XCTAssertEqual(mean, 0, accuracy: 0.01)
        XCTAssertEqual(variance, 1, accuracy: 0.01)
        let u = rng.uniform(count: n)
        XCTAssertTrue(u.allSatisfy { $0 >= 0 && $0 < 1 })
        XCTAssertEqual(u.reduce(0.0) { $0 + Double($1) } / Double(n), 0.5, accuracy: 0.005)
    }
}

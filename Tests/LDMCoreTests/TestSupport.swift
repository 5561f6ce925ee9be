import XCTest
@testable import LDMCore

/// A small deterministic generator for test inputs (SplitMix64 → uniform in [-1, 1)).
struct TestRNG {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) * 2 - 1 }
    mutating func tensor(_ shape: [Int], scale: Float = 1) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, (0..<n).map { _ in uniform() * scale })
    }
}

/// ‖a − b‖ / ‖b‖ (accumulated in double).
func relativeError(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count, "sizes \(a.count) vs \(b.count)")
    var num = 0.0, den = 0.0
    for i in 0..<a.count {
        let d = Double(a[i]) - Double(b[i])
        num += d * d
        den += Double(b[i]) * Double(b[i])
    }
    return den == 0 ? num.squareRoot() : (num / den).squareRoot()
}

func assertClose(_ a: Tensor, _ b: [Float], _ tol: Double = 1e-5, _ message: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    let e = relativeError(a.array, b)
    XCTAssertLessThanOrEqual(e, tol, "relative error \(e) \(message)", file: file, line: line)
}

/// Checks an analytic gradient against central finite differences of L = Σ r ⊙ f(x),
/// with r a fixed random projection. Probes up to `probes` coordinates of x.
func checkGradient(_ x: Tensor, analytic: Tensor, probes: Int = 24, eps: Float = 1e-2, tol: Double = 2e-2,
                   _ loss: () -> Double, file: StaticString = #filePath, line: UInt = #line) {
    var rng = TestRNG(99)
    var numeric: [Float] = [], ours: [Float] = []
    for _ in 0..<min(probes, x.count) {
        let i = Int(rng.next() % UInt64(x.count))
        let saved = x.data[i]
        x.data[i] = saved + eps
        let lp = loss()
        x.data[i] = saved - eps
        let lm = loss()
        x.data[i] = saved
        numeric.append(Float((lp - lm) / Double(2 * eps)))
        ours.append(analytic.data[i])
    }
    let e = relativeError(ours, numeric)
    XCTAssertLessThanOrEqual(e, tol, "gradient relative error \(e): ours \(ours.prefix(6)) numeric \(numeric.prefix(6))",
                             file: file, line: line)
}

/// Σ r ⊙ y in double.
func project(_ y: Tensor, _ r: Tensor) -> Double {
    var s = 0.0
    for i in 0..<y.count { s += Double(y.data[i]) * Double(r.data[i]) }
    return s
}

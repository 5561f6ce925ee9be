// The bf16 product path (oneDNN): rounding to bfloat16, and BLAS.gemm in bf16 against naive loops
// on the rounded operands (the products are exact in bf16 and accumulated in fp32) and against fp32.

import XCTest
@testable import LDMCore

final class BFloat16Tests: XCTestCase {
    /// The reference rounding: a float's bfloat16 bits, rounded to nearest even (NaN stays NaN).
    func bfloat16Bits(_ x: Float) -> UInt16 {
        let v = x.bitPattern
        if v & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16(v >> 16) | 0x0040 }
        return UInt16((v &+ 0x7FFF &+ ((v >> 16) & 1)) >> 16)
    }

    func testReferenceRounding() {
        XCTAssertEqual(bfloat16Bits(1), 0x3F80)
        XCTAssertEqual(bfloat16Bits(-2), 0xC000)
        // 1 + 2⁻⁸ lies halfway between 1 and 1 + 2⁻⁷: ties go to the even one (1).
        XCTAssertEqual(bfloat16Bits(1 + 1 / 256), 0x3F80)
        XCTAssertEqual(bfloat16Bits(1 + 3 / 256), 0x3F82)
        XCTAssertEqual(bfloat16Bits(1 + 1 / 256 + 1 / 65536), 0x3F81)
        XCTAssertEqual(bfloat16Bits(.infinity), 0x7F80)
    }

    func testConversionRoundsToNearestEven() throws {
        try XCTSkipUnless(ComputePrecision.bf16Supported, "this CPU has no AVX512-BF16 or AMX")
        // Ties, values just above ties, and random values, through oneDNN's reorder.
        var rng = TestRNG(7)
        var values: [Float] = [1 + 1 / 256, 1 + 3 / 256, 1 + 1 / 256 + 1 / 65536, -(1 + 3 / 256), 0, 1, -2, .infinity, -.infinity]
        values += (0..<1000).map { _ in rng.uniform() * 1000 }
        var bits = [UInt16](repeating: 0, count: values.count)
        OneDNN.convert(values, rows: 1, cols: values.count, ld: values.count, transposed: false, into: &bits)
        for (v, b) in zip(values, bits) { XCTAssertEqual(b, bfloat16Bits(v), "\(v)") }
    }

    /// bf16 of a float, as a float.
    func rounded(_ x: Float) -> Float { Float(bitPattern: UInt32(bfloat16Bits(x)) << 16) }

    func checkProduct(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, beta: Float, viaBLAS: Bool = false,
                      file: StaticString = #filePath, line: UInt = #line) throws {
        try XCTSkipUnless(ComputePrecision.bf16Supported, "this CPU has no AVX512-BF16 or AMX")
        var rng = TestRNG(UInt64(m * 31 + n * 7 + k))
        func random(_ count: Int) -> [Float] { (0..<count).map { _ in rng.uniform() } }
        let a = random(m * k), b = random(k * n), c0 = random(m * n)
        let lda = transA ? m : k, ldb = transB ? k : n
        var c = c0
        if viaBLAS {
            XCTAssertTrue(OneDNN.takesBF16(m: m, n: n, k: k, ldc: n), "this product should go to oneDNN", file: file, line: line)
            ComputePrecision.with(.bf16) {
                BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                          beta: beta, c: &c, ldc: n)
            }
        } else {
            OneDNN.gemmBF16(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                            beta: beta, c: &c, ldc: n)
        }
        var fp32 = c0
        BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                  beta: beta, c: &fp32, ldc: n)
        var worst = 0.0, worstFP32 = 0.0, scale = 0.0
        for i in 0..<m {
            for j in 0..<n {
                var exact = 0.0
                for p in 0..<k {
                    let x = rounded(transA ? a[p * lda + i] : a[i * lda + p])
                    let y = rounded(transB ? b[j * ldb + p] : b[p * ldb + j])
                    exact += Double(x) * Double(y)
                }
                let want = Double(alpha) * exact + Double(beta) * Double(c0[i * n + j])
                worst = max(worst, abs(Double(c[i * n + j]) - want))
                worstFP32 = max(worstFP32, abs(Double(c[i * n + j]) - Double(fp32[i * n + j])))
                scale = max(scale, abs(want))
            }
        }
        // Exact products of the rounded operands, summed in fp32: agreement to fp32 summation error.
        XCTAssertLessThan(worst / scale, 1e-5, "bf16 product against naive loops on the rounded operands", file: file, line: line)
        // Against the fp32 product: within bf16's precision.
        XCTAssertLessThan(worstFP32 / scale, 1e-2, "bf16 product against fp32", file: file, line: line)
    }

    func testProductsAgainstNaiveLoops() throws {
        try checkProduct(transA: false, transB: true, m: 37, n: 21, k: 50, alpha: 1, beta: 0)
        try checkProduct(transA: false, transB: false, m: 8, n: 300, k: 17, alpha: 0.5, beta: 1)
        try checkProduct(transA: true, transB: false, m: 19, n: 23, k: 29, alpha: 1, beta: 0.25)
        try checkProduct(transA: true, transB: true, m: 5, n: 6, k: 7, alpha: -2, beta: 0)
    }

    func testLargeProductsSplitIntoBands() throws {
        // Large enough to be split over the worker threads, by columns and by rows.
        try checkProduct(transA: false, transB: true, m: 64, n: 200, k: 96, alpha: 1, beta: 1)
        try checkProduct(transA: false, transB: false, m: 300, n: 48, k: 64, alpha: 1, beta: 0)
        // Through BLAS.gemm: a linear layer's shape (transposed weights, bias accumulated).
        try checkProduct(transA: false, transB: true, m: 200, n: 96, k: 256, alpha: 1, beta: 1, viaBLAS: true)
    }

    func testShortInnerDimensionsStayFP32() {
        // Attention's score products (k = head width) and strided outputs are not sent to oneDNN.
        XCTAssertFalse(OneDNN.takesBF16(m: 256, n: 4096, k: 40, ldc: 4096))
        XCTAssertFalse(OneDNN.takesBF16(m: 256, n: 40, k: 4096, ldc: 320))
    }

    func testAutoFallsBackWithoutBF16() throws {
        let (auto, note) = try ComputePrecision.resolve("auto")
        XCTAssertEqual(auto, ComputePrecision.bf16Supported ? .bf16 : .fp32)
        XCTAssertNotNil(note)
        XCTAssertEqual(try ComputePrecision.resolve("fp32").0, .fp32)
        XCTAssertThrowsError(try ComputePrecision.resolve("fp8"))
    }
}

final class BFloat16ConvolutionTests: XCTestCase {
    /// ‖bf16 − fp32‖ / ‖fp32‖ of a 3×3 convolution computed three ways.
    func errors(channels: Int, size: Int) -> [String: Double] {
        var rng = TestRNG(11)
        let x = rng.tensor([2, channels, size, size])
        let w = rng.tensor([channels, channels, 3, 3], scale: 1 / Float(channels * 9).squareRoot())
        let b = rng.tensor([channels])
        var result: [String: Double] = [:]
        let ways: [(String, () -> Tensor)] = [
            ("im2col", { conv2d(x, weight: w, bias: b, stride: 1, padding: 1) }),
            ("F(2x2)", { conv2dWinograd(x, weight: w, tile: .f2x2, bias: b) }),
            ("F(4x4)", { conv2dWinograd(x, weight: w, tile: .f4x4, bias: b) }),
            // the filters transformed beforehand (as kept between calls), and the tiles in several
            // bands with all filters transformed at once
            ("F(2x2) kept", { conv2dWinograd(x, transformedWeight: winogradWeights(w), bias: b) }),
            ("F(2x2) bands", {
                let saved = maxWinogradFloats
                maxWinogradFloats = 16 * channels * 40
                defer { maxWinogradFloats = saved }
                return conv2dWinograd(x, weight: w, tile: .f2x2, bias: b)
            }),
        ]
        let reference = conv2d(x, weight: w, bias: b, stride: 1, padding: 1).array
        for (name, run) in ways {
            let y = ComputePrecision.with(.bf16) { run() }
            result[name] = relativeError(y.array, reference)
        }
        return result
    }

    func testConvolutionsInBF16() throws {
        try XCTSkipUnless(ComputePrecision.bf16Supported, "this CPU has no AVX512-BF16 or AMX")
        let e = errors(channels: 192, size: 16)
        print("bf16 3×3 convolution errors against fp32: \(e)")
        XCTAssertLessThan(e["im2col"]!, 5e-3)
        XCTAssertLessThan(e["F(2x2)"]!, 5e-3)
        XCTAssertLessThan(e["F(2x2) kept"]!, 5e-3)
        XCTAssertLessThan(e["F(2x2) bands"]!, 5e-3)
        // F(4×4) magnifies bf16's rounding (about 10× im2col's error), so bf16 runs never pick it.
        XCTAssertGreaterThan(e["F(4x4)"]!, e["F(2x2)"]!)
        let tile = ComputePrecision.with(.bf16) {
            winogradTile(inChannels: 320, outChannels: 320, kernel: 3, stride: 1, padding: 1, batch: 2, height: 64, width: 64)
        }
        XCTAssertEqual(tile, .f2x2)
        // Products too narrow for bf16 (128 input channels) stay fp32, and F(4×4) with them.
        XCTAssertEqual(ComputePrecision.with(.bf16) {
            winogradTile(inChannels: 128, outChannels: 128, kernel: 3, stride: 1, padding: 1, batch: 1, height: 512, width: 512)
        }, .f4x4)
        XCTAssertEqual(winogradTile(inChannels: 320, outChannels: 320, kernel: 3, stride: 1, padding: 1, batch: 2, height: 64, width: 64), .f4x4)
    }
}

/// The bf16 attention kernel (ldm_bf16.c) against naive loops on bf16-rounded operands and against
/// fp32 attention, at shapes with every tail: query rows not a multiple of the kernel's six, keys not
/// a multiple of 64, odd head widths, value widths not a multiple of 16 and wider than 64.
final class BFloat16AttentionTests: XCTestCase {
    func rounded(_ x: Float) -> Float {
        let v = x.bitPattern
        return Float(bitPattern: ((v &+ 0x7FFF &+ ((v >> 16) & 1)) >> 16) << 16)
    }

    /// softmax(alpha · Q Kᵀ) V with Q, K, V and the numerators exp(s − max) rounded to bf16, in Double.
    func naive(q: Tensor, k: Tensor, v: Tensor, heads: Int) -> [Float] {
        let b = q.shape[0], lq = q.shape[1], lk = k.shape[1], d = q.shape[2] / heads, dv = v.shape[2] / heads
        let alpha = 1 / Double(d).squareRoot()
        let qa = q.array.map(rounded), ka = k.array.map(rounded), va = v.array.map(rounded)
        var out = [Float](repeating: 0, count: b * lq * heads * dv)
        for bi in 0..<b { for h in 0..<heads { for i in 0..<lq {
            var s = [Double](repeating: 0, count: lk)
            for j in 0..<lk {
                var dot = 0.0
                for t in 0..<d { dot += Double(qa[(bi * lq + i) * heads * d + h * d + t]) * Double(ka[(bi * lk + j) * heads * d + h * d + t]) }
                s[j] = Double(Float(dot)) * alpha
            }
            let m = s.max()!
            let p = s.map { Double(rounded(Float(exp($0 - m)))) }
            let sum = p.reduce(0, +)
            for c in 0..<dv {
                var acc = 0.0
                for j in 0..<lk { acc += p[j] * Double(va[(bi * lk + j) * heads * dv + h * dv + c]) }
                out[(bi * lq + i) * heads * dv + h * dv + c] = Float(acc / sum)
            }
        }}}
        return out
    }

    func testAgainstNaiveLoopsAndFP32() throws {
        try XCTSkipUnless(BF16Attention.supported && ComputePrecision.bf16Supported, "this CPU has no AVX512-BF16")
        var rng = TestRNG(23)
        for (b, lq, lk, heads, d, dv) in [(2, 13, 70, 3, 5, 21), (1, 100, 300, 2, 40, 40), (1, 7, 64, 1, 160, 160), (2, 9, 77, 2, 64, 80), (1, 5, 40, 1, 512, 512)] {
            let q = rng.tensor([b, lq, heads * d], scale: 2), k = rng.tensor([b, lk, heads * d], scale: 2)
            let v = rng.tensor([b, lk, heads * dv])
            XCTAssertTrue(ComputePrecision.with(.bf16) { BF16Attention.takes(causal: false, headWidth: d) })
            let y = ComputePrecision.with(.bf16) { attention(q: q, k: k, v: v, heads: heads) }.array
            let fp32 = attention(q: q, k: k, v: v, heads: heads).array
            let reference = naive(q: q, k: k, v: v, heads: heads)
            let toNaive = relativeError(y, reference), toFP32 = relativeError(y, fp32)
            print("bf16 attention \(b)×\(lq)×\(lk), \(heads) heads of \(d)/\(dv): against naive bf16 loops \(toNaive), against fp32 \(toFP32)")
            // Not exact: a numerator within float rounding of a bf16 tie may round the other way
            // (2⁻⁸ of its weight), more often the longer the dot products.
            XCTAssertLessThan(toNaive, 1e-3)
            XCTAssertLessThan(toFP32, 1e-2)
            XCTAssertGreaterThan(toFP32, 0, "the bf16 kernel should have run")
        }
        // Causal attention (the text encoder's) stays fp32.
        XCTAssertFalse(ComputePrecision.with(.bf16) { BF16Attention.takes(causal: true, headWidth: 64) })
    }
}

// Every op against a naive loop on random inputs (relative error ≤ 1e-5).
import XCTest
@testable import LDMCore

final class OpsTests: XCTestCase {
    func testLinearMatchesNaiveLoop() {
        var rng = TestRNG(1)
        let x = rng.tensor([2, 3, 7]), w = rng.tensor([5, 7]), b = rng.tensor([5])
        let y = linear(x, weight: w, bias: b)
        var ref = [Float]()
        for r in 0..<6 { for o in 0..<5 {
            var s = Double(b.data[o])
            for i in 0..<7 { s += Double(x.data[r * 7 + i]) * Double(w.data[o * 7 + i]) }
            ref.append(Float(s))
        } }
        XCTAssertEqual(y.shape, [2, 3, 5])
        assertClose(y, ref)
    }

    /// Products large enough to be split into bands over the cores (both directions, every
    /// transpose, sizes that are not multiples of the band alignment, β accumulation, padded leading
    /// dimensions), and the same product inside parallel work, where it runs unsplit.
    func testGemmInBandsMatchesNaiveLoop() {
        var rng = TestRNG(41)
        for (m, n, k) in [(37, 301, 61), (290, 45, 53), (3, 5, 2)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 5
                let a = rng.tensor([(ta ? k : m) * lda]), b = rng.tensor([(tb ? n : k) * ldb])
                let c0 = rng.tensor([m * ldc])
                let alpha: Float = 0.75, beta: Float = 0.5
                var ref = c0.array
                for i in 0..<m { for j in 0..<n {
                    var s = 0.0
                    for p in 0..<k {
                        s += Double(ta ? a.data[p * lda + i] : a.data[i * lda + p])
                            * Double(tb ? b.data[j * ldb + p] : b.data[p * ldb + j])
                    }
                    ref[i * ldc + j] = Float(Double(alpha) * s + Double(beta) * Double(c0.data[i * ldc + j]))
                } }
                if m * n * k >= BLAS.splitThreshold && Parallel.threadCount > 1 {
                    XCTAssertGreaterThan(BLAS.bands(m: m, n: n, k: k), 1, "\(m)×\(n)×\(k) is split")
                }
                for inside in [false, true] {
                    let c = Tensor(shape: c0.shape, c0.array)
                    let run = {
                        BLAS.gemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha, a: a.data, lda: lda,
                                  b: b.data, ldb: ldb, beta: beta, c: c.data, ldc: ldc)
                    }
                    if inside {
                        Parallel.forEach(2, cost: Parallel.minimumParallelWork) { i in if i == 0 { run() } }
                    } else {
                        run()
                    }
                    assertClose(c, ref)
                }
            }
        }
    }

    func naiveConv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, stride: Int, padding: Int) -> [Float] {
        let n = x.shape[0], c = x.shape[1], h = x.shape[2], wd = x.shape[3]
        let o = w.shape[0], kh = w.shape[2], kw = w.shape[3]
        let oh = (h + 2 * padding - kh) / stride + 1, ow = (wd + 2 * padding - kw) / stride + 1
        var out = [Float]()
        for ni in 0..<n { for oc in 0..<o { for oy in 0..<oh { for ox in 0..<ow {
            var s = Double(b?.data[oc] ?? 0)
            for ic in 0..<c { for ky in 0..<kh { for kx in 0..<kw {
                let iy = oy * stride - padding + ky, ix = ox * stride - padding + kx
                if iy >= 0 && iy < h && ix >= 0 && ix < wd {
                    s += Double(x[ni, ic, iy, ix]) * Double(w[oc, ic, ky, kx])
                }
            } } }
            out.append(Float(s))
        } } } }
        return out
    }

    func testConv2dMatchesNaiveLoop() {
        var rng = TestRNG(2)
        for (k, s, p, h, w) in [(3, 1, 1, 9, 7), (3, 2, 0, 9, 8), (1, 1, 0, 5, 6), (3, 2, 1, 8, 8), (4, 1, 2, 6, 5), (3, 1, 0, 2, 2)] {
            let x = rng.tensor([2, 3, h, w]), wt = rng.tensor([4, 3, k, k]), b = rng.tensor([4])
            let y = conv2d(x, weight: wt, bias: b, stride: s, padding: p)
            assertClose(y, naiveConv(x, wt, b, stride: s, padding: p), 1e-5, "k\(k) s\(s) p\(p)")
        }
    }

    func testWinogradConvolutionMatchesNaiveLoop() {
        for tile in [WinogradTile.f2x2, .f4x4] {
            var rng = TestRNG(12)
            // Sizes that leave partial tiles at the right and bottom edges of either tile, one pixel,
            // and bands of a few tiles.
            for (h, w, band) in [(9, 7, 0), (8, 8, 0), (1, 1, 0), (2, 3, 0), (6, 5, 0), (13, 11, tile.points * 6 * 5)] {
                let x = rng.tensor([2, 5, h, w]), wt = rng.tensor([6, 5, 3, 3]), b = rng.tensor([6])
                let saved = maxWinogradFloats
                if band > 0 { maxWinogradFloats = band }
                let y = conv2dWinograd(x, transformedWeight: tile.filters(wt), bias: b)
                maxWinogradFloats = saved
                assertClose(y, naiveConv(x, wt, b, stride: 1, padding: 1), 1e-5, "\(tile) \(h)×\(w)")
            }
            let x = rng.tensor([1, 4, 6, 6]), wt = rng.tensor([3, 4, 3, 3])
            assertClose(conv2dWinograd(x, transformedWeight: tile.filters(wt), bias: nil),
                        naiveConv(x, wt, nil, stride: 1, padding: 1), 1e-5, "\(tile) no bias")
        }
        // Many channels: F(4×4)'s larger transform constants stay within float rounding of a long sum.
        var rng = TestRNG(14)
        let x = rng.tensor([1, 96, 10, 10]), wt = rng.tensor([8, 96, 3, 3])
        assertClose(conv2dWinograd(x, transformedWeight: winogradWeights4(wt), bias: nil),
                    naiveConv(x, wt, nil, stride: 1, padding: 1), 1e-5, "96 channels")
    }

    func testWinogradFromTheWeightMatchesNaiveLoop() {
        // Filters transformed inside the convolution: in one group, in several (uneven: 37 output
        // channels in groups of 16), and all at once when the tiles take several bands.
        var rng = TestRNG(15)
        for tile in [WinogradTile.f2x2, .f4x4] {
            let x = rng.tensor([2, 6, 11, 9]), wt = rng.tensor([37, 6, 3, 3]), b = rng.tensor([37])
            let expected = naiveConv(x, wt, b, stride: 1, padding: 1)
            let savedGroup = maxFilterGroupFloats, savedBand = maxWinogradFloats
            defer { maxFilterGroupFloats = savedGroup; maxWinogradFloats = savedBand }
            for (group, band) in [(savedGroup, savedBand), (tile.points * 16 * 6, savedBand),
                                  (tile.points * 16 * 6, tile.points * 37 * 4)] {
                maxFilterGroupFloats = group
                maxWinogradFloats = band
                assertClose(conv2dWinograd(x, weight: wt, tile: tile, bias: b), expected, 1e-5,
                            "\(tile) groups of \(group) floats, bands of \(band)")
            }
        }
    }

    func testWinogradTileChoice() {
        func tile(_ c: Int, _ hw: Int, batch: Int = 2, kept: Bool) -> WinogradTile? {
            winogradTile(inChannels: c, outChannels: c, kernel: 3, stride: 1, padding: 1, batch: batch,
                         height: hw, width: hw, filtersKept: kept)
        }
        XCTAssertEqual(tile(320, 64, kept: true), .f4x4)
        XCTAssertEqual(tile(1280, 16, kept: true), .f4x4)  // 32 tiles of 4×4
        XCTAssertEqual(tile(1280, 8, kept: true), .f2x2)   // 8 tiles of 4×4, 32 of 2×2
        XCTAssertNil(tile(320, 4, kept: true))             // 8 tiles of 2×2
        XCTAssertNil(tile(16, 64, kept: true))             // too few channels
        XCTAssertNil(winogradTile(inChannels: 64, outChannels: 64, kernel: 3, stride: 2, padding: 1, batch: 2,
                                  height: 64, width: 64))
        // Filters transformed on every call: more tiles needed to pay for the transform.
        XCTAssertEqual(tile(640, 32, kept: false), .f2x2)  // 128 tiles of 4×4
        XCTAssertEqual(tile(640, 40, kept: false), .f4x4)  // 200 tiles of 4×4
        XCTAssertEqual(tile(1280, 16, kept: false), .f2x2) // 32 tiles of 4×4, 128 of 2×2
        XCTAssertNil(tile(1280, 8, kept: false))           // 32 tiles of 2×2
        XCTAssertEqual(tile(128, 16, batch: 32, kept: false), .f4x4)
        XCTAssertNil(tile(1280, 4, kept: false))
    }

    func testContentFingerprintSeesEveryElement() {
        var rng = TestRNG(13)
        let t = rng.tensor([1000])
        let f = contentFingerprint(t)
        for i in [0, 1, 517, 999] {
            let saved = t.data[i]
            t.data[i] = saved.nextUp
            XCTAssertNotEqual(contentFingerprint(t), f, "element \(i)")
            t.data[i] = saved
        }
        XCTAssertEqual(contentFingerprint(t), f)
        let a = t.data[3]; t.data[3] = t.data[4]; t.data[4] = a
        XCTAssertNotEqual(contentFingerprint(t), f, "two elements swapped")
    }

    func testConv2dInBandsMatchesWholeImage() {
        // Shrink the column buffer so the image is processed a few output rows at a time.
        var rng = TestRNG(3)
        let x = rng.tensor([1, 5, 13, 11]), wt = rng.tensor([6, 5, 3, 3]), b = rng.tensor([6])
        let saved = maxColumnFloats
        maxColumnFloats = 45 * 11 * 3
        let y = conv2d(x, weight: wt, bias: b, stride: 1, padding: 1)
        maxColumnFloats = saved
        assertClose(y, naiveConv(x, wt, b, stride: 1, padding: 1))
    }

    func testConv2dGroupsOfImagesMatchNaiveLoop() {
        // A column budget of two images: batches of 5 go through GEMMs over 2, 2 and 1 images.
        var rng = TestRNG(31)
        for (k, s, p) in [(3, 1, 1), (1, 1, 0), (3, 2, 1)] {
            let x = rng.tensor([5, 3, 6, 7]), wt = rng.tensor([4, 3, k, k]), b = rng.tensor([4])
            let oh = (6 + 2 * p - k) / s + 1, ow = (7 + 2 * p - k) / s + 1
            let saved = maxGroupColumnFloats
            maxGroupColumnFloats = 2 * 3 * k * k * oh * ow
            let y = conv2d(x, weight: wt, bias: b, stride: s, padding: p)
            let dy = rng.tensor(y.shape)
            let dw = Tensor(zeros: wt.shape), db = Tensor(zeros: b.shape)
            let dx = conv2dBackward(dy, x: x, weight: wt, stride: s, padding: p, weightGrad: dw, biasGrad: db)!
            maxGroupColumnFloats = 1 << 30
            let dw1 = Tensor(zeros: wt.shape), db1 = Tensor(zeros: b.shape)
            let dx1 = conv2dBackward(dy, x: x, weight: wt, stride: s, padding: p, weightGrad: dw1, biasGrad: db1)!
            maxGroupColumnFloats = saved
            assertClose(y, naiveConv(x, wt, b, stride: s, padding: p), 1e-5, "k\(k) s\(s) p\(p)")
            assertClose(dx, dx1.array, 1e-5, "dx k\(k)")
            assertClose(dw, dw1.array, 1e-5, "dw k\(k)")
        }
    }

    func testGroupNormMatchesNaiveLoop() {
        var rng = TestRNG(4)
        let x = rng.tensor([2, 6, 3, 4]), g = rng.tensor([6]), b = rng.tensor([6])
        for fuse in [false, true] {
            let y = groupNorm(x, groups: 3, weight: g, bias: b, eps: 1e-5, fuseSiLU: fuse)
            var ref = [Float](repeating: 0, count: x.count)
            for n in 0..<2 { for grp in 0..<3 {
                var vals = [Double]()
                for c in grp * 2..<grp * 2 + 2 { for i in 0..<12 { vals.append(Double(x.data[(n * 6 + c) * 12 + i])) } }
                let m = vals.reduce(0, +) / 24
                let v = vals.map { ($0 - m) * ($0 - m) }.reduce(0, +) / 24
                for c in grp * 2..<grp * 2 + 2 { for i in 0..<12 {
                    let idx = (n * 6 + c) * 12 + i
                    var t = (Double(x.data[idx]) - m) / (v + 1e-5).squareRoot() * Double(g.data[c]) + Double(b.data[c])
                    if fuse { t = t / (1 + exp(-t)) }
                    ref[idx] = Float(t)
                } }
            } }
            assertClose(y, ref)
        }
    }

    func testGroupNormWithGivenStatisticsAndWindowSums() {
        var rng = TestRNG(12)
        let x = rng.tensor([2, 6, 5, 7]), g = rng.tensor([6]), b = rng.tensor([6])
        // Given the statistics it computes itself, group norm gives the same output.
        var cache = NormCache()
        let y = groupNorm(x, groups: 3, weight: g, bias: b, eps: 1e-5, cache: &cache)
        XCTAssertEqual(groupNorm(x, groups: 3, weight: g, bias: b, eps: 1e-5, statistics: cache).array, y.array)
        // Other statistics: (x − μ) · rstd · γ + β with them, then SiLU.
        let given = NormCache(mean: (0..<6).map { Float($0) * 0.1 - 0.2 }, rstd: (0..<6).map { 0.5 + Float($0) * 0.25 })
        let z = groupNorm(x, groups: 3, weight: g, bias: b, eps: 1e-5, fuseSiLU: true, statistics: given)
        for n in 0..<2 { for c in 0..<6 { for i in 0..<35 {
            let ng = n * 3 + c / 2
            let t = (x.data[(n * 6 + c) * 35 + i] - given.mean[ng]) * given.rstd[ng] * g.data[c] + b.data[c]
            XCTAssertEqual(z.data[(n * 6 + c) * 35 + i], t / (1 + expf(-t)), accuracy: 1e-5)
        } } }
        // Window sums against a loop.
        let (sums, squares) = groupNormSums(x, groups: 3, rows: 1..<4, columns: 2..<7)
        for n in 0..<2 { for grp in 0..<3 {
            var s = 0.0, q = 0.0
            for c in grp * 2..<grp * 2 + 2 { for r in 1..<4 { for col in 2..<7 { let v = Double(x[n, c, r, col]); s += v; q += v * v } } }
            XCTAssertEqual(sums[n * 3 + grp], s, accuracy: 1e-9)
            XCTAssertEqual(squares[n * 3 + grp], q, accuracy: 1e-9)
        } }
    }

    func testLayerNormMatchesNaiveLoop() {
        var rng = TestRNG(5)
        let x = rng.tensor([3, 4, 10], scale: 3), g = rng.tensor([10]), b = rng.tensor([10])
        let y = layerNorm(x, weight: g, bias: b, eps: 1e-5)
        var ref = [Float]()
        for r in 0..<12 {
            let row = (0..<10).map { Double(x.data[r * 10 + $0]) }
            let m = row.reduce(0, +) / 10
            let v = row.map { ($0 - m) * ($0 - m) }.reduce(0, +) / 10
            for j in 0..<10 { ref.append(Float((row[j] - m) / (v + 1e-5).squareRoot() * Double(g.data[j]) + Double(b.data[j]))) }
        }
        assertClose(y, ref)
    }

    func testGEGLUIsHiddenTimesGELUOfGate() {
        var rng = TestRNG(9)
        let h = rng.tensor([2, 3, 2 * 37], scale: 3)
        let parts = split(h, sizes: [37, 37], dim: 2)
        let y = geglu(h, inner: 37)
        XCTAssertEqual(y.shape, [2, 3, 37])
        XCTAssertEqual(y.array, multiply(parts[0], gelu(parts[1])).array)
        let a = h.array
        for (i, v) in y.array.enumerated() {
            let row = i / 37, j = i % 37, hidden = Double(a[row * 74 + j]), gate = Double(a[row * 74 + 37 + j])
            XCTAssertEqual(Double(v), hidden * 0.5 * gate * (1 + erf(gate / 2.0.squareRoot())), accuracy: 1e-5 * (1 + abs(hidden * gate)))
        }
    }

    func testActivationsMatchFormulas() {
        var rng = TestRNG(6)
        let x = rng.tensor([1000], scale: 5)
        let xs = x.array.map(Double.init)
        assertClose(silu(x), xs.map { Float($0 / (1 + exp(-$0))) })
        assertClose(gelu(x), xs.map { Float(0.5 * $0 * (1 + erf($0 / 2.0.squareRoot()))) })
        assertClose(geluTanh(x), xs.map { Float(0.5 * $0 * (1 + tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0)))) })
        assertClose(quickGelu(x), xs.map { Float($0 / (1 + exp(-1.702 * $0))) })
    }

    func testSoftmaxMatchesNaiveLoop() {
        var rng = TestRNG(7)
        let x = rng.tensor([5, 9], scale: 4)
        var ref = [Float]()
        for r in 0..<5 {
            let row = (0..<9).map { Double(x.data[r * 9 + $0]) }
            let m = row.max()!
            let e = row.map { exp($0 - m) }
            let s = e.reduce(0, +)
            ref += e.map { Float($0 / s) }
        }
        assertClose(softmax(x), ref)
    }

    func naiveAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, heads: Int, causal: Bool) -> [Float] {
        let b = q.shape[0], lq = q.shape[1], lk = k.shape[1], w = q.shape[2], d = w / heads
        var out = [Float](repeating: 0, count: b * lq * w)
        for bi in 0..<b { for h in 0..<heads { for i in 0..<lq {
            var s = [Double](repeating: 0, count: lk)
            for j in 0..<lk {
                var dot = 0.0
                for e in 0..<d { dot += Double(q[bi, i, h * d + e]) * Double(k[bi, j, h * d + e]) }
                s[j] = causal && j > i ? -Double.infinity : dot / Double(d).squareRoot()
            }
            let m = s.max()!
            let ex = s.map { exp($0 - m) }
            let sum = ex.reduce(0, +)
            for e in 0..<d {
                var acc = 0.0
                for j in 0..<lk { acc += ex[j] / sum * Double(v[bi, j, h * d + e]) }
                out[(bi * lq + i) * w + h * d + e] = Float(acc)
            }
        } } }
        return out
    }

    func testAttentionMatchesNaiveLoop() {
        var rng = TestRNG(8)
        let q = rng.tensor([2, 11, 12]), k = rng.tensor([2, 7, 12]), v = rng.tensor([2, 7, 12])
        assertClose(attention(q: q, k: k, v: v, heads: 3), naiveAttention(q, k, v, heads: 3, causal: false))
        let kk = rng.tensor([2, 11, 12]), vv = rng.tensor([2, 11, 12])
        assertClose(attention(q: q, k: kk, v: vv, heads: 2, causal: true), naiveAttention(q, kk, vv, heads: 2, causal: true))
        // Chunked: at most 3 query rows at a time.
        let saved = maxScoreFloats
        maxScoreFloats = 3 * 7
        let chunked = attention(q: q, k: k, v: v, heads: 3)
        maxScoreFloats = saved
        assertClose(chunked, naiveAttention(q, k, v, heads: 3, causal: false))
    }

    func testBroadcastAddMul() {
        var rng = TestRNG(9)
        let a = rng.tensor([2, 3, 4]), b = rng.tensor([3, 1]), c = rng.tensor([4])
        let y = add(a, b), z = multiply(a, c)
        var refY = [Float](), refZ = [Float]()
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 {
            refY.append(a[i, j, k] + b[j, 0])
            refZ.append(a[i, j, k] * c[k])
        } } }
        assertClose(y, refY)
        assertClose(z, refZ)
        XCTAssertEqual(reduceBroadcast(Tensor(shape: [2, 3, 4], repeating: 1), to: [3, 1]).array, [8, 8, 8])
    }

    func testUpsampleConcatSplitAndTranspose() {
        var rng = TestRNG(10)
        let x = rng.tensor([2, 3, 4, 5])
        let up = upsampleNearest2x(x)
        for n in 0..<2 { for c in 0..<3 { for yy in 0..<8 { for xx in 0..<10 {
            XCTAssertEqual(up[n, c, yy, xx], x[n, c, yy / 2, xx / 2])
        } } } }
        let y = rng.tensor([2, 2, 4, 5])
        let cat = concat([x, y], dim: 1)
        XCTAssertEqual(cat.shape, [2, 5, 4, 5])
        XCTAssertEqual(cat[1, 4, 3, 2], y[1, 1, 3, 2])
        XCTAssertEqual(cat[1, 2, 3, 2], x[1, 2, 3, 2])
        let parts = split(cat, sizes: [3, 2], dim: 1)
        XCTAssertEqual(parts[0].array, x.array)
        XCTAssertEqual(parts[1].array, y.array)
        let tokens = imageToTokens(x)
        XCTAssertEqual(tokens.shape, [2, 20, 3])
        XCTAssertEqual(tokens[1, 7, 2], x[1, 2, 1, 2])
        XCTAssertEqual(tokensToImage(tokens, height: 4, width: 5).array, x.array)
        let window = crop(x, rows: 1..<3, columns: 2..<5)
        XCTAssertEqual(window.shape, [2, 3, 2, 3])
        XCTAssertEqual(window[1, 2, 1, 0], x[1, 2, 2, 2])
        let canvas = Tensor(zeros: [2, 3, 6, 6])
        paste(x, rows: 1..<3, columns: 2..<5, into: canvas, top: 4, left: 0)
        XCTAssertEqual(canvas[1, 2, 5, 0], x[1, 2, 2, 2])
        XCTAssertEqual(canvas[0, 1, 4, 2], x[0, 1, 1, 4])
        XCTAssertEqual(canvas.array.filter { $0 != 0 }.count, window.array.filter { $0 != 0 }.count)
    }

    func testFastExpMatchesLibm() {
        var worst: Double = 0
        var x: Float = -87
        while x < 88 {
            let ref = exp(Double(x))
            worst = max(worst, abs(Double(fastExp(x)) - ref) / ref)
            x += 0.00137
        }
        XCTAssertLessThan(worst, 3e-7)
        XCTAssertEqual(fastExp(-1000), fastExp(-87.3))
        XCTAssertTrue(fastExp(1000).isFinite)
    }

    func testFastErfMatchesLibm() {
        var worst: Double = 0
        var x: Float = -6
        while x < 6 {
            worst = max(worst, abs(Double(fastErf(x)) - erf(Double(x))))
            x += 0.000731
        }
        XCTAssertLessThan(worst, 1e-6)
        XCTAssertEqual(fastErf(0), 0, accuracy: 1e-7)
        XCTAssertEqual(fastErf(-100), -1, accuracy: 1e-7)
    }

    func testMeanAndVariance() {
        let x = Tensor(shape: [4], [1, 2, 3, 6])
        XCTAssertEqual(mean(x), 3)
        XCTAssertEqual(variance(x), 3.5)
    }
}

/// Large blocks freed by tensors are reused for tensors of the same size; a zero-filled tensor on
/// a reused block is still all zeros, and the cache never holds more than its capacity.
final class BlockCacheTests: XCTestCase {
    func testReusedBlocksAreZeroedWhenAskedAndCapped() {
        let count = (BlockCache.minimumBytes / MemoryLayout<Float>.stride) * 3 + 5
        var first: Tensor? = Tensor(uninitialized: [count])
        let address = first!.data
        for i in 0..<count { first!.data[i] = 7 }
        first = nil
        let zeros = Tensor(zeros: [count])
        XCTAssertEqual(zeros.data, address, "the freed block of the same size is reused")
        XCTAssertTrue((0..<count).allSatisfy { zeros.data[$0] == 0 }, "a reused block is cleared for zeros")

        // Scratch memory goes through the same cache.
        let s = allocateScratch(count)
        freeScratch(s, count)
        XCTAssertEqual(allocateScratch(count), s)
        freeScratch(s, count)

        // Many distinct large sizes: the cache keeps at most its capacity.
        let big = BlockCache.capacityBytes / 4 / MemoryLayout<Float>.stride
        for i in 0..<8 { _ = Tensor(uninitialized: [big + i]) }
        XCTAssertLessThanOrEqual(BlockCache.keptBytes, BlockCache.capacityBytes)
        XCTAssertGreaterThan(BlockCache.keptBytes, 0)
        BlockCache.drain()
        XCTAssertEqual(BlockCache.keptBytes, 0)
    }
}

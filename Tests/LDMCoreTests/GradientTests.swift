// Every backward against central finite differences of L = Σ r ⊙ f(x).
import XCTest
@testable import LDMCore

final class GradientTests: XCTestCase {
    func testLinearBackward() {
        var rng = TestRNG(11)
        let x = rng.tensor([3, 5]), w = rng.tensor([4, 5]), b = rng.tensor([4]), r = rng.tensor([3, 4])
        let dw = Tensor(zeros: w.shape), db = Tensor(zeros: b.shape)
        let dx = linearBackward(r, x: x, weight: w, weightGrad: dw, biasGrad: db)!
        let loss = { project(linear(x, weight: w, bias: b), r) }
        checkGradient(x, analytic: dx, loss)
        checkGradient(w, analytic: dw, loss)
        checkGradient(b, analytic: db, loss)
    }

    func testConv2dBackward() {
        var rng = TestRNG(12)
        for (k, s, p) in [(3, 1, 1), (3, 2, 1), (1, 1, 0)] {
            let x = rng.tensor([2, 3, 6, 5]), w = rng.tensor([4, 3, k, k]), b = rng.tensor([4])
            let y = conv2d(x, weight: w, bias: b, stride: s, padding: p)
            let r = rng.tensor(y.shape)
            let dw = Tensor(zeros: w.shape), db = Tensor(zeros: b.shape)
            let dx = conv2dBackward(r, x: x, weight: w, stride: s, padding: p, weightGrad: dw, biasGrad: db)!
            let loss = { project(conv2d(x, weight: w, bias: b, stride: s, padding: p), r) }
            checkGradient(x, analytic: dx, loss)
            checkGradient(w, analytic: dw, loss)
            checkGradient(b, analytic: db, loss)
        }
    }

    func testGroupNormBackward() {
        var rng = TestRNG(13)
        let x = rng.tensor([2, 4, 3, 3], scale: 2), g = rng.tensor([4]), b = rng.tensor([4]), r = rng.tensor([2, 4, 3, 3])
        var cache = NormCache(mean: [], rstd: [])
        _ = groupNorm(x, groups: 2, weight: g, bias: b, eps: 1e-5, cache: &cache)
        let dg = Tensor(zeros: [4]), dbeta = Tensor(zeros: [4])
        let dx = groupNormBackward(r, x: x, groups: 2, weight: g, cache: cache, weightGrad: dg, biasGrad: dbeta)
        let loss = { project(groupNorm(x, groups: 2, weight: g, bias: b, eps: 1e-5), r) }
        checkGradient(x, analytic: dx, eps: 1e-3, loss)
        checkGradient(g, analytic: dg, loss)
        checkGradient(b, analytic: dbeta, loss)
    }

    func testLayerNormBackward() {
        var rng = TestRNG(14)
        let x = rng.tensor([3, 6], scale: 2), g = rng.tensor([6]), b = rng.tensor([6]), r = rng.tensor([3, 6])
        var cache = NormCache(mean: [], rstd: [])
        _ = layerNorm(x, weight: g, bias: b, eps: 1e-5, cache: &cache)
        let dg = Tensor(zeros: [6]), db = Tensor(zeros: [6])
        let dx = layerNormBackward(r, x: x, weight: g, cache: cache, weightGrad: dg, biasGrad: db)
        let loss = { project(layerNorm(x, weight: g, bias: b, eps: 1e-5), r) }
        checkGradient(x, analytic: dx, eps: 1e-3, loss)
        checkGradient(g, analytic: dg, loss)
        checkGradient(b, analytic: db, loss)
    }

    func testActivationBackwards() {
        var rng = TestRNG(15)
        let x = rng.tensor([40], scale: 3), r = rng.tensor([40])
        let cases: [((Tensor) -> Tensor, (Tensor, Tensor) -> Tensor)] = [
            (silu, siluBackward), (gelu, geluBackward), (geluTanh, geluTanhBackward), (quickGelu, quickGeluBackward),
        ]
        for (f, df) in cases {
            checkGradient(x, analytic: df(r, x), eps: 1e-3) { project(f(x), r) }
        }
    }

    func testSoftmaxBackward() {
        var rng = TestRNG(16)
        let x = rng.tensor([3, 7], scale: 2), r = rng.tensor([3, 7])
        let dx = softmaxBackward(r, y: softmax(x))
        checkGradient(x, analytic: dx, eps: 1e-3) { project(softmax(x), r) }
    }

    func testAttentionBackward() {
        var rng = TestRNG(17)
        // The last case recomputes the probabilities two query rows at a time.
        for (causal, scoreFloats) in [(false, maxScoreFloats), (true, maxScoreFloats), (true, 10)] {
            let q = rng.tensor([2, 5, 8]), k = rng.tensor([2, 5, 8]), v = rng.tensor([2, 5, 8]), r = rng.tensor([2, 5, 8])
            let saved = maxScoreFloats
            maxScoreFloats = scoreFloats
            let (dq, dk, dv) = attentionBackward(r, q: q, k: k, v: v, heads: 2, causal: causal)
            maxScoreFloats = saved
            let loss = { project(attention(q: q, k: k, v: v, heads: 2, causal: causal), r) }
            checkGradient(q, analytic: dq, eps: 1e-3, loss)
            checkGradient(k, analytic: dk, eps: 1e-3, loss)
            checkGradient(v, analytic: dv, eps: 1e-3, loss)
        }
    }

    /// Cross-attention: fewer keys than queries (and more), at the U-Net's head layout (4 heads of
    /// 32) and with the probabilities recomputed in chunks.
    func testCrossAttentionBackward() {
        var rng = TestRNG(21)
        for (lq, lk, dim, heads, scoreFloats) in [(6, 3, 8, 2, maxScoreFloats), (3, 7, 8, 2, maxScoreFloats),
                                                  (64, 32, 128, 4, maxScoreFloats), (64, 32, 128, 4, 200)] {
            let q = rng.tensor([2, lq, dim]), k = rng.tensor([2, lk, dim]), v = rng.tensor([2, lk, dim])
            let r = rng.tensor([2, lq, dim])
            let saved = maxScoreFloats
            maxScoreFloats = scoreFloats
            let (dq, dk, dv) = attentionBackward(r, q: q, k: k, v: v, heads: heads, causal: false)
            maxScoreFloats = saved
            let loss = { project(attention(q: q, k: k, v: v, heads: heads, causal: false), r) }
            checkGradient(q, analytic: dq, eps: 1e-3, loss)
            checkGradient(k, analytic: dk, eps: 1e-3, loss)
            checkGradient(v, analytic: dv, eps: 1e-3, loss)
        }
    }

    func testUpsampleBackward() {
        var rng = TestRNG(18)
        let x = rng.tensor([1, 2, 3, 3]), r = rng.tensor([1, 2, 6, 6])
        checkGradient(x, analytic: upsampleNearest2xBackward(r)) { project(upsampleNearest2x(x), r) }
    }
}

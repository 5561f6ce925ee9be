// `ldm bench ops`: GFLOP/s of the kernels the models spend their time in, with sgemm as the ceiling.

import Foundation
import LDMCore

/// Runs the op benchmarks and returns one row per kernel (figures: gflops, seconds, gflop).
public func benchmarkOps(quick: Bool = false) -> [BenchRow] {
    var rows: [BenchRow] = []
    var rng = SwiftRandomSource(seed: 0)
    func random(_ shape: [Int]) -> Tensor { Tensor(shape: shape, rng.normal(count: shape.reduce(1, *))) }
    let repeats = quick ? 1 : 3

    // sgemm: the ceiling.
    let n = quick ? 512 : 2048
    let a = random([n, n]), b = random([n, n]), c = Tensor(zeros: [n, n])
    let tg = bestTime(repeats: repeats) {
        BLAS.gemm(m: n, n: n, k: n, a: a.data, lda: n, b: b.data, ldb: n, c: c.data, ldc: n)
    }
    let fg = 2 * Double(n * n * n) / 1e9
    rows.append(BenchRow(name: "sgemm \(n)×\(n)×\(n)", figures: ["gflops": fg / tg, "seconds": tg, "gflop": fg]))

    // 3×3 convolutions at Stable Diffusion shapes (batch 2, as with classifier-free guidance) and
    // at the shipped model's training shapes (16×16 latents, batch 32).
    let convs: [(Int, Int, Int)] = quick ? [(64, 32, 2)]
        : [(320, 64, 2), (640, 32, 2), (1280, 16, 2), (1280, 8, 2), (64, 16, 32), (128, 8, 32), (128, 4, 32)]
    for (ch, hw, batch) in convs {
        let x = random([batch, ch, hw, hw]), w = random([ch, ch, 3, 3]), bias = random([ch])
        let t = bestTime(repeats: repeats) { _ = conv2d(x, weight: w, bias: bias, stride: 1, padding: 1) }
        let f = 2 * Double(batch * ch * hw * hw * ch * 9) / 1e9
        rows.append(BenchRow(name: "conv2d 3×3 \(ch)→\(ch) at \(hw)×\(hw), batch \(batch)",
                             figures: ["gflops": f / t, "seconds": t, "gflop": f]))
        for tile in [WinogradTile.f2x2, .f4x4] {
            let name = tile == .f2x2 ? "F(2×2,3×3)" : "F(4×4,3×3)"
            let kept = tile.filters(w)
            let tk = bestTime(repeats: repeats) { _ = conv2dWinograd(x, transformedWeight: kept, bias: bias) }
            let tt = bestTime(repeats: repeats) { _ = tile.filters(w) }
            rows.append(BenchRow(name: "  same by Winograd \(name)", figures: ["gflops": f / tk, "seconds": tk, "gflop": f],
                                 notes: "GFLOP/s of the direct convolution's count; filters kept"))
            rows.append(BenchRow(name: "    filter transform", figures: ["seconds": tt],
                                 notes: "paid on every call when filters are not kept"))
        }
    }

    // Attention: 4096 tokens (64×64 latent), 8 heads of 40 (SD1.x's first level), batch 2.
    let tokens = quick ? 256 : 4096, heads = 8, dh = 40
    let q = random([2, tokens, heads * dh]), k = random([2, tokens, heads * dh]), v = random([2, tokens, heads * dh])
    let ta = bestTime(repeats: repeats) { _ = attention(q: q, k: k, v: v, heads: heads) }
    let fa = 2 * 2 * Double(2 * heads * tokens * tokens * dh) / 1e9
    rows.append(BenchRow(name: "attention \(tokens) tokens, \(heads)×\(dh), batch 2",
                         figures: ["gflops": fa / ta, "seconds": ta, "gflop": fa],
                         notes: "QKᵀ and PV products counted; softmax not"))
    // Its parts, as each core runs them: one job's products and softmax, on both cores at once.
    let jobRows = max(1, min(tokens, scoreBlockFloats / tokens)), jobs = 8
    let width = heads * dh
    func perCore(_ body: @escaping (UnsafeMutablePointer<Float>) -> Void) -> Double {
        bestTime(repeats: repeats) {
            Parallel.forEach(2, cost: Parallel.minimumParallelWork) { _ in
                let scores = UnsafeMutablePointer<Float>.allocate(capacity: jobRows * tokens)
                for i in 0..<jobRows * tokens { scores[i] = Float(i % 97) * 0.01 }
                for _ in 0..<jobs { body(scores) }
                scores.deallocate()
            }
        }
    }
    let fj = 2 * 2 * Double(jobs * jobRows * tokens * dh) / 1e9
    let tq = perCore { s in
        BLAS.gemm(transB: true, m: jobRows, n: tokens, k: dh, a: q.data, lda: width, b: k.data, ldb: width, c: s, ldc: tokens)
    }
    rows.append(BenchRow(name: "  QKᵀ, \(jobRows)×\(tokens)×\(dh) per job", figures: ["gflops": fj / tq, "seconds": tq, "gflop": fj],
                         notes: "\(jobs) jobs on each core"))
    let tp = perCore { s in
        BLAS.gemm(m: jobRows, n: dh, k: tokens, a: s, lda: tokens, b: v.data, ldb: width, c: q.data, ldc: width)
    }
    rows.append(BenchRow(name: "  PV, \(jobRows)×\(dh)×\(tokens) per job", figures: ["gflops": fj / tp, "seconds": tp, "gflop": fj],
                         notes: "\(jobs) jobs on each core"))
    let ts = perCore { s in
        for r in 0..<jobRows {
            let row = s + r * tokens
            _ = expShiftedInPlace(row, tokens, shift: rowMaximum(row, tokens))
        }
    }
    rows.append(BenchRow(name: "  softmax, \(jobRows)×\(tokens) per job", figures: ["seconds": ts],
                         notes: String(format: "%.2f ns per score on each core", ts / Double(jobs * jobRows * tokens) * 1e9)))
    let ceiling = rows[0].figures["gflops"]!
    for i in rows.indices { rows[i].figures["of_sgemm"] = rows[i].figures["gflops"]! / ceiling }
    return rows
}

// bf16 attention: the one product of the networks that is not a plain GEMM. With products in bf16
// (`ComputePrecision`), `attention` hands its heads here: Q Kᵀ and P V run on VDPBF16PS with fp32
// accumulation, the scores, softmax statistics and normalisation in fp32 (ldm_bf16.h). oneDNN's
// matmul measured no faster than OpenBLAS' fp32 on attention's products (a reduction over the head
// width of 40–160 for Q Kᵀ, an output that narrow for P V), and a fused kernel keeps each row
// block's scores in the core's cache from the first product through softmax to the second.
// With this file, BLAS.swift and OneDNN.swift, the product layer is the only code that talks to C.

import CBF16Kernels

public enum BF16Attention {
    /// The CPU has the kernel's instructions (AVX512-F/BW/VL and AVX512-BF16).
    public static let supported: Bool = ldm_bf16_supported() != 0

    /// Whether `attention` with these settings runs here: products in bf16, the instructions, no
    /// causal mask (the text encoder's short causal attention stays fp32) and a head width the kernel takes.
    @inline(__always)
    static func takes(causal: Bool, headWidth d: Int) -> Bool {
        ComputePrecision.current == .bf16 && supported && !causal && d <= Int(LDM_BF16_MAX_HEAD_WIDTH)
    }

    /// `attention`'s contract: q [B, Lq, H·d], k [B, Lk, H·d], v [B, Lk, H·dv] → out [B, Lq, H·dv].
    static func attention(q: Tensor, k: Tensor, v: Tensor, heads: Int, alpha: Float, into out: Tensor) {
        let b = q.shape[0], lq = q.shape[1], lk = k.shape[1], width = q.shape[2], vWidth = v.shape[2]
        let d = width / heads, dv = vWidth / heads
        let lkp = (lk + 63) / 64 * 64, dvp = (dv + 15) / 16 * 16, dp = (d + 1) / 2
        let keyWords = dp * lkp, valueWords = lkp / 2 * dvp, pairs = b * heads
        // K and V of every (batch, head), packed once (words as floats: both are 4 bytes).
        let packed = allocateScratch(pairs * (keyWords + valueWords))
        defer { freeScratch(packed, pairs * (keyWords + valueWords)) }
        let words = UnsafeMutableRawPointer(packed).bindMemory(to: UInt32.self, capacity: pairs * (keyWords + valueWords))
        let qd = q.data, kd = k.data, vd = v.data, od = out.data
        Parallel.forEach(pairs, cost: lkp * (d + dv)) { pair in
            let bi = pair / heads, h = pair % heads
            ldm_bf16_pack_keys(kd + bi * lk * width + h * d, lk, d, width, lkp, words + pair * keyWords)
            ldm_bf16_pack_values(vd + bi * lk * vWidth + h * dv, lk, dv, vWidth, lkp, dvp,
                                 words + pairs * keyWords + pair * valueWords)
        }
        // Jobs of (batch, head, block of query rows), shared out over the cores.
        let step = Int(LDM_BF16_QUERY_ROWS)
        let rowsPerJob = min((lq + step - 1) / step * step, 16 * step)
        let blocks = (lq + rowsPerJob - 1) / rowsPerJob
        let scratchFloats = step * lkp + (step * lkp + 1) / 2
        Parallel.forEachChunk(pairs * blocks, cost: Parallel.minimumParallelWork) { range in
            let scratch = allocateScratch(scratchFloats)
            defer { freeScratch(scratch, scratchFloats) }
            let probs = UnsafeMutableRawPointer(scratch + step * lkp).bindMemory(to: UInt16.self, capacity: step * lkp)
            for job in range {
                let block = job % blocks, pair = job / blocks, bi = pair / heads, h = pair % heads
                let q0 = block * rowsPerJob, rows = min(rowsPerJob, lq - q0)
                ldm_bf16_attention(qd + (bi * lq + q0) * width + h * d, rows, d, width,
                                   words + pair * keyWords, lk, lkp, words + pairs * keyWords + pair * valueWords, dv, dvp,
                                   alpha, od + (bi * lq + q0) * vWidth + h * dv, vWidth, scratch, probs)
            }
        }
    }
}

// Timing a network call that is too slow (or too large) to run whole, such as a Stable Diffusion
// sized U-Net on 512×512 pixels (tens of TFLOP per call). Each distinct block of the call (same
// kind, channels and input size) is built alone with random weights and timed once on a tile of
// its input; the times are scaled to the full input and summed over the block's occurrences:
//
//   t(call)  ≈ Σ over distinct blocks  count · t(block)
//   t(block) = t(tile) · (H·W)/(h·w)                       convolutions, norms, linears and
//                                                          elementwise work grow with H·W
//   for blocks with self-attention over their H·W positions (L = H·W tokens, L' = h·w):
//   t(block) = (t(tile) − t_attn(L', L')) · L/L' + t_attn(L, L)
//   t_attn(L, L) ≈ t_attn(Lq', Lk') · (L/Lq') · (L/Lk')    the products and softmax grow with
//                                                          queries × keys; a few query rows are
//                                                          timed against up to `maxKeys` keys
//
// Only the sampled blocks are allocated, never the call's full activations. The peak memory of
// such a call is estimated, not measured: weights + the skip connections the U-Net holds + the
// largest block's working set (its measured tile working set scaled by L/L').

import Foundation
import LDMCore
import LDMModels

/// An estimate of one network call from sampled blocks.
public struct SampledTiming: Sendable {
    /// Estimated seconds of the whole call.
    public var seconds: Double
    /// Estimated peak tensor bytes of the whole call.
    public var peakBytes: Int
    /// Distinct blocks timed.
    public var sampledBlocks: Int
    /// Blocks in the call.
    public var blocks: Int
}

/// Times networks block by block on tiles (see the file header).
public struct BlockSampler {
    /// Most FLOPs of one timed tile; a block's tile is halved (height or width) until it fits.
    public var tileBudget: Double
    /// Most FLOPs of one timed attention sample.
    public var attentionBudget: Double
    /// Most keys in an attention sample.
    public var maxKeys: Int
    /// Smallest tile side.
    public var minimumTile: Int
    /// Timed runs of each sample after one warm-up run (the best counts).
    public var repeats: Int
    /// Progress lines.
    public var log: (String) -> Void

    public init(tileBudget: Double = 2e10, attentionBudget: Double = 2e10, maxKeys: Int = 16384, minimumTile: Int = 8,
                repeats: Int = 2, log: @escaping (String) -> Void = { _ in }) {
        self.tileBudget = tileBudget; self.attentionBudget = attentionBudget; self.maxKeys = maxKeys
        self.minimumTile = minimumTile; self.repeats = repeats; self.log = log
    }

    /// Estimates one call of the network whose blocks are `blocks` (as the walks in FlopCounter.swift
    /// give them); `weightBytes` is added to the peak estimate.
    public func estimate(_ blocks: [NetworkBlock], weightBytes: Int) -> SampledTiming {
        struct Key: Hashable { var kind: BlockKind; var batch: Int; var height: Int; var width: Int }
        var order: [Key] = [], counts: [Key: Int] = [:], first: [Key: NetworkBlock] = [:]
        for b in blocks {
            let k = Key(kind: b.kind, batch: b.batch, height: b.height, width: b.width)
            if counts[k] == nil { order.append(k); first[k] = b }
            counts[k, default: 0] += 1
        }
        var seconds = 0.0, largest = 0
        for k in order {
            let (t, bytes) = timeBlock(first[k]!)
            seconds += t * Double(counts[k]!)
            largest = max(largest, bytes)
        }
        let skips = blocks.filter(\.keepsSkip).reduce(0) { sum, b in
            let o = b.output
            return sum + b.batch * o.channels * o.height * o.width * MemoryLayout<Float>.stride
        }
        return SampledTiming(seconds: seconds, peakBytes: weightBytes + skips + largest, sampledBlocks: order.count,
                             blocks: blocks.count)
    }

    /// The tile a block is timed on: its input, halved along the longer side until its FLOPs fit the budget.
    func tile(for b: NetworkBlock) -> (height: Int, width: Int) {
        guard b.kind.isSpatial else { return (b.height, b.width) }
        var h = b.height, w = b.width
        func flops() -> Double { blockLayers(b.kind, name: "", batch: b.batch, height: h, width: w).reduce(0) { $0 + $1.flops } }
        while flops() > tileBudget {
            if h >= w, h % 2 == 0, h / 2 >= minimumTile { h /= 2 } else if w % 2 == 0, w / 2 >= minimumTile { w /= 2 } else { break }
        }
        return (h, w)
    }

    /// Seconds of one full-size call of the block, and its working set in bytes (both scaled from the tile).
    func timeBlock(_ b: NetworkBlock) -> (seconds: Double, bytes: Int) {
        let (th, tw) = tile(for: b)
        let scale = Double(b.height * b.width) / Double(th * tw)
        let weights = blockLayers(b.kind, name: "", batch: 1, height: 1, width: 1).reduce(0) { $0 + $1.parameters }
            * MemoryLayout<Float>.stride
        let base = MemoryStatistics.currentBytes
        guard let run = makeRunner(b.kind, batch: b.batch, height: th, width: tw) else {
            log("  \(b.name): no sampler for this block kind; counted as 0 s")
            return (0, 0)
        }
        run() // warm-up
        MemoryStatistics.resetPeak()
        let t = bestTime(repeats: repeats, warmup: 0, run)
        let working = max(0, MemoryStatistics.peakBytes - base - weights)
        var seconds = t * scale
        var note = ""
        if scale > 1, let sa = selfAttention(b.kind) {
            let (heads, width, count) = sa
            // Replace the tile's self-attention (L'² work) by the full one (L² work).
            let tileTokens = th * tw, tokens = b.height * b.width
            let tileAttention = attentionSeconds(batch: b.batch, heads: heads, width: width, queries: tileTokens, keys: tileTokens)
            let fullAttention = attentionSeconds(batch: b.batch, heads: heads, width: width, queries: tokens, keys: tokens)
            seconds = max(0, t - Double(count) * tileAttention) * scale + Double(count) * fullAttention
            note = String(format: ", self-attention %.3g s", Double(count) * fullAttention)
        }
        log(String(format: "  %@ at %d×%d (tile %d×%d, batch %d): %.4g s%@", b.name, b.height, b.width, th, tw, b.batch, seconds, note))
        return (seconds, Int(Double(working) * scale))
    }

    /// (heads, width, blocks) of a block's self-attention over its positions, if it has one.
    func selfAttention(_ kind: BlockKind) -> (Int, Int, Int)? {
        switch kind {
        case let .transformer(_, heads, headDim, _, _, layers, _, _): return (heads, heads * headDim, layers)
        case let .spatialAttention(c, _): return (1, c, 1)
        default: return nil
        }
    }

    /// Seconds of `attention` (products and softmax) for `queries` × `keys`, timed on at most
    /// `maxKeys` keys and as many query rows as the attention budget allows, scaled up.
    func attentionSeconds(batch: Int, heads: Int, width: Int, queries: Int, keys: Int) -> Double {
        let lk = min(keys, maxKeys)
        let perQuery = 4 * Double(batch) * Double(lk) * Double(width)
        let lq = max(1, min(queries, Int(attentionBudget / perQuery)))
        var rng = SwiftRandomSource(seed: 11)
        let q = Tensor(shape: [batch, lq, width], rng.normal(count: batch * lq * width))
        let k = Tensor(shape: [batch, lk, width], rng.normal(count: batch * lk * width))
        let v = Tensor(shape: [batch, lk, width], rng.normal(count: batch * lk * width))
        let t = bestTime(repeats: repeats, warmup: 1) { _ = attention(q: q, k: k, v: v, heads: heads) }
        return t * Double(queries) / Double(lq) * Double(keys) / Double(lk)
    }

    /// Builds the block alone with random weights and random inputs of the tile's size; nil for
    /// kinds that are not sampled (the text encoder's, which is always timed whole).
    func makeRunner(_ kind: BlockKind, batch n: Int, height h: Int, width w: Int) -> (() -> Void)? {
        var rng = SwiftRandomSource(seed: 5)
        func random(_ shape: [Int]) -> Tensor { Tensor(shape: shape, rng.normal(count: shape.reduce(1, *))) }
        func randomized<M: Module>(_ m: M) -> M { randomize(m, seed: 3); return m }
        switch kind {
        case let .conv(ci, co, k, s, p):
            let conv = randomized(Conv2d(ci, co, kernel: k, stride: s, padding: p))
            let x = random([n, ci, h, w])
            return { _ = conv(x) }
        case let .linear(i, o):
            let linear = randomized(Linear(i, o))
            let x = random([n, i])
            return { _ = linear(x) }
        case let .groupNorm(c, g, eps):
            let norm = GroupNorm(groups: g, channels: c, eps: eps)
            let x = random([n, c, h, w])
            return { _ = norm(x, silu: true) }
        case let .resnet(ci, skip, co, temb, g, eps):
            let block = randomized(ResnetBlock2D(inChannels: ci + skip, outChannels: co, tembChannels: temb, groups: g, eps: eps))
            let x = random([n, ci, h, w])
            let s = skip > 0 ? random([n, skip, h, w]) : nil
            let t = temb.map { random([n, $0]) }
            return { _ = block(s.map { concat([x, $0], dim: 1) } ?? x, temb: t) }
        case let .transformer(c, heads, headDim, contextDim, m, layers, g, linear):
            let block = randomized(Transformer2DModel(channels: c, heads: heads, headDim: headDim, contextDim: contextDim,
                                                      groups: g, layers: layers, linearProjection: linear))
            let x = random([n, c, h, w]), context = random([n, m, contextDim])
            return { _ = block(x, context: context) }
        case let .spatialAttention(c, g):
            let block = randomized(Attention(queryDim: c, heads: 1, headDim: c, qkvBias: true,
                                             groupNorm: GroupNorm(groups: g, channels: c, eps: 1e-6)))
            let x = random([n, c, h, w])
            return { _ = block.spatial(x) }
        case let .downsample(c, p):
            let block = randomized(Downsample2D(channels: c, padding: p))
            let x = random([n, c, h, w])
            return { _ = block(x) }
        case let .upsample(c):
            let block = randomized(Upsample2D(channels: c))
            let x = random([n, c, h, w])
            return { _ = block(x) }
        case .embedding, .clipLayer, .layerNorm:
            return nil
        }
    }
}

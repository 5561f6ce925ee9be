// Tiled VAE decoding: the decoder's memory-heavy part runs on overlapping windows of the latent and
// each window writes only its own region of the preallocated output, so peak memory is about one
// output image plus one window's activations, whatever the image size.
//
// conv_in and the mid block run untiled on the whole latent: at latent resolution they are small
// (64× fewer positions than the image for Stable Diffusion, though at 512 channels), and the mid
// block's self-attention sees every position, exactly as in the untiled decoder. The price: their
// memory (about six 512-channel latent-sized tensors) and the attention's quadratic time still grow
// with the image; for SD they outgrow one 512-pixel window at about 1800×1800 pixels (estimated).
// The rest — up blocks, norm, conv_out — is local except for its group norms: an output pixel sees
// features within `VAEDecoder.receptiveRadius` latent pixels (12.25 for SD). Each window is decoded
// whole and only its own region kept: the window minus half the overlap on every side that has a
// neighbour; the own regions partition the image. With the default overlap of 16 (8 latent pixels of
// context) what the windows' zero padding still changes inside the own regions measured 0.2/255 at
// most for SD's architecture and 0.3–0.8/255 for tiny decoders (random weights).
//
// Group norm is global. A window normalised by its own statistics would leave tile-shaped seams, so
// every window is normalised with the same pooled whole-image statistics, gathered by statistics
// passes over the same windows (the `TiledStatistics` hook on the group norms):
//   pass p adds up, per layer and (sample, group), Σx and Σx² over each window's own region and pools
//   them:   μ = Σx / m,   σ² = Σx² / m − μ²,   rstd = 1 / √(σ² + ε)     (m elements per group).
//   In pass p the first p group norms normalise with the pool of pass p − 1, which is exact for them
//   because their inputs are; the later ones normalise each window by its own region. So after p
//   passes the first p layers' statistics are exact, and after as many passes as the tiled part has
//   group norms (25 for SD) all are, and the tiled image is the untiled one up to the padding error.
// The image pass then normalises every window with the pooled statistics.
//
// The default is one statistics pass. It leaves no seams, since every window uses the same
// statistics, but the deeper layers' pooled statistics are those of activations normalised window
// by window rather than of the untiled decoder's, which shifts the whole image a little from the
// untiled decode. Measured on random latents with random weights: SD's architecture at 288×288 in
// 2×2 windows, mean 0.37/255, max 5.4/255; a tiny f = 8 decoder in 3×3 windows, mean 0.85/255, max
// 29/255. More where windows differ in content: the first VAE shipped with the model (before its
// decoder was fine-tuned) decoding a shapes image in 24-pixel windows, mean 6.7/255, max 34/255 —
// a flat window normalised by itself is amplified. Tried and not kept: iterating passes with all
// layers pooled (diverges on random weights), and per-window statistics corrected by a whole decode
// of the 2×-subsampled latent (mean 0.5/255 on that trained VAE, but 2.2/255 on random weights).
// Exact statistics in flat memory cost a pass per group norm; in one pass they would need
// whole-image activations, the memory tiling avoids.

import LDMCore

/// How `AutoencoderKL.decodeTiled` splits the latent.
public struct TiledDecoding: Equatable, Sendable {
    /// Side of the latent window each tile decodes, in latent pixels (64 = a 512×512 decode for
    /// f = 8). Bounds the memory of the tiled part.
    public var tile: Int
    /// Latent pixels neighbouring windows share. Each tile keeps its window minus half of this on
    /// every side that has a neighbour, so the zero padding at a window's edge stays out of the image.
    public var overlap: Int
    /// Passes that gather group-norm statistics before the image pass. After p passes the first p
    /// group norms' statistics are exact; `exactStatisticsPasses` makes them all exact (see the file
    /// header).
    public var statisticsPasses: Int

    public init(tile: Int = 64, overlap: Int = 16, statisticsPasses: Int = 1) {
        self.tile = tile
        self.overlap = overlap
        self.statisticsPasses = statisticsPasses
    }

    /// What is wrong with these options, or nil: the window must be larger than the overlap, and
    /// there must be at least one statistics pass.
    public var problem: String? {
        if overlap < 0 || tile <= overlap { return "the VAE tile (\(tile)) must be larger than the overlap (\(overlap)), which cannot be negative" }
        if statisticsPasses < 1 { return "tiled decoding needs at least one statistics pass (got \(statisticsPasses))" }
        return nil
    }

    /// Throws `ModelError.invalidInput` with `problem`, if any.
    public func validate() throws { if let problem { throw ModelError.invalidInput(problem) } }

    /// Statistics passes that make every group norm's statistics exact for `vae`: one per group norm
    /// of the tiled part (25 for Stable Diffusion's decoder).
    public static func exactStatisticsPasses(for vae: AutoencoderKL) -> Int { vae.decoder.imageGroupNorms.count }
}

/// One tile: the latent window it decodes and the part of it it writes (its own region).
struct LatentTile {
    var window: (rows: Range<Int>, columns: Range<Int>)
    var own: (rows: Range<Int>, columns: Range<Int>)

    /// Tiles covering `height` × `width`: the own regions partition the latent in near-equal parts,
    /// as few per axis as keep every window within `tile`.
    static func layout(height: Int, width: Int, _ o: TiledDecoding) -> [LatentTile] {
        let rows = spans(height, o), columns = spans(width, o)
        return rows.flatMap { r in columns.map { c in LatentTile(window: (r.window, c.window), own: (r.own, c.own)) } }
    }

    /// One axis: n near-equal own spans, each widened by overlap/2 before and overlap − overlap/2 after
    /// where there is a neighbour; n is the fewest for which the widest window fits in `tile`.
    static func spans(_ length: Int, _ o: TiledDecoding) -> [(window: Range<Int>, own: Range<Int>)] {
        let before = o.overlap / 2, after = o.overlap - before
        var n = 1
        while length > o.tile && (length + n - 1) / n + o.overlap > o.tile { n += 1 }
        return (0..<n).map { i in
            let a = i * length / n, b = (i + 1) * length / n
            return (max(0, a - (i > 0 ? before : 0)) ..< min(length, b + (i < n - 1 ? after : 0)), a ..< b)
        }
    }
}

/// The group-norm hook of a tiled decode. Installed on the group norms of the tiled part, it
/// normalises each window with pooled whole-image statistics or with the window's own, and, when
/// recording, adds Σx and Σx² over the window's own region to its layer's totals.
final class TiledStatistics {
    /// Layers before this index (in forward order) normalise with the pooled statistics, the rest
    /// with their window's own region's: 0 in the first statistics pass, `Int.max` in the image pass.
    var pooledBelow = 0
    /// Add each window's sums to the totals.
    var recording = true
    /// The current tile, in latent pixels; a layer finds its own region by its scale to the window.
    var tile = LatentTile(window: (0..<0, 0..<0), own: (0..<0, 0..<0))

    private let layers: [GroupNorm]
    private let index: [ObjectIdentifier: Int]
    private struct Totals { var sums: [Double], squares: [Double], count: Int }
    private var totals: [ObjectIdentifier: Totals] = [:]
    /// μ and rstd per (sample, group) of each layer, from the last recording pass.
    private(set) var pooled: [ObjectIdentifier: NormCache] = [:]

    /// Hooks `layers` (in forward order) until `remove()`.
    init(layers: [GroupNorm]) {
        self.layers = layers
        index = Dictionary(uniqueKeysWithValues: layers.enumerated().map { (ObjectIdentifier($0.element), $0.offset) })
        for g in layers { g.tiledStatistics = self }
    }

    /// Unhooks the layers.
    func remove() { for g in layers where g.tiledStatistics === self { g.tiledStatistics = nil } }

    func normalize(_ x: Tensor, by norm: GroupNorm, silu: Bool) -> Tensor {
        let id = ObjectIdentifier(norm)
        guard let i = index[id] else { preconditionFailure("tiled decode: a group norm outside the tiled part") }
        let usePooled = i < pooledBelow
        var statistics: NormCache?
        if recording || !usePooled {
            // Own region only: a window's margins feel its zero padding.
            let (s, q, m) = ownSums(x, groups: norm.groups)
            if recording { add(id, s, q, m) }
            if !usePooled { statistics = TiledStatistics.statistics(sums: s, squares: q, count: m, eps: norm.eps) }
        }
        if usePooled {
            guard let p = pooled[id] else { preconditionFailure("tiled decode: no statistics pooled for group norm \(i)") }
            statistics = p
        }
        return groupNorm(x, groups: norm.groups, weight: norm.weight.value, bias: norm.bias.value, eps: norm.eps,
                         fuseSiLU: silu, statistics: statistics)
    }

    /// Σx, Σx² per (sample, group) over the current tile's own region of x, and the elements per group.
    private func ownSums(_ x: Tensor, groups: Int) -> ([Double], [Double], Int) {
        let wh = tile.window.rows.count, ww = tile.window.columns.count
        let sy = x.shape[2] / wh, sx = x.shape[3] / ww
        precondition(sy * wh == x.shape[2] && sx * ww == x.shape[3], "tiled decode: \(x.shape) is not a multiple of the window \(wh)×\(ww)")
        let r0 = tile.own.rows.lowerBound - tile.window.rows.lowerBound
        let c0 = tile.own.columns.lowerBound - tile.window.columns.lowerBound
        let rows = r0 * sy ..< (r0 + tile.own.rows.count) * sy
        let columns = c0 * sx ..< (c0 + tile.own.columns.count) * sx
        let (s, q) = groupNormSums(x, groups: groups, rows: rows, columns: columns)
        return (s, q, x.shape[1] / groups * rows.count * columns.count)
    }

    private func add(_ id: ObjectIdentifier, _ s: [Double], _ q: [Double], _ m: Int) {
        guard var t = totals[id] else { totals[id] = Totals(sums: s, squares: q, count: m); return }
        for i in s.indices { t.sums[i] += s[i]; t.squares[i] += q[i] }
        t.count += m
        totals[id] = t
    }

    /// μ = Σx / m and rstd = 1 / √(Σx² / m − μ² + ε) per (sample, group).
    static func statistics(sums: [Double], squares: [Double], count: Int, eps: Float) -> NormCache {
        let m = Double(count)
        var mean = [Float](), rstd = [Float]()
        for i in sums.indices {
            let mu = sums[i] / m
            mean.append(Float(mu))
            rstd.append(Float(1 / (max(squares[i] / m - mu * mu, 0) + Double(eps)).squareRoot()))
        }
        return NormCache(mean: mean, rstd: rstd)
    }

    /// Ends a recording pass: its totals become the pooled statistics.
    func pool() {
        for g in layers {
            let id = ObjectIdentifier(g)
            if let t = totals[id] { pooled[id] = TiledStatistics.statistics(sums: t.sums, squares: t.squares, count: t.count, eps: g.eps) }
        }
        totals = [:]
    }
}

extension AutoencoderKL {
    /// Decodes latents [N, latent, h, w] (unscaled) to images in about [-1, 1] like `decode`, tile by
    /// tile with pooled whole-image group-norm statistics (see the file header): peak memory stays
    /// near one output image plus one window's activations, plus the mid block at latent resolution.
    /// Costs `statisticsPasses` + 1 passes over the windows; a latent that fits one window is decoded whole.
    public func decodeTiled(_ z: Tensor, _ options: TiledDecoding = TiledDecoding()) -> Tensor {
        decodeTiledKeepingStatistics(z, options).image
    }

    /// `decodeTiled` with windows of `tile` latent pixels sharing `overlap` with their neighbours.
    public func decodeTiled(_ z: Tensor, tile: Int, overlap: Int) -> Tensor {
        decodeTiled(z, TiledDecoding(tile: tile, overlap: overlap))
    }

    /// `decodeTiled`, also returning the hook with the pooled statistics the image was decoded with
    /// (nil when the latent fitted one window), for tests.
    func decodeTiledKeepingStatistics(_ z: Tensor, _ options: TiledDecoding) -> (image: Tensor, statistics: TiledStatistics?) {
        if let problem = options.problem { preconditionFailure(problem) }
        let features = decoder.midBlock(decoder.convIn(postQuantConv.map { $0(z) } ?? z))
        let n = z.shape[0], h = z.shape[2], w = z.shape[3], f = config.downsamplingFactor
        let tiles = LatentTile.layout(height: h, width: w, options)
        if tiles.count == 1 { return (decoder.image(fromFeatures: features), nil) }

        let hook = TiledStatistics(layers: decoder.imageGroupNorms)
        defer { hook.remove() }
        func decodeWindow(_ t: LatentTile) -> Tensor {
            hook.tile = t
            return decoder.image(fromFeatures: crop(features, rows: t.window.rows, columns: t.window.columns))
        }

        // 1. Statistics. Pass p normalises the first p group norms with the pool of pass p − 1
        //    (exact by then) and the rest by each window's own region.
        for pass in 0..<options.statisticsPasses {
            hook.pooledBelow = pass
            hook.recording = true
            for t in tiles { _ = decodeWindow(t) }
            hook.pool()
        }

        // 2. The image: every window normalised with the pooled statistics, its own region written out.
        hook.pooledBelow = .max
        hook.recording = false
        let image = Tensor(uninitialized: [n, config.outChannels, h * f, w * f])
        for t in tiles {
            let y = decodeWindow(t)
            let r0 = t.own.rows.lowerBound - t.window.rows.lowerBound, c0 = t.own.columns.lowerBound - t.window.columns.lowerBound
            paste(y, rows: r0 * f ..< (r0 + t.own.rows.count) * f, columns: c0 * f ..< (c0 + t.own.columns.count) * f,
                  into: image, top: t.own.rows.lowerBound * f, left: t.own.columns.lowerBound * f)
        }
        return (image, hook)
    }

    /// The untiled decoder run with the statistics a tiled decode pooled: the tiled image without
    /// its tiling, to measure seams apart from the statistics' approximation.
    func decode(_ z: Tensor, statistics hook: TiledStatistics) -> Tensor {
        let features = decoder.midBlock(decoder.convIn(postQuantConv.map { $0(z) } ?? z))
        let h = z.shape[2], w = z.shape[3]
        let saved = (hook.tile, hook.pooledBelow, hook.recording)
        let norms = decoder.imageGroupNorms
        for g in norms { g.tiledStatistics = hook }
        defer {
            hook.remove()
            (hook.tile, hook.pooledBelow, hook.recording) = saved
        }
        hook.tile = LatentTile(window: (0..<h, 0..<w), own: (0..<h, 0..<w))
        hook.pooledBelow = .max
        hook.recording = false
        return decoder.image(fromFeatures: features)
    }
}

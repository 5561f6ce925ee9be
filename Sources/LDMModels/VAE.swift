// diffusers' AutoencoderKL (diffusers/models/autoencoders/autoencoder_kl.py, vae.py): the encoder maps
// an image in [-1, 1] to a diagonal Gaussian over latents, the decoder maps latents back.
//
//   moments = quant_conv(encoder(x));  μ, log σ² = chunk(moments);  log σ² ∈ [-30, 20]
//   z = μ + σ ⊙ ε  (ε from the random source);  x̂ = decoder(post_quant_conv(z))
// Pipelines scale latents by `scaling_factor` (z · s into the U-Net, z / s into the decoder).

import Foundation
import LDMCore

/// diffusers' `AutoencoderKL` config.
public struct VAEConfig: Codable, Equatable, Sendable {
    /// Image channels in and out.
    public var inChannels: Int, outChannels: Int
    /// "DownEncoderBlock2D" per level / "UpDecoderBlock2D" per level.
    public var downBlockTypes: [String], upBlockTypes: [String]
    /// Channels of each level; the image is halved between levels (factor 2^(levels−1)).
    public var blockOutChannels: [Int]
    /// Residual blocks per encoder level (decoder levels have one more).
    public var layersPerBlock: Int
    /// Activation, "silu".
    public var actFn: String
    /// Latent channels (4 for Stable Diffusion).
    public var latentChannels: Int
    /// Groups of every group norm.
    public var normNumGroups: Int
    /// Image size the model was trained at.
    public var sampleSize: Int
    /// Multiplier taking latents to unit variance (0.18215 for SD1.x/2.x).
    public var scalingFactor: Float
    /// Offset subtracted before scaling (nil for SD1.x/2.x).
    public var shiftFactor: Float?
    /// Whether the 1×1 quant_conv / post_quant_conv exist.
    public var useQuantConv: Bool, usePostQuantConv: Bool
    /// Whether the mid blocks have attention.
    public var midBlockAddAttention: Bool

    enum CodingKeys: String, CodingKey {
        case inChannels = "in_channels", outChannels = "out_channels", downBlockTypes = "down_block_types"
        case upBlockTypes = "up_block_types", blockOutChannels = "block_out_channels", layersPerBlock = "layers_per_block"
        case actFn = "act_fn", latentChannels = "latent_channels", normNumGroups = "norm_num_groups"
        case sampleSize = "sample_size", scalingFactor = "scaling_factor", shiftFactor = "shift_factor"
        case useQuantConv = "use_quant_conv", usePostQuantConv = "use_post_quant_conv"
        case midBlockAddAttention = "mid_block_add_attention"
    }

    public init(blockOutChannels: [Int] = [128, 256, 512, 512], layersPerBlock: Int = 2, latentChannels: Int = 4,
                normNumGroups: Int = 32, sampleSize: Int = 512, scalingFactor: Float = 0.18215) {
        inChannels = 3; outChannels = 3
        downBlockTypes = Array(repeating: "DownEncoderBlock2D", count: blockOutChannels.count)
        upBlockTypes = Array(repeating: "UpDecoderBlock2D", count: blockOutChannels.count)
        self.blockOutChannels = blockOutChannels; self.layersPerBlock = layersPerBlock; actFn = "silu"
        self.latentChannels = latentChannels; self.normNumGroups = normNumGroups; self.sampleSize = sampleSize
        self.scalingFactor = scalingFactor; shiftFactor = nil; useQuantConv = true; usePostQuantConv = true
        midBlockAddAttention = true
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        inChannels = try c.value(.inChannels, 3)
        outChannels = try c.value(.outChannels, 3)
        downBlockTypes = try c.value(.downBlockTypes, ["DownEncoderBlock2D"])
        upBlockTypes = try c.value(.upBlockTypes, ["UpDecoderBlock2D"])
        blockOutChannels = try c.value(.blockOutChannels, [64])
        layersPerBlock = try c.value(.layersPerBlock, 1)
        actFn = try c.value(.actFn, "silu")
        latentChannels = try c.value(.latentChannels, 4)
        normNumGroups = try c.value(.normNumGroups, 32)
        sampleSize = try c.value(.sampleSize, 32)
        scalingFactor = try c.value(.scalingFactor, 0.18215)
        shiftFactor = try c.decodeIfPresent(Float.self, forKey: .shiftFactor)
        useQuantConv = try c.value(.useQuantConv, true)
        usePostQuantConv = try c.value(.usePostQuantConv, true)
        midBlockAddAttention = try c.value(.midBlockAddAttention, true)
    }

    /// Throws for values this implementation does not support, naming the key.
    public func validate() throws {
        func bad(_ key: String, _ value: Any) -> ModelError { .unsupported(component: "vae", key: key, value: "\(value)") }
        if blockOutChannels.isEmpty { throw bad("block_out_channels", blockOutChannels) }
        if downBlockTypes.count != blockOutChannels.count || downBlockTypes.contains(where: { $0 != "DownEncoderBlock2D" }) {
            throw bad("down_block_types", downBlockTypes)
        }
        if upBlockTypes.count != blockOutChannels.count || upBlockTypes.contains(where: { $0 != "UpDecoderBlock2D" }) {
            throw bad("up_block_types", upBlockTypes)
        }
        if actFn != "silu" { throw bad("act_fn", actFn) }
        // Sizes: positive and bounded, so a config cannot ask for unbounded memory or divide by zero.
        if blockOutChannels.count > 8 { throw bad("block_out_channels", blockOutChannels) }
        for ch in blockOutChannels where !(1...8192).contains(ch) { throw bad("block_out_channels", blockOutChannels) }
        for (key, v, limit) in [("norm_num_groups", normNumGroups, 8192), ("layers_per_block", layersPerBlock, 64),
                                ("latent_channels", latentChannels, 1024), ("in_channels", inChannels, 64), ("out_channels", outChannels, 64)]
        where !(1...limit).contains(v) { throw bad(key, v) }
        for ch in blockOutChannels where ch % normNumGroups != 0 { throw bad("norm_num_groups", "\(normNumGroups) for \(ch) channels") }
    }

    /// Image pixels per latent pixel along each axis.
    public var downsamplingFactor: Int { 1 << (blockOutChannels.count - 1) }
}

/// DownEncoderBlock2D / UpDecoderBlock2D: residual blocks with an optional resampler.
public final class VAEBlock: Module {
    public let resnets: [ResnetBlock2D]
    public let downsampler: Downsample2D?
    public let upsampler: Upsample2D?

    init(inChannels: Int, outChannels: Int, layers: Int, groups: Int, down: Bool, up: Bool) {
        resnets = (0..<layers).map {
            ResnetBlock2D(inChannels: $0 == 0 ? inChannels : outChannels, outChannels: outChannels, tembChannels: nil,
                          groups: groups, eps: 1e-6)
        }
        downsampler = down ? Downsample2D(channels: outChannels, padding: 0) : nil
        upsampler = up ? Upsample2D(channels: outChannels) : nil
    }
    override public var children: [(String, Module)] {
        indexed(resnets).map { ("resnets." + $0.0, $0.1) }
            + (downsampler.map { [("downsamplers.0", $0 as Module)] } ?? [])
            + (upsampler.map { [("upsamplers.0", $0 as Module)] } ?? [])
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = x
        for r in resnets { h = r(h) }
        if let downsampler { h = downsampler(h) }
        if let upsampler { h = upsampler(h) }
        return h
    }
    public func backward(_ dy: Tensor) -> Tensor {
        var g = dy
        if let upsampler { g = upsampler.backward(g) }
        if let downsampler { g = downsampler.backward(g) }
        for r in resnets.reversed() { g = r.backward(g).0 }
        return g
    }
}

/// UNetMidBlock2D without time embedding: resnet, (attention, resnet).
public final class VAEMidBlock: Module {
    public let resnets: [ResnetBlock2D]
    public let attentions: [Attention]

    init(channels: Int, groups: Int, attention: Bool) {
        resnets = (0..<2).map { _ in ResnetBlock2D(inChannels: channels, outChannels: channels, tembChannels: nil, groups: groups, eps: 1e-6) }
        attentions = attention ? [Attention(queryDim: channels, heads: 1, headDim: channels, qkvBias: true,
                                            groupNorm: GroupNorm(groups: groups, channels: channels, eps: 1e-6))] : []
    }
    override public var children: [(String, Module)] {
        indexed(attentions).map { ("attentions." + $0.0, $0.1) } + indexed(resnets).map { ("resnets." + $0.0, $0.1) }
    }
    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = resnets[0](x)
        if let a = attentions.first { h = a.spatial(h) }
        return resnets[1](h)
    }
    public func backward(_ dy: Tensor) -> Tensor {
        var g = resnets[1].backward(dy).0
        if let a = attentions.first { g = a.spatialBackward(g) }
        return resnets[0].backward(g).0
    }
}

/// The encoder: conv_in, down blocks, mid block, norm + SiLU, conv_out to 2·latent channels.
public final class VAEEncoder: Module {
    public let convIn: Conv2d, downBlocks: [VAEBlock], midBlock: VAEMidBlock, convNormOut: GroupNorm, convOut: Conv2d

    init(_ c: VAEConfig) {
        let ch = c.blockOutChannels
        convIn = Conv2d(c.inChannels, ch[0], kernel: 3, padding: 1)
        var prev = ch[0]
        downBlocks = ch.indices.map { i in
            defer { prev = ch[i] }
            return VAEBlock(inChannels: prev, outChannels: ch[i], layers: c.layersPerBlock, groups: c.normNumGroups,
                            down: i < ch.count - 1, up: false)
        }
        midBlock = VAEMidBlock(channels: ch.last!, groups: c.normNumGroups, attention: c.midBlockAddAttention)
        convNormOut = GroupNorm(groups: c.normNumGroups, channels: ch.last!, eps: 1e-6)
        convOut = Conv2d(ch.last!, 2 * c.latentChannels, kernel: 3, padding: 1)
    }
    override public var children: [(String, Module)] {
        [("conv_in", convIn)] + indexed(downBlocks).map { ("down_blocks." + $0.0, $0.1) }
            + [("mid_block", midBlock), ("conv_norm_out", convNormOut), ("conv_out", convOut)]
    }
    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = convIn(x)
        for b in downBlocks { h = b(h) }
        return convOut(convNormOut(midBlock(h), silu: true))
    }
    public func backward(_ dy: Tensor) -> Tensor {
        var g = midBlock.backward(convNormOut.backward(convOut.backward(dy)!, silu: true))
        for b in downBlocks.reversed() { g = b.backward(g) }
        return convIn.backward(g)!
    }
}

/// The decoder: conv_in, mid block, up blocks, norm + SiLU, conv_out to image channels.
public final class VAEDecoder: Module {
    public let convIn: Conv2d, midBlock: VAEMidBlock, upBlocks: [VAEBlock], convNormOut: GroupNorm, convOut: Conv2d

    init(_ c: VAEConfig) {
        let rch = Array(c.blockOutChannels.reversed())
        convIn = Conv2d(c.latentChannels, rch[0], kernel: 3, padding: 1)
        midBlock = VAEMidBlock(channels: rch[0], groups: c.normNumGroups, attention: c.midBlockAddAttention)
        var prev = rch[0]
        upBlocks = rch.indices.map { i in
            defer { prev = rch[i] }
            return VAEBlock(inChannels: prev, outChannels: rch[i], layers: c.layersPerBlock + 1, groups: c.normNumGroups,
                            down: false, up: i < rch.count - 1)
        }
        convNormOut = GroupNorm(groups: c.normNumGroups, channels: rch.last!, eps: 1e-6)
        convOut = Conv2d(rch.last!, c.outChannels, kernel: 3, padding: 1)
    }
    override public var children: [(String, Module)] {
        [("conv_in", convIn), ("mid_block", midBlock)] + indexed(upBlocks).map { ("up_blocks." + $0.0, $0.1) }
            + [("conv_norm_out", convNormOut), ("conv_out", convOut)]
    }
    public func callAsFunction(_ z: Tensor) -> Tensor { image(fromFeatures: midBlock(convIn(z))) }

    /// Up blocks, norm + SiLU and conv_out: the mid block's features [N, C, h, w] to the image.
    /// Apart from its group norms this part is local — an output pixel sees features within
    /// `receptiveRadius` latent pixels — so a tiled decode runs it tile by tile.
    public func image(fromFeatures features: Tensor) -> Tensor {
        var h = features
        for b in upBlocks { h = b(h) }
        return convOut(convNormOut(h, silu: true))
    }

    /// How far, in latent pixels, an output pixel of `image(fromFeatures:)` sees: each 3×3 conv at
    /// 2^l image pixels per latent pixel adds 1/2^l (12.25 for Stable Diffusion's decoder).
    public var receptiveRadius: Double {
        var r = 0.0, scale = 1.0
        for b in upBlocks {
            r += Double(2 * b.resnets.count) / scale
            if b.upsampler != nil { scale *= 2; r += 1 / scale }
        }
        return r + 1 / scale
    }

    /// Every group norm of `image(fromFeatures:)`, in forward order.
    var imageGroupNorms: [GroupNorm] {
        upBlocks.flatMap { $0.resnets.flatMap { [$0.norm1, $0.norm2] } } + [convNormOut]
    }

    public func backward(_ dy: Tensor) -> Tensor {
        var g = convNormOut.backward(convOut.backward(dy)!, silu: true)
        for b in upBlocks.reversed() { g = b.backward(g) }
        return convIn.backward(midBlock.backward(g))!
    }
}

/// The posterior q(z|x): a diagonal Gaussian.
public struct DiagonalGaussian {
    /// μ [N, latent, h, w].
    public var mean: Tensor
    /// log σ², clamped to [-30, 20].
    public var logvar: Tensor

    /// z = μ + σ ε with ε drawn from `random` (one normal draw of the latent's shape).
    public func sample<R: RandomSource>(_ random: inout R) -> Tensor {
        let eps = random.normal(count: mean.count)
        let z = Tensor(uninitialized: mean.shape)
        for i in 0..<mean.count { z.data[i] = mean.data[i] + expf(0.5 * logvar.data[i]) * eps[i] }
        return z
    }
}

/// Stable Diffusion's KL autoencoder.
public final class AutoencoderKL: Module {
    public let config: VAEConfig
    public let encoder: VAEEncoder, decoder: VAEDecoder
    public let quantConv: Conv2d?, postQuantConv: Conv2d?

    public init(config: VAEConfig) throws {
        try config.validate()
        self.config = config
        encoder = VAEEncoder(config)
        decoder = VAEDecoder(config)
        let l = config.latentChannels
        quantConv = config.useQuantConv ? Conv2d(2 * l, 2 * l, kernel: 1) : nil
        postQuantConv = config.usePostQuantConv ? Conv2d(l, l, kernel: 1) : nil
    }
    override public var children: [(String, Module)] {
        var c: [(String, Module)] = [("encoder", encoder), ("decoder", decoder)]
        if let quantConv { c.append(("quant_conv", quantConv)) }
        if let postQuantConv { c.append(("post_quant_conv", postQuantConv)) }
        return c
    }

    /// Encodes images [N, 3, H, W] in [-1, 1] into the latent posterior.
    public func encode(_ x: Tensor) -> DiagonalGaussian {
        var moments = encoder(x)
        if let quantConv { moments = quantConv(moments) }
        let l = config.latentChannels
        let parts = split(moments, sizes: [l, l], dim: 1)
        let logvar = map(parts[1]) { min(max($0, -30), 20) }
        return DiagonalGaussian(mean: parts[0], logvar: logvar)
    }

    /// Decodes latents [N, latent, h, w] (unscaled) to images in about [-1, 1].
    public func decode(_ z: Tensor) -> Tensor {
        decoder(postQuantConv.map { $0(z) } ?? z)
    }
}

// diffusers' AutoencoderTiny (models/autoencoders/autoencoder_tiny.py, EncoderTiny/DecoderTiny in
// vae.py): the tiny autoencoder TAESD / TAESDXL, plain 3×3 convolutions and ReLU residual blocks,
// a deterministic encoder (no posterior to sample) and a decoder about 100× cheaper than
// AutoencoderKL's.
//
//   block(x)  = ReLU(conv₃(ReLU(conv₂(ReLU(conv₁(x))))) + x)
//   encode(x) = layers((x + 1) / 2)          conv, blocks, [stride-2 conv, blocks]…, conv → latents
//   decode(z) = 2 · layers(3 tanh(z / 3)) − 1   conv, ReLU, [blocks, 2× nearest, conv]…, blocks, conv
//
// The pipelines use it as any VAE: z = s · encode(x), x̂ = decode(z / s), with s = scaling_factor
// (1.0 for TAESD). `latent_magnitude`/`latent_shift` only pack latents into bytes; nothing here uses them.

import Foundation
import LDMCore

/// diffusers' `AutoencoderTiny` config.
public struct AutoencoderTinyConfig: Codable, Equatable, Sendable {
    public var inChannels = 3
    public var outChannels = 3
    public var encoderBlockOutChannels = [64, 64, 64, 64]
    public var decoderBlockOutChannels = [64, 64, 64, 64]
    public var actFn = "relu"
    public var upsampleFn = "nearest"
    public var latentChannels = 4
    public var upsamplingScalingFactor = 2
    public var numEncoderBlocks = [1, 3, 3, 3]
    public var numDecoderBlocks = [3, 3, 3, 1]
    public var scalingFactor: Float = 1
    public var shiftFactor: Float = 0

    enum CodingKeys: String, CodingKey {
        case inChannels = "in_channels", outChannels = "out_channels"
        case encoderBlockOutChannels = "encoder_block_out_channels", decoderBlockOutChannels = "decoder_block_out_channels"
        case actFn = "act_fn", upsampleFn = "upsample_fn", latentChannels = "latent_channels"
        case upsamplingScalingFactor = "upsampling_scaling_factor", numEncoderBlocks = "num_encoder_blocks"
        case numDecoderBlocks = "num_decoder_blocks", scalingFactor = "scaling_factor", shiftFactor = "shift_factor"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let d = AutoencoderTinyConfig()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        inChannels = try c.value(.inChannels, d.inChannels)
        outChannels = try c.value(.outChannels, d.outChannels)
        encoderBlockOutChannels = try c.value(.encoderBlockOutChannels, d.encoderBlockOutChannels)
        decoderBlockOutChannels = try c.value(.decoderBlockOutChannels, d.decoderBlockOutChannels)
        actFn = try c.value(.actFn, d.actFn)
        upsampleFn = try c.value(.upsampleFn, d.upsampleFn)
        latentChannels = try c.value(.latentChannels, d.latentChannels)
        upsamplingScalingFactor = try c.value(.upsamplingScalingFactor, d.upsamplingScalingFactor)
        numEncoderBlocks = try c.value(.numEncoderBlocks, d.numEncoderBlocks)
        numDecoderBlocks = try c.value(.numDecoderBlocks, d.numDecoderBlocks)
        scalingFactor = try c.value(.scalingFactor, d.scalingFactor)
        shiftFactor = try c.value(.shiftFactor, d.shiftFactor)
    }

    public func validate() throws {
        func bad(_ key: String, _ value: Any) -> ModelError { .unsupported(component: "vae", key: key, value: "\(value)") }
        if actFn != "relu" { throw bad("act_fn", actFn) }
        if upsampleFn != "nearest" { throw bad("upsample_fn", upsampleFn) }
        if upsamplingScalingFactor != 2 { throw bad("upsampling_scaling_factor", upsamplingScalingFactor) }
        if shiftFactor != 0 { throw bad("shift_factor", shiftFactor) }
        for (key, v) in [("in_channels", inChannels), ("out_channels", outChannels), ("latent_channels", latentChannels)]
        where v < 1 || v > 64 { throw bad(key, v) }
        for (key, list) in [("encoder_block_out_channels", encoderBlockOutChannels), ("decoder_block_out_channels", decoderBlockOutChannels)] {
            guard (1...8).contains(list.count), let first = list.first, (1...4096).contains(first), list.allSatisfy({ $0 == first }) else {
                throw bad(key, list)
            }
        }
        for (key, blocks, channels) in [("num_encoder_blocks", numEncoderBlocks, encoderBlockOutChannels),
                                        ("num_decoder_blocks", numDecoderBlocks, decoderBlockOutChannels)]
        where blocks.count != channels.count || blocks.contains(where: { $0 < 0 || $0 > 64 }) {
            throw bad(key, blocks)
        }
        if numEncoderBlocks.count != numDecoderBlocks.count {
            throw bad("num_decoder_blocks", "\(numDecoderBlocks.count) levels for an encoder of \(numEncoderBlocks.count)")
        }
    }

    /// Image pixels per latent pixel: 2^(levels − 1).
    public var downsamplingFactor: Int { 1 << (numEncoderBlocks.count - 1) }
}

/// ReLU(conv(ReLU(conv(ReLU(conv(x))))) + x).
public final class AutoencoderTinyBlock: Module {
    public let convs: [Conv2d]
    init(channels: Int) { convs = (0..<3).map { _ in Conv2d(channels, channels, kernel: 3, padding: 1) } }
    override public var children: [(String, Module)] {
        [("conv.0", convs[0]), ("conv.2", convs[1]), ("conv.4", convs[2])]
    }
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let h = convs[2](relu(convs[1](relu(convs[0](x)))))
        return zipMap(h, x) { a, b in max(a + b, 0) }
    }
}

/// One entry of a tiny encoder's or decoder's layer list (its index is its weight name).
enum TinyLayer {
    case conv(Conv2d), block(AutoencoderTinyBlock), relu, upsample
}

/// A numbered sequence of tiny layers, as `nn.Sequential` names them.
public final class TinyLayers: Module {
    let layers: [TinyLayer]
    init(_ layers: [TinyLayer]) { self.layers = layers }
    override public var children: [(String, Module)] {
        layers.enumerated().compactMap { i, layer -> (String, Module)? in
            switch layer {
            case let .conv(c): return ("layers.\(i)", c)
            case let .block(b): return ("layers.\(i)", b)
            case .relu, .upsample: return nil
            }
        }
    }
    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = x
        for layer in layers {
            switch layer {
            case let .conv(c): h = c(h)
            case let .block(b): h = b(h)
            case .relu: h = relu(h)
            case .upsample: h = upsampleNearest2x(h)
            }
        }
        return h
    }
}

/// The tiny autoencoder.
public final class AutoencoderTiny: Module {
    public let config: AutoencoderTinyConfig
    public let encoder: TinyLayers, decoder: TinyLayers

    public init(config: AutoencoderTinyConfig) throws {
        try config.validate()
        self.config = config
        let ec = config.encoderBlockOutChannels[0], dc = config.decoderBlockOutChannels[0]
        var enc: [TinyLayer] = []
        for (i, count) in config.numEncoderBlocks.enumerated() {
            enc.append(.conv(i == 0 ? Conv2d(config.inChannels, ec, kernel: 3, padding: 1)
                                    : Conv2d(ec, ec, kernel: 3, stride: 2, padding: 1, bias: false)))
            enc += (0..<count).map { _ in .block(AutoencoderTinyBlock(channels: ec)) }
        }
        enc.append(.conv(Conv2d(ec, config.latentChannels, kernel: 3, padding: 1)))
        encoder = TinyLayers(enc)
        var dec: [TinyLayer] = [.conv(Conv2d(config.latentChannels, dc, kernel: 3, padding: 1)), .relu]
        let levels = config.numDecoderBlocks.count
        for (i, count) in config.numDecoderBlocks.enumerated() {
            let last = i == levels - 1
            dec += (0..<count).map { _ in .block(AutoencoderTinyBlock(channels: dc)) }
            if !last { dec.append(.upsample) }
            dec.append(.conv(Conv2d(dc, last ? config.outChannels : dc, kernel: 3, padding: 1, bias: last)))
        }
        decoder = TinyLayers(dec)
    }

    override public var children: [(String, Module)] { [("encoder", encoder), ("decoder", decoder)] }

    /// Latents [N, C, h, w] of images [N, 3, H, W] in [-1, 1] (before the scaling factor).
    public func encode(_ x: Tensor) -> Tensor { encoder(map(x) { ($0 + 1) / 2 }) }

    /// Images in about [-1, 1] of latents (after dividing by the scaling factor).
    public func decode(_ z: Tensor) -> Tensor {
        let y = decoder(map(z) { tanhf($0 / 3) * 3 })
        return map(y) { $0 * 2 - 1 }
    }
}

/// max(x, 0).
func relu(_ x: Tensor) -> Tensor { map(x) { max($0, 0) } }

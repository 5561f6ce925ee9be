// UNet2DConditionModel's configuration, decoded from diffusers' unet/config.json.

import Foundation

/// diffusers' `UNet2DConditionModel` config (the keys Stable Diffusion 1.x/2.x, SDXL and LCM folders use).
public struct UNetConfig: Codable, Equatable, Sendable {
    /// Latent height and width the model was trained at.
    public var sampleSize: Int
    /// Input channels: 4, or 9 for inpainting (latents + mask + masked-image latents).
    public var inChannels: Int
    /// Output channels (the noise / v prediction), 4.
    public var outChannels: Int
    /// Order of sin and cos in the timestep embedding (true: cos first).
    public var flipSinToCos: Bool
    /// Shift of the frequency denominator in the timestep embedding.
    public var freqShift: Int
    /// "CrossAttnDownBlock2D" or "DownBlock2D", one per level.
    public var downBlockTypes: [String]
    /// "UNetMidBlock2DCrossAttn".
    public var midBlockType: String
    /// "UpBlock2D" or "CrossAttnUpBlock2D", one per level (deepest first).
    public var upBlockTypes: [String]
    /// Channels of each level.
    public var blockOutChannels: [Int]
    /// Residual blocks per down level (up levels have one more).
    public var layersPerBlock: IntOrList
    /// Padding of the stride-2 downsampling conv.
    public var downsamplePadding: Int
    /// Output scale of the mid block's resnets.
    public var midBlockScaleFactor: Float
    /// Activation of the time embedding MLP and the resnets: "silu".
    public var actFn: String
    /// Groups of every group norm.
    public var normNumGroups: Int
    /// Epsilon of the resnets' group norms and the output norm.
    public var normEps: Float
    /// Width of the text context vectors.
    public var crossAttentionDim: Int
    /// Transformer blocks inside each Transformer2DModel.
    public var transformerLayersPerBlock: IntOrList
    /// Despite its name, diffusers uses this as the number of attention heads (one value or per block).
    public var attentionHeadDim: IntOrList
    /// Number of heads, when given explicitly (takes precedence over attention_head_dim).
    public var numAttentionHeads: IntOrList?
    /// proj_in/proj_out as linear layers (SD2.x) rather than 1×1 convs (SD1.x).
    public var useLinearProjection: Bool
    /// Softmax in float32 for half-precision runs; no effect in float32.
    public var upcastAttention: Bool
    // Keys read only to reject values this implementation does not support.
    var centerInputSample: Bool
    var onlyCrossAttention: Bool
    var dualCrossAttention: Bool
    var classEmbedType: String?
    public var additionEmbedType: String?
    var resnetTimeScaleShift: String
    var timeEmbeddingType: String
    var convInKernel: Int
    var convOutKernel: Int
    /// LCM-distilled U-Nets: width of the guidance-scale embedding added to the timestep features.
    public var timeCondProjDim: Int?
    var encoderHidDim: Int?
    /// SDXL ("text_time"): width of the sinusoidal features of each added time id.
    public var additionTimeEmbedDim: Int?
    /// SDXL: input width of the added embedding (pooled text width + time ids × addition_time_embed_dim).
    public var projectionClassEmbeddingsInputDim: Int?

    enum CodingKeys: String, CodingKey {
        case sampleSize = "sample_size", inChannels = "in_channels", outChannels = "out_channels"
        case flipSinToCos = "flip_sin_to_cos", freqShift = "freq_shift"
        case downBlockTypes = "down_block_types", midBlockType = "mid_block_type", upBlockTypes = "up_block_types"
        case blockOutChannels = "block_out_channels", layersPerBlock = "layers_per_block"
        case downsamplePadding = "downsample_padding", midBlockScaleFactor = "mid_block_scale_factor"
        case actFn = "act_fn", normNumGroups = "norm_num_groups", normEps = "norm_eps"
        case crossAttentionDim = "cross_attention_dim", transformerLayersPerBlock = "transformer_layers_per_block"
        case attentionHeadDim = "attention_head_dim", numAttentionHeads = "num_attention_heads"
        case useLinearProjection = "use_linear_projection", upcastAttention = "upcast_attention"
        case centerInputSample = "center_input_sample", onlyCrossAttention = "only_cross_attention"
        case dualCrossAttention = "dual_cross_attention", classEmbedType = "class_embed_type"
        case additionEmbedType = "addition_embed_type", resnetTimeScaleShift = "resnet_time_scale_shift"
        case timeEmbeddingType = "time_embedding_type", convInKernel = "conv_in_kernel", convOutKernel = "conv_out_kernel"
        case timeCondProjDim = "time_cond_proj_dim", encoderHidDim = "encoder_hid_dim"
        case additionTimeEmbedDim = "addition_time_embed_dim"
        case projectionClassEmbeddingsInputDim = "projection_class_embeddings_input_dim"
    }

    /// diffusers' defaults, with the given overrides.
    public init(sampleSize: Int = 64, inChannels: Int = 4, outChannels: Int = 4,
                downBlockTypes: [String] = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                upBlockTypes: [String] = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
                blockOutChannels: [Int] = [320, 640, 1280, 1280], layersPerBlock: Int = 2,
                normNumGroups: Int = 32, crossAttentionDim: Int = 1280, attentionHeadDim: IntOrList = .one(8),
                useLinearProjection: Bool = false) {
        self.sampleSize = sampleSize; self.inChannels = inChannels; self.outChannels = outChannels
        flipSinToCos = true; freqShift = 0
        self.downBlockTypes = downBlockTypes; midBlockType = "UNetMidBlock2DCrossAttn"; self.upBlockTypes = upBlockTypes
        self.blockOutChannels = blockOutChannels; self.layersPerBlock = .one(layersPerBlock)
        downsamplePadding = 1; midBlockScaleFactor = 1; actFn = "silu"
        self.normNumGroups = normNumGroups; normEps = 1e-5; self.crossAttentionDim = crossAttentionDim
        transformerLayersPerBlock = .one(1); self.attentionHeadDim = attentionHeadDim; numAttentionHeads = nil
        self.useLinearProjection = useLinearProjection; upcastAttention = false
        centerInputSample = false; onlyCrossAttention = false; dualCrossAttention = false
        classEmbedType = nil; additionEmbedType = nil; resnetTimeScaleShift = "default"
        timeEmbeddingType = "positional"; convInKernel = 3; convOutKernel = 3; timeCondProjDim = nil; encoderHidDim = nil
        additionTimeEmbedDim = nil; projectionClassEmbeddingsInputDim = nil
    }

    public init(from decoder: Decoder) throws {
        let d = UNetConfig()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sampleSize = try c.value(.sampleSize, d.sampleSize)
        inChannels = try c.value(.inChannels, d.inChannels)
        outChannels = try c.value(.outChannels, d.outChannels)
        flipSinToCos = try c.value(.flipSinToCos, d.flipSinToCos)
        freqShift = try c.value(.freqShift, d.freqShift)
        downBlockTypes = try c.value(.downBlockTypes, d.downBlockTypes)
        midBlockType = try c.value(.midBlockType, d.midBlockType)
        upBlockTypes = try c.value(.upBlockTypes, d.upBlockTypes)
        blockOutChannels = try c.value(.blockOutChannels, d.blockOutChannels)
        layersPerBlock = try c.value(.layersPerBlock, d.layersPerBlock)
        downsamplePadding = try c.value(.downsamplePadding, d.downsamplePadding)
        midBlockScaleFactor = try c.value(.midBlockScaleFactor, d.midBlockScaleFactor)
        actFn = try c.value(.actFn, d.actFn)
        normNumGroups = try c.value(.normNumGroups, d.normNumGroups)
        normEps = try c.value(.normEps, d.normEps)
        if let list = try? c.decodeIfPresent([Int].self, forKey: .crossAttentionDim), let first = list.first {
            crossAttentionDim = first
        } else {
            crossAttentionDim = try c.value(.crossAttentionDim, d.crossAttentionDim)
        }
        transformerLayersPerBlock = try c.value(.transformerLayersPerBlock, d.transformerLayersPerBlock)
        attentionHeadDim = try c.value(.attentionHeadDim, d.attentionHeadDim)
        numAttentionHeads = try c.decodeIfPresent(IntOrList.self, forKey: .numAttentionHeads)
        useLinearProjection = try c.value(.useLinearProjection, d.useLinearProjection)
        upcastAttention = try c.value(.upcastAttention, d.upcastAttention)
        centerInputSample = try c.value(.centerInputSample, false)
        if let v = try? c.decodeIfPresent(Bool.self, forKey: .onlyCrossAttention) { onlyCrossAttention = v } else {
            onlyCrossAttention = ((try? c.decodeIfPresent([Bool].self, forKey: .onlyCrossAttention)) ?? nil)?.contains(true) ?? false
        }
        dualCrossAttention = try c.value(.dualCrossAttention, false)
        classEmbedType = try c.decodeIfPresent(String.self, forKey: .classEmbedType)
        additionEmbedType = try c.decodeIfPresent(String.self, forKey: .additionEmbedType)
        resnetTimeScaleShift = try c.value(.resnetTimeScaleShift, "default")
        timeEmbeddingType = try c.value(.timeEmbeddingType, "positional")
        convInKernel = try c.value(.convInKernel, 3)
        convOutKernel = try c.value(.convOutKernel, 3)
        timeCondProjDim = try c.decodeIfPresent(Int.self, forKey: .timeCondProjDim)
        encoderHidDim = try c.decodeIfPresent(Int.self, forKey: .encoderHidDim)
        additionTimeEmbedDim = try c.decodeIfPresent(Int.self, forKey: .additionTimeEmbedDim)
        projectionClassEmbeddingsInputDim = try c.decodeIfPresent(Int.self, forKey: .projectionClassEmbeddingsInputDim)
    }

    /// Throws for values this implementation does not support, naming the key.
    public func validate() throws {
        func bad(_ key: String, _ value: Any) -> ModelError { .unsupported(component: "unet", key: key, value: "\(value)") }
        let levels = blockOutChannels.count
        guard levels > 0, downBlockTypes.count == levels, upBlockTypes.count == levels else {
            throw bad("block_out_channels", "\(blockOutChannels) with \(downBlockTypes.count) down and \(upBlockTypes.count) up blocks")
        }
        for t in downBlockTypes where !["CrossAttnDownBlock2D", "DownBlock2D"].contains(t) { throw bad("down_block_types", t) }
        for t in upBlockTypes where !["CrossAttnUpBlock2D", "UpBlock2D"].contains(t) { throw bad("up_block_types", t) }
        if midBlockType != "UNetMidBlock2DCrossAttn" { throw bad("mid_block_type", midBlockType) }
        if actFn != "silu" { throw bad("act_fn", actFn) }
        if centerInputSample { throw bad("center_input_sample", true) }
        if onlyCrossAttention { throw bad("only_cross_attention", true) }
        if dualCrossAttention { throw bad("dual_cross_attention", true) }
        if let classEmbedType { throw bad("class_embed_type", classEmbedType) }
        if let additionEmbedType {
            guard additionEmbedType == "text_time" else { throw bad("addition_embed_type", additionEmbedType) }
            guard let a = additionTimeEmbedDim, (2...4096).contains(a), a % 2 == 0 else {
                throw bad("addition_time_embed_dim", additionTimeEmbedDim.map { "\($0)" } ?? "missing")
            }
            guard let p = projectionClassEmbeddingsInputDim, p > 0, p <= 65536 else {
                throw bad("projection_class_embeddings_input_dim", projectionClassEmbeddingsInputDim.map { "\($0)" } ?? "missing")
            }
        }
        if resnetTimeScaleShift != "default" { throw bad("resnet_time_scale_shift", resnetTimeScaleShift) }
        if timeEmbeddingType != "positional" { throw bad("time_embedding_type", timeEmbeddingType) }
        if convInKernel != 3 { throw bad("conv_in_kernel", convInKernel) }
        if convOutKernel != 3 { throw bad("conv_out_kernel", convOutKernel) }
        if let timeCondProjDim, !(1...65536).contains(timeCondProjDim) { throw bad("time_cond_proj_dim", timeCondProjDim) }
        if let encoderHidDim { throw bad("encoder_hid_dim", encoderHidDim) }
        // Sizes: positive and bounded, so a config cannot ask for unbounded memory or divide by zero.
        if levels > 8 { throw bad("block_out_channels", blockOutChannels) }
        for c in blockOutChannels where !(1...16384).contains(c) { throw bad("block_out_channels", blockOutChannels) }
        for (key, v, limit) in [("in_channels", inChannels, 64), ("out_channels", outChannels, 64), ("norm_num_groups", normNumGroups, 16384),
                                ("cross_attention_dim", crossAttentionDim, 65536), ("sample_size", sampleSize, 4096),
                                ("downsample_padding", downsamplePadding + 1, 8)]
        where !(1...limit).contains(v) { throw bad(key, v) }
        for (key, v) in [("layers_per_block", layersPerBlock), ("attention_head_dim", attentionHeadDim),
                         ("transformer_layers_per_block", transformerLayersPerBlock)] where v.perBlock(levels).count != levels {
            throw bad(key, v)
        }
        for (key, v, limit) in [("layers_per_block", layersPerBlock, 64), ("transformer_layers_per_block", transformerLayersPerBlock, 64)]
        where v.perBlock(levels).contains(where: { !(1...limit).contains($0) }) {
            throw bad(key, v)
        }
        if let n = numAttentionHeads, n.perBlock(levels).count != levels { throw bad("num_attention_heads", n) }
        for h in heads where !(1...1024).contains(h) { throw bad("attention_head_dim", heads) }
        for (i, c) in blockOutChannels.enumerated() {
            if c % normNumGroups != 0 { throw bad("norm_num_groups", "\(normNumGroups) for \(c) channels") }
            if c % heads[i] != 0 { throw bad("attention_head_dim", "\(heads[i]) heads for \(c) channels") }
        }
    }

    /// Whether the U-Net takes SDXL's added conditioning (pooled text embedding and time ids).
    public var takesTextTime: Bool { additionEmbedType == "text_time" }

    /// Attention heads of each level.
    public var heads: [Int] { (numAttentionHeads ?? attentionHeadDim).perBlock(blockOutChannels.count) }
}

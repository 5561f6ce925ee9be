// FLOPs of one forward call, counted layer by layer from a model's configuration and input shape,
// the way PyTorch's `torch.utils.flop_counter.FlopCounterMode` counts them (torch 2.13,
// torch/utils/flop_counter.py): one multiply-add is 2 FLOPs, and only these operators count —
//
//   convolution       2 · N · C_out · H_out · W_out · C_in · k_h · k_w          (bias not counted)
//   linear (mm/addmm) 2 · rows · in · out                                       (bias not counted)
//   attention (SDPA)  2 · B · heads · L_q · L_k · d   (Q Kᵀ)  +  2 · B · heads · L_q · L_k · d_v   (P V)
//
// Norms, activations, softmax, upsampling, concatenation and elementwise work count nothing, and
// causal masking does not reduce the attention count. (FlopCounterMode counts SDPA only when torch
// runs its math form, as on the meta device; torch 2.13 on the CPU dispatches it to
// `_scaled_dot_product_flash_attention_for_cpu`, which has no formula and counts 0. We always
// count the two products; scripts/count_flops.py prints both figures.)
//
// The walk mirrors the constructors in LDMModels (UNet.swift, UNetBlocks.swift, VAE.swift,
// CLIPTextModel.swift) block by block, without allocating weights, so Stable Diffusion sizes in
// pixel space cost nothing to count. Every layer is named by its diffusers / transformers key path
// (`down_blocks.0.resnets.0.conv1`); the products of an attention are listed under the path of the
// attention module itself (`…transformer_blocks.0.attn1`). The tests check the names and the
// parameter totals against the real module trees.

import LDMModels

/// What kind of operator a layer is.
public enum LayerKind: String, Sendable, Codable {
    case convolution, linear, attention, norm, embedding

    /// Whether FlopCounterMode counts FLOPs for this kind.
    public var countsFLOPs: Bool { self == .convolution || self == .linear || self == .attention }
}

/// One layer of a network at a given input size: its FLOPs for one forward call and its parameters.
public struct LayerCost: Sendable, Equatable {
    /// diffusers / transformers key path (`down_blocks.0.resnets.0.conv1`).
    public var name: String
    public var kind: LayerKind
    /// FLOPs of one forward call, as FlopCounterMode counts them.
    public var flops: Double
    /// Parameter elements (weights and biases).
    public var parameters: Int
}

/// A block of a network: enough to count its FLOPs at any input size and to rebuild it alone.
public enum BlockKind: Hashable, Sendable {
    /// A single convolution (`conv_in`, `conv_out`, `post_quant_conv`).
    case conv(inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int)
    /// A single linear layer applied to `batch` rows (the time embedding MLP).
    case linear(inFeatures: Int, outFeatures: Int)
    /// Group norm followed by SiLU (`conv_norm_out`).
    case groupNorm(channels: Int, groups: Int, eps: Float)
    /// ResnetBlock2D; `skipChannels` > 0 when its input is the concatenation of the previous output
    /// and a U-Net skip connection.
    case resnet(inChannels: Int, skipChannels: Int, outChannels: Int, tembChannels: Int?, groups: Int, eps: Float)
    /// Transformer2DModel: group norm, proj_in, `layers` BasicTransformerBlocks, proj_out.
    case transformer(channels: Int, heads: Int, headDim: Int, contextDim: Int, contextLength: Int, layers: Int,
                     groups: Int, linearProjection: Bool)
    /// The VAE mid block's single-head attention over the H·W positions (with its group norm).
    case spatialAttention(channels: Int, groups: Int)
    /// Downsample2D: stride-2 3×3 conv; `padding` 0 pads one row/column on the right/bottom first.
    case downsample(channels: Int, padding: Int)
    /// Upsample2D: nearest 2× then a 3×3 conv.
    case upsample(channels: Int)
    /// A lookup table applied to `batch · tokens` ids.
    case embedding(count: Int, dim: Int)
    /// One CLIP encoder layer over `tokens` positions.
    case clipLayer(width: Int, intermediate: Int, heads: Int)
    /// A final layer norm over `tokens` positions.
    case layerNorm(width: Int)

    /// Whether the block works on an image grid (its cost grows with height × width).
    public var isSpatial: Bool {
        switch self {
        case .linear, .embedding, .clipLayer, .layerNorm: return false
        default: return true
        }
    }
}

/// One block of a network at its place in the forward pass.
public struct NetworkBlock: Sendable {
    /// Key path of the block (`down_blocks.1.attentions.0`, `conv_in`).
    public var name: String
    public var kind: BlockKind
    public var batch: Int
    /// Input height and width (for token sequences: tokens and 1).
    public var height: Int, width: Int
    /// Whether the U-Net keeps this block's output for a skip connection.
    public var keepsSkip: Bool = false

    /// The block's layers at its input size.
    public var layers: [LayerCost] { blockLayers(kind, name: name, batch: batch, height: height, width: width) }
    /// FLOPs of one call of the block.
    public var flops: Double { layers.reduce(0) { $0 + $1.flops } }
    /// Output [channels, height, width] of one sample.
    public var output: (channels: Int, height: Int, width: Int) { blockOutput(kind, height: height, width: width) }
}

// MARK: - The counts

/// FLOPs of one U-Net call, layer by layer in forward order: `batch` latents of height × width
/// and a context of `contextLength` tokens.
public func unetFLOPs(config: UNetConfig, batch: Int, height: Int, width: Int,
                      contextLength: Int) -> [(layer: String, flops: Double)] {
    flopList(unetBlocks(config: config, batch: batch, height: height, width: width, contextLength: contextLength))
}

/// FLOPs of one VAE decode (`post_quant_conv` and the decoder) of `batch` latents of the given size.
public func vaeDecoderFLOPs(config: VAEConfig, batch: Int, latentHeight: Int, latentWidth: Int) -> [(layer: String, flops: Double)] {
    flopList(vaeDecoderBlocks(config: config, batch: batch, latentHeight: latentHeight, latentWidth: latentWidth))
}

/// FLOPs of one VAE encode (the encoder and `quant_conv`) of `batch` images of height × width pixels.
public func vaeEncoderFLOPs(config: VAEConfig, batch: Int, height: Int, width: Int) -> [(layer: String, flops: Double)] {
    flopList(vaeEncoderBlocks(config: config, batch: batch, height: height, width: width))
}

/// FLOPs of one text-encoder call on `batch` sequences of `tokens` ids.
public func textEncoderFLOPs(config: CLIPTextConfig, batch: Int, tokens: Int) -> [(layer: String, flops: Double)] {
    flopList(textEncoderBlocks(config: config, batch: batch, tokens: tokens))
}

/// The sum of a per-layer list.
public func totalFLOPs(_ layers: [(layer: String, flops: Double)]) -> Double { layers.reduce(0) { $0 + $1.flops } }

/// Parameter elements of a walked network (equal to the real module's `parameterCount`).
public func parameterCount(_ blocks: [NetworkBlock]) -> Int {
    blocks.reduce(0) { $0 + blockLayers($1.kind, name: $1.name, batch: 1, height: 1, width: 1).reduce(0) { $0 + $1.parameters } }
}

func flopList(_ blocks: [NetworkBlock]) -> [(layer: String, flops: Double)] {
    blocks.flatMap(\.layers).filter { $0.kind.countsFLOPs }.map { (layer: $0.name, flops: $0.flops) }
}

// MARK: - Walking the networks (mirrors the constructors and forward passes in LDMModels)

/// The U-Net's blocks in forward order (UNet2DConditionModel.init / callAsFunction).
public func unetBlocks(config c: UNetConfig, batch n: Int, height: Int, width: Int, contextLength: Int) -> [NetworkBlock] {
    let ch = c.blockOutChannels, levels = ch.count, tembDim = ch[0] * 4, heads = c.heads
    let layers = c.layersPerBlock.perBlock(levels), tlayers = c.transformerLayersPerBlock.perBlock(levels)
    let g = c.normNumGroups, eps = c.normEps
    var blocks: [NetworkBlock] = []
    var h = height, w = width
    func add(_ name: String, _ kind: BlockKind, skip: Bool = false) {
        let b = NetworkBlock(name: name, kind: kind, batch: n, height: h, width: w, keepsSkip: skip)
        blocks.append(b)
        (h, w) = (b.output.height, b.output.width)
    }
    func transformer(_ channels: Int, _ heads: Int, _ layers: Int) -> BlockKind {
        .transformer(channels: channels, heads: heads, headDim: channels / heads, contextDim: c.crossAttentionDim,
                     contextLength: contextLength, layers: layers, groups: g, linearProjection: c.useLinearProjection)
    }
    blocks.append(NetworkBlock(name: "time_embedding.linear_1", kind: .linear(inFeatures: ch[0], outFeatures: tembDim),
                               batch: n, height: 1, width: 1))
    blocks.append(NetworkBlock(name: "time_embedding.linear_2", kind: .linear(inFeatures: tembDim, outFeatures: tembDim),
                               batch: n, height: 1, width: 1))
    add("conv_in", .conv(inChannels: c.inChannels, outChannels: ch[0], kernel: 3, stride: 1, padding: 1), skip: true)
    var out = ch[0]
    for i in 0..<levels {
        let input = out
        out = ch[i]
        let cross = c.downBlockTypes[i] == "CrossAttnDownBlock2D"
        for j in 0..<layers[i] {
            add("down_blocks.\(i).resnets.\(j)", .resnet(inChannels: j == 0 ? input : out, skipChannels: 0, outChannels: out,
                                                         tembChannels: tembDim, groups: g, eps: eps), skip: !cross)
            if cross { add("down_blocks.\(i).attentions.\(j)", transformer(out, heads[i], tlayers[i]), skip: true) }
        }
        if i < levels - 1 { add("down_blocks.\(i).downsamplers.0", .downsample(channels: out, padding: c.downsamplePadding), skip: true) }
    }
    let deepest = ch[levels - 1]
    add("mid_block.resnets.0", .resnet(inChannels: deepest, skipChannels: 0, outChannels: deepest, tembChannels: tembDim,
                                       groups: g, eps: eps))
    add("mid_block.attentions.0", transformer(deepest, heads[levels - 1], tlayers[levels - 1]))
    add("mid_block.resnets.1", .resnet(inChannels: deepest, skipChannels: 0, outChannels: deepest, tembChannels: tembDim,
                                       groups: g, eps: eps))
    let rch = Array(ch.reversed()), rheads = Array(heads.reversed())
    let rlayers = Array(layers.reversed()), rtl = Array(tlayers.reversed())
    out = rch[0]
    for i in 0..<levels {
        let prev = out
        out = rch[i]
        let input = rch[min(i + 1, levels - 1)]
        let count = rlayers[i] + 1
        let cross = c.upBlockTypes[i] == "CrossAttnUpBlock2D"
        for j in 0..<count {
            let skip = j == count - 1 ? input : out
            add("up_blocks.\(i).resnets.\(j)", .resnet(inChannels: j == 0 ? prev : out, skipChannels: skip, outChannels: out,
                                                       tembChannels: tembDim, groups: g, eps: eps))
            if cross { add("up_blocks.\(i).attentions.\(j)", transformer(out, rheads[i], rtl[i])) }
        }
        if i < levels - 1 { add("up_blocks.\(i).upsamplers.0", .upsample(channels: out)) }
    }
    add("conv_norm_out", .groupNorm(channels: ch[0], groups: g, eps: eps))
    add("conv_out", .conv(inChannels: ch[0], outChannels: c.outChannels, kernel: 3, stride: 1, padding: 1))
    return blocks
}

/// The VAE encoder's blocks and `quant_conv`, in forward order (AutoencoderKL.encode).
public func vaeEncoderBlocks(config c: VAEConfig, batch n: Int, height: Int, width: Int) -> [NetworkBlock] {
    let ch = c.blockOutChannels, g = c.normNumGroups
    var blocks: [NetworkBlock] = []
    var h = height, w = width
    func add(_ name: String, _ kind: BlockKind) {
        let b = NetworkBlock(name: name, kind: kind, batch: n, height: h, width: w)
        blocks.append(b)
        (h, w) = (b.output.height, b.output.width)
    }
    add("encoder.conv_in", .conv(inChannels: c.inChannels, outChannels: ch[0], kernel: 3, stride: 1, padding: 1))
    var prev = ch[0]
    for i in ch.indices {
        for j in 0..<c.layersPerBlock {
            add("encoder.down_blocks.\(i).resnets.\(j)", .resnet(inChannels: j == 0 ? prev : ch[i], skipChannels: 0,
                                                                 outChannels: ch[i], tembChannels: nil, groups: g, eps: 1e-6))
        }
        if i < ch.count - 1 { add("encoder.down_blocks.\(i).downsamplers.0", .downsample(channels: ch[i], padding: 0)) }
        prev = ch[i]
    }
    blocks += vaeMidBlock("encoder.mid_block", c, n, h, w)
    add("encoder.conv_norm_out", .groupNorm(channels: ch.last!, groups: g, eps: 1e-6))
    add("encoder.conv_out", .conv(inChannels: ch.last!, outChannels: 2 * c.latentChannels, kernel: 3, stride: 1, padding: 1))
    if c.useQuantConv {
        add("quant_conv", .conv(inChannels: 2 * c.latentChannels, outChannels: 2 * c.latentChannels, kernel: 1, stride: 1, padding: 0))
    }
    return blocks
}

/// `post_quant_conv` and the VAE decoder's blocks, in forward order (AutoencoderKL.decode).
public func vaeDecoderBlocks(config c: VAEConfig, batch n: Int, latentHeight: Int, latentWidth: Int) -> [NetworkBlock] {
    let rch = Array(c.blockOutChannels.reversed()), g = c.normNumGroups, l = c.latentChannels
    var blocks: [NetworkBlock] = []
    var h = latentHeight, w = latentWidth
    func add(_ name: String, _ kind: BlockKind) {
        let b = NetworkBlock(name: name, kind: kind, batch: n, height: h, width: w)
        blocks.append(b)
        (h, w) = (b.output.height, b.output.width)
    }
    if c.usePostQuantConv { add("post_quant_conv", .conv(inChannels: l, outChannels: l, kernel: 1, stride: 1, padding: 0)) }
    add("decoder.conv_in", .conv(inChannels: l, outChannels: rch[0], kernel: 3, stride: 1, padding: 1))
    blocks += vaeMidBlock("decoder.mid_block", c, n, h, w)
    var prev = rch[0]
    for i in rch.indices {
        for j in 0..<c.layersPerBlock + 1 {
            add("decoder.up_blocks.\(i).resnets.\(j)", .resnet(inChannels: j == 0 ? prev : rch[i], skipChannels: 0,
                                                               outChannels: rch[i], tembChannels: nil, groups: g, eps: 1e-6))
        }
        if i < rch.count - 1 { add("decoder.up_blocks.\(i).upsamplers.0", .upsample(channels: rch[i])) }
        prev = rch[i]
    }
    add("decoder.conv_norm_out", .groupNorm(channels: rch.last!, groups: g, eps: 1e-6))
    add("decoder.conv_out", .conv(inChannels: rch.last!, outChannels: c.outChannels, kernel: 3, stride: 1, padding: 1))
    return blocks
}

private func vaeMidBlock(_ prefix: String, _ c: VAEConfig, _ n: Int, _ h: Int, _ w: Int) -> [NetworkBlock] {
    let channels = c.blockOutChannels.last!, g = c.normNumGroups
    let resnet = BlockKind.resnet(inChannels: channels, skipChannels: 0, outChannels: channels, tembChannels: nil, groups: g, eps: 1e-6)
    var out = [NetworkBlock(name: prefix + ".resnets.0", kind: resnet, batch: n, height: h, width: w)]
    if c.midBlockAddAttention {
        out.append(NetworkBlock(name: prefix + ".attentions.0", kind: .spatialAttention(channels: channels, groups: g),
                                batch: n, height: h, width: w))
    }
    out.append(NetworkBlock(name: prefix + ".resnets.1", kind: resnet, batch: n, height: h, width: w))
    return out
}

/// The CLIP text transformer's blocks in forward order (height = tokens, width = 1).
public func textEncoderBlocks(config c: CLIPTextConfig, batch n: Int, tokens: Int) -> [NetworkBlock] {
    func block(_ name: String, _ kind: BlockKind) -> NetworkBlock {
        NetworkBlock(name: name, kind: kind, batch: n, height: tokens, width: 1)
    }
    return [block("text_model.embeddings.token_embedding", .embedding(count: c.vocabSize, dim: c.hiddenSize)),
            block("text_model.embeddings.position_embedding", .embedding(count: c.maxPositionEmbeddings, dim: c.hiddenSize))]
        + (0..<c.numHiddenLayers).map {
            block("text_model.encoder.layers.\($0)",
                  .clipLayer(width: c.hiddenSize, intermediate: c.intermediateSize, heads: c.numAttentionHeads))
        }
        + [block("text_model.final_layer_norm", .layerNorm(width: c.hiddenSize))]
}

// MARK: - One block's layers

/// Output size of a conv: ⌊(size + 2·padding − kernel) / stride⌋ + 1.
func convOutput(_ size: Int, kernel: Int, stride: Int, padding: Int) -> Int { (size + 2 * padding - kernel) / stride + 1 }

func blockOutput(_ kind: BlockKind, height h: Int, width w: Int) -> (channels: Int, height: Int, width: Int) {
    switch kind {
    case let .conv(_, o, k, s, p):
        return (o, convOutput(h, kernel: k, stride: s, padding: p), convOutput(w, kernel: k, stride: s, padding: p))
    case let .linear(_, o): return (o, 1, 1)
    case let .groupNorm(c, _, _): return (c, h, w)
    case let .resnet(_, _, o, _, _, _): return (o, h, w)
    case let .transformer(c, _, _, _, _, _, _, _): return (c, h, w)
    case let .spatialAttention(c, _): return (c, h, w)
    case let .downsample(c, p):
        // padding 0: one extra row and column on the right/bottom, then an unpadded conv.
        let e = p == 0 ? 1 : 0
        return (c, convOutput(h + e, kernel: 3, stride: 2, padding: p), convOutput(w + e, kernel: 3, stride: 2, padding: p))
    case let .upsample(c): return (c, 2 * h, 2 * w)
    case let .embedding(_, d): return (d, h, w)
    case let .clipLayer(d, _, _): return (d, h, w)
    case let .layerNorm(d): return (d, h, w)
    }
}

/// Accumulates layers with FlopCounterMode's formulas.
private struct LayerList {
    var layers: [LayerCost] = []

    /// 2 · N · C_out · H_out · W_out · C_in · k²; parameters C_out · C_in · k² + C_out.
    mutating func conv(_ name: String, n: Int, inChannels ci: Int, outChannels co: Int, kernel k: Int, outHeight oh: Int, outWidth ow: Int) {
        let flops = 2 * Double(n) * Double(co) * Double(oh * ow) * Double(ci) * Double(k * k)
        layers.append(LayerCost(name: name, kind: .convolution, flops: flops, parameters: co * ci * k * k + co))
    }
    /// 2 · rows · in · out; parameters in · out (+ out with a bias).
    mutating func linear(_ name: String, rows: Int, _ i: Int, _ o: Int, bias: Bool = true) {
        layers.append(LayerCost(name: name, kind: .linear, flops: 2 * Double(rows) * Double(i) * Double(o),
                                parameters: i * o + (bias ? o : 0)))
    }
    /// Q Kᵀ and P V: 2 · B · heads · L_q · L_k · (d + d_v), with d = d_v = width / heads.
    mutating func products(_ name: String, batch: Int, width: Int, queries: Int, keys: Int) {
        layers.append(LayerCost(name: name, kind: .attention, flops: 2 * Double(batch) * Double(queries) * Double(keys) * Double(2 * width),
                                parameters: 0))
    }
    mutating func norm(_ name: String, _ channels: Int) {
        layers.append(LayerCost(name: name, kind: .norm, flops: 0, parameters: 2 * channels))
    }
    mutating func embedding(_ name: String, count: Int, dim: Int) {
        layers.append(LayerCost(name: name, kind: .embedding, flops: 0, parameters: count * dim))
    }
}

/// The layers of one block, in forward order, for `batch` inputs of height × width.
func blockLayers(_ kind: BlockKind, name p: String, batch n: Int, height h: Int, width w: Int) -> [LayerCost] {
    var l = LayerList()
    switch kind {
    case let .conv(ci, co, k, s, pad):
        l.conv(p, n: n, inChannels: ci, outChannels: co, kernel: k,
               outHeight: convOutput(h, kernel: k, stride: s, padding: pad), outWidth: convOutput(w, kernel: k, stride: s, padding: pad))
    case let .linear(i, o):
        l.linear(p, rows: n, i, o)
    case let .groupNorm(c, _, _):
        l.norm(p, c)
    case let .resnet(ci, skip, co, temb, _, _):
        let cin = ci + skip
        l.norm(p + ".norm1", cin)
        l.conv(p + ".conv1", n: n, inChannels: cin, outChannels: co, kernel: 3, outHeight: h, outWidth: w)
        if let temb { l.linear(p + ".time_emb_proj", rows: n, temb, co) }
        l.norm(p + ".norm2", co)
        l.conv(p + ".conv2", n: n, inChannels: co, outChannels: co, kernel: 3, outHeight: h, outWidth: w)
        if cin != co { l.conv(p + ".conv_shortcut", n: n, inChannels: cin, outChannels: co, kernel: 1, outHeight: h, outWidth: w) }
    case let .transformer(c, heads, headDim, contextDim, m, layers, _, linearProjection):
        let inner = heads * headDim, tokens = n * h * w
        l.norm(p + ".norm", c)
        if linearProjection { l.linear(p + ".proj_in", rows: tokens, c, inner) } else {
            l.conv(p + ".proj_in", n: n, inChannels: c, outChannels: inner, kernel: 1, outHeight: h, outWidth: w)
        }
        for b in 0..<layers {
            let q = p + ".transformer_blocks.\(b)"
            l.norm(q + ".norm1", inner)
            l.linear(q + ".attn1.to_q", rows: tokens, inner, inner, bias: false)
            l.linear(q + ".attn1.to_k", rows: tokens, inner, inner, bias: false)
            l.linear(q + ".attn1.to_v", rows: tokens, inner, inner, bias: false)
            l.products(q + ".attn1", batch: n, width: inner, queries: h * w, keys: h * w)
            l.linear(q + ".attn1.to_out.0", rows: tokens, inner, inner)
            l.norm(q + ".norm2", inner)
            l.linear(q + ".attn2.to_q", rows: tokens, inner, inner, bias: false)
            l.linear(q + ".attn2.to_k", rows: n * m, contextDim, inner, bias: false)
            l.linear(q + ".attn2.to_v", rows: n * m, contextDim, inner, bias: false)
            l.products(q + ".attn2", batch: n, width: inner, queries: h * w, keys: m)
            l.linear(q + ".attn2.to_out.0", rows: tokens, inner, inner)
            l.norm(q + ".norm3", inner)
            l.linear(q + ".ff.net.0.proj", rows: tokens, inner, 8 * inner)
            l.linear(q + ".ff.net.2", rows: tokens, 4 * inner, inner)
        }
        if linearProjection { l.linear(p + ".proj_out", rows: tokens, inner, c) } else {
            l.conv(p + ".proj_out", n: n, inChannels: inner, outChannels: c, kernel: 1, outHeight: h, outWidth: w)
        }
    case let .spatialAttention(c, _):
        let tokens = n * h * w
        l.norm(p + ".group_norm", c)
        l.linear(p + ".to_q", rows: tokens, c, c)
        l.linear(p + ".to_k", rows: tokens, c, c)
        l.linear(p + ".to_v", rows: tokens, c, c)
        l.products(p, batch: n, width: c, queries: h * w, keys: h * w)
        l.linear(p + ".to_out.0", rows: tokens, c, c)
    case let .downsample(c, _):
        let o = blockOutput(kind, height: h, width: w)
        l.conv(p + ".conv", n: n, inChannels: c, outChannels: c, kernel: 3, outHeight: o.height, outWidth: o.width)
    case let .upsample(c):
        l.conv(p + ".conv", n: n, inChannels: c, outChannels: c, kernel: 3, outHeight: 2 * h, outWidth: 2 * w)
    case let .embedding(count, dim):
        l.embedding(p, count: count, dim: dim)
    case let .clipLayer(d, inter, _):
        let tokens = n * h
        l.norm(p + ".layer_norm1", d)
        l.linear(p + ".self_attn.q_proj", rows: tokens, d, d)
        l.linear(p + ".self_attn.k_proj", rows: tokens, d, d)
        l.linear(p + ".self_attn.v_proj", rows: tokens, d, d)
        l.products(p + ".self_attn", batch: n, width: d, queries: h, keys: h)
        l.linear(p + ".self_attn.out_proj", rows: tokens, d, d)
        l.norm(p + ".layer_norm2", d)
        l.linear(p + ".mlp.fc1", rows: tokens, d, inter)
        l.linear(p + ".mlp.fc2", rows: tokens, inter, d)
    case let .layerNorm(d):
        l.norm(p, d)
    }
    return l.layers
}

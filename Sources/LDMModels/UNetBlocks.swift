// The U-Net's blocks (diffusers/models/unets/unet_2d_blocks.py): CrossAttnDownBlock2D / DownBlock2D,
// UNetMidBlock2DCrossAttn, CrossAttnUpBlock2D / UpBlock2D. A block without attention is the same type
// with an empty `attentions` list, which is all that separates the diffusers classes.

import LDMCore

/// Residual blocks (each optionally followed by a spatial transformer), then an optional downsampler.
public final class DownBlock: Module {
    public let resnets: [ResnetBlock2D]
    public let attentions: [Transformer2DModel]
    public let downsampler: Downsample2D?

    init(inChannels: Int, outChannels: Int, layers: Int, tembChannels: Int, crossAttention: Bool,
         heads: Int, contextDim: Int, transformerLayers: Int, config: UNetConfig, addDownsample: Bool) {
        resnets = (0..<layers).map {
            ResnetBlock2D(inChannels: $0 == 0 ? inChannels : outChannels, outChannels: outChannels,
                          tembChannels: tembChannels, groups: config.normNumGroups, eps: config.normEps)
        }
        attentions = crossAttention ? (0..<layers).map { _ in
            Transformer2DModel(channels: outChannels, heads: heads, headDim: outChannels / heads, contextDim: contextDim,
                               groups: config.normNumGroups, layers: transformerLayers,
                               linearProjection: config.useLinearProjection)
        } : []
        downsampler = addDownsample ? Downsample2D(channels: outChannels, padding: config.downsamplePadding) : nil
    }
    override public var children: [(String, Module)] {
        indexed(resnets).map { ("resnets." + $0.0, $0.1) } + indexed(attentions).map { ("attentions." + $0.0, $0.1) }
            + (downsampler.map { [("downsamplers.0", $0 as Module)] } ?? [])
    }

    /// Returns the block's output and every intermediate state kept for the skip connections.
    public func callAsFunction(_ x: Tensor, temb: Tensor, context: Tensor) -> (Tensor, [Tensor]) {
        var h = x
        var states: [Tensor] = []
        for (j, resnet) in resnets.enumerated() {
            h = resnet(h, temb: temb)
            if !attentions.isEmpty { h = attentions[j](h, context: context) }
            states.append(h)
        }
        if let downsampler { h = downsampler(h); states.append(h) }
        return (h, states)
    }

    /// `grads[i]` is the gradient of state i (the last one includes what flowed from the next block).
    /// Returns (dx, dtemb, dcontext).
    public func backward(_ grads: [Tensor], dtemb: inout Tensor?, dcontext: inout Tensor?) -> Tensor {
        var idx = grads.count - 1
        var g = grads[idx]
        if let downsampler {
            g = downsampler.backward(g)
            idx -= 1
            addInPlace(g, grads[idx])
        }
        for j in resnets.indices.reversed() {
            if !attentions.isEmpty {
                let (dx, dc) = attentions[j].backward(g)
                g = dx
                accumulate(&dcontext, dc)
            }
            let (dx, dt) = resnets[j].backward(g)
            g = dx
            accumulate(&dtemb, dt)
            if j > 0 { idx -= 1; addInPlace(g, grads[idx]) }
        }
        return g
    }
}

/// Residual block, then (transformer, residual block) pairs.
public final class MidBlock: Module {
    public let resnets: [ResnetBlock2D]
    public let attentions: [Transformer2DModel]

    init(channels: Int, tembChannels: Int, heads: Int, contextDim: Int, transformerLayers: Int, config: UNetConfig) {
        resnets = (0..<2).map { _ in
            ResnetBlock2D(inChannels: channels, outChannels: channels, tembChannels: tembChannels,
                          groups: config.normNumGroups, eps: config.normEps)
        }
        attentions = [Transformer2DModel(channels: channels, heads: heads, headDim: channels / heads, contextDim: contextDim,
                                         groups: config.normNumGroups, layers: transformerLayers,
                                         linearProjection: config.useLinearProjection)]
    }
    override public var children: [(String, Module)] {
        indexed(attentions).map { ("attentions." + $0.0, $0.1) } + indexed(resnets).map { ("resnets." + $0.0, $0.1) }
    }

    public func callAsFunction(_ x: Tensor, temb: Tensor, context: Tensor) -> Tensor {
        var h = resnets[0](x, temb: temb)
        for (attn, resnet) in zip(attentions, resnets.dropFirst()) {
            h = attn(h, context: context)
            h = resnet(h, temb: temb)
        }
        return h
    }

    public func backward(_ dy: Tensor, dtemb: inout Tensor?, dcontext: inout Tensor?) -> Tensor {
        var g = dy
        for (attn, resnet) in zip(attentions, resnets.dropFirst()).reversed() {
            let (d1, t1) = resnet.backward(g)
            accumulate(&dtemb, t1)
            let (d2, c2) = attn.backward(d1)
            accumulate(&dcontext, c2)
            g = d2
        }
        let (d0, t0) = resnets[0].backward(g)
        accumulate(&dtemb, t0)
        return d0
    }
}

/// Residual blocks fed with the skip connections (concatenated on channels), each optionally
/// followed by a transformer, then an optional upsampler.
public final class UpBlock: Module {
    public let resnets: [ResnetBlock2D]
    public let attentions: [Transformer2DModel]
    public let upsampler: Upsample2D?
    private var skipChannels: [Int] = []

    init(inChannels: Int, prevOutputChannels: Int, outChannels: Int, layers: Int, tembChannels: Int,
         crossAttention: Bool, heads: Int, contextDim: Int, transformerLayers: Int, config: UNetConfig, addUpsample: Bool) {
        resnets = (0..<layers).map { j in
            let skip = j == layers - 1 ? inChannels : outChannels
            let resIn = j == 0 ? prevOutputChannels : outChannels
            return ResnetBlock2D(inChannels: resIn + skip, outChannels: outChannels, tembChannels: tembChannels,
                                 groups: config.normNumGroups, eps: config.normEps)
        }
        attentions = crossAttention ? (0..<layers).map { _ in
            Transformer2DModel(channels: outChannels, heads: heads, headDim: outChannels / heads, contextDim: contextDim,
                               groups: config.normNumGroups, layers: transformerLayers,
                               linearProjection: config.useLinearProjection)
        } : []
        upsampler = addUpsample ? Upsample2D(channels: outChannels) : nil
    }
    override public var children: [(String, Module)] {
        indexed(attentions).map { ("attentions." + $0.0, $0.1) } + indexed(resnets).map { ("resnets." + $0.0, $0.1) }
            + (upsampler.map { [("upsamplers.0", $0 as Module)] } ?? [])
    }

    /// `skips` in the order they are consumed (the most recent down state first).
    public func callAsFunction(_ x: Tensor, skips: [Tensor], temb: Tensor, context: Tensor) -> Tensor {
        var h = x
        skipChannels = skips.map { $0.shape[1] }
        for (j, resnet) in resnets.enumerated() {
            h = resnet(concat([h, skips[j]], dim: 1), temb: temb)
            if !attentions.isEmpty { h = attentions[j](h, context: context) }
        }
        if let upsampler { h = upsampler(h) }
        return h
    }

    /// Returns dx and the gradients of the skips (same order as consumed).
    public func backward(_ dy: Tensor, dtemb: inout Tensor?, dcontext: inout Tensor?) -> (Tensor, [Tensor]) {
        var g = upsampler?.backward(dy) ?? dy
        var dskips = [Tensor?](repeating: nil, count: resnets.count)
        for j in resnets.indices.reversed() {
            if !attentions.isEmpty {
                let (dx, dc) = attentions[j].backward(g)
                g = dx
                accumulate(&dcontext, dc)
            }
            let (dcat, dt) = resnets[j].backward(g)
            accumulate(&dtemb, dt)
            let parts = split(dcat, sizes: [dcat.shape[1] - skipChannels[j], skipChannels[j]], dim: 1)
            g = parts[0]
            dskips[j] = parts[1]
        }
        return (g, dskips.map { $0! })
    }
}

/// total += part (allocating total on first use).
func accumulate(_ total: inout Tensor?, _ part: Tensor?) {
    guard let part else { return }
    if let t = total { addInPlace(t, part) } else { total = part.copy() }
}

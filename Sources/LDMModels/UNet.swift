// diffusers' UNet2DConditionModel (diffusers/models/unets/unet_2d_condition.py): predicts the noise
// (or v) in a latent from the latent, the timestep and the text context.
//
//   temb = linear_2(SiLU(linear_1(sinusoid(t) + cond_proj(w_emb))))     (cond_proj: LCM U-Nets only)
//   temb += add_embedding(concat(text_embeds, sinusoid(time_ids)))      (SDXL's "text_time" only)
//   h = conv_in(x) → down blocks (keeping skips) → mid block → up blocks (consuming skips)
//   out = conv_out(SiLU(conv_norm_out(h)))

import Foundation
import LDMCore

/// What a U-Net takes besides the latent, timestep and text context, one row per sample.
public struct UNetAddedConditions {
    /// SDXL: the pooled, projected text embedding [N, P] of the last text encoder.
    public var textEmbeds: Tensor?
    /// SDXL: the micro-conditioning ids [N, k] (original size, crop top-left, target size — or the
    /// aesthetic score in place of the target size for the refiner).
    public var timeIds: Tensor?
    /// LCM: the guidance-scale embedding [N, time_cond_proj_dim] (see `guidanceEmbedding`).
    public var timestepCond: Tensor?
    public init(textEmbeds: Tensor? = nil, timeIds: Tensor? = nil, timestepCond: Tensor? = nil) {
        self.textEmbeds = textEmbeds; self.timeIds = timeIds; self.timestepCond = timestepCond
    }
    /// The rows `range` of every part (a half of a guidance batch).
    public func rows(_ range: Range<Int>) -> UNetAddedConditions {
        func take(_ t: Tensor?) -> Tensor? {
            guard let t else { return nil }
            let per = t.count / t.shape[0]
            return Tensor(shape: [range.count] + t.shape.dropFirst(),
                          Array(UnsafeBufferPointer(start: t.data + range.lowerBound * per, count: range.count * per)))
        }
        return UNetAddedConditions(textEmbeds: take(textEmbeds), timeIds: take(timeIds), timestepCond: take(timestepCond))
    }
}

/// The conditional U-Net of Stable Diffusion.
public final class UNet2DConditionModel: Module {
    public let config: UNetConfig
    public let convIn: Conv2d
    public let linear1: Linear, linear2: Linear
    /// LCM: projection of the guidance embedding onto the timestep features.
    public let condProj: Linear?
    /// SDXL: the added embedding's MLP (input: pooled text embedding and time-id features).
    public let addLinear1: Linear?, addLinear2: Linear?
    public let downBlocks: [DownBlock]
    public let midBlock: MidBlock
    public let upBlocks: [UpBlock]
    public let convNormOut: GroupNorm, convOut: Conv2d
    private var timeHidden: Tensor?, skipCounts: [Int] = []

    public init(config: UNetConfig) throws {
        try config.validate()
        self.config = config
        let ch = config.blockOutChannels, levels = ch.count
        let tembDim = ch[0] * 4
        let heads = config.heads
        let layers = config.layersPerBlock.perBlock(levels)
        let tlayers = config.transformerLayersPerBlock.perBlock(levels)
        convIn = Conv2d(config.inChannels, ch[0], kernel: 3, padding: 1)
        linear1 = Linear(ch[0], tembDim)
        linear2 = Linear(tembDim, tembDim)
        condProj = config.timeCondProjDim.map { Linear($0, ch[0], bias: false) }
        if config.takesTextTime, let p = config.projectionClassEmbeddingsInputDim {
            addLinear1 = Linear(p, tembDim)
            addLinear2 = Linear(tembDim, tembDim)
        } else {
            addLinear1 = nil; addLinear2 = nil
        }
        var out = ch[0]
        var down: [DownBlock] = []
        for i in 0..<levels {
            let input = out
            out = ch[i]
            down.append(DownBlock(inChannels: input, outChannels: out, layers: layers[i], tembChannels: tembDim,
                                  crossAttention: config.downBlockTypes[i] == "CrossAttnDownBlock2D", heads: heads[i],
                                  contextDim: config.crossAttentionDim, transformerLayers: tlayers[i], config: config,
                                  addDownsample: i < levels - 1))
        }
        downBlocks = down
        midBlock = MidBlock(channels: ch[levels - 1], tembChannels: tembDim, heads: heads[levels - 1],
                            contextDim: config.crossAttentionDim, transformerLayers: tlayers[levels - 1], config: config)
        let rch = Array(ch.reversed()), rheads = Array(heads.reversed())
        let rlayers = Array(layers.reversed()), rtl = Array(tlayers.reversed())
        var up: [UpBlock] = []
        out = rch[0]
        for i in 0..<levels {
            let prev = out
            out = rch[i]
            let input = rch[min(i + 1, levels - 1)]
            up.append(UpBlock(inChannels: input, prevOutputChannels: prev, outChannels: out, layers: rlayers[i] + 1,
                              tembChannels: tembDim, crossAttention: config.upBlockTypes[i] == "CrossAttnUpBlock2D",
                              heads: rheads[i], contextDim: config.crossAttentionDim, transformerLayers: rtl[i],
                              config: config, addUpsample: i < levels - 1))
        }
        upBlocks = up
        convNormOut = GroupNorm(groups: config.normNumGroups, channels: ch[0], eps: config.normEps)
        convOut = Conv2d(ch[0], config.outChannels, kernel: 3, padding: 1)
    }

    override public var children: [(String, Module)] {
        var c: [(String, Module)] = [("conv_in", convIn), ("time_embedding.linear_1", linear1),
                                     ("time_embedding.linear_2", linear2)]
        if let condProj { c.append(("time_embedding.cond_proj", condProj)) }
        if let addLinear1, let addLinear2 { c += [("add_embedding.linear_1", addLinear1), ("add_embedding.linear_2", addLinear2)] }
        c += indexed(downBlocks).map { ("down_blocks." + $0.0, $0.1) }
        c.append(("mid_block", midBlock))
        c += indexed(upBlocks).map { ("up_blocks." + $0.0, $0.1) }
        c += [("conv_norm_out", convNormOut), ("conv_out", convOut)]
        return c
    }
    override public func releaseCaches() { timeHidden = nil; addHidden = nil }
    private var addHidden: Tensor?

    /// How many times the latent is halved; latent sizes must be multiples of 2^this.
    public var downsamplingFactor: Int { 1 << (config.blockOutChannels.count - 1) }

    /// Sinusoidal timestep features [N, dim], computed in float32 as diffusers' `get_timestep_embedding`:
    /// e_j = exp(−ln(10000) · j / (half − freq_shift)),  [sin(t e), cos(t e)] (cos first when flipped).
    public static func timestepEmbedding(_ timesteps: [Float], dim: Int, flipSinToCos: Bool, freqShift: Int) -> Tensor {
        let half = dim / 2
        let out = Tensor(zeros: [timesteps.count, dim])
        let lnMax = Float(-log(10000.0))
        for (n, t) in timesteps.enumerated() {
            for j in 0..<half {
                let e = expf(lnMax * Float(j) / Float(half - freqShift))
                let arg = t * e
                let (first, second) = flipSinToCos ? (cosf(arg), sinf(arg)) : (sinf(arg), cosf(arg))
                out.data[n * dim + j] = first
                out.data[n * dim + half + j] = second
            }
        }
        return out
    }

    /// The LCM guidance-scale embedding of diffusers' `get_guidance_scale_embedding` for w (the
    /// pipelines pass guidance − 1): e_j = exp(−ln(10000) · j / (half − 1)), [sin(1000 w e), cos(1000 w e)].
    public static func guidanceEmbedding(_ w: [Float], dim: Int) -> Tensor {
        let half = dim / 2
        let out = Tensor(zeros: [w.count, dim])
        let step = logf(10000) / Float(half - 1)
        for (n, value) in w.enumerated() {
            for j in 0..<half {
                let arg = value * 1000 * expf(Float(j) * -step)
                out.data[n * dim + j] = sinf(arg)
                out.data[n * dim + half + j] = cosf(arg)
            }
        }
        return out
    }

    /// What the added conditioning must hold for this U-Net; nil when `added` fits.
    public func addedConditionsProblem(_ added: UNetAddedConditions, batch: Int) -> String? {
        if config.takesTextTime {
            guard let text = added.textEmbeds, let ids = added.timeIds, let a = config.additionTimeEmbedDim else {
                return "this U-Net (addition_embed_type text_time) needs a pooled text embedding and time ids"
            }
            guard text.shape.count == 2, ids.shape.count == 2, text.shape[0] == batch, ids.shape[0] == batch,
                  text.shape[1] + ids.shape[1] * a == config.projectionClassEmbeddingsInputDim else {
                return "this U-Net's added embedding takes \(config.projectionClassEmbeddingsInputDim ?? 0) values; a pooled text "
                    + "embedding \(added.textEmbeds?.shape ?? []) and time ids \(added.timeIds?.shape ?? []) give "
                    + "\((added.textEmbeds?.shape.last ?? 0) + (added.timeIds?.shape.last ?? 0) * a)"
            }
        }
        if let d = config.timeCondProjDim, let cond = added.timestepCond, cond.shape != [batch, d] {
            return "guidance embedding \(cond.shape), expected [\(batch), \(d)]"
        }
        return nil
    }

    /// Predicts noise for `sample` [N, C, h, w] at `timesteps` (one per sample) given `context` [N, L, D]
    /// and, for SDXL and LCM U-Nets, the added conditions.
    public func callAsFunction(_ sample: Tensor, timesteps: [Float], context: Tensor,
                               added: UNetAddedConditions = UNetAddedConditions()) -> Tensor {
        precondition(timesteps.count == sample.shape[0] && context.shape[0] == sample.shape[0],
                     "UNet: batch \(sample.shape[0]) with \(timesteps.count) timesteps and context \(context.shape)")
        if let problem = addedConditionsProblem(added, batch: sample.shape[0]) { preconditionFailure("UNet: " + problem) }
        let tFeatures = UNet2DConditionModel.timestepEmbedding(timesteps, dim: config.blockOutChannels[0],
                                                               flipSinToCos: config.flipSinToCos, freqShift: config.freqShift)
        if let condProj, let cond = added.timestepCond { addInPlace(tFeatures, condProj(cond)) }
        let hidden = linear1(tFeatures)
        if isTraining { timeHidden = hidden }
        let temb = linear2(silu(hidden))
        if let addLinear1, let addLinear2, let text = added.textEmbeds, let ids = added.timeIds,
           let a = config.additionTimeEmbedDim {
            // Each id's sinusoid (as the timestep's), then the ids' features side by side per sample.
            let n = ids.shape[0], k = ids.shape[1]
            let idFeatures = UNet2DConditionModel.timestepEmbedding(Array(UnsafeBufferPointer(start: ids.data, count: n * k)),
                                                                    dim: a, flipSinToCos: config.flipSinToCos,
                                                                    freqShift: config.freqShift)
            let addIn = concat([text, idFeatures.reshaped([n, k * a])], dim: 1)
            let h = addLinear1(addIn)
            if isTraining { addHidden = h }
            addInPlace(temb, addLinear2(silu(h)))
        }
        var h = convIn(sample)
        var states = [h]
        for block in downBlocks {
            let (out, s) = block(h, temb: temb, context: context)
            h = out
            states += s
        }
        h = midBlock(h, temb: temb, context: context)
        skipCounts = []
        for block in upBlocks {
            let n = block.resnets.count
            let skips = Array(states.suffix(n).reversed())
            states.removeLast(n)
            skipCounts.append(n)
            h = block(h, skips: skips, temb: temb, context: context)
        }
        return convOut(convNormOut(h, silu: true))
    }

    /// Backward of the last training forward: accumulates every parameter gradient and returns the
    /// gradient of the context (for training the text encoder jointly).
    public func backward(_ dy: Tensor) -> Tensor {
        guard let timeHidden else { preconditionFailure("UNet.backward without a training forward") }
        var g = convNormOut.backward(convOut.backward(dy)!, silu: true)
        var dtemb: Tensor?, dctx: Tensor?
        // States in forward order: conv_in output, then each down block's states.
        let stateCount = 1 + downBlocks.reduce(0) { $0 + $1.resnets.count + ($1.downsampler == nil ? 0 : 1) }
        var dStates = [Tensor?](repeating: nil, count: stateCount)
        // Up block i consumed, most recent first, the states just below those its predecessors took.
        let consumedBefore = upBlocks.indices.map { i in skipCounts[..<i].reduce(0, +) }
        for i in upBlocks.indices.reversed() {
            let (dx, dskips) = upBlocks[i].backward(g, dtemb: &dtemb, dcontext: &dctx)
            g = dx
            for (j, ds) in dskips.enumerated() {
                let index = stateCount - 1 - consumedBefore[i] - j
                accumulate(&dStates[index], ds)
            }
        }
        g = midBlock.backward(g, dtemb: &dtemb, dcontext: &dctx)
        var end = stateCount
        for block in downBlocks.reversed() {
            let count = block.resnets.count + (block.downsampler == nil ? 0 : 1)
            // Every down state feeds exactly one up resnet, so each has a gradient by now.
            let grads = (end - count..<end).map { dStates[$0]! }
            addInPlace(grads[count - 1], g)
            g = block.backward(grads, dtemb: &dtemb, dcontext: &dctx)
            end -= count
        }
        if let d0 = dStates[0] { addInPlace(g, d0) }
        _ = convIn.backward(g, needInputGrad: false)
        if let dtemb {
            _ = linear1.backward(siluBackward(linear2.backward(dtemb)!, timeHidden), needInputGrad: false)
            if let addLinear1, let addLinear2, let addHidden {
                _ = addLinear1.backward(siluBackward(addLinear2.backward(dtemb)!, addHidden), needInputGrad: false)
            }
        }
        return dctx!
    }
}

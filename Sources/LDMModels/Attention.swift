// diffusers' `Attention`, `FeedForward` (GEGLU), `BasicTransformerBlock` and `Transformer2DModel`
// (diffusers/models/attention_processor.py, attention.py, transformers/transformer_2d.py), forward
// and backward side by side.

import LDMCore

/// Multi-head attention with separate q/k/v projections: to_q, to_k, to_v, to_out.0.
/// Self-attention when no context is given, cross-attention otherwise.
public final class Attention: Module {
    public let toQ: Linear, toK: Linear, toV: Linear, toOut: Linear
    /// diffusers' VAE attention normalises its input with a group norm first (key `group_norm`).
    public let groupNorm: GroupNorm?
    public let heads: Int
    private var q: Tensor?, k: Tensor?, v: Tensor?, crossInput = false

    /// - Parameters: queryDim — channels in; contextDim — channels of the context (nil: self);
    ///   heads × headDim = inner width; `qkvBias` whether q/k/v projections have biases.
    public init(queryDim: Int, contextDim: Int? = nil, heads: Int, headDim: Int, qkvBias: Bool = false,
                groupNorm: GroupNorm? = nil) {
        let inner = heads * headDim
        toQ = Linear(queryDim, inner, bias: qkvBias)
        toK = Linear(contextDim ?? queryDim, inner, bias: qkvBias)
        toV = Linear(contextDim ?? queryDim, inner, bias: qkvBias)
        toOut = Linear(inner, queryDim)
        self.heads = heads
        self.groupNorm = groupNorm
    }
    override public var children: [(String, Module)] {
        (groupNorm.map { [("group_norm", $0 as Module)] } ?? [])
            + [("to_q", toQ), ("to_k", toK), ("to_v", toV), ("to_out.0", toOut)]
    }
    override public func releaseCaches() { q = nil; k = nil; v = nil }

    /// x [B, L, C] (tokens) and optional context [B, M, D] → [B, L, C].
    public func callAsFunction(_ x: Tensor, context: Tensor? = nil) -> Tensor {
        let qq = toQ(x), kk = toK(context ?? x), vv = toV(context ?? x)
        if isTraining { q = qq; k = kk; v = vv; crossInput = context != nil }
        return toOut(attention(q: qq, k: kk, v: vv, heads: heads))
    }

    /// Returns (dx, dcontext); dcontext is nil for self-attention (its share is in dx).
    public func backward(_ dy: Tensor) -> (Tensor, Tensor?) {
        guard let q, let k, let v else { preconditionFailure("Attention.backward without a training forward") }
        let dO = toOut.backward(dy)!
        let (dq, dk, dv) = attentionBackward(dO, q: q, k: k, v: v, heads: heads)
        let dx = toQ.backward(dq)!
        let dctx = toK.backward(dk)!
        addInPlace(dctx, toV.backward(dv)!)
        if crossInput { return (dx, dctx) }
        addInPlace(dx, dctx)
        return (dx, nil)
    }

    /// The VAE form: group norm, attention over the H·W positions, residual. x [N, C, H, W].
    public func spatial(_ x: Tensor) -> Tensor {
        guard let groupNorm else { preconditionFailure("spatial attention needs a group norm") }
        let h = x.shape[2], w = x.shape[3]
        let t = imageToTokens(groupNorm(x))
        let y = tokensToImage(callAsFunction(t), height: h, width: w)
        addInPlace(y, x)
        return y
    }

    /// Backward of `spatial`.
    public func spatialBackward(_ dy: Tensor) -> Tensor {
        let h = dy.shape[2], w = dy.shape[3]
        let (dt, _) = backward(imageToTokens(dy))
        let dx = groupNorm!.backward(tokensToImage(dt, height: h, width: w))
        addInPlace(dx, dy)
        return dx
    }
}

/// GEGLU feed-forward: net.0.proj (dim → 2·inner), hidden ⊙ GELU(gate), net.2 (inner → dim).
public final class FeedForward: Module {
    public let proj: Linear, out: Linear
    let inner: Int
    private var hidden: Tensor?, gate: Tensor?

    public init(dim: Int, mult: Int = 4) {
        inner = dim * mult
        proj = Linear(dim, inner * 2)
        out = Linear(inner, dim)
    }
    override public var children: [(String, Module)] { [("net.0.proj", proj), ("net.2", out)] }
    override public func releaseCaches() { hidden = nil; gate = nil }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let h = proj(x)
        guard isTraining else { return out(geglu(h, inner: inner)) }
        let parts = split(h, sizes: [inner, inner], dim: h.rank - 1)
        hidden = parts[0]; gate = parts[1]
        return out(multiply(parts[0], gelu(parts[1])))
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let hidden, let gate else { preconditionFailure("FeedForward.backward without a training forward") }
        let g = out.backward(dy)!
        let dHidden = multiply(g, gelu(gate))
        let dGate = geluBackward(multiply(g, hidden), gate)
        return proj.backward(concat([dHidden, dGate], dim: dHidden.rank - 1))!
    }
}

/// Self-attention, cross-attention and feed-forward, each pre-normed with a residual.
public final class BasicTransformerBlock: Module {
    public let norm1: LayerNorm, attn1: Attention, norm2: LayerNorm, attn2: Attention, norm3: LayerNorm, ff: FeedForward

    public init(dim: Int, heads: Int, headDim: Int, contextDim: Int, eps: Float = 1e-5) {
        norm1 = LayerNorm(dim, eps: eps)
        attn1 = Attention(queryDim: dim, heads: heads, headDim: headDim)
        norm2 = LayerNorm(dim, eps: eps)
        attn2 = Attention(queryDim: dim, contextDim: contextDim, heads: heads, headDim: headDim)
        norm3 = LayerNorm(dim, eps: eps)
        ff = FeedForward(dim: dim)
    }
    override public var children: [(String, Module)] {
        [("norm1", norm1), ("attn1", attn1), ("norm2", norm2), ("attn2", attn2), ("norm3", norm3), ("ff", ff)]
    }

    public func callAsFunction(_ x: Tensor, context: Tensor) -> Tensor {
        var h = add(x, attn1(norm1(x)))
        h = add(h, attn2(norm2(h), context: context))
        return add(h, ff(norm3(h)))
    }

    /// Returns (dx, dcontext).
    public func backward(_ dy: Tensor) -> (Tensor, Tensor) {
        let d2 = dy.copy()
        addInPlace(d2, norm3.backward(ff.backward(dy)))
        let (da2, dctx) = attn2.backward(d2)
        let d1 = d2
        addInPlace(d1, norm2.backward(da2))
        let (da1, _) = attn1.backward(d1)
        let dx = d1.copy()
        addInPlace(dx, norm1.backward(da1))
        return (dx, dctx!)
    }
}

/// The spatial transformer of the U-Net: group norm, proj_in (1×1 conv or linear), transformer
/// blocks over the H·W tokens, proj_out, residual.
public final class Transformer2DModel: Module {
    public let norm: GroupNorm
    public let projInConv: Conv2d?, projInLinear: Linear?
    public let blocks: [BasicTransformerBlock]
    public let projOutConv: Conv2d?, projOutLinear: Linear?
    private var shape: [Int] = []

    public init(channels: Int, heads: Int, headDim: Int, contextDim: Int, groups: Int, layers: Int = 1,
                linearProjection: Bool) {
        let inner = heads * headDim
        norm = GroupNorm(groups: groups, channels: channels, eps: 1e-6)
        if linearProjection {
            projInLinear = Linear(channels, inner); projOutLinear = Linear(inner, channels)
            projInConv = nil; projOutConv = nil
        } else {
            projInConv = Conv2d(channels, inner, kernel: 1); projOutConv = Conv2d(inner, channels, kernel: 1)
            projInLinear = nil; projOutLinear = nil
        }
        blocks = (0..<layers).map { _ in BasicTransformerBlock(dim: inner, heads: heads, headDim: headDim, contextDim: contextDim) }
    }
    override public var children: [(String, Module)] {
        [("norm", norm), ("proj_in", (projInConv as Module?) ?? projInLinear!)]
            + indexed(blocks).map { ("transformer_blocks." + $0.0, $0.1) }
            + [("proj_out", (projOutConv as Module?) ?? projOutLinear!)]
    }

    /// The inputs of a checkpointed training forward (see `Module.recomputesInBackward`).
    private var checkpoint: (x: Tensor, context: Tensor)?
    override public func releaseCaches() { checkpoint = nil }

    public func callAsFunction(_ x: Tensor, context: Tensor) -> Tensor {
        guard isTraining && recomputesInBackward else { return forward(x, context: context) }
        let y = forward(x, context: context)
        releaseAllCaches()
        checkpoint = (x, context)
        return y
    }

    private func forward(_ x: Tensor, context: Tensor) -> Tensor {
        shape = x.shape
        let h = x.shape[2], w = x.shape[3]
        var t: Tensor
        if let projInConv { t = imageToTokens(projInConv(norm(x))) } else { t = projInLinear!(imageToTokens(norm(x))) }
        for b in blocks { t = b(t, context: context) }
        let y: Tensor
        if let projOutConv { y = projOutConv(tokensToImage(t, height: h, width: w)) } else {
            y = tokensToImage(projOutLinear!(t), height: h, width: w)
        }
        addInPlace(y, x)
        return y
    }

    /// Returns (dx, dcontext).
    public func backward(_ dy: Tensor) -> (Tensor, Tensor) {
        if let c = checkpoint { checkpoint = nil; _ = forward(c.x, context: c.context) }
        let h = shape[2], w = shape[3]
        var dt: Tensor = projOutConv != nil ? imageToTokens(projOutConv!.backward(dy)!) : projOutLinear!.backward(imageToTokens(dy))!
        var dctx: Tensor?
        for b in blocks.reversed() {
            let (d, c) = b.backward(dt)
            dt = d
            if let dctx { addInPlace(dctx, c) } else { dctx = c }
        }
        let dn: Tensor = projInConv != nil ? projInConv!.backward(tokensToImage(dt, height: h, width: w))!
            : tokensToImage(projInLinear!.backward(dt)!, height: h, width: w)
        let dx = norm.backward(dn)
        addInPlace(dx, dy)
        return (dx, dctx!)
    }
}

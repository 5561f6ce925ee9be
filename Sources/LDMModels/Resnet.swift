// diffusers' ResnetBlock2D, Downsample2D and Upsample2D (diffusers/models/resnet.py, downsampling.py,
// upsampling.py), forward and backward side by side.
//
//   h = conv1(SiLU(norm1(x))) [+ time_emb_proj(SiLU(temb))];  h = conv2(SiLU(norm2(h)))
//   out = shortcut(x) + h        (shortcut: 1×1 conv_shortcut when channels change)

import LDMCore

/// The residual block of the U-Net and the VAE ("default" time-embedding norm).
public final class ResnetBlock2D: Module {
    public let norm1: GroupNorm, conv1: Conv2d, timeEmbProj: Linear?, norm2: GroupNorm, conv2: Conv2d
    public let convShortcut: Conv2d?
    private var tembAct: Tensor?

    public init(inChannels: Int, outChannels: Int, tembChannels: Int?, groups: Int, eps: Float) {
        norm1 = GroupNorm(groups: groups, channels: inChannels, eps: eps)
        conv1 = Conv2d(inChannels, outChannels, kernel: 3, padding: 1)
        timeEmbProj = tembChannels.map { Linear($0, outChannels) }
        norm2 = GroupNorm(groups: groups, channels: outChannels, eps: eps)
        conv2 = Conv2d(outChannels, outChannels, kernel: 3, padding: 1)
        convShortcut = inChannels != outChannels ? Conv2d(inChannels, outChannels, kernel: 1) : nil
    }
    override public var children: [(String, Module)] {
        var c: [(String, Module)] = [("norm1", norm1), ("conv1", conv1)]
        if let timeEmbProj { c.append(("time_emb_proj", timeEmbProj)) }
        c += [("norm2", norm2), ("conv2", conv2)]
        if let convShortcut { c.append(("conv_shortcut", convShortcut)) }
        return c
    }
    /// The inputs of a checkpointed training forward (see `Module.recomputesInBackward`).
    private var checkpoint: (x: Tensor, temb: Tensor?)?
    override public func releaseCaches() { tembAct = nil; checkpoint = nil }

    /// x [N, C, H, W], temb [N, T] (the U-Net's time embedding, before its SiLU) or nil.
    public func callAsFunction(_ x: Tensor, temb: Tensor? = nil) -> Tensor {
        guard isTraining && recomputesInBackward else { return forward(x, temb: temb) }
        let y = forward(x, temb: temb)
        releaseAllCaches()
        checkpoint = (x, temb)
        return y
    }

    private func forward(_ x: Tensor, temb: Tensor?) -> Tensor {
        var h = conv1(norm1(x, silu: true))
        if let temb, let timeEmbProj {
            let a = silu(temb)
            if isTraining { tembAct = temb }
            addSampleChannelInPlace(h, timeEmbProj(a))
        }
        h = conv2(norm2(h, silu: true))
        addInPlace(h, convShortcut.map { $0(x) } ?? x)
        return h
    }

    /// Returns (dx, dtemb).
    public func backward(_ dy: Tensor) -> (Tensor, Tensor?) {
        if let c = checkpoint { checkpoint = nil; _ = forward(c.x, temb: c.temb) }
        let dh = norm2.backward(conv2.backward(dy)!, silu: true)
        var dtemb: Tensor?
        if let timeEmbProj, let t = tembAct {
            // temb was broadcast over H·W: its gradient is the spatial sum.
            let n = dh.shape[0], c = dh.shape[1], hw = dh.shape[2] * dh.shape[3]
            let s = Tensor(zeros: [n, c])
            for i in 0..<n * c { var acc: Float = 0; for j in 0..<hw { acc += dh.data[i * hw + j] }; s.data[i] = acc }
            dtemb = siluBackward(timeEmbProj.backward(s)!, t)
        }
        let dx = norm1.backward(conv1.backward(dh)!, silu: true)
        if let convShortcut { addInPlace(dx, convShortcut.backward(dy)!) } else { addInPlace(dx, dy) }
        return (dx, dtemb)
    }
}

/// Halves the resolution with a stride-2 3×3 conv. `padding` 1 (U-Net) pads evenly; 0 (VAE) pads one
/// column/row on the right/bottom first, as diffusers does.
public final class Downsample2D: Module {
    public let conv: Conv2d
    let asymmetric: Bool

    public init(channels: Int, padding: Int) {
        asymmetric = padding == 0
        conv = Conv2d(channels, channels, kernel: 3, stride: 2, padding: padding)
    }
    override public var children: [(String, Module)] { [("conv", conv)] }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        asymmetric ? conv(padRightBottom(x, right: 1, bottom: 1)) : conv(x)
    }
    public func backward(_ dy: Tensor) -> Tensor {
        let d = conv.backward(dy)!
        return asymmetric ? cropRightBottom(d, right: 1, bottom: 1) : d
    }
}

/// Doubles the resolution: nearest-neighbour 2× then a 3×3 conv.
public final class Upsample2D: Module {
    public let conv: Conv2d
    public init(channels: Int) { conv = Conv2d(channels, channels, kernel: 3, padding: 1) }
    override public var children: [(String, Module)] { [("conv", conv)] }

    public func callAsFunction(_ x: Tensor) -> Tensor { conv(upsampleNearest2x(x)) }
    public func backward(_ dy: Tensor) -> Tensor { upsampleNearest2xBackward(conv.backward(dy)!) }
}

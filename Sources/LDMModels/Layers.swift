// The basic layers — Linear, Conv2d, GroupNorm, LayerNorm, Embedding — as modules holding their
// parameters, each with forward and backward side by side. The forward keeps its input only while
// training; backward accumulates into the parameters' gradients and returns the input gradient.

import LDMCore

/// y = x Wᵀ + b (PyTorch `nn.Linear`; weight [out, in]).
public final class Linear: Module {
    public let weight: Parameter
    public let bias: Parameter?
    private var input: Tensor?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true) {
        weight = Parameter(zeros: [outFeatures, inFeatures])
        self.bias = bias ? Parameter(zeros: [outFeatures]) : nil
    }
    override public var ownParameters: [(String, Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }
    override public func releaseCaches() { input = nil }

    /// A low-rank update trained on this layer (LoRA): while it is active, the layer computes
    /// x·W₀ᵀ + s·(x·Aᵀ)·Bᵀ with W₀ untouched, and backward adds A's and B's gradients (see
    /// `LowRankUpdate`).
    public var lowRank: LowRankUpdate?

    public func callAsFunction(_ x: Tensor) -> Tensor {
        if isTraining { input = x }
        let y = linear(x, weight: weight.value, bias: bias?.value)
        if let u = lowRank, u.isActive { u.addForward(x: x, into: y) }
        return y
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool = true) -> Tensor? {
        guard let x = input else { preconditionFailure("Linear.backward without a training forward") }
        let dx = linearBackward(dy, x: x, weight: weight.value, weightGrad: weight.grad, biasGrad: bias?.grad,
                                needInputGrad: needInputGrad)
        if let u = lowRank, u.isActive { u.backward(dy: dy, x: x, dx: dx) }
        return dx
    }
}

/// A low-rank update W = W₀ + s·B·A of a linear layer's weight, kept apart from W₀ (LoRA:
/// A = lora_down [r, in], B = lora_up [out, r]): the forward adds s·(x·Aᵀ)·Bᵀ, and with
/// G = ∂L/∂W = dyᵀ·x the gradients are ∂L/∂B = s·G·Aᵀ = s·dyᵀ·(x·Aᵀ), ∂L/∂A = s·Bᵀ·G = s·(dy·B)ᵀ·x
/// and the input's dy·W = dy·W₀ + s·(dy·B)·A — products through rank r, never an [out, in] matrix.
public final class LowRankUpdate {
    public let down: Parameter, up: Parameter
    public let scale: Float
    /// Whether the layer uses it (on while training; off, the layer is W₀ alone).
    public var isActive = false

    public init(down: Parameter, up: Parameter, scale: Float) {
        precondition(down.shape.count == 2 && up.shape.count == 2 && up.shape[1] == down.shape[0], "low-rank update shapes")
        self.down = down
        self.up = up
        self.scale = scale
    }

    private var rank: Int { down.shape[0] }

    /// x·Aᵀ for x [..., in] → [rows, r].
    private func projected(_ x: Tensor) -> Tensor {
        let r = rank, inF = down.shape[1]
        let rows = inF == 0 ? 0 : x.count / inF
        let xa = Tensor(uninitialized: [rows, r])
        if rows > 0 { BLAS.gemm(transB: true, m: rows, n: r, k: inF, a: x.data, lda: inF, b: down.value.data, ldb: inF, c: xa.data, ldc: r) }
        return xa
    }

    /// y += s·(x·Aᵀ)·Bᵀ.
    func addForward(x: Tensor, into y: Tensor) {
        let xa = projected(x), outF = up.shape[0], rows = xa.shape[0]
        guard rows > 0, rank > 0 else { return }
        BLAS.gemm(transB: true, m: rows, n: outF, k: rank, alpha: scale, a: xa.data, lda: rank, b: up.value.data, ldb: rank,
                  beta: 1, c: y.data, ldc: outF)
    }

    /// Adds this step's ∂L/∂A and ∂L/∂B (into `down.grad` and `up.grad`, when allocated) and the
    /// update's share of the input gradient, s·(dy·B)·A, into `dx`.
    func backward(dy: Tensor, x: Tensor, dx: Tensor?) {
        let r = rank, inF = down.shape[1], outF = up.shape[0]
        let rows = inF == 0 ? 0 : x.count / inF
        guard rows > 0, r > 0 else { return }
        let dyb = Tensor(uninitialized: [rows, r])
        BLAS.gemm(m: rows, n: r, k: outF, a: dy.data, lda: outF, b: up.value.data, ldb: r, c: dyb.data, ldc: r)
        if let gA = down.grad, let gB = up.grad {
            let xa = projected(x)
            BLAS.gemm(transA: true, m: outF, n: r, k: rows, alpha: scale, a: dy.data, lda: outF, b: xa.data, ldb: r,
                      beta: 1, c: gB.data, ldc: r)
            BLAS.gemm(transA: true, m: r, n: inF, k: rows, alpha: scale, a: dyb.data, lda: r, b: x.data, ldb: inF,
                      beta: 1, c: gA.data, ldc: inF)
        }
        if let dx {
            BLAS.gemm(m: rows, n: inF, k: r, alpha: scale, a: dyb.data, lda: r, b: down.value.data, ldb: inF,
                      beta: 1, c: dx.data, ldc: inF)
        }
    }
}

/// 2-D convolution (PyTorch `nn.Conv2d`; weight [out, in, k, k]).
public final class Conv2d: Module {
    public let weight: Parameter
    public let bias: Parameter?
    public let stride: Int, padding: Int
    private var input: Tensor?
    /// Winograd filters kept between inference calls, with the fingerprint of the weights they
    /// came from (weights may be changed in place, by an optimiser or a probe).
    private var kept: (fingerprint: UInt64, filters: Tensor)?
    /// Filters are kept only when they take at most this many floats (16 MB: the F(2×2) filters of a
    /// 512-channel convolution), so the copies never add more than a fraction of a large model; larger
    /// convolutions transform their filters on every call.
    public static let maxKeptFilterFloats = 16 * 512 * 512

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true) {
        weight = Parameter(zeros: [outChannels, inChannels, kernel, kernel])
        self.bias = bias ? Parameter(zeros: [outChannels]) : nil
        self.stride = stride
        self.padding = padding
    }
    override public var ownParameters: [(String, Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }
    override public func releaseCaches() { input = nil }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        if isTraining { input = x; kept = nil }
        let w = weight.value
        let o = w.shape[0], c = w.shape[1]
        func tile(kept: Bool) -> WinogradTile? {
            winogradTile(inChannels: c, outChannels: o, kernel: w.shape[2], stride: stride, padding: padding,
                         batch: x.shape[0], height: x.shape[2], width: x.shape[3], filtersKept: kept)
        }
        if !isTraining, let t = tile(kept: true), t.points * o * c <= Conv2d.maxKeptFilterFloats {
            return conv2dWinograd(x, transformedWeight: keptFilters(t), bias: bias?.value)
        }
        if let t = tile(kept: false) {
            return conv2dWinograd(x, weight: w, tile: t, bias: bias?.value)
        }
        return conv2d(x, weight: w, bias: bias?.value, stride: stride, padding: padding)
    }

    private func keptFilters(_ tile: WinogradTile) -> Tensor {
        let fingerprint = contentFingerprint(weight.value)
        if let k = kept, k.fingerprint == fingerprint, k.filters.shape[0] == tile.points { return k.filters }
        kept = nil
        let u = tile.filters(weight.value)
        kept = (fingerprint, u)
        return u
    }

    /// For a 3×3, stride-1, padding-1 convolution dx is itself such a convolution: of dy with the
    /// weights flipped in space and with in and out swapped, W'[c, o, i, j] = W[o, c, 2 − i, 2 − j].
    /// When the swapped shape takes the Winograd path, dx is computed there (no col2im scatter);
    /// the weight and bias gradients still come from `conv2dBackward`.
    public func backward(_ dy: Tensor, needInputGrad: Bool = true) -> Tensor? {
        guard let x = input else { preconditionFailure("Conv2d.backward without a training forward") }
        let w = weight.value
        let winograd = needInputGrad ? winogradTile(inChannels: w.shape[0], outChannels: w.shape[1], kernel: w.shape[2],
                                                    stride: stride, padding: padding, batch: dy.shape[0],
                                                    height: dy.shape[2], width: dy.shape[3]) : nil
        let dx = conv2dBackward(dy, x: x, weight: w, stride: stride, padding: padding,
                                weightGrad: weight.grad, biasGrad: bias?.grad, needInputGrad: needInputGrad && winograd == nil)
        guard let winograd else { return dx }
        return conv2dWinograd(dy, transformedWeight: winograd.filters(flippedTransposedKernel(w)), bias: nil)
    }
}

/// Group normalisation (PyTorch `nn.GroupNorm`, affine), optionally followed by SiLU in the same pass.
public final class GroupNorm: Module {
    public let weight: Parameter, bias: Parameter
    public let groups: Int
    public let eps: Float
    private var input: Tensor?
    private var cache = NormCache(mean: [], rstd: [])
    private var output: Tensor?
    /// Set while a tiled decode runs: normalises tiles with whole-image statistics (see
    /// `TiledStatistics`). Nil normalises every input with its own statistics, as PyTorch does.
    var tiledStatistics: TiledStatistics?

    public init(groups: Int, channels: Int, eps: Float) {
        precondition(channels % groups == 0, "GroupNorm: \(channels) channels in \(groups) groups")
        weight = Parameter(Tensor(shape: [channels], repeating: 1))
        bias = Parameter(zeros: [channels])
        self.groups = groups
        self.eps = eps
    }
    override public var ownParameters: [(String, Parameter)] { [("weight", weight), ("bias", bias)] }
    override public func releaseCaches() { input = nil; output = nil; cache = NormCache(mean: [], rstd: []) }

    /// Normalises; with `silu` the activation is fused (and undone correctly in backward).
    public func callAsFunction(_ x: Tensor, silu fused: Bool = false) -> Tensor {
        if let tiledStatistics, !isTraining { return tiledStatistics.normalize(x, by: self, silu: fused) }
        if isTraining {
            input = x
            let y = groupNorm(x, groups: groups, weight: weight.value, bias: bias.value, eps: eps, cache: &cache)
            output = y
            return fused ? LDMCore.silu(y) : y
        }
        return groupNorm(x, groups: groups, weight: weight.value, bias: bias.value, eps: eps, fuseSiLU: fused)
    }

    /// Backward; `silu` must match the forward call.
    public func backward(_ dy: Tensor, silu fused: Bool = false) -> Tensor {
        guard let x = input, let y = output else { preconditionFailure("GroupNorm.backward without a training forward") }
        let g = fused ? siluBackward(dy, y) : dy
        return groupNormBackward(g, x: x, groups: groups, weight: weight.value, cache: cache,
                                 weightGrad: weight.grad, biasGrad: bias.grad)
    }
}

/// Layer normalisation over the last dimension (PyTorch `nn.LayerNorm`).
public final class LayerNorm: Module {
    public let weight: Parameter, bias: Parameter
    public let eps: Float
    private var input: Tensor?
    private var cache = NormCache(mean: [], rstd: [])

    public init(_ dim: Int, eps: Float) {
        weight = Parameter(Tensor(shape: [dim], repeating: 1))
        bias = Parameter(zeros: [dim])
        self.eps = eps
    }
    override public var ownParameters: [(String, Parameter)] { [("weight", weight), ("bias", bias)] }
    override public func releaseCaches() { input = nil; cache = NormCache(mean: [], rstd: []) }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        if isTraining {
            input = x
            return layerNorm(x, weight: weight.value, bias: bias.value, eps: eps, cache: &cache)
        }
        return layerNorm(x, weight: weight.value, bias: bias.value, eps: eps)
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = input else { preconditionFailure("LayerNorm.backward without a training forward") }
        return layerNormBackward(dy, x: x, weight: weight.value, cache: cache, weightGrad: weight.grad, biasGrad: bias.grad)
    }
}

/// A lookup table of vectors (PyTorch `nn.Embedding`; weight [count, dim]).
public final class Embedding: Module {
    public let weight: Parameter
    private var ids: [Int32] = []

    public init(_ count: Int, _ dim: Int) { weight = Parameter(zeros: [count, dim]) }
    override public var ownParameters: [(String, Parameter)] { [("weight", weight)] }
    override public func releaseCaches() { ids = [] }

    /// Rows `ids` of the table → [ids.count, dim].
    public func callAsFunction(_ ids: [Int32]) -> Tensor {
        if isTraining { self.ids = ids }
        let dim = weight.shape[1], count = weight.shape[0]
        let out = Tensor(uninitialized: [ids.count, dim])
        for (i, id) in ids.enumerated() {
            precondition(id >= 0 && Int(id) < count, "token id \(id) outside the embedding table of \(count)")
            (out.data + i * dim).update(from: weight.value.data + Int(id) * dim, count: dim)
        }
        return out
    }

    /// Accumulates dy's rows into the gradient rows of the ids looked up.
    public func backward(_ dy: Tensor) {
        guard let g = weight.grad else { return }
        let dim = weight.shape[1]
        for (i, id) in ids.enumerated() {
            let row = g.data + Int(id) * dim, src = dy.data + i * dim
            for j in 0..<dim { row[j] += src[j] }
        }
    }
}

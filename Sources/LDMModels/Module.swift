// Modules and parameters. Every module lists its children and parameters under the names
// diffusers and transformers give them, so a checkpoint loads by walking the tree
// (`down_blocks.0.resnets.1.conv1.weight`) with no rename table.

import LDMCore

/// A trainable tensor and, while training, its gradient.
public final class Parameter {
    /// The weights.
    public var value: Tensor
    /// The accumulated gradient (same shape), allocated by `Module.zeroGradients()`.
    public var grad: Tensor?

    public init(_ value: Tensor) { self.value = value }
    public init(zeros shape: [Int]) { value = Tensor(zeros: shape) }
    public var shape: [Int] { value.shape }
}

/// A layer or block of a network. Subclasses override `children` and `ownParameters`.
open class Module {
    /// When true, forward passes keep what their backward passes read.
    public private(set) var isTraining = false

    public init() {}

    /// Direct sub-modules, by checkpoint name.
    open var children: [(String, Module)] { [] }
    /// Parameters owned directly (not through children), by checkpoint name.
    open var ownParameters: [(String, Parameter)] { [] }

    /// Every parameter of the tree under `prefix`, with its full dotted key.
    public func namedParameters(prefix: String = "") -> [(String, Parameter)] {
        var out: [(String, Parameter)] = ownParameters.map { (prefix + $0.0, $0.1) }
        for (name, child) in children { out += child.namedParameters(prefix: prefix + name + ".") }
        return out
    }

    /// Total number of parameter elements.
    public var parameterCount: Int { namedParameters().reduce(0) { $0 + $1.1.value.count } }

    /// Switches caching for backward on or off in the whole tree, releasing caches when turned off.
    public func setTraining(_ on: Bool) {
        isTraining = on
        if !on { releaseCaches() }
        for (_, c) in children { c.setTraining(on) }
    }

    /// Drops what the last forward kept for backward.
    open func releaseCaches() {}

    /// Drops what the last forward kept for backward in the whole tree (training stays on).
    public func releaseAllCaches() {
        releaseCaches()
        for (_, c) in children { c.releaseAllCaches() }
    }

    /// Gradient checkpointing: a module that supports it (the U-Net's residual blocks and spatial
    /// transformers) keeps only its inputs in a training forward and runs its forward again at
    /// the start of its backward, trading about one more forward pass for the activations inside.
    public internal(set) var recomputesInBackward = false

    /// Turns gradient checkpointing on or off in the whole tree.
    public func setGradientCheckpointing(_ on: Bool) {
        recomputesInBackward = on
        for (_, c) in children { c.setGradientCheckpointing(on) }
    }

    /// Allocates (or clears) every parameter's gradient.
    public func zeroGradients() {
        for (_, p) in namedParameters() {
            if let g = p.grad { g.data.update(repeating: 0, count: g.count) } else { p.grad = Tensor(zeros: p.shape) }
        }
    }
}

/// A list of modules named "0", "1", … as PyTorch's `nn.ModuleList` names them.
public func indexed<M: Module>(_ modules: [M]) -> [(String, Module)] {
    modules.enumerated().map { (String($0.offset), $0.element as Module) }
}

/// A module whose only purpose is to group children under one name (e.g. `text_model`).
public final class Container: Module {
    let items: [(String, Module)]
    public init(_ items: [(String, Module)]) { self.items = items }
    override public var children: [(String, Module)] { items }
}

// Fresh weights for training from scratch, following PyTorch's layer defaults:
// Linear/Conv2d weight and bias ~ U(−1/√fan_in, 1/√fan_in) (kaiming_uniform with a = √5);
// norms γ = 1, β = 0; embeddings ~ N(0, 0.02²) (CLIP's initializer_range).

import LDMCore

extension Module {
    /// Re-draws every parameter of the tree from `random`, layer by layer in checkpoint-key order.
    public func initializeWeights<R: RandomSource>(_ random: inout R) {
        switch self {
        case let m as Linear:
            uniformFill(m.weight.value, fanIn: m.weight.shape[1], &random)
            if let b = m.bias { uniformFill(b.value, fanIn: m.weight.shape[1], &random) }
        case let m as Conv2d:
            let fanIn = m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]
            uniformFill(m.weight.value, fanIn: fanIn, &random)
            if let b = m.bias { uniformFill(b.value, fanIn: fanIn, &random) }
        case let m as GroupNorm:
            m.weight.value.data.update(repeating: 1, count: m.weight.value.count)
            m.bias.value.data.update(repeating: 0, count: m.bias.value.count)
        case let m as LayerNorm:
            m.weight.value.data.update(repeating: 1, count: m.weight.value.count)
            m.bias.value.data.update(repeating: 0, count: m.bias.value.count)
        case let m as Embedding:
            let v = random.normal(count: m.weight.value.count)
            for i in 0..<v.count { m.weight.value.data[i] = 0.02 * v[i] }
        default:
            for (_, child) in children { child.initializeWeights(&random) }
        }
    }
}

private func uniformFill<R: RandomSource>(_ t: Tensor, fanIn: Int, _ random: inout R) {
    let bound = 1 / Float(max(fanIn, 1)).squareRoot()
    let u = random.uniform(count: t.count)
    for i in 0..<t.count { t.data[i] = (2 * u[i] - 1) * bound }
}

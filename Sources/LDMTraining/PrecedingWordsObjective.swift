// An auxiliary objective for the text encoder trained with the U-Net: every token's output predicts
// its own word and which words came before it in the caption.
//
//   z_j = W h_j + b,  p_j = softmax(z_j) over the vocabulary,  h_j the last hidden state at token j
//   P_j = the distinct ids at positions 1 … j−1 (the words before j, not the start token)
//   u_j = ½ on j's own id + ½ spread evenly over P_j (all on the own id when P_j is empty)
//   L = (1/N) Σ_{captions} Σ_{j = 1 … e} −Σ_w u_j(w) log p_j(w) = cross-entropy of p_j against u_j
//   e the end-of-text position, N the number of terms; ∂L/∂z_j = (p_j − u_j)/N.
//
// The own word keeps half the target: with the preceding words alone the objective made a word
// the U-Net did not use yet ("above" against "below") look like its neighbours (their difference
// fell from 123% of the norm to 17% in 200 steps), erasing what the relation needs.
//
// Why: CLIP's causal mask lets a word reach only the tokens after it, and the diffusion loss alone
// taught the encoder to pass a relation word ("above", "left of") on to almost nothing: swapping
// "above" and "below" changed the second shape's tokens by 3–6% of their norm. The U-Net can only
// place the two shapes if the second shape's tokens (or the end token) say which side it goes, so
// this loss asks each token to carry the words before it. The head (W, b) is used in training only
// and is never exported.

import Foundation
import LDMCore
import LDMModels

public final class PrecedingWordsObjective {
    /// hidden → vocabulary logits.
    public let head: Linear
    public let weight: Float

    public init(hiddenSize: Int, vocabularySize: Int, weight: Float) {
        head = Linear(hiddenSize, vocabularySize)
        self.weight = weight
    }

    /// Named parameters for the training state ("text_aux.head.weight", …).
    public var namedParameters: [(String, Parameter)] { head.namedParameters(prefix: "text_aux.head.") }

    /// The targets u_j of every caption: for each (caption, position) the ids with their weights.
    static func targets(ids: [[Int32]], endID: Int32) -> [(row: Int, words: [(id: Int, weight: Float)])] {
        var out: [(Int, [(id: Int, weight: Float)])] = []
        for (i, seq) in ids.enumerated() {
            let end = seq.dropFirst().firstIndex(of: endID) ?? seq.count - 1
            var seen: [Int] = []
            for j in 1...end {
                let own = Int(seq[j])
                if seen.isEmpty {
                    out.append((i * seq.count + j, [(own, 1)]))
                } else {
                    let share = 0.5 / Float(seen.count)
                    var words: [(id: Int, weight: Float)] = [(own, 0.5)]
                    for w in seen {
                        if let k = words.firstIndex(where: { $0.id == w }) { words[k].weight += share } else { words.append((w, share)) }
                    }
                    out.append((i * seq.count + j, words))
                }
                if j < end && !seen.contains(own) { seen.append(own) }
            }
        }
        return out
    }

    /// The loss L (unweighted) and the gradient of `weight · L` with respect to `hidden`
    /// ([batch, tokens, width], the encoder's last hidden state for `ids`). Accumulates the head's
    /// parameter gradients (call `head.zeroGradients()` first).
    public func lossAndGradient(hidden: Tensor, ids: [[Int32]], endID: Int32) -> (loss: Float, grad: Tensor) {
        let b = hidden.shape[0], n = hidden.shape[1], d = hidden.shape[2]
        let vocab = head.weight.shape[0]
        let rows = hidden.reshaped([b * n, d])
        head.setTraining(true)
        defer { head.setTraining(false) }
        let logits = head(rows)
        let terms = PrecedingWordsObjective.targets(ids: ids, endID: endID)
        let dz = Tensor(zeros: [b * n, vocab])
        guard !terms.isEmpty else { return (0, Tensor(zeros: hidden.shape)) }
        let scale = 1 / Float(terms.count)
        var loss = 0.0
        var p = [Float](repeating: 0, count: vocab)
        for (row, words) in terms {
            let z = logits.data + row * vocab
            var m = -Float.infinity
            for v in 0..<vocab { m = max(m, z[v]) }
            var s: Float = 0
            for v in 0..<vocab { p[v] = exp(z[v] - m); s += p[v] }
            let logS = log(s) + m
            for (w, u) in words { loss -= Double(u * (z[w] - logS)) }
            let g = dz.data + row * vocab
            for v in 0..<vocab { g[v] = weight * scale * p[v] / s }
            for (w, u) in words { g[w] -= weight * scale * u }
        }
        let dh = head.backward(dz)!
        return (Float(loss) * scale, dh.reshaped(hidden.shape))
    }
}

// transformers' CLIPTextModel (transformers/models/clip/modeling_clip.py): token and position
// embeddings, pre-LN causal transformer layers, final layer norm.
//
//   h⁰ = token_embedding(ids) + position_embedding(0..<L)
//   hˡ = hˡ⁻¹ + out_proj(attn(LN₁(hˡ⁻¹)));  hˡ = hˡ + fc2(act(fc1(LN₂(hˡ))))
//   last_hidden_state = final_layer_norm(hᴺ)

import LDMCore

/// transformers' `CLIPTextConfig` (text_encoder/config.json).
public struct CLIPTextConfig: Codable, Equatable, Sendable {
    /// Tokens in the vocabulary.
    public var vocabSize: Int
    /// Width of the hidden states (the U-Net's cross_attention_dim).
    public var hiddenSize: Int
    /// Width of the MLP.
    public var intermediateSize: Int
    /// Transformer layers.
    public var numHiddenLayers: Int
    /// Attention heads.
    public var numAttentionHeads: Int
    /// Longest token sequence (77).
    public var maxPositionEmbeddings: Int
    /// "quick_gelu" (SD1.x), "gelu" (SD2.x) or "gelu_new"/"gelu_pytorch_tanh".
    public var hiddenAct: String
    /// Epsilon of the layer norms.
    public var layerNormEps: Float
    /// Token ids of the special tokens.
    public var bosTokenId: Int, eosTokenId: Int, padTokenId: Int
    /// Width of the text projection (used by `CLIPTextModelWithProjection`, SDXL's second encoder).
    public var projectionDim: Int
    /// transformers' class names; "CLIPTextModelWithProjection" adds the projection of the pooled output.
    public var architectures: [String]
    /// Whether the model has `text_projection` (the pooled output's projection).
    public var withProjection: Bool { architectures.contains("CLIPTextModelWithProjection") }

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case maxPositionEmbeddings = "max_position_embeddings", hiddenAct = "hidden_act", layerNormEps = "layer_norm_eps"
        case bosTokenId = "bos_token_id", eosTokenId = "eos_token_id", padTokenId = "pad_token_id", projectionDim = "projection_dim"
        case architectures
    }

    /// transformers' defaults (CLIP ViT-B/32's text tower), with overrides.
    public init(vocabSize: Int = 49408, hiddenSize: Int = 512, intermediateSize: Int = 2048, numHiddenLayers: Int = 12,
                numAttentionHeads: Int = 8, maxPositionEmbeddings: Int = 77, hiddenAct: String = "quick_gelu") {
        self.vocabSize = vocabSize; self.hiddenSize = hiddenSize; self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers; self.numAttentionHeads = numAttentionHeads
        self.maxPositionEmbeddings = maxPositionEmbeddings; self.hiddenAct = hiddenAct; layerNormEps = 1e-5
        bosTokenId = 49406; eosTokenId = 49407; padTokenId = 1; projectionDim = 512
        architectures = ["CLIPTextModel"]
    }

    public init(from decoder: Decoder) throws {
        let d = CLIPTextConfig()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabSize = try c.value(.vocabSize, d.vocabSize)
        hiddenSize = try c.value(.hiddenSize, d.hiddenSize)
        intermediateSize = try c.value(.intermediateSize, d.intermediateSize)
        numHiddenLayers = try c.value(.numHiddenLayers, d.numHiddenLayers)
        numAttentionHeads = try c.value(.numAttentionHeads, d.numAttentionHeads)
        maxPositionEmbeddings = try c.value(.maxPositionEmbeddings, d.maxPositionEmbeddings)
        hiddenAct = try c.value(.hiddenAct, d.hiddenAct)
        layerNormEps = try c.value(.layerNormEps, d.layerNormEps)
        bosTokenId = try c.value(.bosTokenId, d.bosTokenId)
        eosTokenId = try c.value(.eosTokenId, d.eosTokenId)
        padTokenId = try c.value(.padTokenId, d.padTokenId)
        projectionDim = try c.value(.projectionDim, d.projectionDim)
        architectures = try c.value(.architectures, d.architectures)
    }

    public func validate() throws {
        func bad(_ key: String, _ value: Any) -> ModelError { .unsupported(component: "text_encoder", key: key, value: "\(value)") }
        if !["quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh"].contains(hiddenAct) { throw bad("hidden_act", hiddenAct) }
        // Sizes: positive, and bounded so a config cannot ask for unbounded memory.
        for (key, value, limit) in [("hidden_size", hiddenSize, 16384), ("num_attention_heads", numAttentionHeads, 1024),
                                    ("intermediate_size", intermediateSize, 65536), ("num_hidden_layers", numHiddenLayers, 256),
                                    ("vocab_size", vocabSize, 1_000_000), ("max_position_embeddings", maxPositionEmbeddings, 16384),
                                    ("projection_dim", projectionDim, 65536)]
        where value < 1 || value > limit {
            throw bad(key, value)
        }
        if hiddenSize % numAttentionHeads != 0 { throw bad("num_attention_heads", "\(numAttentionHeads) for width \(hiddenSize)") }
    }
}

/// One pre-LN transformer layer with causal self-attention.
public final class CLIPEncoderLayer: Module {
    public let layerNorm1: LayerNorm, qProj: Linear, kProj: Linear, vProj: Linear, outProj: Linear
    public let layerNorm2: LayerNorm, fc1: Linear, fc2: Linear
    let heads: Int, act: String
    private var q: Tensor?, k: Tensor?, v: Tensor?, preAct: Tensor?

    init(_ c: CLIPTextConfig) {
        let d = c.hiddenSize
        layerNorm1 = LayerNorm(d, eps: c.layerNormEps)
        qProj = Linear(d, d); kProj = Linear(d, d); vProj = Linear(d, d); outProj = Linear(d, d)
        layerNorm2 = LayerNorm(d, eps: c.layerNormEps)
        fc1 = Linear(d, c.intermediateSize); fc2 = Linear(c.intermediateSize, d)
        heads = c.numAttentionHeads
        act = c.hiddenAct
    }
    override public var children: [(String, Module)] {
        [("layer_norm1", layerNorm1), ("self_attn.q_proj", qProj), ("self_attn.k_proj", kProj),
         ("self_attn.v_proj", vProj), ("self_attn.out_proj", outProj), ("layer_norm2", layerNorm2),
         ("mlp.fc1", fc1), ("mlp.fc2", fc2)]
    }
    override public func releaseCaches() { q = nil; k = nil; v = nil; preAct = nil }

    func activation(_ x: Tensor) -> Tensor {
        switch act {
        case "quick_gelu": return quickGelu(x)
        case "gelu": return gelu(x)
        default: return geluTanh(x)
        }
    }
    func activationBackward(_ dy: Tensor, _ x: Tensor) -> Tensor {
        switch act {
        case "quick_gelu": return quickGeluBackward(dy, x)
        case "gelu": return geluBackward(dy, x)
        default: return geluTanhBackward(dy, x)
        }
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let n = layerNorm1(x)
        let qq = qProj(n), kk = kProj(n), vv = vProj(n)
        let h = add(x, outProj(attention(q: qq, k: kk, v: vv, heads: heads, causal: true)))
        let pre = fc1(layerNorm2(h))
        if isTraining { q = qq; k = kk; v = vv; preAct = pre }
        return add(h, fc2(activation(pre)))
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let q, let k, let v, let preAct else { preconditionFailure("CLIPEncoderLayer.backward without a training forward") }
        let dh = dy.copy()
        addInPlace(dh, layerNorm2.backward(fc1.backward(activationBackward(fc2.backward(dy)!, preAct))!))
        let dO = outProj.backward(dh)!
        let (dq, dk, dv) = attentionBackward(dO, q: q, k: k, v: v, heads: heads, causal: true)
        let dn = qProj.backward(dq)!
        addInPlace(dn, kProj.backward(dk)!)
        addInPlace(dn, vProj.backward(dv)!)
        let dx = dh
        addInPlace(dx, layerNorm1.backward(dn))
        return dx
    }
}

/// What the text encoder returns.
public struct TextEncoderOutput {
    /// final_layer_norm(last layer) [B, L, D].
    public var lastHiddenState: Tensor
    /// Hidden states: index 0 the embeddings, index i the output of layer i.
    public var hiddenStates: [Tensor]
}

/// The CLIP text transformer.
public final class CLIPTextModel: Module {
    public let config: CLIPTextConfig
    public let tokenEmbedding: Embedding, positionEmbedding: Embedding
    public let layers: [CLIPEncoderLayer]
    public let finalLayerNorm: LayerNorm
    /// The projection of the pooled output (CLIPTextModelWithProjection only).
    public let textProjection: Linear?
    private var batch = 0, length = 0

    public init(config: CLIPTextConfig) throws {
        try config.validate()
        self.config = config
        tokenEmbedding = Embedding(config.vocabSize, config.hiddenSize)
        positionEmbedding = Embedding(config.maxPositionEmbeddings, config.hiddenSize)
        layers = (0..<config.numHiddenLayers).map { _ in CLIPEncoderLayer(config) }
        finalLayerNorm = LayerNorm(config.hiddenSize, eps: config.layerNormEps)
        textProjection = config.withProjection ? Linear(config.hiddenSize, config.projectionDim, bias: false) : nil
    }
    override public var children: [(String, Module)] {
        [("text_model.embeddings.token_embedding", tokenEmbedding),
         ("text_model.embeddings.position_embedding", positionEmbedding)]
            + indexed(layers).map { ("text_model.encoder.layers." + $0.0, $0.1) }
            + [("text_model.final_layer_norm", finalLayerNorm)]
            + (textProjection.map { [("text_projection", $0 as Module)] } ?? [])
    }

    /// The pooled output [B, D'] of a full run: the final-normed state at each row's end-of-text
    /// token (the first `eos_token_id`; the largest id when eos_token_id is 2, as transformers'
    /// legacy configs), through `text_projection` when the model has one.
    public func pooled(_ output: TextEncoderOutput, ids: [[Int32]]) -> Tensor {
        let h = output.lastHiddenState, l = h.shape[1], d = h.shape[2]
        let rows = Tensor(uninitialized: [ids.count, d])
        for (b, row) in ids.enumerated() {
            let position: Int
            if config.eosTokenId == 2 {
                position = row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) } ?? 0
            } else {
                position = row.firstIndex(of: Int32(config.eosTokenId)) ?? 0
            }
            (rows.data + b * d).update(from: h.data + (b * l + position) * d, count: d)
        }
        return textProjection.map { $0(rows) } ?? rows
    }

    /// Runs ids [B][L] (every row the same length ≤ max_position_embeddings).
    ///
    /// - Parameters:
    ///   - inputVectors: per row, positions whose token embedding is replaced by the given vector
    ///     (a textual-inversion embedding's); the position embedding is still added.
    ///   - layers: run only the first `layers` encoder layers, then the final layer norm (clip skip:
    ///     A1111's "Clip skip: N" is `layers = numHiddenLayers − (N − 1)`); nil runs them all.
    ///     `backward` needs a run of all layers without input vectors.
    public func callAsFunction(_ ids: [[Int32]], inputVectors: [[Int: [Float]]] = [], layers count: Int? = nil,
                               keepHiddenStates: Bool = false) throws -> TextEncoderOutput {
        let b = ids.count, l = ids.first?.count ?? 0
        guard b > 0, l > 0, l <= config.maxPositionEmbeddings, ids.allSatisfy({ $0.count == l }) else {
            throw ModelError.invalidInput("text encoder: \(b) sequences of \(ids.map(\.count)) tokens (at most \(config.maxPositionEmbeddings))")
        }
        for row in ids { for id in row where id < 0 || Int(id) >= config.vocabSize {
            throw ModelError.invalidInput("text encoder: token id \(id) outside the vocabulary of \(config.vocabSize)")
        } }
        batch = b; length = l
        let runLayers = count ?? layers.count
        guard (1...layers.count).contains(runLayers) else {
            throw ModelError.invalidInput("text encoder: cannot stop after \(runLayers) of its \(layers.count) layers")
        }
        let d = config.hiddenSize
        let tok = tokenEmbedding(ids.flatMap { $0 })
        for (row, vectors) in inputVectors.enumerated() where row < b {
            for (position, vector) in vectors {
                guard (0..<l).contains(position), vector.count == d else {
                    throw ModelError.invalidInput("text encoder: an input vector of width \(vector.count) at position \(position) (width \(d), \(l) positions)")
                }
                vector.withUnsafeBufferPointer { src in
                    (tok.data + (row * l + position) * d).update(from: src.baseAddress!, count: d)
                }
            }
        }
        let pos = positionEmbedding((0..<b).flatMap { _ in (0..<Int32(l)).map { $0 } })
        addInPlace(tok, pos)
        var h = tok.reshaped([b, l, d])
        var states = keepHiddenStates ? [h] : []
        for layer in layers.prefix(runLayers) {
            h = layer(h)
            if keepHiddenStates { states.append(h) }
        }
        return TextEncoderOutput(lastHiddenState: finalLayerNorm(h), hiddenStates: states)
    }

    /// Backward from the gradient of `lastHiddenState`.
    public func backward(_ dy: Tensor) {
        var g = finalLayerNorm.backward(dy)
        for layer in layers.reversed() { g = layer.backward(g) }
        let flat = g.reshaped([batch * length, config.hiddenSize])
        tokenEmbedding.backward(flat)
        positionEmbedding.backward(flat)
    }
}

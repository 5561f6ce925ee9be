// Prompt → context vectors, in A1111's way (the default) or diffusers' literal way.
//
// A1111 (`sd_hijack_clip.py`, emphasis "Original"): the prompt is parsed for attention syntax and
// laid out in 77-token chunks (`PromptSyntax.chunk`); each chunk is encoded on its own, its
// vectors multiplied by their tokens' weights and then rescaled so the chunk's mean over all
// values is what it was before weighting; the chunks are concatenated along the token axis, so a
// 120-token prompt gives [1, 154, D]. Textual-inversion vectors replace the token embeddings at
// their slots. Clip skip N (A1111's numbering: 1 = the last layer) takes the output of layer
// L − (N − 1) through the final layer norm — what diffusers' `clip_skip = N − 1` gives.
//
// Plain (`PromptStyle.plain`, diffusers' `encode_prompt`): the text is tokenized as it is (no
// syntax, no BREAK) and cut to 75 tokens with a warning; embeddings are still expanded (as after
// diffusers' `load_textual_inversion`).
//
// Clip skip on SD 2.x files: A1111 ignores its setting for OpenCLIP models; we apply it to every
// text encoder, as diffusers' `clip_skip` does (SD 2.x's encoder here already lacks the last
// OpenCLIP block, as in diffusers).

import Foundation
import LDMCore
import LDMModels

/// How a prompt's text is read.
public enum PromptStyle: String, CaseIterable, Sendable {
    /// AUTOMATIC1111's syntax: (emphasis), [de-emphasis], (x:1.3), escapes, BREAK, 75-token chunks.
    case a1111
    /// The text as it is (diffusers), cut to one 77-token window.
    case plain
}

/// A prompt's conditioning: the per-token context, and for SDXL-style U-Nets the pooled embedding.
public struct PromptConditioning {
    /// [1, 77·chunks, D] (D: the encoders' widths side by side).
    public var context: Tensor
    /// SDXL: the last encoder's pooled, projected output of the first chunk [1, P].
    public var pooled: Tensor?
    /// The same shapes, all zeros (SDXL's `force_zeros_for_empty_prompt`).
    public var zeros: PromptConditioning {
        PromptConditioning(context: Tensor(zeros: context.shape), pooled: pooled.map { Tensor(zeros: $0.shape) })
    }
}

extension StableDiffusionPipeline {
    /// The (tokenizer, text encoder) pairs whose outputs make the context, in order.
    public var textEncoders: [(tokenizer: CLIPTokenizer, encoder: CLIPTextModel)] {
        [(tokenizer, textEncoder)] + (textEncoder2.map { [(tokenizer2 ?? tokenizer, $0)] } ?? [])
    }

    /// Whether the context is built the SDXL way: penultimate hidden states (no final layer norm) of
    /// every encoder side by side, plus the last encoder's pooled output.
    public var usesSDXLConditioning: Bool { unet.config.takesTextTime }

    /// Context vectors [1, 77·chunks, D] of one prompt.
    public func encodePrompt(_ text: String, style: PromptStyle, clipSkip: Int = 1) throws -> Tensor {
        try encodeConditioning(text, style: style, clipSkip: clipSkip).context
    }

    /// The conditioning of one prompt: for SD 1.x/2.x the final-normed output of layer
    /// L − (clipSkip − 1); for SDXL the output of layer L − clipSkip of each encoder (clip skip 1
    /// is diffusers' default penultimate layer) and the pooled output of the last encoder.
    public func encodeConditioning(_ text: String, style: PromptStyle, clipSkip: Int = 1) throws -> PromptConditioning {
        let sdxl = usesSDXLConditioning
        var contexts: [Tensor] = [], pooled: Tensor?
        let pairs = textEncoders
        for (index, (tok, encoder)) in pairs.enumerated() {
            let layerCount = encoder.config.numHiddenLayers
            let usable = sdxl ? layerCount - 1 : layerCount
            guard (1...max(usable, 1)).contains(clipSkip) else {
                throw PipelineError.invalid("clip skip must be between 1 and \(usable) for this text encoder (got \(clipSkip))")
            }
            let chunked = try chunkPrompt(text, style: style, tokenizer: tok, encoder: encoder, warnCut: index == 0)
            let byName = Dictionary(embeddings.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            var parts: [Tensor] = []
            for (k, chunk) in chunked.chunks.enumerated() {
                let wantPooled = sdxl && index == pairs.count - 1 && k == 0
                let (z, p) = try encodeChunk(chunk, encoder: encoder, embeddings: byName,
                                             hiddenLayer: sdxl ? layerCount - clipSkip : nil,
                                             layers: layerCount - (clipSkip - 1), pooled: wantPooled)
                parts.append(z)
                if let p { pooled = p }
            }
            contexts.append(parts.count == 1 ? parts[0] : concat(parts, dim: 1))
        }
        if contexts.count > 1 {
            guard Set(contexts.map { $0.shape[1] }).count == 1 else {
                throw PipelineError.invalid("the prompt splits into different chunk counts for the two tokenizers (\(contexts.map { $0.shape[1] / 77 }))")
            }
            return PromptConditioning(context: concat(contexts, dim: 2), pooled: pooled)
        }
        return PromptConditioning(context: contexts[0], pooled: pooled)
    }

    /// The prompt laid out in chunks for one tokenizer.
    func chunkPrompt(_ text: String, style: PromptStyle, tokenizer: CLIPTokenizer, encoder: CLIPTextModel,
                     warnCut: Bool) throws -> ChunkedPrompt {
        let width = encoder.config.hiddenSize
        // An embedding of the wrong width is an error; with two encoders (SDXL), one that has no
        // vectors for this encoder's width is left out of its prompt.
        let triggers = try embeddings.compactMap { e -> EmbeddingTrigger? in
            do { _ = try e.vectors(width: width) } catch { if textEncoder2 != nil { return nil } else { throw error } }
            return e.trigger(tokenizer: tokenizer)
        }
        switch style {
        case .a1111:
            return PromptSyntax.chunk(prompt: text, tokenizer: tokenizer, embeddings: triggers)
        case .plain:
            let all = PromptSyntax.chunk([PromptSegment(text: text)], tokenizer: tokenizer, embeddings: triggers,
                                         commaPaddingBacktrack: 0)
            if all.chunks.count > 1 && warnCut {
                let kept = all.chunks[0].tokens.compactMap { t -> Int32? in if case let .id(id) = t { return id } else { return nil } }
                    .filter { $0 != tokenizer.bosTokenID && $0 != tokenizer.eosTokenID && $0 != tokenizer.padTokenID }
                warn("the prompt is longer than \(PromptSyntax.windowLength(tokenizer)) tokens; it was cut to: \"\(tokenizer.decode(kept))\"")
            }
            return ChunkedPrompt(chunks: [all.chunks[0]].map { var c = $0; c.weights = c.weights.map { _ in 1 }; return c },
                                 tokenCount: min(all.tokenCount, PromptSyntax.windowLength(tokenizer)))
        }
    }

    /// One chunk [1, 77, D]: encoded, weighted, mean restored; with `hiddenLayer`, the output of
    /// that layer (no final norm) instead of the final-normed output of `layers` layers. With
    /// `pooled`, also the encoder's pooled output of the chunk.
    func encodeChunk(_ chunk: PromptChunk, encoder: CLIPTextModel, embeddings: [String: TextualInversion],
                     hiddenLayer: Int?, layers: Int, pooled wantPooled: Bool) throws -> (Tensor, Tensor?) {
        var ids: [Int32] = [], vectors: [Int: [Float]] = [:]
        let width = encoder.config.hiddenSize
        for (position, token) in chunk.tokens.enumerated() {
            switch token {
            case let .id(id): ids.append(id)
            case let .embedding(name, k):
                ids.append(0)
                if let e = embeddings[name] { vectors[position] = try e.vectors(width: width)[k] }
            }
        }
        let z: Tensor, pooled: Tensor?
        if let hiddenLayer {
            let out = try encoder([ids], inputVectors: [vectors], keepHiddenStates: true)
            z = out.hiddenStates[hiddenLayer]
            pooled = wantPooled ? encoder.pooled(out, ids: [ids]) : nil
        } else {
            z = try encoder([ids], inputVectors: [vectors], layers: layers).lastHiddenState
            pooled = nil
        }
        guard chunk.weights.contains(where: { $0 != 1 }) else { return (z, pooled) }
        // original_mean = z.mean(); z *= weights; z *= original_mean / z.mean()
        let n = z.count, l = z.shape[1], d = z.shape[2]
        var before = 0.0
        for i in 0..<n { before += Double(z.data[i]) }
        for p in 0..<l {
            let w = chunk.weights[p]
            for j in 0..<d { z.data[p * d + j] *= w }
        }
        var after = 0.0
        for i in 0..<n { after += Double(z.data[i]) }
        let ratio = Float((before / Double(n)) / (after / Double(n)))
        for i in 0..<n { z.data[i] *= ratio }
        return (z, pooled)
    }

    /// The embeddings whose trigger word appears in `text` (read as `style`), by name.
    public func embeddingsUsed(in text: String, style: PromptStyle) -> [TextualInversion] {
        let triggers = embeddings.map { $0.trigger(tokenizer: tokenizer) }
        let segments = style == .a1111 ? PromptSyntax.parseAttention(text) : [PromptSegment(text: text)]
        let chunked = PromptSyntax.chunk(segments, tokenizer: tokenizer, embeddings: triggers)
        var names = Set<String>()
        for chunk in chunked.chunks { for token in chunk.tokens { if case let .embedding(name, _) = token { names.insert(name) } } }
        return embeddings.filter { names.contains($0.name) }
    }
}

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

extension StableDiffusionPipeline {
    /// Context vectors [1, 77·chunks, D] of one prompt.
    public func encodePrompt(_ text: String, style: PromptStyle, clipSkip: Int = 1) throws -> Tensor {
        let layerCount = textEncoder.config.numHiddenLayers
        guard (1...layerCount).contains(clipSkip) else {
            throw PipelineError.invalid("clip skip must be between 1 and \(layerCount), the text encoder's layer count (got \(clipSkip))")
        }
        let width = textEncoder.config.hiddenSize
        let triggers = try embeddings.map { e -> EmbeddingTrigger in
            _ = try e.vectors(width: width)
            return e.trigger(tokenizer: tokenizer)
        }
        let chunked: ChunkedPrompt
        switch style {
        case .a1111:
            chunked = PromptSyntax.chunk(prompt: text, tokenizer: tokenizer, embeddings: triggers)
        case .plain:
            let all = PromptSyntax.chunk([PromptSegment(text: text)], tokenizer: tokenizer, embeddings: triggers,
                                         commaPaddingBacktrack: 0)
            if all.chunks.count > 1 {
                let kept = all.chunks[0].tokens.compactMap { t -> Int32? in if case let .id(id) = t { return id } else { return nil } }
                    .filter { $0 != tokenizer.bosTokenID && $0 != tokenizer.eosTokenID && $0 != tokenizer.padTokenID }
                warn("the prompt is longer than \(PromptSyntax.windowLength(tokenizer)) tokens; it was cut to: \"\(tokenizer.decode(kept))\"")
            }
            chunked = ChunkedPrompt(chunks: [all.chunks[0]].map { var c = $0; c.weights = c.weights.map { _ in 1 }; return c },
                                    tokenCount: min(all.tokenCount, PromptSyntax.windowLength(tokenizer)))
        }
        let byName = Dictionary(embeddings.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var parts: [Tensor] = []
        for chunk in chunked.chunks {
            parts.append(try encodeChunk(chunk, embeddings: byName, layers: layerCount - (clipSkip - 1)))
        }
        return parts.count == 1 ? parts[0] : concat(parts, dim: 1)
    }

    /// One chunk [1, 77, D]: encoded, weighted, mean restored.
    func encodeChunk(_ chunk: PromptChunk, embeddings: [String: TextualInversion], layers: Int) throws -> Tensor {
        var ids: [Int32] = [], vectors: [Int: [Float]] = [:]
        let width = textEncoder.config.hiddenSize
        for (position, token) in chunk.tokens.enumerated() {
            switch token {
            case let .id(id): ids.append(id)
            case let .embedding(name, k):
                ids.append(0)
                if let e = embeddings[name] { vectors[position] = try e.vectors(width: width)[k] }
            }
        }
        let z = try textEncoder([ids], inputVectors: [vectors], layers: layers).lastHiddenState
        guard chunk.weights.contains(where: { $0 != 1 }) else { return z }
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
        return z
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

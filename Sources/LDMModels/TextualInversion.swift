// Textual-inversion embeddings: a few learned input vectors that stand for a word.
//
// The file kinds read, as AUTOMATIC1111's `create_embedding_from_data` and diffusers'
// `load_textual_inversion` read them:
//   * A1111 `.pt`: a pickle with `string_to_param = {"*": [n, D]}` (plus `name`, `step`, … which
//     are not used: the trigger word is the file's base name, as in A1111);
//   * `.safetensors` with one tensor, usually `emb_params` [n, D];
//   * diffusers' `learned_embeds.bin` / `.safetensors`: one tensor named by its token, [D] or [n, D];
//   * SDXL files: `clip_l` [n, 768] and `clip_g` [n, 1280], one part per text encoder.
// The vectors replace the token embeddings where the trigger appears (`PromptSyntax.chunk`), so a
// 2-vector embedding "name" gives what diffusers gives after `load_textual_inversion(path,
// token="name")`: "name" expanded to the tokens "name name_1" whose input embeddings are the vectors.

import Foundation
import LDMIO

/// A textual-inversion embedding that could not be read or used. One line.
public enum TextualInversionError: Error, CustomStringConvertible, Equatable, LocalizedError {
    case notAnEmbedding(path: String, reason: String)
    case wrongWidth(name: String, width: Int, expected: Int)
    case sdxlOnly(name: String)
    public var description: String {
        switch self {
        case let .notAnEmbedding(p, r): return "\(p) is not a textual-inversion embedding: \(r)"
        case let .wrongWidth(n, w, e):
            return "embedding \(n) has vectors of width \(w), but this model's text encoder takes \(e) (it was made for another model family)"
        case let .sdxlOnly(n): return "embedding \(n) is an SDXL embedding (clip_l + clip_g); this model is not SDXL"
        }
    }
    public var errorDescription: String? { description }
}

/// One embedding file, read.
public struct TextualInversion: Sendable {
    /// The trigger word: the file's base name.
    public var name: String
    public var path: String
    /// The vectors per part: `""` for an SD 1.x/2.x file; `"clip_l"` and `"clip_g"` for SDXL.
    public var parts: [String: [[Float]]]
    /// Vectors (tokens) the trigger stands for.
    public var vectorCount: Int

    /// The most vectors one embedding may have: a chunk holds 75 tokens.
    public static let maxVectors = 75

    /// Reads `path` (.pt/.bin zip pickle or .safetensors); `name` defaults to the file's base name.
    public init(path: String, name: String? = nil) throws {
        self.path = path
        self.name = name ?? URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        func fail(_ reason: String) -> TextualInversionError { .notAnEmbedding(path: path, reason: reason) }
        let source: any TensorSource
        do { source = try openTensorFile(path) } catch { throw fail("\(error)") }
        let names = source.names
        let listed = names.prefix(3).joined(separator: ", ") + (names.count > 3 ? ", …" : "")
        var chosen: [String: String] = [:]
        let a1111 = names.filter { $0.hasPrefix("string_to_param.") }
        if !a1111.isEmpty {
            guard a1111.count == 1 else { throw fail("it holds \(a1111.count) terms in string_to_param (one expected)") }
            chosen[""] = a1111[0]
        } else if names.contains("clip_l") && names.contains("clip_g") {
            chosen["clip_l"] = "clip_l"; chosen["clip_g"] = "clip_g"
        } else if names.count == 1 {
            chosen[""] = names[0]
        } else {
            throw fail(names.isEmpty ? "it holds no tensors" : "expected string_to_param, emb_params, clip_l + clip_g or one tensor (it holds \(names.count): \(listed))")
        }
        var parts: [String: [[Float]]] = [:]
        var count: Int?
        for (part, tensor) in chosen {
            let shape = try source.shape(of: tensor)
            guard shape.count == 1 || shape.count == 2, shape.allSatisfy({ $0 > 0 }) || (shape.count == 2 && shape[0] == 0 && shape[1] > 0) else {
                throw fail("\(tensor) has shape \(shape) (vectors [n, width] expected)")
            }
            let n = shape.count == 1 ? 1 : shape[0], width = shape[shape.count - 1]
            guard n <= TextualInversion.maxVectors else {
                throw fail("\(tensor) has \(n) vectors; at most \(TextualInversion.maxVectors) fit in a prompt chunk")
            }
            if let count, count != n { throw fail("clip_l and clip_g have different vector counts (\(count) and \(n))") }
            count = n
            let flat = try source.floatArray(tensor)
            guard flat.allSatisfy(\.isFinite) else { throw fail("\(tensor) holds values that are not finite") }
            parts[part] = (0..<n).map { Array(flat[($0 * width)..<(($0 + 1) * width)]) }
        }
        self.parts = parts
        vectorCount = count ?? 0
    }

    /// The vectors for a text encoder of `width` (SD 1.x/2.x: the single part).
    public func vectors(width: Int) throws -> [[Float]] {
        guard let vectors = parts[""] else { throw TextualInversionError.sdxlOnly(name: name) }
        let w = vectors.first?.count ?? width
        guard w == width else { throw TextualInversionError.wrongWidth(name: name, width: w, expected: width) }
        return vectors
    }

    /// The width of its vectors (the single part's; SDXL: clip_l's + clip_g's).
    public var width: Int { parts.values.reduce(0) { $0 + ($1.first?.count ?? 0) } }

    /// The trigger for `PromptSyntax.chunk`: the name's token ids under `tokenizer`.
    public func trigger(tokenizer: CLIPTokenizer) -> EmbeddingTrigger {
        EmbeddingTrigger(name: name, tokenIDs: tokenizer.tokenIDs(name), vectorCount: vectorCount)
    }
}

// AUTOMATIC1111's prompt syntax: attention weights, BREAK, and the 75-token chunks of long prompts.
//
// Matches stable-diffusion-webui:
//   * `parseAttention` — modules/prompt_parser.py `parse_prompt_attention` (commit 28bd8e14, the
//     1.7+ form that allows spaces in a weight: `(a: 1.2 )`);
//   * `chunk` — modules/sd_hijack_clip.py `TextConditionalModel.tokenize_line` (commit 5ad03e65),
//     with textual_inversion.py `find_embedding_at_position`, the SD 2.x pad rewrite of
//     `process_tokens`, and `EmbeddingsWithFixes` writing an embedding's vectors at offset + 1.
// Golden values: scripts/a1111_prompt_reference.py (a stand-alone port of those functions) writes
// Tests/LDMModelsTests/Fixtures/prompt-syntax-cases.json.
//
// Syntax. `(x)` multiplies the weight of x by 1.1, `[x]` by 1/1.1, `(x:w)` by w; nesting multiplies.
// A closer without an opener is plain text; openers still open at the end of the prompt close there
// (all round ones in opening order, then all square ones). `\(` `\)` `\[` `\]` `\\` are the literal
// characters; any other backslash is dropped. `BREAK` (the regex `\s*\bBREAK\b\s*`) ends the chunk.
// Neighbouring pieces of equal weight merge. Weights are computed in Double, as Python does, and
// rounded to Float once, as torch does when it turns A1111's multipliers into a float32 tensor.
//
// Chunks. Each segment's text is tokenized alone (no BOS/EOS, untruncated) and the tokens are laid
// into chunks of 75 with weight = the segment's weight. When a chunk is full and the next token is
// not a comma, and the chunk's last comma is at most `commaPaddingBacktrack` (20) tokens back, the
// tokens after that comma move to the next chunk and the rest is padding. A textual-inversion
// trigger becomes `vectorCount` slots and goes to a new chunk when it does not fit in this one.
// Each chunk is then `[BOS] + 75 + [EOS]` = 77, padded with EOS (weight 1.0); SD 2.x then rewrites
// everything after the first EOS to its pad id 0.
//
// Prompt and negative prompt of different chunk counts (A1111 1.6+, sd_samplers_cfg_denoiser.py):
// by default (`pad_cond_uncond` and `pad_cond_uncond_v0` both off) nothing is padded: when the two
// conditionings differ in length the U-Net runs the prompt batch and the negative batch as separate
// calls, each attending over its own 77·n tokens. With `pad_cond_uncond` on, the shorter one gets
// whole copies of the empty prompt's encoding appended (= `matchChunkCounts` below, since chunks are
// encoded one by one). With `pad_cond_uncond_v0` (DDIM before 1.6) the negative one is cut to the
// prompt's length or extended by repeating its last output vector. Inside one text-encoder call
// (the texts of a prompt-editing schedule, `[a:b:0.5]`) shorter texts always get empty chunks;
// between the prompts of a batch, `stack_conds` repeats a shorter conditioning's last vector.

/// A run of prompt text with one attention weight, or a BREAK.
public struct PromptSegment: Equatable, Sendable {
    /// The text, with the syntax removed (escapes resolved). `"BREAK"` for a break.
    public var text: String
    /// The attention multiplier (−1 for a break, as A1111 marks it).
    public var weight: Float
    /// True when this segment ends the current chunk instead of adding tokens. The parser sets it
    /// exactly where A1111's `tokenize_line` sees a break: text `"BREAK"` with weight −1.
    public var isBreak: Bool

    public init(text: String, weight: Float = 1, isBreak: Bool = false) {
        self.text = text
        self.weight = weight
        self.isBreak = isBreak
    }
}

/// One of the 77 positions of a chunk: a token id, or one vector of a textual-inversion embedding
/// (whose input embedding replaces the token embedding at that position).
public enum PromptToken: Equatable, Sendable {
    case id(Int32)
    case embedding(name: String, vector: Int)
}

/// One text-model window: exactly `PromptSyntax.chunkLength + 2` = 77 positions — BOS, 75 prompt
/// slots (padded with EOS, or with the pad id after the first EOS for SD 2.x), EOS — and a weight
/// for each (1.0 for BOS, EOS and padding), ready for the text model and the emphasis step.
public struct PromptChunk: Equatable, Sendable {
    public var tokens: [PromptToken]
    public var weights: [Float]

    public init(tokens: [PromptToken], weights: [Float]) {
        self.tokens = tokens
        self.weights = weights
    }
}

/// A textual-inversion embedding as the chunker sees it: the token ids of its trigger word (the
/// embedding's name tokenized without BOS/EOS, as A1111 registers it) and how many vectors it has.
public struct EmbeddingTrigger: Equatable, Sendable {
    /// The embedding's name, reported in `PromptToken.embedding`.
    public var name: String
    /// The ids that trigger it, matched inside one segment's tokens.
    public var tokenIDs: [Int32]
    /// The number of vectors (prompt slots) it takes, 0…75.
    public var vectorCount: Int

    public init(name: String, tokenIDs: [Int32], vectorCount: Int) {
        self.name = name
        self.tokenIDs = tokenIDs
        self.vectorCount = vectorCount
    }

    /// The trigger A1111 registers for an embedding file named `name`: `tokenizer.tokenIDs(name)`.
    public init(name: String, vectorCount: Int, tokenizer: CLIPTokenizer) {
        self.init(name: name, tokenIDs: tokenizer.tokenIDs(name), vectorCount: vectorCount)
    }
}

/// A prompt laid out in chunks, as `tokenize_line` returns it.
public struct ChunkedPrompt: Equatable, Sendable {
    /// At least one chunk.
    public var chunks: [PromptChunk]
    /// A1111's token counter: 75 for every chunk but the last, plus the slots used in the last one
    /// (75 for it too when the prompt ends in BREAK).
    public var tokenCount: Int

    public init(chunks: [PromptChunk], tokenCount: Int) {
        self.chunks = chunks
        self.tokenCount = tokenCount
    }
}

/// AUTOMATIC1111's prompt syntax (see the file header for the rules and sources).
public enum PromptSyntax {
    /// Prompt slots per chunk; with BOS and EOS a chunk fills CLIP's 77 positions.
    public static let chunkLength = 75

    /// Prompt tokens per chunk for `tokenizer`: its `model_max_length` − 2 (BOS and EOS) — 75 for
    /// every Stable Diffusion model, whose tokenizers are 77 long; less for a model trained with a
    /// shorter text window (the shipped Shapes model: 30).
    public static func windowLength(_ tokenizer: CLIPTokenizer) -> Int { max(1, tokenizer.maxLength - 2) }
    /// A1111's `comma_padding_backtrack` default.
    public static let defaultCommaPaddingBacktrack = 20

    // MARK: Attention

    /// The segments of `text` with their weights: `parse_prompt_attention`. Never empty; `""` gives
    /// one segment `("", 1)`.
    ///
    /// Where A1111 raises (a weight float() rejects, such as `(a:1.2.3)` or `(a:.)`, so the
    /// generation fails), the `:1.2.3)` is kept as plain text instead.
    public static func parseAttention(_ text: String) -> [PromptSegment] {
        let s = Array(text.unicodeScalars)
        var pieces: [(text: [Unicode.Scalar], weight: Double)] = []
        var openRound: [Int] = []
        var openSquare: [Int] = []

        func scale(from start: Int, by factor: Double) {
            for k in start..<pieces.count { pieces[k].weight *= factor }
        }
        func appendText(_ run: ArraySlice<Unicode.Scalar>) {
            for (k, part) in splitAtBreaks(run).enumerated() {
                if k > 0 { pieces.append((Array("BREAK".unicodeScalars), -1)) }
                pieces.append((Array(part), 1))
            }
        }

        let round = 1.1, square = 1 / 1.1
        var i = 0
        while i < s.count {
            switch s[i] {
            case "\\":
                if i + 1 < s.count, "()[]\\".unicodeScalars.contains(s[i + 1]) {
                    pieces.append(([s[i + 1]], 1))
                    i += 2
                } else {
                    pieces.append(([], 1))  // a lone backslash: A1111 keeps what follows it, i.e. nothing
                    i += 1
                }
            case "(":
                openRound.append(pieces.count)
                i += 1
            case "[":
                openSquare.append(pieces.count)
                i += 1
            case ":":
                if let (number, end) = weightCloser(s, at: i) {
                    if !openRound.isEmpty, let w = pythonFloat(number) {
                        scale(from: openRound.removeLast(), by: w)
                    } else {
                        appendText(s[i..<end])
                    }
                    i = end
                } else {
                    appendText(s[i...i])
                    i += 1
                }
            case ")":
                if let start = openRound.popLast() { scale(from: start, by: round) } else { appendText(s[i...i]) }
                i += 1
            case "]":
                if let start = openSquare.popLast() { scale(from: start, by: square) } else { appendText(s[i...i]) }
                i += 1
            default:
                var end = i + 1
                while end < s.count, !"\\()[]:".unicodeScalars.contains(s[end]) { end += 1 }
                appendText(s[i..<end])
                i = end
            }
        }
        for start in openRound { scale(from: start, by: round) }
        for start in openSquare { scale(from: start, by: square) }
        if pieces.isEmpty { pieces = [([], 1)] }

        // Neighbours of equal weight (Double ==, so 0 and −0 merge and NaN never does) become one.
        var merged: [(text: [Unicode.Scalar], weight: Double)] = []
        for piece in pieces {
            if let last = merged.last, last.weight == piece.weight {
                merged[merged.count - 1].text += piece.text
            } else {
                merged.append(piece)
            }
        }
        return merged.map { piece in
            var view = String.UnicodeScalarView()
            view.append(contentsOf: piece.text)
            let text = String(view)
            return PromptSegment(text: text, weight: Float(piece.weight), isBreak: text == "BREAK" && piece.weight == -1)
        }
    }

    /// The weight closer `:\s*([+-]?[.\d]+)\s*\)` starting at `s[start]` (a colon): the number's
    /// characters and the index after the `)`.
    private static func weightCloser(_ s: [Unicode.Scalar], at start: Int) -> ([Unicode.Scalar], Int)? {
        var j = start + 1
        while j < s.count, isSpace(s[j]) { j += 1 }
        let numberStart = j
        if j < s.count, s[j] == "+" || s[j] == "-" { j += 1 }
        let bodyStart = j
        while j < s.count, s[j] == "." || decimalDigit(s[j]) != nil { j += 1 }
        guard j > bodyStart else { return nil }
        let numberEnd = j
        while j < s.count, isSpace(s[j]) { j += 1 }
        guard j < s.count, s[j] == ")" else { return nil }
        return (Array(s[numberStart..<numberEnd]), j + 1)
    }

    /// Python's `float()` of a `[+-]?[.\d]+` string: nil unless it has a digit and at most one
    /// point. Unicode decimal digits count as their values, as in Python; "1." and ".5" are valid.
    private static func pythonFloat(_ number: [Unicode.Scalar]) -> Double? {
        var sign = "", integer = "", fraction = ""
        var seenPoint = false
        for c in number {
            if c == "+" || c == "-" {
                sign = String(c)
            } else if c == "." {
                if seenPoint { return nil }
                seenPoint = true
            } else if let d = decimalDigit(c) {
                if seenPoint { fraction += String(d) } else { integer += String(d) }
            }
        }
        guard !integer.isEmpty || !fraction.isEmpty else { return nil }
        return Double("\(sign)\(integer.isEmpty ? "0" : integer).\(fraction.isEmpty ? "0" : fraction)")
    }

    /// `re.split(r"\s*\bBREAK\b\s*", run)`: the parts between breaks (n breaks give n + 1 parts).
    private static func splitAtBreaks(_ run: ArraySlice<Unicode.Scalar>) -> [ArraySlice<Unicode.Scalar>] {
        let s = Array(run)
        let word = Array("BREAK".unicodeScalars)
        var parts: [ArraySlice<Unicode.Scalar>] = []
        var partStart = 0
        var start = 0
        while start < s.count {
            // \s* is greedy, and "B" is not a space, so BREAK must begin where the spaces end.
            var j = start
            while j < s.count, isSpace(s[j]) { j += 1 }
            let matches = j + word.count <= s.count && Array(s[j..<(j + word.count)]) == word
                && (j == 0 || !isWord(s[j - 1]))
                && (j + word.count == s.count || !isWord(s[j + word.count]))
            guard matches else {
                start += 1
                continue
            }
            var end = j + word.count
            while end < s.count, isSpace(s[end]) { end += 1 }
            parts.append(ArraySlice(s[partStart..<start]))
            partStart = end
            start = end
        }
        parts.append(ArraySlice(s[partStart..<s.count]))
        return parts
    }

    /// Python's `\s` on str: Unicode White_Space plus the separators U+001C…U+001F.
    private static func isSpace(_ c: Unicode.Scalar) -> Bool {
        c.properties.isWhitespace || (0x1C...0x1F).contains(c.value)
    }

    /// Python's `\w` on str (what `\b` looks at): letters, anything numeric, and `_`.
    private static func isWord(_ c: Unicode.Scalar) -> Bool {
        if c == "_" || c.properties.numericType != nil { return true }
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    /// Python's `\d` on str: a decimal digit of any script, with its value.
    private static func decimalDigit(_ c: Unicode.Scalar) -> Int? {
        guard c.properties.numericType == .decimal, let v = c.properties.numericValue else { return nil }
        return Int(v)
    }

    // MARK: Chunks

    /// `parseAttention` then `chunk`.
    public static func chunk(prompt: String, tokenizer: CLIPTokenizer, embeddings: [EmbeddingTrigger] = [],
                             padTokenID: Int32? = nil,
                             commaPaddingBacktrack: Int = defaultCommaPaddingBacktrack) -> ChunkedPrompt {
        chunk(parseAttention(prompt), tokenizer: tokenizer, embeddings: embeddings, padTokenID: padTokenID,
              commaPaddingBacktrack: commaPaddingBacktrack)
    }

    /// Lays `segments` out in 77-position chunks: A1111's `tokenize_line`.
    ///
    /// - Parameters:
    ///   - embeddings: the textual-inversion triggers. At each token the longest trigger whose ids
    ///     start there wins (ties: the first listed). Triggers without ids or with more than 75
    ///     vectors are ignored (A1111 would build a chunk longer than 77 that CLIP cannot encode).
    ///   - padTokenID: what fills the chunk after its first EOS: `nil` takes `tokenizer.padTokenID`,
    ///     which is A1111's choice for both families — EOS for SD 1.x (`id_pad = id_end`), 0 (`!`)
    ///     for SD 2.x's tokenizer (`sd_hijack_open_clip.py`: `id_pad = 0`).
    ///   - commaPaddingBacktrack: A1111's `comma_padding_backtrack`; 0 turns comma backtracking off.
    ///
    /// Bug-compatible with A1111: when comma backtracking moves an embedding's slots into the next
    /// chunk, its vectors stay at their old positions (over the padding) of the previous chunk, and
    /// the moved slots become token id 0 in the next.
    public static func chunk(_ segments: [PromptSegment], tokenizer: CLIPTokenizer, embeddings: [EmbeddingTrigger] = [],
                             padTokenID: Int32? = nil,
                             commaPaddingBacktrack: Int = defaultCommaPaddingBacktrack) -> ChunkedPrompt {
        let bos = tokenizer.bosTokenID, eos = tokenizer.eosTokenID
        let pad = padTokenID ?? tokenizer.padTokenID
        let chunkLength = windowLength(tokenizer)
        let commaIDs = tokenizer.tokenIDs(",")
        let comma: Int32? = commaIDs.count == 1 && commaIDs[0] != tokenizer.unkTokenID ? commaIDs[0] : nil

        // ids_lookup: first id → triggers, longest first, ties in the order given.
        var lookup: [Int32: [EmbeddingTrigger]] = [:]
        let usable = embeddings.enumerated().filter { !$0.element.tokenIDs.isEmpty && (0...chunkLength).contains($0.element.vectorCount) }
        let longestFirst = usable.sorted { a, b in
            a.element.tokenIDs.count != b.element.tokenIDs.count ? a.element.tokenIDs.count > b.element.tokenIDs.count : a.offset < b.offset
        }
        for (_, trigger) in longestFirst { lookup[trigger.tokenIDs[0], default: []].append(trigger) }
        func trigger(in tokens: [Int32], at position: Int) -> EmbeddingTrigger? {
            lookup[tokens[position]]?.first { t in
                position + t.tokenIDs.count <= tokens.count && tokens[position..<(position + t.tokenIDs.count)].elementsEqual(t.tokenIDs)
            }
        }

        // The chunk being filled: ids (0 for embedding slots), weights, and where embeddings start.
        var ids: [Int32] = [], weights: [Float] = [], fixes: [(offset: Int, trigger: EmbeddingTrigger)] = []
        var lastComma = -1
        var tokenCount = 0
        var chunks: [PromptChunk] = []

        func closeChunk(isLast: Bool = false) {
            tokenCount += isLast ? ids.count : chunkLength
            let missing = chunkLength - ids.count
            if missing > 0 {
                ids += repeatElement(eos, count: missing)
                weights += repeatElement(1, count: missing)
            }
            var full = [bos] + ids + [eos]
            // process_tokens: with a separate pad id, everything after the first EOS becomes pad.
            if pad != eos, let first = full.firstIndex(of: eos) {
                for k in (first + 1)..<full.count { full[k] = pad }
            }
            var tokens = full.map { PromptToken.id($0) }
            // EmbeddingsWithFixes: the vectors go at offset + 1 (after BOS), cut at the chunk's end.
            for fix in fixes {
                for k in 0..<max(0, min(full.count - fix.offset - 1, fix.trigger.vectorCount)) {
                    tokens[fix.offset + 1 + k] = .embedding(name: fix.trigger.name, vector: k)
                }
            }
            chunks.append(PromptChunk(tokens: tokens, weights: [1] + weights + [1]))
            ids = []
            weights = []
            fixes = []
            lastComma = -1
        }

        for segment in segments {
            if segment.isBreak {
                closeChunk()
                continue
            }
            let tokens = tokenizer.tokenIDs(segment.text)
            var position = 0
            while position < tokens.count {
                let token = tokens[position]
                if token == comma {
                    lastComma = ids.count
                } else if commaPaddingBacktrack != 0, ids.count == chunkLength, lastComma != -1,
                          ids.count - lastComma <= commaPaddingBacktrack {
                    // Move the words after the last comma to the next chunk; fixes stay (as in A1111).
                    let cut = lastComma + 1
                    let movedIDs = Array(ids[cut...]), movedWeights = Array(weights[cut...])
                    ids.removeSubrange(cut...)
                    weights.removeSubrange(cut...)
                    closeChunk()
                    ids = movedIDs
                    weights = movedWeights
                }
                if ids.count == chunkLength { closeChunk() }

                guard let embedding = trigger(in: tokens, at: position) else {
                    ids.append(token)
                    weights.append(segment.weight)
                    position += 1
                    continue
                }
                if ids.count + embedding.vectorCount > chunkLength { closeChunk() }
                fixes.append((ids.count, embedding))
                ids += repeatElement(0, count: embedding.vectorCount)
                weights += repeatElement(segment.weight, count: embedding.vectorCount)
                position += embedding.tokenIDs.count
            }
        }
        if !ids.isEmpty || chunks.isEmpty { closeChunk(isLast: true) }
        return ChunkedPrompt(chunks: chunks, tokenCount: tokenCount)
    }

    /// A1111's `empty_chunk`: BOS, then EOS everywhere (the pad id after the first EOS), weights 1.
    /// It is also what the empty prompt `""` chunks to.
    public static func emptyChunk(tokenizer: CLIPTokenizer, padTokenID: Int32? = nil) -> PromptChunk {
        let pad = padTokenID ?? tokenizer.padTokenID
        let chunkLength = windowLength(tokenizer)
        let ids = [tokenizer.bosTokenID, tokenizer.eosTokenID] + Array(repeating: pad, count: chunkLength)
        return PromptChunk(tokens: ids.map { .id($0) }, weights: Array(repeating: 1, count: chunkLength + 2))
    }

    /// Pads every chunk list with empty chunks up to the longest one's count: what A1111 does to
    /// the texts of one text-encoder call (a prompt-editing schedule), and, with the opt-in setting
    /// `pad_cond_uncond`, to the prompt and negative prompt (see the file header; by default A1111
    /// leaves those unequal and runs the U-Net on each separately).
    public static func matchChunkCounts(_ prompts: [[PromptChunk]], tokenizer: CLIPTokenizer,
                                        padTokenID: Int32? = nil) -> [[PromptChunk]] {
        let count = prompts.map(\.count).max() ?? 0
        let empty = emptyChunk(tokenizer: tokenizer, padTokenID: padTokenID)
        return prompts.map { $0 + Array(repeating: empty, count: count - $0.count) }
    }
}

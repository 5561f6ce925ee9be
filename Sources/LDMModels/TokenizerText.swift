// Text preparation of the CLIP tokenizer, before byte-pair encoding. It follows transformers 5's
// `CLIPTokenizer` (backed by the tokenizers library), which is what diffusers users now get:
//
//   1. Added tokens with `normalized: false` (the special tokens given as plain strings, e.g.
//      `<|endoftext|>` in SD 1.x folders and the SD 2.x pad token `!`) are cut out of the raw text.
//   2. The rest is normalized: NFC, every run of whitespace to one space, then lower case, one
//      character at a time (full mappings, so İ → i̇; Σ is always σ — no final-sigma rule).
//   3. Added tokens with `normalized: true` (`<|startoftext|>`, textual-inversion words) are cut
//      out of the normalized text.
//   4. CLIP's split pattern, case-sensitive, keeping the matches and dropping what lies between
//      (whitespace):  <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//   5. The byte-level pre-tokenizer's GPT-2 pattern on each piece ('s|'t|'re|'ve|'m|'ll|'d|
//      ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+), which only splits a piece that step 4
//      kept whole as a special-token spelling (`<|ENDOFTEXT|>` lower-cased → `<|`, `endoftext`, `|>`).
//   6. Each word as UTF-8 bytes, each byte a printable character (bytes_to_unicode), then BPE with
//      `</w>` on the word's last symbol.
// Unlike transformers 4's slow class without ftfy, nothing is dropped (control and zero-width
// characters become byte tokens) and CJK text is not split into one word per character.
//
// Everything works on Unicode scalars (Rust's chars), never on Swift's grapheme clusters.
// `\s` is the White_Space property (Oniguruma's Unicode `\s`), `\p{L}` / `\p{N}` the general
// categories, from Swift's Unicode tables.

/// The text steps of the CLIP tokenizer that come before byte-pair encoding.
enum CLIPText {
    // MARK: Normalizer

    /// `\s`: the White_Space property.
    static func isSpace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace }

    /// NFC, whitespace runs → one space, lower case per character.
    static func normalize<S: Sequence<Unicode.Scalar>>(_ text: S) -> [Unicode.Scalar] {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: text)
        let nfc = String(decoding: String(view)._nfcCodeUnits, as: UTF8.self)
        var out: [Unicode.Scalar] = []
        var inSpace = false
        for s in nfc.unicodeScalars {
            if isSpace(s) {
                if !inSpace { out.append(" ") }
                inSpace = true
                continue
            }
            inSpace = false
            if s.value < 0x80 {
                out.append(s.value >= 0x41 && s.value <= 0x5A ? Unicode.Scalar(s.value + 0x20)! : s)
            } else {
                out.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return out
    }

    // MARK: Pre-tokenizer patterns

    private static let specialPieces: [[Unicode.Scalar]] = ["<|startoftext|>", "<|endoftext|>"].map { Array($0.unicodeScalars) }
    private static let contractions: [[Unicode.Scalar]] = ["s", "t", "re", "ve", "m", "ll", "d"].map { Array($0.unicodeScalars) }

    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    private static func matches(_ word: ArraySlice<Unicode.Scalar>, at start: Int, _ pattern: [Unicode.Scalar]) -> Bool {
        guard start + pattern.count <= word.endIndex else { return false }
        for (k, p) in pattern.enumerated() where word[start + k] != p { return false }
        return true
    }

    /// The contraction (`'s` … `'d`) at `i`, if any: its end.
    private static func contraction(_ text: ArraySlice<Unicode.Scalar>, at i: Int) -> Int? {
        guard text[i] == "'" else { return nil }
        for c in contractions where matches(text, at: i + 1, c) { return i + 1 + c.count }
        return nil
    }

    /// The run of non-space, non-letter, non-number characters starting at `i`: its end.
    private static func symbolRun(_ text: ArraySlice<Unicode.Scalar>, from i: Int) -> Int {
        var j = i + 1
        while j < text.endIndex && !isSpace(text[j]) && !isLetter(text[j]) && !isNumber(text[j]) { j += 1 }
        return j
    }

    /// Step 4: the matches of CLIP's pattern, in order (whitespace between them dropped).
    static func pieces(_ text: ArraySlice<Unicode.Scalar>) -> [ArraySlice<Unicode.Scalar>] {
        var result: [ArraySlice<Unicode.Scalar>] = []
        var i = text.startIndex
        let n = text.endIndex
        scan: while i < n {
            let s = text[i]
            for special in specialPieces where matches(text, at: i, special) {
                result.append(text[i..<(i + special.count)])
                i += special.count
                continue scan
            }
            if let end = contraction(text, at: i) {
                result.append(text[i..<end]); i = end
            } else if isLetter(s) {
                var j = i + 1
                while j < n && isLetter(text[j]) { j += 1 }
                result.append(text[i..<j]); i = j
            } else if isNumber(s) {
                result.append(text[i...i]); i += 1
            } else if isSpace(s) {
                i += 1
            } else {
                let j = symbolRun(text, from: i)
                result.append(text[i..<j]); i = j
            }
        }
        return result
    }

    /// Step 5: the GPT-2 pattern on one piece (which holds no whitespace).
    static func byteLevelWords(_ piece: ArraySlice<Unicode.Scalar>) -> [ArraySlice<Unicode.Scalar>] {
        var result: [ArraySlice<Unicode.Scalar>] = []
        var i = piece.startIndex
        let n = piece.endIndex
        while i < n {
            let s = piece[i]
            var j: Int
            if let end = contraction(piece, at: i) {
                j = end
            } else if isLetter(s) {
                j = i + 1
                while j < n && isLetter(piece[j]) { j += 1 }
            } else if isNumber(s) {
                j = i + 1
                while j < n && isNumber(piece[j]) { j += 1 }
            } else if isSpace(s) {
                j = i + 1
                while j < n && isSpace(piece[j]) { j += 1 }
            } else {
                j = symbolRun(piece, from: i)
            }
            result.append(piece[i..<j])
            i = j
        }
        return result
    }

    // MARK: Byte-level alphabet

    /// `bytes_to_unicode()`: bytes '!'…'~', '¡'…'¬', '®'…'ÿ' map to themselves; the other 68 bytes
    /// map, in increasing order, to U+0100, U+0101, … so that every byte is a printable character.
    static let byteCharacters: [Character] = {
        var table = [UInt32](repeating: 0, count: 256)
        var printable = Set<UInt32>()
        for r in [0x21...0x7E, 0xA1...0xAC, 0xAE...0xFF] as [ClosedRange<UInt32>] {
            for b in r { table[Int(b)] = b; printable.insert(b) }
        }
        var next: UInt32 = 256
        for b in 0..<256 where !printable.contains(UInt32(b)) {
            table[b] = next
            next += 1
        }
        return table.map { Character(Unicode.Scalar($0)!) }
    }()

    /// The inverse of `byteCharacters`, keyed by the character's scalar.
    static let characterBytes: [Unicode.Scalar: UInt8] = {
        var map: [Unicode.Scalar: UInt8] = [:]
        for (b, c) in byteCharacters.enumerated() { map[c.unicodeScalars.first!] = UInt8(b) }
        return map
    }()
}

// Text preparation of the CLIP tokenizer, before byte-pair encoding. It follows transformers'
// slow CLIPTokenizer (models/clip/tokenization_clip.py) as it runs when ftfy is not installed:
//
//   1. BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize(text):
//      drop U+0000, U+FFFD and control characters (categories C*, except \t \n \r); turn \t \n \r
//      and space separators (Zs) into spaces; put spaces around CJK ideographs; NFC; split on
//      whitespace; lower-case each word (Python's str.lower: full mappings, final sigma).
//   2. The words joined by single spaces (which is also whitespace_clean's result).
//   3. CLIP's pre-tokenizer pattern, case-insensitive:
//      <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//   4. Each piece as UTF-8 bytes, each byte mapped to a printable character (bytes_to_unicode).
//
// Everything works on Unicode scalars (Python's characters), never on Swift's grapheme clusters.
// Character properties come from Swift's Unicode tables; Python 3.11 uses Unicode 14, so only
// characters assigned after Unicode 14 can be treated differently.

/// The text steps of the CLIP tokenizer that come before byte-pair encoding.
enum CLIPText {
    // MARK: BasicTokenizer

    /// `_is_control`: general category C* (Cc, Cf, Cs, Co, Cn), except tab, newline, carriage return.
    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    /// `_is_whitespace`: space, tab, newline, carriage return, or a space separator (Zs).
    static func isBasicWhitespace(_ s: Unicode.Scalar) -> Bool {
        s == " " || s == "\t" || s == "\n" || s == "\r" || s.properties.generalCategory == .spaceSeparator
    }

    /// `_is_chinese_char`: the CJK Unified Ideographs blocks and their extensions / compatibility forms.
    static func isCJK(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }

    /// Python's `str.isspace()`: ASCII \t \n \v \f \r, U+001C–U+001F, space, and the characters of
    /// bidirectional class WS, B or S or category Zs (with Zl and Zp, that is U+0085, U+2028, U+2029).
    static func isPythonSpace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85: return true
        case 0..<0x80: return false
        default:
            switch s.properties.generalCategory {
            case .spaceSeparator, .lineSeparator, .paragraphSeparator: return true
            default: return false
            }
        }
    }

    /// The words of `BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize(text)`.
    static func basicWords<S: Sequence<Unicode.Scalar>>(_ text: S) -> [[Unicode.Scalar]] {
        // _clean_text and _tokenize_chinese_chars.
        var cleaned = String.UnicodeScalarView()
        for s in text {
            if s.value == 0 || s.value == 0xFFFD || isControl(s) { continue }
            if isBasicWhitespace(s) {
                cleaned.append(" ")
            } else if isCJK(s) {
                cleaned.append(" "); cleaned.append(s); cleaned.append(" ")
            } else {
                cleaned.append(s)
            }
        }
        // unicodedata.normalize("NFC", text), then whitespace_tokenize.
        let normalized = String(decoding: String(cleaned)._nfcCodeUnits, as: UTF8.self)
        var words: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        for s in normalized.unicodeScalars {
            if isPythonSpace(s) {
                if !current.isEmpty { words.append(current); current.removeAll(keepingCapacity: true) }
            } else {
                current.append(s)
            }
        }
        if !current.isEmpty { words.append(current) }
        // token.lower() per word (no accent stripping, no punctuation splitting).
        return words.map(pythonLowercased)
    }

    /// Python's `str.lower()`: the full lower-case mapping of each character, except that Σ
    /// (U+03A3) becomes final ς (U+03C2) when preceded by a cased letter and not followed by one
    /// (case-ignorable characters skipped on both sides), else σ (U+03C3).
    static func pythonLowercased(_ word: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(word.count)
        for (i, s) in word.enumerated() {
            if s.value < 0x80 {
                out.append(s.value >= 0x41 && s.value <= 0x5A ? Unicode.Scalar(s.value + 0x20)! : s)
            } else if s.value == 0x03A3 {
                out.append(isFinalSigma(word, at: i) ? "\u{03C2}" : "\u{03C3}")
            } else {
                out.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return out
    }

    private static func isFinalSigma(_ word: [Unicode.Scalar], at i: Int) -> Bool {
        var j = i - 1
        while j >= 0 && word[j].properties.isCaseIgnorable { j -= 1 }
        guard j >= 0 && word[j].properties.isCased else { return false }
        j = i + 1
        while j < word.count && word[j].properties.isCaseIgnorable { j += 1 }
        return j == word.count || !word[j].properties.isCased
    }

    // MARK: Pre-tokenizer pattern

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

    /// Characters no alternative of the pattern matches, so `findall` skips them: whitespace, and
    /// U+0345 (combining ypogegrammeni), which under the `regex` module's IGNORECASE is neither a
    /// letter for `[\p{L}]` nor a non-letter for `[^\s\p{L}\p{N}]` (it case-folds to ι). A search
    /// over all code points found no other character whose matching IGNORECASE changes.
    static func isSkipped(_ s: Unicode.Scalar) -> Bool {
        s.value == 0x0345 || s.properties.isWhitespace || isPythonSpace(s)
    }

    /// Case-insensitive comparison of `word[start...]` with the lower-case ASCII `pattern`, as the
    /// `regex` module's IGNORECASE does it (simple case folding: A–Z fold to a–z, and ſ U+017F to s).
    private static func matches(_ word: [Unicode.Scalar], at start: Int, _ pattern: [Unicode.Scalar]) -> Bool {
        guard start + pattern.count <= word.count else { return false }
        for (k, p) in pattern.enumerated() {
            var c = word[start + k].value
            if c >= 0x41 && c <= 0x5A { c += 0x20 }
            if c == 0x017F { c = 0x73 }
            if c != p.value { return false }
        }
        return true
    }

    /// The pieces `re.findall(pattern, word)` returns, in order. Alternatives are tried in order at
    /// each position (leftmost first), and each run is as long as it can be; whitespace is skipped.
    static func pieces(_ word: [Unicode.Scalar]) -> [ArraySlice<Unicode.Scalar>] {
        var result: [ArraySlice<Unicode.Scalar>] = []
        var i = 0
        let n = word.count
        scan: while i < n {
            let s = word[i]
            for special in specialPieces where matches(word, at: i, special) {
                result.append(word[i..<(i + special.count)])
                i += special.count
                continue scan
            }
            if s == "'" {
                for c in contractions where matches(word, at: i + 1, c) {
                    result.append(word[i..<(i + 1 + c.count)])
                    i += 1 + c.count
                    continue scan
                }
            }
            if isLetter(s) {
                var j = i + 1
                while j < n && isLetter(word[j]) { j += 1 }
                result.append(word[i..<j]); i = j
            } else if isNumber(s) {
                result.append(word[i...i]); i += 1
            } else if isSkipped(s) {
                i += 1
            } else {
                var j = i + 1
                while j < n && !isSkipped(word[j]) && !isLetter(word[j]) && !isNumber(word[j]) { j += 1 }
                result.append(word[i..<j]); i = j
            }
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

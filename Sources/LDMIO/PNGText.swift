// PNG text chunks (tEXt, zTXt, iTXt), as PNGImage reads and writes them.
//
// PNG specification (3rd edition), sections 11.3.3.2-11.3.3.4: keywords are 1-79 Latin-1
// printable characters; tEXt and zTXt hold Latin-1 text, iTXt holds UTF-8. Here every keyword and
// text is a Swift String: Latin-1 is converted to UTF-8 on reading, and on writing a text goes
// into tEXt when it is representable in Latin-1, otherwise into an uncompressed iTXt chunk.

/// One text chunk of a PNG file: a keyword (such as `parameters`, `Comment`, `Software`) and its
/// text.
///
/// Two chunks are equal when their keywords and texts are equal; `kind` records only how a
/// chunk happened to be stored and takes no part in comparisons.
public struct PNGTextChunk: Sendable, Hashable, CustomStringConvertible {
    /// The PNG chunk type a text was stored in.
    public enum Kind: String, Sendable {
        /// `tEXt`: Latin-1, uncompressed.
        case tEXt
        /// `zTXt`: Latin-1, zlib-compressed.
        case zTXt
        /// `iTXt`: UTF-8, compressed or not.
        case iTXt
    }

    /// The keyword: 1-79 Latin-1 printable characters, no leading, trailing or double spaces.
    public var keyword: String
    /// The text, any Unicode except U+0000.
    public var text: String
    /// The chunk type this text was read from; `nil` for a chunk made in code. Writing ignores
    /// it and chooses `tEXt` or `iTXt` from the content.
    public var kind: Kind?

    /// A text chunk to write.
    public init(keyword: String, text: String) {
        self.keyword = keyword
        self.text = text
        self.kind = nil
    }

    /// A text chunk as read from a file.
    init(keyword: String, text: String, kind: Kind?) {
        self.keyword = keyword
        self.text = text
        self.kind = kind
    }

    /// Whether this chunk can be written as `tEXt` (every character of the text is in Latin-1,
    /// U+0000...U+00FF); otherwise it is written as `iTXt`.
    public var isLatin1: Bool {
        text.unicodeScalars.allSatisfy { $0.value <= 0xFF }
    }

    /// `keyword: text`.
    public var description: String { "\(keyword): \(text)" }

    public static func == (lhs: PNGTextChunk, rhs: PNGTextChunk) -> Bool {
        lhs.keyword == rhs.keyword && lhs.text == rhs.text
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(keyword)
        hasher.combine(text)
    }
}

extension Array where Element == PNGTextChunk {
    /// The text of the first chunk with this keyword, if any.
    public func text(forKeyword keyword: String) -> String? {
        first { $0.keyword == keyword }?.text
    }
}

// What can go wrong making the emoji dataset: the catalogue, the exclusion list, the font.

import Foundation

/// The emoji dataset could not be made. The description is one line naming the file or emoji.
public enum EmojiDatasetError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// A file is missing or cannot be read; `what` says which file it should have been.
    case unreadable(String, what: String)
    /// An emoji-test.txt line does not parse (line 0: the whole file).
    case malformedLine(String, line: Int, reason: String)
    /// An exclusion list names an emoji the catalogue has no fully-qualified emoji of; `suggestion`
    /// is a name equal but for case or apostrophe, `others` the count of further unknown names.
    case unknownExcludedName(String, line: Int, name: String, suggestion: String?, others: Int)
    /// FreeType cannot open the font, or a FreeType call failed.
    case fontError(String, reason: String)
    /// The font has no colour bitmap strike (not a CBDT/sbix colour bitmap font).
    case notAColourBitmapFont(String)
    /// HarfBuzz shaped the emoji to `glyphs` glyphs, not one (0 glyphs: the font lacks it).
    case notOneGlyph(name: String, codepoints: String, glyphs: Int)
    /// FreeType could not give the emoji's glyph as a BGRA bitmap.
    case glyphUnavailable(name: String, reason: String)

    public var description: String {
        let line: String
        switch self {
        case .unreadable(let path, let what):
            line = "cannot read \(what) \(path)"
        case .malformedLine(let path, 0, let reason):
            line = "\(path): \(reason)"
        case .malformedLine(let path, let number, let reason):
            line = "\(path) line \(number): \(reason)"
        case .unknownExcludedName(let path, let number, let name, let suggestion, let others):
            line = "exclude list \(path) line \(number): “\(name)” is not the name of a fully-qualified emoji in emoji-test.txt"
                + (suggestion.map { " (did you mean “\($0)”?)" } ?? "")
                + (others > 0 ? " (and \(others) more unknown name\(others == 1 ? "" : "s"))" : "")
                + "; a misspelt name would let a held-out emoji into training"
        case .fontError(let path, let reason):
            line = "emoji font \(path): \(reason)"
        case .notAColourBitmapFont(let path):
            line = "\(path) has no colour bitmap strike (expected a CBDT colour font such as NotoColorEmoji.ttf)"
        case .notOneGlyph(let name, let codepoints, 0):
            line = "emoji “\(name)” (\(codepoints)) has no glyph in the font"
        case .notOneGlyph(let name, let codepoints, let glyphs):
            line = "emoji “\(name)” (\(codepoints)) shapes to \(glyphs) glyphs, not one: the font does not draw it as a single emoji"
        case .glyphUnavailable(let name, let reason):
            line = "emoji “\(name)”: \(reason)"
        }
        return String(line.map { $0.isNewline ? " " : $0 })
    }

    public var errorDescription: String? { description }
}

// Captions of the Shapes world: writing them from a scene and parsing them back.
//
// Grammar (one caption per image; the article is "an" before a vowel sound — "an orange"):
//   colorShape       a {color} {shape}
//   sizeColorShape   a {small|medium|large} {color} {shape}
//   background       a {color} {shape} on a {light|dark} background
//   position         a {color} {shape} in the {top left|top right|bottom left|bottom right|center}
//   relation         a {color} {shape} {left of|right of|above|below} a {color} {shape}
// with color ∈ red green blue yellow purple orange white black and shape ∈ circle square triangle.
//
// The parser ignores case, surrounding and repeated whitespace and one trailing full stop, and
// accepts either article anywhere; it also takes the spelling "centre".

/// A colour and a shape kind: the noun phrase every caption is built from ("red circle").
public struct ShapeDescription: Hashable, Sendable, CustomStringConvertible {
    public var color: ShapeColor
    public var kind: ShapeKind

    public init(color: ShapeColor, kind: ShapeKind) {
        self.color = color
        self.kind = kind
    }

    /// The description of a scene's shape.
    public init(_ shape: ShapeInstance) {
        self.init(color: shape.color, kind: shape.kind)
    }

    /// "red circle".
    public var description: String { "\(color.rawValue) \(kind.rawValue)" }
}

/// A caption of the grammar, as structure.
public enum ParsedCaption: Hashable, Sendable, CustomStringConvertible {
    /// `a {color} {shape}`
    case colorShape(ShapeDescription)
    /// `a {size} {color} {shape}`
    case sizeColorShape(ShapeSize, ShapeDescription)
    /// `a {color} {shape} on a {light|dark} background`
    case background(ShapeDescription, ShapesBackground)
    /// `a {color} {shape} in the {position}`
    case position(ShapeDescription, ShapePosition)
    /// `a {color} {shape} {relation} a {color} {shape}`
    case relation(ShapeDescription, ShapeRelation, ShapeDescription)

    /// The caption template.
    public var form: CaptionForm {
        switch self {
        case .colorShape: .colorShape
        case .sizeColorShape: .sizeColorShape
        case .background: .background
        case .position: .position
        case .relation: .relation
        }
    }

    /// The shape the caption is about (the first one of a relation).
    public var subject: ShapeDescription {
        switch self {
        case .colorShape(let d), .sizeColorShape(_, let d), .background(let d, _),
             .position(let d, _), .relation(let d, _, _):
            d
        }
    }

    /// The canonical caption text, e.g. "an orange square on a dark background".
    public var text: String {
        switch self {
        case .colorShape(let d):
            return ShapesCaption.withArticle(d.description)
        case .sizeColorShape(let size, let d):
            return ShapesCaption.withArticle("\(size.rawValue) \(d)")
        case .background(let d, let background):
            return ShapesCaption.withArticle(d.description) + " on a \(background.rawValue) background"
        case .position(let d, let position):
            return ShapesCaption.withArticle(d.description) + " in the \(position.rawValue)"
        case .relation(let a, let relation, let b):
            return ShapesCaption.withArticle(a.description) + " \(relation.rawValue) "
                + ShapesCaption.withArticle(b.description)
        }
    }

    public var description: String { text }

    /// Whether the caption is true of `scene` by the scene's own structure (not its pixels):
    /// the right number of shapes, and every attribute the caption names agrees.
    public func describes(_ scene: ShapesScene) -> Bool {
        guard scene.shapes.count == form.shapeCount else { return false }
        let first = scene.shapes[0]
        switch self {
        case .colorShape(let d):
            return ShapeDescription(first) == d
        case .sizeColorShape(let size, let d):
            return ShapeDescription(first) == d && first.size == size
        case .background(let d, let background):
            return ShapeDescription(first) == d && scene.background == background
        case .position(let d, let position):
            return ShapeDescription(first) == d && first.position == position
        case .relation(let a, let relation, let b):
            return ShapeDescription(first) == a && ShapeDescription(scene.shapes[1]) == b
                && scene.relation == relation
        }
    }
}

/// Writing and parsing Shapes captions (see the file header for the grammar).
public enum ShapesCaption {
    /// The caption of `form` for `scene`, or nil when the scene cannot carry it (a relation
    /// needs exactly two shapes with a clear relation; the other forms need one shape).
    public static func caption(for scene: ShapesScene, form: CaptionForm) -> ParsedCaption? {
        guard scene.shapes.count == form.shapeCount else { return nil }
        let first = scene.shapes[0]
        let d = ShapeDescription(first)
        switch form {
        case .colorShape: return .colorShape(d)
        case .sizeColorShape: return .sizeColorShape(first.size, d)
        case .background: return .background(d, scene.background)
        case .position: return .position(d, first.position)
        case .relation:
            guard let relation = scene.relation else { return nil }
            return .relation(d, relation, ShapeDescription(scene.shapes[1]))
        }
    }

    /// Parses a caption of the grammar; nil for anything else.
    public static func parse(_ text: String) -> ParsedCaption? {
        var trimmed = Substring(text.lowercased())
        while let last = trimmed.last, last.isWhitespace { trimmed.removeLast() }
        if trimmed.last == "." { trimmed.removeLast() }
        var words = trimmed.split(whereSeparator: { $0.isWhitespace }).map(String.init)[...]

        guard let (size, subject) = nounPhrase(&words, allowSize: true) else { return nil }
        if let size {
            return words.isEmpty ? .sizeColorShape(size, subject) : nil
        }
        guard let word = words.popFirst() else { return .colorShape(subject) }
        switch word {
        case "on":
            guard let article = words.popFirst(), isArticle(article),
                  let name = words.popFirst(), let background = ShapesBackground(rawValue: name),
                  words.popFirst() == "background", words.isEmpty else { return nil }
            return .background(subject, background)
        case "in":
            guard words.popFirst() == "the" else { return nil }
            let rest = words.joined(separator: " ")
            let position = rest == "centre" ? .center : ShapePosition(rawValue: rest)
            return position.map { .position(subject, $0) }
        case "left", "right":
            guard words.popFirst() == "of" else { return nil }
            return relationTail(subject, word == "left" ? .leftOf : .rightOf, &words)
        case "above":
            return relationTail(subject, .above, &words)
        case "below":
            return relationTail(subject, .below, &words)
        default:
            return nil
        }
    }

    /// `phrase` with "a" or "an" in front, by its first letter: "an" before a vowel.
    public static func withArticle(_ phrase: String) -> String {
        let vowel = phrase.first.map { "aeiou".contains($0) } ?? false
        return (vowel ? "an " : "a ") + phrase
    }

    // MARK: Parsing helpers

    private static func isArticle(_ word: String) -> Bool { word == "a" || word == "an" }

    /// `a [size] color shape`, consumed from the front of `words`.
    private static func nounPhrase(_ words: inout ArraySlice<String>, allowSize: Bool)
        -> (ShapeSize?, ShapeDescription)? {
        guard let article = words.popFirst(), isArticle(article), var word = words.popFirst() else { return nil }
        var size: ShapeSize?
        if allowSize, let s = ShapeSize(rawValue: word) {
            size = s
            guard let next = words.popFirst() else { return nil }
            word = next
        }
        guard let color = ShapeColor(rawValue: word),
              let kindWord = words.popFirst(), let kind = ShapeKind(rawValue: kindWord) else { return nil }
        return (size, ShapeDescription(color: color, kind: kind))
    }

    private static func relationTail(_ subject: ShapeDescription, _ relation: ShapeRelation,
                                     _ words: inout ArraySlice<String>) -> ParsedCaption? {
        guard let (size, object) = nounPhrase(&words, allowSize: false), size == nil, words.isEmpty else {
            return nil
        }
        return .relation(subject, relation, object)
    }
}

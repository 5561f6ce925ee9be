// How well images match emoji names, judged against the font's own drawings of every emoji.
//
// Features: an image composited on white and area-averaged to 16×16 RGB (768 values in [0, 1]).
// At that size what separates emoji is their layout and colours, not the few-pixel detail a small
// model blurs. Distance: squared L2 between features.
//
// - Identity: the reference nearest the image, among all fully-qualified emoji. It is right when
//   that reference has the same base as the name (the name without its skin tones): a thumbs up
//   in another tone is still a thumbs up. The check also asks whether the base is among the five
//   nearest distinct bases.
// - Skin tone, for names with tones: among the references of the same base (its toneless yellow
//   form and every tone variant), the nearest must carry the name's tones. With five tones plus
//   the toneless form, chance is 1/6.
//
// Scored separately for seen names and held-out names (a tone never trained with that emoji): the
// held-out ones say whether the model composes emoji and tones or only remembers pictures.

import LDMTraining

/// A name split into its base and its skin tones: "thumbs up: medium-dark skin tone" → ("thumbs
/// up", ["medium-dark"]); "kiss: woman, man, light skin tone, dark skin tone" → ("kiss: woman,
/// man", ["light", "dark"]); a name without tones keeps itself as base.
public struct EmojiNameParts: Hashable, Sendable {
    public var base: String
    public var tones: [String]

    public init(_ name: String) {
        guard let colon = name.firstIndex(of: ":") else { base = name; tones = []; return }
        let head = String(name[..<colon])
        var rest: [String] = []
        var tones: [String] = []
        for part in name[name.index(after: colon)...].split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if part.hasSuffix(" skin tone") { tones.append(String(part.dropLast(" skin tone".count))) } else { rest.append(part) }
        }
        base = rest.isEmpty ? head : head + ": " + rest.joined(separator: ", ")
        self.tones = tones
    }
}

/// The references: every emoji's features, by name.
public struct EmojiReferences: Sendable {
    public var names: [String]
    public var parts: [EmojiNameParts]
    public var features: [[Float]]
    /// Indices of the references sharing each base.
    public var byBase: [String: [Int]]

    /// Side of the feature image.
    public static let featureSide = 16

    /// Draws every entry with `font` (as the dataset does, at 64×64) and keeps its features.
    public init(entries: [EmojiEntry], font: EmojiFont) throws {
        let names = entries.map(\.name), parts = names.map(EmojiNameParts.init)
        self.names = names
        self.parts = parts
        features = try entries.map { try EmojiReferences.features(try font.bitmap(for: $0).trainingImage(size: 64)) }
        byBase = Dictionary(grouping: parts.indices, by: { parts[$0].base })
    }

    /// 16×16 area-averaged RGB in [0, 1].
    public static func features(_ image: RGBImage) -> [Float] {
        image.squareResized(to: featureSide).pixels.map { Float($0) / 255 }
    }

    static func distance(_ a: [Float], _ b: [Float]) -> Float {
        var s: Float = 0
        for i in 0..<a.count { let d = a[i] - b[i]; s += d * d }
        return s
    }

    /// The judgement of `image` drawn for `name`.
    public func judge(_ image: RGBImage, name: String) -> EmojiJudgement {
        let f = EmojiReferences.features(image)
        let want = EmojiNameParts(name)
        let distances = features.map { EmojiReferences.distance(f, $0) }
        let order = distances.indices.sorted { distances[$0] < distances[$1] }
        var bases: [String] = []
        for i in order where !bases.contains(parts[i].base) {
            bases.append(parts[i].base)
            if bases.count == 5 { break }
        }
        var tone: Bool?
        if !want.tones.isEmpty, let family = byBase[want.base] {
            let nearest = family.min { distances[$0] < distances[$1] }!
            tone = parts[nearest].tones == want.tones
        }
        return EmojiJudgement(name: name, nearest: names[order[0]], identity: bases.first == want.base,
                              identityTop5: bases.contains(want.base), tone: tone)
    }
}

/// One image's verdict.
public struct EmojiJudgement: Sendable, Equatable {
    public var name: String
    /// The name of the nearest reference.
    public var nearest: String
    public var identity: Bool
    public var identityTop5: Bool
    /// nil for names without skin tones.
    public var tone: Bool?
}

/// Counts over many judgements.
public struct EmojiScore: Sendable, Equatable {
    public var images = 0, identity = 0, identityTop5 = 0, toned = 0, tone = 0

    public init() {}

    public mutating func record(_ j: EmojiJudgement) {
        images += 1
        if j.identity { identity += 1 }
        if j.identityTop5 { identityTop5 += 1 }
        if let t = j.tone { toned += 1; if t { tone += 1 } }
    }

    /// "identity 41.0% (top-5 63.2%), skin tone 55.1% of 305" style summary.
    public var summary: String {
        func pct(_ a: Int, _ b: Int) -> String { b == 0 ? "–" : String(format: "%.1f%%", 100 * Double(a) / Double(b)) }
        return "identity \(pct(identity, images)) (top-5 \(pct(identityTop5, images))) of \(images) images"
            + (toned > 0 ? ", skin tone \(pct(tone, toned)) of \(toned)" : "")
    }
}

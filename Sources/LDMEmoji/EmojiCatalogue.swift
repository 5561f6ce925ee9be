// The emoji named by Unicode's emoji-test.txt (UTS #51 test data; Debian's unicode-data ships it as
// /usr/share/unicode/emoji/emoji-test.txt), and the list of names held out of training.
//
// emoji-test.txt, as read here:
//   # group: People & Body              starts a group (until the next `# group:`)
//   # subgroup: hand-fingers-closed     starts a subgroup (until the next `# subgroup:` or group)
//   1F44D 1F3FD ; fully-qualified # 👍🏽 E1.0 thumbs up: medium skin tone
//   └ code points, hex ┘ └ status ┘  └ the emoji, the version it came in (Em.n), its name ┘
// Every other line starting with `#`, and every blank line, is a comment. The name is kept exactly
// as written — curly apostrophes, diacritics and capitals included — because it is the caption.
//
// Exclusion list: one name a line; lines starting with `#` are comments, blank lines are skipped,
// surrounding whitespace is trimmed (the layout of the prompt files in Prompts/). Every name must
// be the name of a fully-qualified emoji of the catalogue: anything else is an error, because a
// misspelt name would otherwise silently let a held-out emoji into training.

import Foundation

/// How completely an emoji-test.txt line spells its emoji (UTS #51, ED-18 / ED-18a / ED-19).
public enum EmojiStatus: String, Sendable {
    /// A skin-tone or hair component shown alone.
    case component
    /// The full RGI spelling, every presentation selector in place. These are the dataset.
    case fullyQualified = "fully-qualified"
    /// An RGI emoji missing some presentation selector.
    case minimallyQualified = "minimally-qualified"
    /// An RGI emoji missing its first presentation selector.
    case unqualified
}

/// One emoji of emoji-test.txt.
public struct EmojiEntry: Sendable, Hashable {
    /// The code point sequence, e.g. U+1F44D U+1F3FD.
    public var codepoints: [Unicode.Scalar]
    /// How completely the sequence is spelt.
    public var status: EmojiStatus
    /// The CLDR short name exactly as the file writes it, e.g. "thumbs up: medium skin tone".
    public var name: String
    /// The `# group:` it is listed under, e.g. "People & Body".
    public var group: String
    /// The `# subgroup:` it is listed under, e.g. "hand-fingers-closed".
    public var subgroup: String
    /// Its line in the file, from 1.
    public var line: Int

    /// The code points as the file writes them: upper-case hex, space-separated ("1F44D 1F3FD").
    public var codepointsText: String {
        codepoints.map { String($0.value, radix: 16, uppercase: true).leftPadded(to: 4) }.joined(separator: " ")
    }

    /// The emoji as a string.
    public var text: String { String(String.UnicodeScalarView(codepoints)) }
}

/// The emoji listed in an emoji-test.txt, in file (CLDR) order.
public struct EmojiCatalogue: Sendable {
    /// Debian's location, from the unicode-data package.
    public static let debianPath = "/usr/share/unicode/emoji/emoji-test.txt"

    /// Every emoji line, all statuses, in file order.
    public var entries: [EmojiEntry]

    /// The fully-qualified emoji, in file order: the ones the dataset draws.
    public var fullyQualified: [EmojiEntry] { entries.filter { $0.status == .fullyQualified } }

    /// Parses the text of an emoji-test.txt; `path` names it in errors.
    public init(text: String, path: String) throws {
        var entries: [EmojiEntry] = []
        var group = "", subgroup = ""
        for (index, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                if let value = Self.header("group", in: line) {
                    group = value
                    subgroup = ""
                } else if let value = Self.header("subgroup", in: line) {
                    subgroup = value
                }
                continue
            }
            let entry = try Self.parseEntry(line, number: index + 1, path: path)
            entries.append(EmojiEntry(codepoints: entry.codepoints, status: entry.status, name: entry.name,
                                      group: group, subgroup: subgroup, line: index + 1))
        }
        self.entries = entries
    }

    /// Reads and parses the file at `path`.
    public static func read(path: String) throws -> EmojiCatalogue {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EmojiDatasetError.unreadable(path, what: "emoji-test.txt")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw EmojiDatasetError.malformedLine(path, line: 0, reason: "the file is not UTF-8 text")
        }
        return try EmojiCatalogue(text: text, path: path)
    }

    /// The value of a `# <key>: value` comment line, else nil.
    private static func header(_ key: String, in line: String) -> String? {
        let body = line.dropFirst().drop(while: { $0 == " " })
        guard body.hasPrefix(key + ":") else { return nil }
        return body.dropFirst(key.count + 1).trimmingCharacters(in: .whitespaces)
    }

    /// `codepoints ; status # emoji Em.n name` → its parts.
    private static func parseEntry(_ line: String, number: Int, path: String) throws
        -> (codepoints: [Unicode.Scalar], status: EmojiStatus, name: String) {
        func bad(_ reason: String) -> EmojiDatasetError { .malformedLine(path, line: number, reason: reason) }
        // The code points and status hold no `;` or `#`; the comment after the first `#` may (keycap: #).
        guard let semicolon = line.firstIndex(of: ";"),
              let hash = line[semicolon...].firstIndex(of: "#") else {
            throw bad("expected `code points ; status # emoji name`")
        }
        var codepoints: [Unicode.Scalar] = []
        for token in line[..<semicolon].split(separator: " ") {
            guard let value = UInt32(token, radix: 16), let scalar = Unicode.Scalar(value) else {
                throw bad("\(token) is not a hexadecimal code point")
            }
            codepoints.append(scalar)
        }
        if codepoints.isEmpty { throw bad("no code points") }
        let statusText = line[line.index(after: semicolon)..<hash].trimmingCharacters(in: .whitespaces)
        guard let status = EmojiStatus(rawValue: statusText) else { throw bad("unknown status \(statusText)") }
        // Comment: the emoji itself, then (since Emoji 13) its version Em.n, then the name.
        var words = line[line.index(after: hash)...].split(separator: " ").dropFirst()
        if let version = words.first, Self.isVersion(version) { words = words.dropFirst() }
        guard let first = words.first else { throw bad("no emoji name after #") }
        let name = String(line[first.startIndex...])
        return (codepoints, status, name)
    }

    /// "E1.0", "E13.1": the version an emoji came in.
    private static func isVersion(_ word: Substring) -> Bool {
        guard word.first == "E", word.count > 1 else { return false }
        return word.dropFirst().allSatisfy { $0.isASCII && ($0.isNumber || $0 == ".") }
    }
}

/// Names of emoji held out of training (see the file header for the layout).
public struct EmojiExclusionList: Sendable {
    /// A name and the line it is on, from 1.
    public struct Name: Sendable, Hashable {
        public var name: String
        public var line: Int
    }

    /// The file it came from, for errors.
    public var path: String
    /// The names, in file order.
    public var names: [Name]

    /// Parses the text of an exclusion list; `path` names it in errors.
    public init(text: String, path: String) {
        self.path = path
        names = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated().compactMap { index, raw in
            let name = raw.trimmingCharacters(in: .whitespaces)
            return name.isEmpty || name.hasPrefix("#") ? nil : Name(name: name, line: index + 1)
        }
    }

    /// Reads and parses the file at `path`.
    public static func read(path: String) throws -> EmojiExclusionList {
        guard let data = FileManager.default.contents(atPath: path),
              let text = String(data: data, encoding: .utf8) else {
            throw EmojiDatasetError.unreadable(path, what: "exclude list")
        }
        return EmojiExclusionList(text: text, path: path)
    }

    /// Splits `entries` (the fully-qualified emoji) into those kept and those excluded, each in the
    /// order given. Throws when a name of the list is not the name of one of `entries`.
    public func apply(to entries: [EmojiEntry]) throws -> (kept: [EmojiEntry], excluded: [EmojiEntry]) {
        let known = Set(entries.map(\.name))
        let unknown = names.filter { !known.contains($0.name) }
        if let first = unknown.first {
            throw EmojiDatasetError.unknownExcludedName(path, line: first.line, name: first.name,
                                                        suggestion: Self.suggestion(for: first.name, among: entries),
                                                        others: unknown.count - 1)
        }
        let excludedNames = Set(names.map(\.name))
        var kept: [EmojiEntry] = [], excluded: [EmojiEntry] = []
        for entry in entries {
            if excludedNames.contains(entry.name) { excluded.append(entry) } else { kept.append(entry) }
        }
        return (kept, excluded)
    }

    /// A catalogue name equal to `name` but for case or the apostrophe's shape, else nil.
    static func suggestion(for name: String, among entries: [EmojiEntry]) -> String? {
        func folded(_ s: String) -> String { s.replacingOccurrences(of: "’", with: "'").lowercased() }
        let key = folded(name)
        return entries.first { folded($0.name) == key }?.name
    }
}

extension String {
    /// The string with "0"s in front up to `width` characters.
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

// `ldm dataset shapes --count N --out DIR [--seed S]`: writes the Shapes dataset as
// DIR/000000.png + DIR/000000.txt (the caption), … — the layout `FolderDataset` reads.
// `ldm dataset emoji --out DIR [--size 64] [--exclude FILE]`: the same layout, from the colour
// emoji font and the names of emoji-test.txt (LDMEmoji), held-out names left out.

import ArgumentParser
import Foundation
import LDMEmoji
import LDMTraining

/// `ldm dataset`: make training datasets.
struct DatasetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dataset",
        abstract: "Make training datasets.",
        subcommands: [Shapes.self, Emoji.self])

    /// `ldm dataset shapes`: the Shapes world (see LDMTraining/Shapes.swift).
    struct Shapes: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write captioned 64x64 images of flat shapes (NNNNNN.png + NNNNNN.txt).")

        @Option(help: "Number of images to write.")
        var count: Int

        @Option(help: "Output folder (created when missing).")
        var out: String

        @Option(help: "Dataset seed; the same seed gives the same images.")
        var seed: UInt64 = 0

        @Option(help: "Put a shape of this kind in every image (e.g. star: the shape the classic world lacks).")
        var featuring: String?

        func run() throws {
            guard count > 0 else { throw DatasetCommandError.badCount(count) }
            var generator = ShapesGenerator(seed: seed)
            if let featuring {
                guard let kind = ShapeKind(rawValue: featuring) else {
                    throw ValidationError("--featuring must be one of \(ShapeKind.allCases.map(\.rawValue).joined(separator: ", ")) (got \(featuring))")
                }
                generator.featuredKind = kind
            }
            try DatasetCommandError.prepareFolder(out)
            let digits = max(6, String(count - 1).count)
            let folder = out.hasSuffix("/") ? String(out.dropLast()) : out
            let progress = ProgressReporter(label: "dataset shapes")
            let start = Date()
            var reported = 0
            for index in 0..<count {
                let sample = generator.sample(at: index)
                let number = String(index)
                let stem = folder + "/" + String(repeating: "0", count: digits - number.count) + number
                try sample.image.write(to: stem + ".png")
                try DatasetCommandError.writeText(sample.caption + "\n", to: stem + ".txt")
                // Progress on stderr at every 10%.
                let tenth = (index + 1) * 10 / count
                if tenth > reported {
                    reported = tenth
                    progress.report(step: index + 1, total: count, elapsed: Date().timeIntervalSince(start),
                                    final: index + 1 == count)
                }
            }
            progress.note("dataset shapes: wrote \(count) images with captions to \(out)")
        }
    }

    /// `ldm dataset emoji`: every fully-qualified emoji of emoji-test.txt but the held-out ones,
    /// drawn by the colour emoji font (see LDMEmoji/EmojiFont.swift and EmojiImage.swift).
    struct Emoji: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write captioned images of the emoji (NNNNNN.png + NNNNNN.txt, the emoji-test.txt name), held-out ones left out.",
            discussion: """
                File NNNNNN is the emoji's position among the fully-qualified emoji of emoji-test.txt, so an \
                emoji keeps its file name whatever is excluded. emoji-index.tsv in the output folder lists the \
                files written with their code points, group, subgroup and name.
                """)

        @Option(help: "Output folder (created when missing; must hold no other .png or .txt files).")
        var out: String

        @Option(help: "Side of the square images in pixels.")
        var size: Int = 64

        @Option(help: ArgumentHelp("Names never to write, one a line (default: Prompts/emoji-holdout.txt); `none` writes every emoji.",
                                   valueName: "file"))
        var exclude: String?

        @Option(help: "The colour emoji font (Debian's fonts-noto-color-emoji).")
        var font: String = EmojiFont.debianPath

        @Option(name: .customLong("emoji-test"), help: "Unicode's emoji-test.txt, naming the emoji (Debian's unicode-data).")
        var emojiTest: String = EmojiCatalogue.debianPath

        func run() throws {
            guard size > 0 else { throw DatasetCommandError.badSize(size) }
            try DatasetCommandError.requireFile(emojiTest, what: "emoji-test.txt",
                                                hint: "install unicode-data (make setup) or pass --emoji-test FILE")
            let all = try EmojiCatalogue.read(path: emojiTest).fullyQualified
            guard !all.isEmpty else { throw DatasetCommandError.noEmoji(emojiTest) }

            // The held-out names: every one must be a catalogue name, or the run stops here.
            var kept = all, excluded: [EmojiEntry] = [], excludeSource = "no exclude list"
            if exclude != "none" {
                guard let path = exclude ?? shippedFile("Prompts/emoji-holdout.txt")?.path else {
                    throw ValidationError("no Prompts/emoji-holdout.txt in the working folder or beside the repository; "
                                          + "pass --exclude FILE (or --exclude none to write every emoji)")
                }
                try DatasetCommandError.requireFile(path, what: "exclude list", hint: "pass --exclude FILE or --exclude none")
                (kept, excluded) = try EmojiExclusionList.read(path: path).apply(to: all)
                excludeSource = path
            }

            // Shape every emoji before writing anything: one the font cannot draw stops the run early.
            try DatasetCommandError.requireFile(font, what: "emoji font",
                                                hint: "install fonts-noto-color-emoji (make setup) or pass --font FILE")
            let emojiFont = try EmojiFont(path: font)
            let glyphs = try kept.map { try emojiFont.glyph(for: $0) }

            // File stems: the position among all fully-qualified emoji.
            let position = Dictionary(all.enumerated().map { ($1.line, $0) }, uniquingKeysWith: { first, _ in first })
            let digits = max(6, String(all.count - 1).count)
            let stems = kept.map { entry -> String in
                let number = String(position[entry.line]!)
                return String(repeating: "0", count: digits - number.count) + number
            }
            try DatasetCommandError.prepareFolder(out)
            try DatasetCommandError.requireNoStrayFiles(in: out, expected: Set(stems.flatMap { [$0 + ".png", $0 + ".txt"] }))

            let folder = out.hasSuffix("/") ? String(out.dropLast()) : out
            let progress = ProgressReporter(label: "dataset emoji")
            let start = Date()
            var reported = 0
            var index = "file\tcodepoints\tgroup\tsubgroup\tname\n"
            for (i, entry) in kept.enumerated() {
                let image = try emojiFont.bitmap(glyph: glyphs[i], name: entry.name).trainingImage(size: size)
                try image.write(to: folder + "/" + stems[i] + ".png")
                try DatasetCommandError.writeText(entry.name + "\n", to: folder + "/" + stems[i] + ".txt")
                index += [stems[i], entry.codepointsText, entry.group, entry.subgroup, entry.name].joined(separator: "\t") + "\n"
                // Progress on stderr at every 10%.
                let tenth = (i + 1) * 10 / kept.count
                if tenth > reported {
                    reported = tenth
                    progress.report(step: i + 1, total: kept.count, elapsed: Date().timeIntervalSince(start),
                                    final: i + 1 == kept.count)
                }
            }
            try DatasetCommandError.writeText(index, to: folder + "/emoji-index.tsv")
            progress.note("dataset emoji: wrote \(kept.count) images with captions to \(out), "
                          + "\(excluded.count) excluded (\(excludeSource)), of \(all.count) fully-qualified emoji; "
                          + "index in \(folder)/emoji-index.tsv")
        }
    }
}

/// `relativePath` in the working folder, else beside the repository the binary was built in (the
/// two places `ModelArguments.shippedModel()` looks for Checkpoints/); nil when in neither.
func shippedFile(_ relativePath: String) -> URL? {
    let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    let candidates = [URL(fileURLWithPath: relativePath),
                      exe.deletingLastPathComponent().appendingPathComponent("../../../" + relativePath).standardized]
    return candidates.first { FileManager.default.fileExists(atPath: $0.path) }
}

/// A dataset could not be written. The description is one line.
enum DatasetCommandError: Error, CustomStringConvertible, LocalizedError {
    case badCount(Int)
    case badSize(Int)
    case notAFolder(String)
    case unwritable(String, reason: String)
    case missingInput(String, what: String, hint: String)
    case noEmoji(String)
    case strayFile(folder: String, name: String)

    var description: String {
        switch self {
        case .badCount(let count): "--count must be a positive number of images, got \(count)"
        case .notAFolder(let path): "output \(path) exists and is not a folder"
        case .unwritable(let path, let reason): "cannot write \(path): \(reason)"
        case .badSize(let size): "--size must be a positive number of pixels, got \(size)"
        case .missingInput(let path, let what, let hint): "no \(what) at \(path): \(hint)"
        case .noEmoji(let path): "\(path) lists no fully-qualified emoji"
        case .strayFile(let folder, let name):
            "\(folder) already holds \(name), which is not part of this dataset but would be trained on with it; use a new or empty folder"
        }
    }

    var errorDescription: String? { description }

    /// Creates `path` (and its parents) when missing and checks that files can be made in it.
    static func prepareFolder(_ path: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw notAFolder(path) }
        } else {
            // mkdir -p: each missing component in turn.
            var prefix = path.hasPrefix("/") ? "/" : ""
            for component in path.split(separator: "/") {
                prefix += component
                if mkdir(prefix, 0o777) != 0 && errno != EEXIST {
                    throw unwritable(path, reason: String(cString: strerror(errno)))
                }
                prefix += "/"
            }
        }
        guard access(path, W_OK | X_OK) == 0 else {
            throw unwritable(path, reason: String(cString: strerror(errno)))
        }
    }

    /// Throws `missingInput` unless `path` is an existing file.
    static func requireFile(_ path: String, what: String, hint: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw missingInput(path, what: what, hint: hint)
        }
    }

    /// Throws `strayFile` when `folder` holds a .png or .txt file (hidden ones aside) not named in
    /// `expected`: a trainer reading the folder would take it as part of the dataset.
    static func requireNoStrayFiles(in folder: String, expected: Set<String>) throws {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        let stray = names.sorted().first { name in
            let lower = name.lowercased()
            return !name.hasPrefix(".") && !expected.contains(name) && (lower.hasSuffix(".png") || lower.hasSuffix(".txt"))
        }
        if let stray { throw strayFile(folder: folder, name: stray) }
    }

    /// Writes `text` as UTF-8 to a temporary file beside `path`, then renames it over `path`.
    static func writeText(_ text: String, to path: String) throws {
        let temporary = path + ".tmp"
        let bytes = Array(text.utf8)
        guard let file = fopen(temporary, "wb") else {
            throw unwritable(path, reason: String(cString: strerror(errno)))
        }
        let written = fwrite(bytes, 1, bytes.count, file)
        let closed = fclose(file)
        guard written == bytes.count, closed == 0, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw unwritable(path, reason: reason)
        }
    }
}

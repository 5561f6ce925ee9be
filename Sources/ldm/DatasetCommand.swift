// `ldm dataset shapes --count N --out DIR [--seed S]`: writes the Shapes dataset as
// DIR/000000.png + DIR/000000.txt (the caption), … — the layout `FolderDataset` reads.

import ArgumentParser
import Foundation
import LDMTraining

/// `ldm dataset`: make training datasets.
struct DatasetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dataset",
        abstract: "Make training datasets.",
        subcommands: [Shapes.self])

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

        func run() throws {
            guard count > 0 else { throw DatasetCommandError.badCount(count) }
            try DatasetCommandError.prepareFolder(out)
            let generator = ShapesGenerator(seed: seed)
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
}

/// A dataset could not be written. The description is one line.
enum DatasetCommandError: Error, CustomStringConvertible, LocalizedError {
    case badCount(Int)
    case notAFolder(String)
    case unwritable(String, reason: String)

    var description: String {
        switch self {
        case .badCount(let count): "--count must be a positive number of images, got \(count)"
        case .notAFolder(let path): "output \(path) exists and is not a folder"
        case .unwritable(let path, let reason): "cannot write \(path): \(reason)"
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

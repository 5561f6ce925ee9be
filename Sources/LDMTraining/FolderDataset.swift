// A dataset read from a folder of PNG images, each with its caption in a same-named `.txt` file
// beside it (`cat.png` + `cat.txt`), as `ldm dataset shapes` writes them.
//
// Only the folder itself is listed (no sub-folders), in byte order of the file names; hidden
// files (names starting with ".", such as temporary files of a writer) are ignored. A `.png`
// (any case) without its caption, or an image in a format other than PNG (.jpg, .jpeg, .webp,
// .bmp, .gif, .tif, .tiff), is skipped and listed in `skipped` with the reason; other files are
// ignored. Caption files are UTF-8; surrounding whitespace is trimmed.
//
// Each image is read as RGB (alpha dropped), centre-cropped to a square and resized to
// `size`×`size` (area average when shrinking, bilinear when enlarging; see RGBImage.swift),
// and returned as floats x = v / 127.5 − 1 ∈ [−1, 1] in CHW order (all red, then green, then
// blue, each row-major), the layout and range the VAE takes.

import Foundation
import LDMIO

/// One example of a `FolderDataset`.
public struct FolderSample: Sendable {
    /// `3 * size * size` values in [−1, 1], CHW order.
    public var pixels: [Float]
    /// Side of the square image.
    public var size: Int
    /// The caption, trimmed.
    public var caption: String
    /// The image file it came from.
    public var imagePath: String
}

/// A folder of PNG images with `.txt` captions (see the file header).
public struct FolderDataset: Sendable {
    /// An image file and its caption file.
    public struct Entry: Sendable, Hashable {
        public var imagePath: String
        public var captionPath: String
    }

    /// A file that was left out, and why.
    public struct SkippedFile: Sendable, Hashable, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// The folder.
    public let directory: String
    /// Side of the square images returned.
    public let size: Int
    /// The usable image/caption pairs, sorted by file name.
    public let entries: [Entry]
    /// Image files that were left out, with the reason.
    public let skipped: [SkippedFile]

    private static let otherImageExtensions: Set<String> = ["jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"]

    /// Lists `directory`. Throws when it cannot be listed or holds no usable pair.
    public init(directory: String, size: Int) throws {
        guard size > 0 else { throw FolderDatasetError.invalidSize(size) }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            throw FolderDatasetError.notFound(directory)
        }
        guard isDirectory.boolValue else { throw FolderDatasetError.notADirectory(directory) }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw FolderDatasetError.unreadableDirectory(directory, reason: Self.reason(error))
        }
        let present = Set(names)
        var entries: [Entry] = []
        var skipped: [SkippedFile] = []
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        for name in names.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
            guard !name.hasPrefix("."), let dot = name.lastIndex(of: ".") else { continue }
            let stem = String(name[..<dot])
            let ext = name[name.index(after: dot)...].lowercased()
            if ext == "png" {
                let captionName = stem + ".txt"
                if present.contains(captionName) {
                    entries.append(Entry(imagePath: base + name, captionPath: base + captionName))
                } else {
                    skipped.append(SkippedFile(path: base + name, reason: "no caption file \(captionName)"))
                }
            } else if Self.otherImageExtensions.contains(ext) {
                skipped.append(SkippedFile(path: base + name, reason: "only PNG images are read"))
            }
        }
        guard !entries.isEmpty else {
            throw FolderDatasetError.empty(directory, skipped: skipped.count)
        }
        self.directory = directory
        self.size = size
        self.entries = entries
        self.skipped = skipped
    }

    /// The number of usable pairs.
    public var count: Int { entries.count }

    /// Loads pair `index`: the image resampled to `size`×`size` in [−1, 1], CHW, and its caption.
    public func sample(at index: Int) throws -> FolderSample {
        guard entries.indices.contains(index) else {
            throw TrainingError.invalidArgument("sample \(index) of a folder of \(entries.count) images")
        }
        let entry = entries[index]
        let image: RGBImage
        do {
            image = try RGBImage.read(path: entry.imagePath)
        } catch {
            throw FolderDatasetError.unreadableImage(entry.imagePath, reason: Self.reason(error))
        }
        guard image.width > 0, image.height > 0 else {
            throw FolderDatasetError.unreadableImage(entry.imagePath, reason: "the image is empty")
        }
        let caption = try Self.readCaption(entry.captionPath)
        return FolderSample(pixels: Self.chwPixels(image, size: size), size: size,
                            caption: caption, imagePath: entry.imagePath)
    }

    /// The caption of pair `index`, trimmed.
    public func caption(at index: Int) throws -> String { try Self.readCaption(entries[index].captionPath) }

    /// `image` centre-cropped and resized to `size`×`size`, as CHW floats v / 127.5 − 1.
    public static func chwPixels(_ image: RGBImage, size: Int) -> [Float] {
        let hwc = image.squareResampled(to: size)
        let plane = size * size
        var chw = [Float](repeating: 0, count: 3 * plane)
        for p in 0..<plane {
            for c in 0..<3 {
                chw[c * plane + p] = hwc[p * 3 + c] / 127.5 - 1
            }
        }
        return chw
    }

    private static func readCaption(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FolderDatasetError.unreadableCaption(path, reason: "cannot be read")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw FolderDatasetError.unreadableCaption(path, reason: "not UTF-8 text")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The reason part of an error, without the path (the dataset error names it).
    private static func reason(_ error: Error) -> String {
        switch error as? PNGError {
        case .fileNotFound?: return "no such file"
        case .fileUnreadable(_, let reason)?: return reason
        case .invalidPNG(_, let message)?: return "not a valid PNG: \(message)"
        case .tooLarge(_, let message)?: return message
        case let other?: return other.description
        case nil: return (error as NSError).localizedDescription
        }
    }
}

/// A folder dataset could not be listed or read. The description is one line naming the path.
public enum FolderDatasetError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// The requested image size is not positive.
    case invalidSize(Int)
    /// The folder does not exist.
    case notFound(String)
    /// The path is a file, not a folder.
    case notADirectory(String)
    /// The folder cannot be listed.
    case unreadableDirectory(String, reason: String)
    /// No PNG with a caption beside it; `skipped` image files were left out.
    case empty(String, skipped: Int)
    /// An image file cannot be read or decoded.
    case unreadableImage(String, reason: String)
    /// A caption file cannot be read.
    case unreadableCaption(String, reason: String)

    public var description: String {
        let line: String
        switch self {
        case .invalidSize(let size):
            line = "dataset image size must be positive, got \(size)"
        case .notFound(let path):
            line = "no such dataset folder: \(path)"
        case .notADirectory(let path):
            line = "not a folder: \(path)"
        case .unreadableDirectory(let path, let reason):
            line = "cannot list dataset folder \(path): \(reason)"
        case .empty(let path, 0):
            line = "dataset folder \(path) has no PNG images with a .txt caption beside them"
        case .empty(let path, let skipped):
            line = "dataset folder \(path) has no PNG images with a .txt caption beside them "
                + "(\(skipped) image file\(skipped == 1 ? "" : "s") skipped)"
        case .unreadableImage(let path, let reason):
            line = "cannot read dataset image \(path): \(reason)"
        case .unreadableCaption(let path, let reason):
            line = "cannot read caption \(path): \(reason)"
        }
        return String(line.map { $0.isNewline ? " " : $0 })
    }

    public var errorDescription: String? { description }
}

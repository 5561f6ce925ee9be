// LoRAs and textual-inversion embeddings for a generation: A1111's `<lora:NAME:WEIGHT>` prompt
// tags, LoRA files found by name in a folder, embeddings from files and folders, and the short
// hashes A1111 writes into the parameters ("Lora hashes", "TI hashes").

import Foundation
import LDMDiffusion
import LDMIO
import LDMModels

/// A request that cannot be carried out as given. One line.
/// Most pixels, pixels a side and steps a job may resolve to (a server's limits).
public struct GenerationCeilings: Sendable, Equatable {
    public var pixels: Int, side: Int, steps: Int
    public init(pixels: Int, side: Int, steps: Int) { self.pixels = pixels; self.side = side; self.steps = steps }
}

public struct GenerationError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

/// The prompt without its `<lora:NAME:WEIGHT>` tags (A1111's extra-network syntax; weight default 1),
/// and the tags.
public func extractLoRATags(_ prompt: String) -> (String, [(name: String, weight: Float)]) {
    var text = "", tags: [(name: String, weight: Float)] = []
    var rest = Substring(prompt)
    while let open = rest.range(of: "<lora:") {
        guard let close = rest[open.upperBound...].firstIndex(of: ">") else { break }
        text += rest[..<open.lowerBound]
        let fields = rest[open.upperBound..<close].split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let weight = fields.count > 1 ? Float(fields[1]) ?? 1 : 1
        tags.append((fields[0], weight))
        rest = rest[rest.index(after: close)...]
    }
    return (text + rest, tags)
}

/// `PATH[:WEIGHT]` (the weight after the last colon when it parses as a number).
public func parseLoRASpec(_ spec: String) throws -> (String, Float) {
    if let colon = spec.lastIndex(of: ":"), let w = Float(spec[spec.index(after: colon)...]) {
        return (String(spec[..<colon]), w)
    }
    guard !spec.isEmpty else { throw GenerationError("a LoRA needs a file") }
    return (spec, 1)
}

/// A network's name as A1111 writes it in "Lora hashes" / "TI hashes": without `:` and `,`.
public func networkLabel(_ name: String) -> String { name.filter { $0 != ":" && $0 != "," } }

/// The folder beside a model (a folder's own subfolder, a file's sibling): `loras/`, `embeddings/`.
public func folderBeside(model: URL, _ name: String) -> URL {
    var isDirectory: ObjCBool = false
    FileManager.default.fileExists(atPath: model.path, isDirectory: &isDirectory)
    return (isDirectory.boolValue ? model : model.deletingLastPathComponent()).appendingPathComponent(name)
}

/// Finds and caches LoRA files (per model): by path, or by tag name in the LoRA folder.
public final class LoRAResolver {
    let pipeline: StableDiffusionPipeline
    public let folder: URL
    private var cache: [String: LoRAFile] = [:]
    private var hashes: [String: String] = [:]

    public init(pipeline: StableDiffusionPipeline, folder: URL) {
        self.pipeline = pipeline
        self.folder = folder
    }

    /// The LoRA files in the folder, by name (A1111's `GET /sdapi/v1/loras`).
    public static func names(in folder: URL) -> [(name: String, path: String)] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return files.sorted().filter { ["safetensors", "pt", "ckpt"].contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) }
            .map { (URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent, folder.appendingPathComponent($0).path) }
    }

    public func path(named name: String) throws -> String {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else { throw GenerationError("<lora:\(name)>: not a LoRA name") }
        for ext in ["safetensors", "pt", "ckpt"] {
            let p = folder.appendingPathComponent(name + "." + ext).path
            if FileManager.default.fileExists(atPath: p) { return p }
        }
        throw GenerationError("<lora:\(name)>: no \(name).safetensors in \(folder.path) (set --lora-dir)")
    }

    public func file(_ path: String) throws -> LoRAFile {
        if let f = cache[path] { return f }
        guard FileManager.default.fileExists(atPath: path) else { throw GenerationError("no LoRA file at \(path)") }
        let f = try LoRAFile(path: path, unet: pipeline.unet, textEncoder: pipeline.textEncoder,
                               textEncoder2: pipeline.textEncoder2, unetConfig: pipeline.unet.config)
        cache[path] = f
        return f
    }

    /// A1111's short hash of the file (cached).
    public func shortHash(_ path: String) throws -> String {
        if let h = hashes[path] { return h }
        let h = try SHA256.networkShortHash(path, skipSafeTensorsHeader: path.lowercased().hasSuffix(".safetensors"))
        hashes[path] = h
        return h
    }
}

/// Embeddings for a model whose text encoder is `width` wide: every one of `files` (an error stops
/// the run), then the files in `folder` (files for other model families are skipped with a notice,
/// as A1111 skips them). The first of two with one name wins.
public func loadEmbeddings(files: [String], folder: URL?, width: Int, note: (String) -> Void) throws -> [TextualInversion] {
    var list: [TextualInversion] = []
    func add(_ e: TextualInversion) {
        if list.contains(where: { $0.name == e.name }) {
            note("embedding \(e.name) from \(e.path) is ignored: an embedding of that name is already loaded")
        } else {
            list.append(e)
        }
    }
    for path in files {
        guard FileManager.default.fileExists(atPath: path) else { throw GenerationError("no embedding file at \(path)") }
        let e = try TextualInversion(path: path)
        _ = try e.vectors(width: width)
        add(e)
    }
    if let folder {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted()
            .filter { ["pt", "safetensors", "bin"].contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) }
        for file in names {
            let path = folder.appendingPathComponent(file).path
            do {
                let e = try TextualInversion(path: path)
                _ = try e.vectors(width: width)
                add(e)
            } catch {
                note("embedding \(file) skipped: \(error)")
            }
        }
    }
    if !list.isEmpty {
        note("embeddings: " + list.map { "\($0.name) (\($0.vectorCount) vector\($0.vectorCount == 1 ? "" : "s"))" }.joined(separator: ", "))
    }
    return list
}

// The models a server offers, by name: the default model and, from a models folder, diffusers
// folders (with model_index.json) and single-file checkpoints (.safetensors/.ckpt that hold a
// U-Net). A request names a model; it never gives a path.

import Foundation
import LDMIO

/// One model on offer.
public struct ModelEntry: Sendable, Equatable {
    /// A1111's `title` (what `sd_model_checkpoint` holds): the folder or file name.
    public var title: String
    /// A1111's `model_name`: the name without its extension.
    public var name: String
    public var path: URL
    public init(title: String, name: String, path: URL) { self.title = title; self.name = name; self.path = path }
}

/// The models on offer.
public struct ModelCatalog: Sendable {
    public private(set) var entries: [ModelEntry] = []

    /// `defaultModel` first (when given), then what `folder` holds (when given), sorted by name.
    public init(defaultModel: URL?, folder: URL?) {
        if let defaultModel { add(defaultModel) }
        guard let folder else { return }
        let fm = FileManager.default
        for item in ((try? fm.contentsOfDirectory(atPath: folder.path)) ?? []).sorted() where !item.hasPrefix(".") {
            let url = folder.appendingPathComponent(item)
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: url.path, isDirectory: &isDirectory) else { continue }
            if isDirectory.boolValue {
                if fm.fileExists(atPath: url.appendingPathComponent("model_index.json").path) { add(url) }
            } else if ["safetensors", "ckpt"].contains(url.pathExtension.lowercased()), Self.holdsUNet(url) {
                add(url)
            }
        }
    }

    private mutating func add(_ url: URL) {
        let resolved = url.standardizedFileURL.resolvingSymlinksInPath()
        guard !entries.contains(where: { $0.path.standardizedFileURL.resolvingSymlinksInPath() == resolved }) else { return }
        var title = url.standardizedFileURL.lastPathComponent
        if entries.contains(where: { $0.title == title }) { title += " (\(entries.count))" }
        let name = url.pathExtension.isEmpty ? title : url.deletingPathExtension().lastPathComponent
        entries.append(ModelEntry(title: title, name: name, path: url))
    }

    /// Whether a single file holds a Stable Diffusion U-Net (not a LoRA or an embedding).
    static func holdsUNet(_ url: URL) -> Bool {
        if url.pathExtension.lowercased() == "ckpt" { return true }
        guard let file = try? SafeTensorsFile(path: url.path) else { return false }
        return file.names.contains { $0.hasPrefix("model.diffusion_model.") }
    }

    /// The entry a request names: by title, by name, or by a title A1111 extended with a hash
    /// ("name.safetensors [abcdef1234]").
    public func entry(named requested: String) -> ModelEntry? {
        let bare = requested.split(separator: " [").first.map(String.init) ?? requested
        return entries.first { $0.title == requested || $0.name == requested || $0.title == bare || $0.name == bare }
    }
}

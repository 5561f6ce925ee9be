// Checkpoints that are either complete or ignored.
//
// A checkpoint is a folder `checkpoint-<step>` in the run folder. It is written as a hidden
// temporary folder, every file fsynced, then `manifest.json` (listing each file and its size) is
// written last, the folder is fsynced and renamed into place. A folder without a valid manifest —
// an interrupted write — is never taken for a checkpoint. The newest `keep` complete ones are kept.

import Foundation
import LDMCore
import LDMIO
import LDMModels

/// Writes `data` to `url` and fsyncs it (the caller renames folders into place).
func writeDurably(_ data: Data, to url: URL) throws {
    guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
        throw TrainingError.badCheckpoint("cannot create \(url.path)")
    }
    let h = try FileHandle(forWritingTo: url)
    defer { try? h.close() }
    try h.write(contentsOf: data)
    try h.synchronize()
}

/// fsyncs a folder so renames inside it are durable.
func syncFolder(_ url: URL) {
    let fd = open(url.path, O_RDONLY)
    if fd >= 0 { fsync(fd); close(fd) }
}

/// The checkpoints of one training run.
public struct CheckpointStore {
    /// The run folder.
    public let folder: URL
    /// How many complete checkpoints to keep.
    public var keep = 2

    public init(folder: URL) { self.folder = folder }

    struct Manifest: Codable {
        var step: Int
        var files: [String: Int]
    }

    /// Complete checkpoints, oldest first.
    public func complete() -> [(step: Int, url: URL)] {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: folder.path) else { return [] }
        var out: [(Int, URL)] = []
        for name in names where name.hasPrefix("checkpoint-") {
            guard let step = Int(name.dropFirst("checkpoint-".count)) else { continue }
            let url = folder.appendingPathComponent(name)
            guard let data = try? Data(contentsOf: url.appendingPathComponent("manifest.json")),
                  let manifest = try? JSONDecoder().decode(Manifest.self, from: data), manifest.step == step else { continue }
            let sizesMatch = manifest.files.allSatisfy { file, size in
                let attrs = try? fm.attributesOfItem(atPath: url.appendingPathComponent(file).path)
                return (attrs?[.size] as? NSNumber)?.intValue == size
            }
            if sizesMatch { out.append((step, url)) }
        }
        return out.sorted { $0.0 < $1.0 }
    }

    /// A file error in the C library's words ("No space left on device").
    static func reason(_ error: Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
        return "\(error)"
    }

    /// The newest complete checkpoint.
    public func latest() -> (step: Int, url: URL)? { complete().last }

    /// Writes a checkpoint: `write` fills the temporary folder; the manifest and rename follow.
    public func save(step: Int, _ write: (URL) throws -> Void) throws -> URL {
        let fm = FileManager.default
        try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        let name = String(format: "checkpoint-%07d", step)
        let tmp = folder.appendingPathComponent(".\(name).tmp")
        try? fm.removeItem(at: tmp)
        do {
            try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
            try write(tmp)
            var files: [String: Int] = [:]
            for f in try fm.contentsOfDirectory(atPath: tmp.path) {
                let size = (try fm.attributesOfItem(atPath: tmp.appendingPathComponent(f).path)[.size] as? NSNumber)?.intValue ?? 0
                files[f] = size
            }
            try writeDurably(try JSONEncoder().encode(Manifest(step: step, files: files)), to: tmp.appendingPathComponent("manifest.json"))
        } catch {
            // A full disk or a read-only folder: nothing half-written stays, the previous
            // checkpoint is untouched, and the run can continue from it once there is room.
            try? fm.removeItem(at: tmp)
            throw TrainingError.badCheckpoint("\(name) not written in \(folder.path): \(Self.reason(error)); the newest complete checkpoint is kept")
        }
        syncFolder(tmp)
        let final = folder.appendingPathComponent(name)
        try? fm.removeItem(at: final)
        try fm.moveItem(at: tmp, to: final)
        syncFolder(folder)
        for old in complete().dropLast(keep) { try? fm.removeItem(at: old.url) }
        return final
    }
}

/// Saves named tensors to a safetensors file.
public func saveTensors(_ tensors: [(String, Tensor)], to url: URL, dtype: SafeTensorsDType = .f32,
                        metadata: [String: String] = [:]) throws {
    var w = SafeTensorsWriter(metadata: metadata)
    for (name, t) in tensors {
        try w.add(name, dtype: dtype, shape: t.shape, floats: UnsafeBufferPointer(start: t.data, count: t.count))
    }
    try w.write(to: url.path)
}

/// Loads every tensor of a safetensors file by name.
public func loadTensors(_ url: URL) throws -> [String: Tensor] {
    let f = try SafeTensorsFile(path: url.path)
    var out: [String: Tensor] = [:]
    for name in f.names {
        let info = try f.info(name)
        let t = Tensor(uninitialized: info.shape)
        try f.copyFloats(name, into: t.data, count: t.count)
        out[name] = t
    }
    return out
}

/// Handles Ctrl-C during training: the first interrupt asks the loop to stop after the current step
/// (and write a checkpoint); a second one exits at once, abandoning any checkpoint in progress
/// (its temporary folder has no manifest, so it is ignored).
public enum InterruptFlag {
    nonisolated(unsafe) private static var source: DispatchSourceSignal?
    nonisolated(unsafe) private static var count = 0

    /// True once Ctrl-C was pressed.
    public static var isSet: Bool { count > 0 }

    /// Installs the handler (idempotent).
    public static func install() {
        guard source == nil else { return }
        signal(SIGINT, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        s.setEventHandler {
            count += 1
            if count == 1 {
                FileHandle.standardError.write("\ninterrupted: finishing this step and writing a checkpoint (Ctrl-C again to abandon)\n".data(using: .utf8)!)
            } else {
                FileHandle.standardError.write("\nabandoned\n".data(using: .utf8)!)
                exit(130)
            }
        }
        s.resume()
        source = s
    }
}

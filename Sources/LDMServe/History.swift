// The server's history of generated images: the PNGs under DATA/images/NNNNNN.png and one JSON
// line per image in DATA/history.jsonl (appended, so a crash loses at most the line being
// written; a damaged line is skipped when read). It survives restarts.

import Foundation
import LDMService

struct History {
    let folder: URL
    var images: URL { folder.appendingPathComponent("images") }
    var index: URL { folder.appendingPathComponent("history.jsonl") }
    private static let lock = NSLock()

    /// Stores every image of a finished job.
    func add(_ result: JobResult, request: ParsedRequest) throws {
        try History.lock.withLock {
            try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
            var next = (records().map { $0["id"] as? Int ?? 0 }.max() ?? 0) + 1
            var lines = ""
            for (i, image) in result.images.enumerated() {
                let name = String(format: "%06d.png", next)
                try image.png.write(to: images.appendingPathComponent(name).path)
                let info = parseInfotext(image.parameters)
                let record: [String: Any] = [
                    "id": next, "created": ISO8601DateFormatter().string(from: Date()), "kind": request.kind,
                    "prompt": request.job.prompt, "negative_prompt": request.job.negativePrompt,
                    "seed": i < result.seeds.count ? result.seeds[i] : request.seed, "width": image.png.width, "height": image.png.height,
                    "steps": Int(info["Steps"] as? String ?? "") ?? 0, "cfg_scale": Double(info["CFG scale"] as? String ?? "") ?? 0,
                    "sampler_name": info["Sampler"] as? String ?? "", "model": result.model.title, "parameters": image.parameters,
                    "image": "/ldm/images/" + name,
                ]
                let data = try JSONSerialization.data(withJSONObject: record, options: [.withoutEscapingSlashes])
                lines += String(decoding: data, as: UTF8.self) + "\n"
                next += 1
            }
            guard !lines.isEmpty else { return }
            if !FileManager.default.fileExists(atPath: index.path) { FileManager.default.createFile(atPath: index.path, contents: nil) }
            let handle = try FileHandle(forWritingTo: index)
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(lines.utf8))
        }
    }

    /// Every readable record, oldest first.
    func records() -> [[String: Any]] {
        guard let text = try? String(contentsOf: index, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }

    /// Newest first: `limit` records with ids below `before`.
    func page(limit: Int, before: Int?) -> [String: Any] {
        let all = History.lock.withLock { records() }.filter { before == nil || ($0["id"] as? Int ?? 0) < before! }.reversed()
        let items = Array(all.prefix(limit))
        let more = all.count > limit
        return ["items": items, "next_before": more ? (items.last?["id"] as? Int ?? NSNull()) as Any : NSNull()]
    }
}

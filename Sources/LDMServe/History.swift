// The server's history of generated images, surviving restarts: the PNGs under
// DATA/images/NNNNNN.png and one row per image in DATA/history.sqlite (GRDB). A row and its file
// are written in one transaction: the PNG is written (to a temporary name, then renamed) inside
// it, so a failure leaves neither.

import Foundation
import GRDB
import LDMService

final class HistoryStore: @unchecked Sendable {
    let folder: URL
    var images: URL { folder.appendingPathComponent("images") }
    private let database: DatabaseQueue

    init(folder: URL) throws {
        self.folder = folder
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("images"), withIntermediateDirectories: true)
        // WAL: a server killed mid-write leaves the last committed state; each job's rows and files
        // are written in one transaction (see `add`).
        var configuration = Configuration()
        configuration.journalMode = .wal
        database = try DatabaseQueue(path: folder.appendingPathComponent("history.sqlite").path, configuration: configuration)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "image") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("created", .text).notNull()
                t.column("kind", .text).notNull()
                t.column("prompt", .text).notNull()
                t.column("negative_prompt", .text).notNull()
                t.column("seed", .integer).notNull()
                t.column("width", .integer).notNull()
                t.column("height", .integer).notNull()
                t.column("steps", .integer).notNull()
                t.column("cfg_scale", .double).notNull()
                t.column("sampler_name", .text).notNull()
                t.column("model", .text).notNull()
                t.column("parameters", .text).notNull()
                t.column("file", .text).notNull()
            }
        }
        try migrator.migrate(database)
        try removeUnlisted()
    }

    /// Files in images/ that no row names: a PNG written by a job whose transaction never committed
    /// (the server was killed between the two), or a temporary file of an interrupted write.
    private func removeUnlisted() throws {
        let listed = Set(try database.read { db in try String.fetchAll(db, sql: "SELECT file FROM image") })
        for name in try FileManager.default.contentsOfDirectory(atPath: images.path) where !listed.contains(name) {
            try? FileManager.default.removeItem(at: images.appendingPathComponent(name))
        }
    }

    /// Stores every image of a finished job.
    func add(_ result: JobResult, request: ParsedRequest) throws {
        try database.write { db in
            for (i, image) in result.images.enumerated() {
                let info = parseInfotext(image.parameters)
                try db.execute(sql: """
                    INSERT INTO image (created, kind, prompt, negative_prompt, seed, width, height, steps, cfg_scale, sampler_name, model, parameters, file)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '')
                    """, arguments: [ISO8601DateFormatter().string(from: Date()), request.kind, request.job.prompt, request.job.negativePrompt ?? "",
                                     i < result.seeds.count ? result.seeds[i] : request.seed, image.png.width, image.png.height,
                                     Int(info["Steps"] as? String ?? "") ?? 0, Double(info["CFG scale"] as? String ?? "") ?? 0,
                                     info["Sampler"] as? String ?? "", result.model.title, image.parameters])
                let id = db.lastInsertedRowID
                let name = String(format: "%06lld.png", id)
                try image.png.write(to: images.appendingPathComponent(name).path)
                try db.execute(sql: "UPDATE image SET file = ? WHERE id = ?", arguments: [name, id])
            }
        }
    }

    /// Newest first: `limit` rows with ids below `before`.
    func page(limit: Int, before: Int?) throws -> [String: Any] {
        let rows = try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM image WHERE id < ? ORDER BY id DESC LIMIT ?",
                             arguments: [before ?? Int.max, limit + 1])
        }
        let items: [[String: Any]] = rows.prefix(limit).map { row in
            ["id": row["id"] as Int64, "created": row["created"] as String, "kind": row["kind"] as String,
             "prompt": row["prompt"] as String, "negative_prompt": row["negative_prompt"] as String, "seed": row["seed"] as Int64,
             "width": row["width"] as Int, "height": row["height"] as Int, "steps": row["steps"] as Int,
             "cfg_scale": row["cfg_scale"] as Double, "sampler_name": row["sampler_name"] as String, "model": row["model"] as String,
             "parameters": row["parameters"] as String, "image": "/ldm/images/" + (row["file"] as String)]
        }
        return ["items": items, "next_before": rows.count > limit ? (items.last?["id"] ?? NSNull()) : NSNull()]
    }
}

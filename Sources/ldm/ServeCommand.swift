// `ldm serve`: AUTOMATIC1111's web API and a web page (thin: LDMServe.runServer does the work).

import ArgumentParser
import Foundation
import LDMDiffusion
import LDMServe
import LDMService

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve AUTOMATIC1111's HTTP API (/sdapi/v1/…) and a web page, for the clients that speak it.")
    @Option(help: "Address to listen on (loopback unless --listen).") var host = "127.0.0.1"
    @Option(help: "Port (0: any free port, printed when listening).") var port = 7860
    @Flag(help: "Listen on every interface (0.0.0.0), not only loopback.") var listen = false
    @Option(help: ArgumentHelp("HTTP Basic users, e.g. alice:secret,bob:pw; every route then needs one.", valueName: "user:pass[,…]"))
    var apiAuth: String?
    @OptionGroup var model: ModelArguments
    @Option(help: "A folder of models to offer (diffusers folders and .safetensors/.ckpt single files).") var models: String?
    @Option(help: "Where generated images and their history are kept.") var dataDir = "outputs"
    @Option(help: "Origins allowed by CORS, comma separated (* for any); none by default.") var corsAllowOrigins: String?
    @Option(help: "Models kept in memory at once.") var keepModels = 2
    @Option(help: "Largest request body in MB.") var maxBodyMb = 64
    @Option(help: "Most pixels per image (width × height).") var maxPixels = 1024 * 1024
    @Option(help: "Most sampling steps per image.") var maxSteps = 150
    @Option(help: "Most images per request (batch_size × n_iter).") var maxImages = 16
    @Option(help: "Folder of LoRA files for <lora:NAME:W> (default: loras/ beside each model).") var loraDir: String?
    @Option(help: "Folder of embeddings (default: embeddings/ beside each model).") var embeddingsDir: String?
    @Flag(help: "Log model loading and other notes, not only one line per request.") var verbose = false

    func run() throws {
        var users: [String: String] = [:]
        if let apiAuth {
            for pair in apiAuth.split(separator: ",") {
                guard let colon = pair.firstIndex(of: ":"), colon != pair.startIndex else {
                    throw ValidationError("--api-auth takes user:password pairs separated by commas")
                }
                users[String(pair[..<colon])] = String(pair[pair.index(after: colon)...])
            }
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0…65535") }
        try model.applyPrecision()
        guard maxBodyMb >= 1, maxPixels >= 64, maxSteps >= 1, maxImages >= 1, keepModels >= 1 else {
            throw ValidationError("the limits must be positive")
        }
        try model.check()
        let defaultModel: URL? = try model.model.map { _ in try model.folder() } ?? model.shippedModel()
        if let models {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: models, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("--models \(models) is not a folder")
            }
        }
        let catalog = ModelCatalog(defaultModel: defaultModel, folder: models.map { URL(fileURLWithPath: $0) })
        guard !catalog.entries.isEmpty else { throw ValidationError("no model to serve: pass --model PATH or --models DIR") }
        var settings = ServeSettings(catalog: catalog, dataFolder: URL(fileURLWithPath: dataDir))
        settings.host = host
        settings.port = port
        settings.listen = listen
        settings.users = users
        settings.corsOrigins = corsAllowOrigins.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []
        settings.limits.maxBodyBytes = maxBodyMb << 20
        settings.limits.maxPixels = maxPixels
        settings.limits.maxSteps = maxSteps
        settings.limits.maxImages = maxImages
        settings.verbose = verbose
        settings.capacity = keepModels
        settings.loadOptions = model.loadOptions
        settings.networks = NetworkSettings(loraFolder: loraDir.map { URL(fileURLWithPath: $0) },
                                            embeddingsFolder: embeddingsDir.map { URL(fileURLWithPath: $0) })
        let log: @Sendable (String) -> Void = { FileHandle.standardError.write(("ldm serve: " + $0 + "\n").data(using: .utf8)!) }
        // The server runs on Swift's concurrency threads; this (main) thread waits for it to end.
        let outcome = ServeOutcome()
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                try await runServer(settings, log: log, ready: { url in
                    print("ldm serve: listening on \(url) — models: \(catalog.entries.map(\.title).joined(separator: ", "))")
                    fflush(stdout)
                })
            } catch {
                outcome.error = error
            }
            done.signal()
        }
        done.wait()
        if let error = outcome.error { throw error }
    }
}

/// How the server ended.
final class ServeOutcome: @unchecked Sendable {
    var error: Error?
}

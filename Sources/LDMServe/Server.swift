// `ldm serve`: AUTOMATIC1111's HTTP API (routes under /sdapi/v1/, its field names, defaults and
// response shapes) and a web page, on Hummingbird 2, over the library's Generator.
//
// Security: loopback only unless `listen`; with users, HTTP Basic on every route (compared in
// constant time); no CORS unless origins are given; request bodies and generation sizes limited
// before anything large is allocated; a request names models from the served list, never a path.

import Foundation
import Hummingbird
import LDMDiffusion
import LDMIO
import LDMService
import NIOCore

/// How `ldm serve` runs.
public struct ServeSettings: Sendable {
    public var host = "127.0.0.1"
    public var port = 7860
    public var listen = false
    /// user → password; empty = no authentication.
    public var users: [String: String] = [:]
    public var catalog: ModelCatalog
    public var dataFolder: URL
    public var corsOrigins: [String] = []
    public var limits = ServeLimits()
    public var verbose = false
    public var loadOptions = ModelLoadOptions()
    public var networks = NetworkSettings()
    public var capacity = 2
    /// SIGTERM and SIGINT end the server gracefully; false leaves the signals to the embedding
    /// process (the fuzzing harness, whose driver handles SIGINT itself).
    public var stopsOnSignals = true
    public init(catalog: ModelCatalog, dataFolder: URL) { self.catalog = catalog; self.dataFolder = dataFolder }
}

/// The server's shared state.
final class ServerState: @unchecked Sendable {
    let settings: ServeSettings
    let runner: JobRunner
    let history: HistoryStore
    private let lock = NSLock()
    private var currentTitle: String?
    private var lastPreview: [UInt8]?
    let log: (String) -> Void

    init(settings: ServeSettings, log: @escaping (String) -> Void) throws {
        self.settings = settings
        self.log = log
        do { history = try HistoryStore(folder: settings.dataFolder) } catch {
            throw APIError(status: 500, detail: "cannot keep the history in \(settings.dataFolder.path): \(error)")
        }
        runner = JobRunner(generator: Generator(loadOptions: settings.loadOptions, networks: settings.networks,
                                                capacity: settings.capacity, note: { line in if settings.verbose { log(line) } }))
        currentTitle = settings.catalog.entries.first?.title
    }

    var current: ModelEntry? { lock.withLock { currentTitle.flatMap { settings.catalog.entry(named: $0) } } }

    func select(_ name: String) throws -> ModelEntry {
        guard let entry = settings.catalog.entry(named: name) else {
            throw APIError.unprocessable("model \(name) is not one of this server's models (GET /sdapi/v1/sd-models)")
        }
        lock.withLock { currentTitle = entry.title }
        return entry
    }
}

// MARK: - Responses

func jsonResponse(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes, .fragmentsAllowed])) ?? Data("{}".utf8)
    var buffer = ByteBufferAllocator().buffer(capacity: data.count)
    buffer.writeBytes(data)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: buffer))
}

func bytesResponse(_ bytes: [UInt8], type: String) -> Response {
    var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
    buffer.writeBytes(bytes)
    return Response(status: .ok, headers: [.contentType: type], body: .init(byteBuffer: buffer))
}

/// A1111's error body: {"error", "detail", "body", "errors"}.
func errorResponse(status: Int, kind: String, detail: String) -> Response {
    jsonResponse(["error": kind, "detail": detail, "body": "", "errors": detail], status: HTTPResponse.Status(code: status))
}

// MARK: - Middleware

/// Errors → A1111's error shape; one log line per request (route, status, seconds).
struct ErrorAndLogMiddleware<Context: RequestContext>: RouterMiddleware {
    let log: @Sendable (String) -> Void
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = Date()
        let response: Response
        do {
            response = try await next(request, context)
        } catch let error as APIError {
            response = errorResponse(status: error.status, kind: error.kind, detail: error.detail)
        } catch let error as HTTPError {
            let detail = error.status == .notFound ? "Not Found" : (error.body ?? error.status.reasonPhrase)
            response = errorResponse(status: Int(error.status.code), kind: "HTTPException", detail: detail)
        } catch let error as any HTTPResponseError {
            response = errorResponse(status: Int(error.status.code), kind: "HTTPException", detail: "\(error.status.reasonPhrase)")
        } catch {
            response = errorResponse(status: 422, kind: String(describing: type(of: error)), detail: "\(error)")
        }
        log(String(format: "%@ %@ %d %.2fs", request.method.rawValue, request.uri.path, Int(response.status.code), Date().timeIntervalSince(start)))
        return response
    }
}

/// HTTP Basic authentication on every route when users are configured.
struct BasicAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let users: [String: String]
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if users.isEmpty { return try await next(request, context) }
        var granted = false
        if let header = request.headers[.authorization], header.lowercased().hasPrefix("basic "),
           let data = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
           let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":") {
            let user = String(text[..<colon]), password = String(text[text.index(after: colon)...])
            // Every configured pair is compared, in constant time, so timing tells nothing.
            for (u, p) in users { granted = constantTimeEqual(u, user) && constantTimeEqual(p, password) || granted }
        }
        guard granted else {
            var response = errorResponse(status: 401, kind: "HTTPException", detail: "Incorrect username or password")
            response.headers[.wwwAuthenticate] = "Basic"
            return response
        }
        return try await next(request, context)
    }
}

/// Equality of two strings in time that depends only on their lengths.
func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    var difference = UInt8(x.count == y.count ? 0 : 1)
    for i in 0..<max(x.count, y.count) {
        difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
    }
    return difference == 0
}

// MARK: - Server

/// Runs the server until the process is stopped. `ready(url)` is called once it listens.
public func runServer(_ settings: ServeSettings, log: @escaping @Sendable (String) -> Void,
                      ready: @escaping @Sendable (String) -> Void) async throws {
    let state = try ServerState(settings: settings, log: log)
    let router = Router()
    router.add(middleware: ErrorAndLogMiddleware(log: log))
    if !settings.corsOrigins.isEmpty {
        let origins = settings.corsOrigins
        router.add(middleware: CORSMiddleware(allowOrigin: origins == ["*"] ? .all : .custom(origins.joined(separator: ", ")),
                                              allowHeaders: [.contentType, .authorization], allowMethods: [.get, .post, .options]))
    }
    router.add(middleware: BasicAuthMiddleware(users: settings.users))
    addRoutes(router, state: state)
    let host = settings.listen ? "0.0.0.0" : settings.host
    let app = Application(router: router, configuration: .init(address: .hostname(host, port: settings.port), serverName: "ldm"),
                          onServerRunning: { channel in
                              let port = channel.localAddress?.port ?? settings.port
                              ready("http://\(host == "0.0.0.0" ? "127.0.0.1" : host):\(port)")
                          })
    try await app.runService(gracefulShutdownSignals: settings.stopsOnSignals ? [.sigterm, .sigint] : [])
}

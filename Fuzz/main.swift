// libFuzzer harnesses for every parser of outside bytes, one binary: FUZZ_TARGET picks the
// harness. Each must return without crashing, hanging or growing memory without bound on any
// input; errors thrown are the expected outcome for bad input.
//
//   FUZZ_TARGET=png Fuzz/.build/debug/ldm-fuzz CORPUS_DIR SEED_DIR… -max_total_time=60
//
// `make fuzz` builds it with -sanitize=fuzzer,address (linked with lld); an ordinary build has no
// libFuzzer and says so when run. SwiftPM links executables with `--defsym main=ldm_fuzz_main`
// (the target is compiled with -parse-as-library), so the entry point is that function, which
// hands libFuzzer's driver (LLVMFuzzerRunDriver, looked up at run time) the harness.

import Foundation
#if canImport(Glibc)
import Glibc
#endif
import LDMDiffusion
import LDMIO
import LDMModels
import LDMServe
import LDMService

let targets = ["prompt", "tokenizer", "safetensors", "png", "ckpt", "config", "embedding", "lora", "request", "http"]
let target = ProcessInfo.processInfo.environment["FUZZ_TARGET"] ?? ""
let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
let scratch = "/dev/shm/ldm-fuzz-\(getpid())"

/// Loaded once: the tokenizers and the tiny model the harnesses need.
let tinyTokenizer = try! CLIPTokenizer.load(folder: repository.appendingPathComponent("Tests/Fixtures/models/tiny-sd/tokenizer"))
let clipTokenizer = try! CLIPTokenizer.load(folder: repository.appendingPathComponent("Tests/LDMModelsTests/Fixtures/clip-tokenizer"))
let tinyModel: (unet: UNet2DConditionModel, text: CLIPTextModel)? = target == "lora" ? {
    let folder = repository.appendingPathComponent("Tests/Fixtures/models/tiny-sd")
    let unet = try! UNet2DConditionModel(config: loadConfig(UNetConfig.self, from: folder.appendingPathComponent("unet/config.json")))
    let text = try! CLIPTextModel(config: loadConfig(CLIPTextConfig.self, from: folder.appendingPathComponent("text_encoder/config.json")))
    return (unet, text)
}() : nil

/// The input as a file, for the readers that take a path.
func asFile(_ bytes: UnsafeBufferPointer<UInt8>, _ ext: String) -> String {
    let path = scratch + "." + ext
    _ = FileManager.default.createFile(atPath: path, contents: Data(buffer: bytes))
    return path
}

func runOne(_ bytes: UnsafeBufferPointer<UInt8>) {
    let data = Data(buffer: bytes)
    switch target {
    case "prompt":
        let text = String(decoding: bytes, as: UTF8.self)
        _ = PromptSyntax.chunk(prompt: text, tokenizer: tinyTokenizer,
                               embeddings: [EmbeddingTrigger(name: "emb", vectorCount: 3, tokenizer: tinyTokenizer)])
    case "tokenizer":
        let text = String(decoding: bytes, as: UTF8.self)
        let ids = clipTokenizer.encode(text).ids
        _ = clipTokenizer.decode(ids)
        _ = CLIPTokenizer.words(text)
    case "safetensors":
        if let file = try? SafeTensorsFile(path: asFile(bytes, "safetensors")) {
            for name in file.names.prefix(8) { _ = try? file.floats(name) }
        }
    case "png":
        _ = try? PNGImage.info(data: [UInt8](bytes))
        _ = try? PNGImage.decode(data: [UInt8](bytes))
    case "ckpt":
        if let file = try? TorchCheckpointFile(path: asFile(bytes, "ckpt")) {
            for name in file.names.prefix(8) { _ = try? file.floatArray(name) }
        }
    case "config":
        if let c = try? JSONDecoder().decode(UNetConfig.self, from: data) { _ = try? c.validate() }
        if let c = try? JSONDecoder().decode(VAEConfig.self, from: data) { _ = try? c.validate() }
        if let c = try? JSONDecoder().decode(CLIPTextConfig.self, from: data) { _ = try? c.validate() }
        if let c = try? JSONDecoder().decode(AutoencoderTinyConfig.self, from: data) { _ = try? c.validate() }
        if var s = try? makeScheduler(configJSON: data, sampler: nil) { _ = try? s.setTimesteps(4) }
    case "embedding":
        _ = try? TextualInversion(path: asFile(bytes, "safetensors"))
    case "lora":
        if let m = tinyModel { _ = try? LoRAFile(path: asFile(bytes, "safetensors"), unet: m.unet, textEncoder: m.text, unetConfig: m.unet.config) }
    case "request":
        fuzzA1111Request(data)
    case "http":
        HTTPHarness.shared.send(bytes)
    default:
        break
    }
}

/// `ldm serve` on the tiny model, in this process on a loopback port, with small generation limits
/// and Basic authentication (user and password "fuzz"; the seeds carry the header). Each input is
/// written to a fresh connection as raw bytes, the write side is closed, and the answer is read to
/// the end: the HTTP parser, the middleware, every route and the history see the input.
final class HTTPHarness: @unchecked Sendable {
    static let shared = HTTPHarness()
    let port: UInt16
    let dataFolder = URL(fileURLWithPath: scratch + "-serve")
    var sent = 0

    init() {
        let model = repository.appendingPathComponent("Tests/Fixtures/models/tiny-sd")
        var settings = ServeSettings(catalog: ModelCatalog(defaultModel: model, folder: nil), dataFolder: dataFolder)
        settings.port = 0
        settings.users = ["fuzz": "fuzz"]
        settings.limits.maxBodyBytes = 1 << 20
        settings.limits.maxPixels = 32 * 32
        settings.limits.maxSide = 32
        settings.limits.maxSteps = 2
        settings.limits.maxImages = 2
        settings.capacity = 1
        settings.stopsOnSignals = false   // libFuzzer's driver handles SIGINT (stats, then exit)
        let ready = DispatchSemaphore(value: 0)
        let address = LockedBox<String>()
        Task.detached {
            do {
                try await runServer(settings, log: { _ in }, ready: { url in address.value = url; ready.signal() })
            } catch {
                FileHandle.standardError.write("ldm-fuzz: the server stopped: \(error)\n".data(using: .utf8)!)
                exit(2)
            }
        }
        ready.wait()
        port = UInt16(address.value?.split(separator: ":").last.flatMap { Int($0) } ?? 0)
    }

    func send(_ bytes: UnsafeBufferPointer<UInt8>) {
        sent += 1
        if sent % 2000 == 0 {
            // Keep the history's images from filling /dev/shm over a long run.
            let images = dataFolder.appendingPathComponent("images")
            for name in (try? FileManager.default.contentsOfDirectory(atPath: images.path)) ?? [] {
                try? FileManager.default.removeItem(at: images.appendingPathComponent(name))
            }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var fd: Int32 = -1
        for attempt in 1... {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { fatalError("socket: errno \(errno)") }
            // Each connection leaves a minute of TIME_WAIT behind (the harness closes first); at a
            // thousand inputs a second those use up one source address's ephemeral ports, which
            // ended the first long run. So the source address turns over 127.1.0.1–127.1.239.250.
            var source = sockaddr_in()
            source.sin_family = sa_family_t(AF_INET)
            let k = UInt32(sent % 60_000)
            source.sin_addr.s_addr = (UInt32(127) << 24 | UInt32(1) << 16 | (k / 250) << 8 | (1 + k % 250)).bigEndian
            let bound = withUnsafePointer(to: &source) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { fatalError("bind to a loopback source address: errno \(errno)") }
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if connected == 0 { break }
            let e = errno
            close(fd)
            guard [EADDRNOTAVAIL, EAGAIN, EINTR].contains(e), attempt < 1200 else {
                fatalError("connect to the harness's server: errno \(e) (attempt \(attempt))")
            }
            usleep(50_000)
        }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 25, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if n <= 0 { break }  // the server may close early (e.g. a bad request line)
            offset += n
        }
        shutdown(fd, Int32(SHUT_WR))
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                fatalError("ldm serve gave no answer within 25 s")
            }
            break
        }
    }
}

/// A value set on one thread and read on another.
final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T?
    var value: T? {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

typealias FuzzerDriver = @convention(c) (UnsafeMutablePointer<CInt>, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                                         @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    runOne(UnsafeBufferPointer(start: data, count: count))
    return 0
}

@_cdecl("ldm_fuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    guard targets.contains(target) else {
        FileHandle.standardError.write("ldm-fuzz: set FUZZ_TARGET to one of: \(targets.joined(separator: " "))\n".data(using: .utf8)!)
        return 2
    }
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "LLVMFuzzerRunDriver") else {
        FileHandle.standardError.write("ldm-fuzz: this build has no libFuzzer; build and run it with `make fuzz`\n".data(using: .utf8)!)
        return 2
    }
    let driver = unsafeBitCast(symbol, to: FuzzerDriver.self)
    var c = argc
    var v = argv
    return driver(&c, &v) { data, count in fuzzOne(data, count) }
}

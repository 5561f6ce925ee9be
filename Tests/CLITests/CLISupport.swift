// Running the built `ldm` binary as a user would.
import Foundation
import XCTest
import LDMIO

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let fixtures = repositoryRoot.appendingPathComponent("Tests/Fixtures")

/// The folder holding the built products (the test bundle sits beside `ldm`).
var productsFolder: URL {
    for b in Bundle.allBundles where b.bundlePath.hasSuffix(".xctest") { return b.bundleURL.deletingLastPathComponent() }
    return Bundle.main.bundleURL
}

struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `ldm` with `arguments`, from the repository root; `environment` adds to (or with nil
/// values removes from) this process's environment.
@discardableResult
func ldm(_ arguments: [String], environment: [String: String?] = [:]) throws -> RunResult {
    try runProgram(productsFolder.appendingPathComponent("ldm"), arguments, environment: environment)
}

/// Runs a program from the repository root and collects its output.
@discardableResult
func runProgram(_ executable: URL, _ arguments: [String], environment: [String: String?] = [:]) throws -> RunResult {
    let p = Process()
    p.executableURL = executable
    p.arguments = arguments
    p.currentDirectoryURL = repositoryRoot
    if !environment.isEmpty {
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
    }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return RunResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

/// A fresh temporary folder.
func temporaryFolder() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("ldm-cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Largest per-channel difference (0…255) between two images' RGB, optionally only where `include(x, y)`.
func maxDifference(_ a: PNGImage, _ b: PNGImage, include: (Int, Int) -> Bool = { _, _ in true }) -> Int {
    precondition(a.width == b.width && a.height == b.height, "sizes differ")
    var worst = 0
    for y in 0..<a.height { for x in 0..<a.width where include(x, y) {
        for c in 0..<3 {
            let d = abs(Int(a.pixels[(y * a.width + x) * a.channels + c]) - Int(b.pixels[(y * b.width + x) * b.channels + c]))
            worst = max(worst, d)
        }
    } }
    return worst
}

// `ldm`: the command line. Thin: each subcommand turns its arguments into a library configuration.
// Errors print as one line, `ldm: error: <message>`, with a non-zero exit.

import ArgumentParser
import Foundation
import LDMCore

struct LDM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ldm",
        abstract: "Latent-diffusion text-to-image on the CPU: generate, edit, train, measure.",
        subcommands: [Txt2Img.self, Img2Img.self, Inpaint.self, TrainCommand.self, DatasetCommand.self, BenchCommand.self,
                      TokenizeCommand.self, EvalCommand.self, ReportCommand.self, InspectCommand.self, ImageCommand.self, ConvertCommand.self,
                      ServeCommand.self])
}

/// Prints one error line and exits with status 1 (2 for usage mistakes).
func fail(_ message: String, code: Int32 = 1) -> Never {
    let oneLine = message.split(whereSeparator: \.isNewline).joined(separator: " ")
    FileHandle.standardError.write("ldm: error: \(oneLine)\n".data(using: .utf8)!)
    exit(code)
}

/// Throws a usage error unless the folder `path` would be written into exists and is writable, so
/// a bad output path is reported before any work (and before any other output is written).
func requireWritableFolder(for path: String, option: String) throws {
    let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
    var isFolder: ObjCBool = false
    guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue,
          FileManager.default.isWritableFile(atPath: folder) else {
        throw ValidationError("\(option) \(path): no writable folder \(folder)")
    }
}

do {
    var command = try LDM.parseAsRoot()
    try command.run()
} catch {
    // Help and version requests print as usual; everything else is one line.
    let code = LDM.exitCode(for: error)
    if code == .success { LDM.exit(withError: error) }
    let message = LDM.message(for: error)
    fail(message.isEmpty ? "\(error)" : message, code: code == .validationFailure ? 2 : 1)
}

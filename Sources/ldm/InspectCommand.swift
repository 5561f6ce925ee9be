// `ldm inspect FILE.safetensors | MODEL_DIR`: tensors, configs and parameter counts.

import ArgumentParser
import Foundation
import LDMIO
import LDMModels

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "List a safetensors file's tensors, or a model folder's components and parameter counts.")

    @Argument(help: "A .safetensors file, a diffusers model folder, or an architecture name (sd15).")
    var path: String

    func run() throws {
        if path == "sd15" {
            print(try ModelSummary.architecture(path).description)
            return
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ValidationError("no such file or folder: \(path)")
        }
        if isDir.boolValue {
            print(try ModelSummary(folder: URL(fileURLWithPath: path)).description)
        } else {
            print(try SafeTensorsFile(path: path).describe())
        }
    }
}

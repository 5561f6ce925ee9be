// `ldm inspect FILE | MODEL_DIR`: what a model file is (single-file checkpoint, LoRA, embedding),
// else its tensors; a folder's configs and parameter counts.

import ArgumentParser
import Foundation
import LDMDiffusion
import LDMIO
import LDMModels

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Tell what a model file is (single-file checkpoint, LoRA, embedding) or list its tensors; a model folder's components and parameter counts.")

    @Argument(help: "A .safetensors/.ckpt/.pt file, a diffusers model folder, or an architecture name (sd15).")
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
        } else if let description = try ModelFileInspection.describe(path: path) {
            print(description)
        } else if let file = try? SafeTensorsFile(path: path) {
            print(file.describe())
        } else {
            let source = try openTensorFile(path)
            print("\(path): \(source.names.count) tensors")
            for name in source.names { print("  \(name) \((try? source.dtype(of: name).rawValue) ?? "?") \((try? source.shape(of: name)) ?? [])") }
        }
    }
}

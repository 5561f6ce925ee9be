// `ldm convert FILE --out DIR`: a single-file checkpoint as a diffusers folder, and
// `ldm convert DIR --to single-file --out FILE.safetensors`: the reverse (thin: the library's
// SingleFileCheckpoint.writeDiffusersFolder and SingleFileExport.write do the work).

import ArgumentParser
import Foundation
import LDMDiffusion
import LDMModels

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert between a single-file checkpoint (.safetensors/.ckpt, LDM layout) and a diffusers model folder.")
    @Argument(help: "The single-file checkpoint, or (with --to single-file) the diffusers folder.") var input: String
    @Option(help: "The folder (or .safetensors file) to write; it must not exist.") var out: String
    @Option(help: "What to write: folder (from a single file) or single-file (from a folder); default: the other kind than the input.")
    var to: String?
    @OptionGroup var model: ModelArguments

    func run() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory) else { throw ValidationError("no file or folder at \(input)") }
        let target = to ?? (isDirectory.boolValue ? "single-file" : "folder")
        switch target {
        case "single-file":
            guard isDirectory.boolValue else { throw ValidationError("--to single-file needs a diffusers folder (\(input) is a file)") }
            let notices = try SingleFileExport.write(folder: URL(fileURLWithPath: input), to: URL(fileURLWithPath: out))
            notices.forEach { FileHandle.standardError.write(("note: " + $0 + "\n").data(using: .utf8)!) }
            print("wrote \(out)")
        case "folder":
            guard !isDirectory.boolValue else { throw ValidationError("\(input) is already a folder (use --to single-file to write it as one file)") }
            let options = model.loadOptions
            let checkpoint = try SingleFileCheckpoint(path: input, configFolder: options.config)
            let configFolder: URL
            if let config = options.config {
                configFolder = config
            } else {
                guard let defaults = options.familyDefaults else { throw ValidationError("pass --config DIR (no family defaults found)") }
                configFolder = defaults.appendingPathComponent(checkpoint.family.rawValue)
                checkpoint.notices.forEach { FileHandle.standardError.write(($0 + "\n").data(using: .utf8)!) }
            }
            var prediction = model.prediction
            if prediction == nil, checkpoint.source.contains("v_pred") { prediction = "v_prediction" }
            try checkpoint.writeDiffusersFolder(to: URL(fileURLWithPath: out), configFolder: configFolder, predictionType: prediction)
            print("wrote \(out): \(checkpoint.family.displayName), U-Net \(checkpoint.unetConfig.blockOutChannels), "
                  + "text encoder \(checkpoint.textConfig.numHiddenLayers)×\(checkpoint.textConfig.hiddenSize)")
        default:
            throw ValidationError("--to must be folder or single-file (got \(target))")
        }
    }
}

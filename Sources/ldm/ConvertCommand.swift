// `ldm convert FILE --out DIR`: a single-file checkpoint as a diffusers folder (thin: the library's
// SingleFileCheckpoint.writeDiffusersFolder does the work).

import ArgumentParser
import Foundation
import LDMDiffusion
import LDMModels

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert", abstract: "Write a single-file checkpoint (.safetensors/.ckpt, LDM layout) as a diffusers model folder.")
    @Argument(help: "The single-file checkpoint.") var file: String
    @Option(help: "The diffusers folder to write (must not exist).") var out: String
    @OptionGroup var model: ModelArguments

    func run() throws {
        guard FileManager.default.fileExists(atPath: file) else { throw ValidationError("no file at \(file)") }
        let options = model.loadOptions
        let checkpoint = try SingleFileCheckpoint(path: file, configFolder: options.config)
        let configFolder: URL
        if let config = options.config {
            configFolder = config
        } else {
            guard let defaults = options.familyDefaults else { throw ValidationError("pass --config DIR (no family defaults found)") }
            configFolder = defaults.appendingPathComponent(checkpoint.family.rawValue)
            checkpoint.notices.forEach { FileHandle.standardError.write(($0 + "\n").data(using: .utf8)!) }
        }
        try checkpoint.writeDiffusersFolder(to: URL(fileURLWithPath: out), configFolder: configFolder, predictionType: model.prediction)
        print("wrote \(out): \(checkpoint.family.displayName), U-Net \(checkpoint.unetConfig.blockOutChannels), "
              + "text encoder \(checkpoint.textConfig.numHiddenLayers)×\(checkpoint.textConfig.hiddenSize)")
    }
}

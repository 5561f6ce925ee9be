// `ldm bench ops | unet | vae | text`: speed and memory, measured, printed, optionally as JSON.

import ArgumentParser
import Foundation
import LDMBench
import LDMCore
import LDMModels

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure kernels and networks (seconds, GFLOP/s, peak memory).",
        subcommands: [Ops.self, UNet.self, VAE.self, Text.self])

    struct Output: ParsableArguments {
        @Option(help: "Also write the figures as JSON to this path.")
        var json: String?

        func write<T: Encodable>(_ value: T) throws {
            guard let json else { return }
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys]
            try e.encode(value).write(to: URL(fileURLWithPath: json), options: .atomic)
        }
    }

    struct ModelChoice: ParsableArguments {
        @Option(help: "A diffusers model folder.")
        var model: String?
        @Option(help: "A known architecture with random weights instead of a folder: sd15.")
        var architecture: String?
        @Option(help: "Timed calls (after one warm-up call).")
        var calls: Int = 2

        func validate() throws {
            if (model == nil) == (architecture == nil) { throw ValidationError("give either --model DIR or --architecture sd15") }
            if let architecture, architecture != "sd15" { throw ValidationError("unknown architecture \(architecture) (known: sd15)") }
            if calls < 1 { throw ValidationError("--calls must be at least 1") }
        }
        var folder: URL? { model.map { URL(fileURLWithPath: $0) } }
    }

    struct Ops: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ops", abstract: "GFLOP/s of sgemm, 3×3 convolutions and attention.")
        @OptionGroup var output: Output
        @Flag(help: "Small sizes, for a quick check.") var quick = false

        func run() throws {
            print(blasDescription)
            let rows = benchmarkOps(quick: quick)
            print(formatTable(rows, columns: [("gflops", "GFLOP/s", "%.1f"), ("of_sgemm", "of sgemm", "%.2f"),
                                              ("seconds", "seconds", "%.4f"), ("gflop", "GFLOP", "%.2f")]))
            try output.write(["blas": blasDescription.description as String] as [String: String])
            try output.write(rows)
        }
    }

    struct UNet: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "unet", abstract: "Seconds per U-Net call and peak memory.")
        @OptionGroup var choice: ModelChoice
        @OptionGroup var output: Output
        @Option(help: "Latent height and width.") var latent: Int = 64
        @Option(help: "Batch (2 = one guided step).") var batch: Int = 2

        func run() throws {
            let unet: UNet2DConditionModel
            if let folder = choice.folder {
                let dir = folder.appendingPathComponent("unet")
                unet = try UNet2DConditionModel(config: loadConfig(UNetConfig.self, from: dir.appendingPathComponent("config.json")))
                try unet.load(folder: dir, component: "unet")
            } else {
                unet = try UNet2DConditionModel(config: KnownArchitectures.sd15UNet)
                randomize(unet, seed: 0)
            }
            let t = benchmarkUNet(unet, latent: latent, batch: batch, calls: choice.calls)
            print(t.summary)
            try output.write(t)
        }
    }

    struct VAE: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "vae", abstract: "Seconds per VAE decode (and encode) and peak memory.")
        @OptionGroup var choice: ModelChoice
        @OptionGroup var output: Output
        @Option(help: "Image height and width in pixels.") var size: Int = 512
        @Option(help: "Batch.") var batch: Int = 1
        @Flag(help: "Also time the encoder.") var encode = false

        func run() throws {
            let vae: AutoencoderKL
            if let folder = choice.folder {
                let dir = folder.appendingPathComponent("vae")
                vae = try AutoencoderKL(config: loadConfig(VAEConfig.self, from: dir.appendingPathComponent("config.json")))
                try vae.load(folder: dir, component: "vae")
            } else {
                vae = try AutoencoderKL(config: KnownArchitectures.sd15VAE)
                randomize(vae, seed: 0)
            }
            var results = [benchmarkVAEDecode(vae, size: size, batch: batch, calls: choice.calls)]
            if encode { results.append(benchmarkVAEEncode(vae, size: size, batch: batch, calls: choice.calls)) }
            for r in results { print(r.summary) }
            try output.write(results)
        }
    }

    struct Text: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "text", abstract: "Seconds per text-encoder call and peak memory.")
        @OptionGroup var choice: ModelChoice
        @OptionGroup var output: Output
        @Option(help: "Prompts per call (2 = prompt + negative prompt).") var batch: Int = 2

        func run() throws {
            let text: CLIPTextModel
            if let folder = choice.folder {
                let dir = folder.appendingPathComponent("text_encoder")
                text = try CLIPTextModel(config: loadConfig(CLIPTextConfig.self, from: dir.appendingPathComponent("config.json")))
                try text.load(folder: dir, component: "text_encoder")
            } else {
                text = try CLIPTextModel(config: KnownArchitectures.sd15Text)
                randomize(text, seed: 0)
            }
            let t = try benchmarkText(text, batch: batch, calls: choice.calls)
            print(t.summary)
            try output.write(t)
        }
    }
}

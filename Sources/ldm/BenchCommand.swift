// `ldm bench ops | unet | vae | text | image | latent-vs-pixel`: speed and memory, measured, printed,
// optionally as JSON (and, for latent-vs-pixel, a bar chart).

import ArgumentParser
import Foundation
import LDMBench
import LDMCore
import LDMDiffusion
import LDMModels
import LDMTraining

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure kernels and networks (seconds, GFLOP/s, peak memory).",
        subcommands: [Ops.self, UNet.self, VAE.self, Text.self, Image.self, Train.self, LatentVsPixel.self])

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
        @Option(help: "A known architecture with random weights instead of a folder: \(Self.architectures.joined(separator: ", ")).")
        var architecture: String?
        static let architectures = ["sd15", "sd21-turbo", "sdxl", "sdxl-turbo"]
        @Option(help: "Timed calls (after one warm-up call).")
        var calls: Int = 2
        @Option(help: "Products in fp32, bf16 (bf16 operands, fp32 accumulation; needs AVX512-BF16 or AMX) or auto (bf16 where the CPU has it).")
        var precision: String = "fp32"

        /// Sets the products' precision (one line on stderr when it is not what was asked or was chosen
        /// for the user) and prints what runs them.
        func applyPrecision() throws {
            let (p, note) = try ComputePrecision.resolve(precision)
            if let note { FileHandle.standardError.write(Data("ldm: \(note)\n".utf8)) }
            ComputePrecision.current = p
            print(productsDescription)
        }

        func validate() throws {
            if (model == nil) == (architecture == nil) { throw ValidationError("give either --model DIR or --architecture NAME") }
            if let architecture, !Self.architectures.contains(architecture) {
                throw ValidationError("unknown architecture \(architecture) (known: \(Self.architectures.joined(separator: ", ")))")
            }
            if calls < 1 { throw ValidationError("--calls must be at least 1") }
        }
        var folder: URL? { model.map { URL(fileURLWithPath: $0) } }

        /// The random-weight configs of --architecture: U-Net, text encoder(s), VAE.
        var sdxl: Bool { architecture?.hasPrefix("sdxl") ?? false }
        var unetConfig: UNetConfig {
            switch architecture {
            case "sd21-turbo": return KnownArchitectures.sd21UNet(sampleSize: 64)
            case "sdxl": return KnownArchitectures.sdxlUNet()
            case "sdxl-turbo": return KnownArchitectures.sdxlUNet(sampleSize: 64)
            default: return KnownArchitectures.sd15UNet
            }
        }
        var textConfig: CLIPTextConfig { architecture == "sd21-turbo" ? KnownArchitectures.sd21Text : KnownArchitectures.sd15Text }
        var vaeConfig: VAEConfig { sdxl ? KnownArchitectures.sdxlVAE : KnownArchitectures.sd15VAE }

        /// The network `component` of --model, or the --architecture one with random weights.
        func network<C: Decodable, M: Module>(_ component: String, _ type: C.Type, architecture: C,
                                              build: (C) throws -> M) throws -> M {
            if let folder {
                let dir = folder.appendingPathComponent(component)
                let m = try build(loadConfig(C.self, from: dir.appendingPathComponent("config.json")))
                try m.load(folder: dir, component: component)
                return m
            }
            let m = try build(architecture)
            randomize(m, seed: 0)
            return m
        }
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
            try choice.applyPrecision()
            let unet = try choice.network("unet", UNetConfig.self, architecture: choice.unetConfig,
                                          build: UNet2DConditionModel.init(config:))
            let t = benchmarkUNet(unet, latent: latent, batch: batch, calls: choice.calls)
            print(t.summary)
            if ComputePrecision.current == .bf16 {
                print(productsDescription)
                print(String(format: "bf16 against fp32, one call: relative error %.2e", unetPrecisionError(unet, latent: latent, batch: batch)))
            }
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
        @Option(help: "Decode in tiles of this many latent pixels (flat peak memory).") var tile: Int?
        @Option(help: "Latent pixels neighbouring tiles share (with --tile).") var overlap = TiledDecoding().overlap

        func validate() throws {
            if let tile, let problem = TiledDecoding(tile: tile, overlap: overlap).problem { throw ValidationError(problem) }
        }

        func run() throws {
            try choice.applyPrecision()
            let vae = try choice.network("vae", VAEConfig.self, architecture: choice.vaeConfig,
                                         build: AutoencoderKL.init(config:))
            let tiling = tile.map { TiledDecoding(tile: $0, overlap: overlap) }
            var results = [benchmarkVAEDecode(vae, size: size, batch: batch, calls: choice.calls, tiling: tiling)]
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
            try choice.applyPrecision()
            let text = try choice.network("text_encoder", CLIPTextConfig.self, architecture: choice.textConfig,
                                          build: CLIPTextModel.init(config:))
            let t = try benchmarkText(text, batch: batch, calls: choice.calls)
            print(t.summary)
            try output.write(t)
        }
    }

    struct Image: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "image",
            abstract: "Seconds and peak memory of one whole image: text encoder(s), denoising steps, VAE decode.",
            discussion: "sd15: guided DPM++ 2M steps on the networks alone. sd21-turbo, sdxl, sdxl-turbo: the library's pipeline "
                + "(tokenizers of Checkpoints/families; Euler for sd21-turbo and Euler a for sdxl-turbo at trailing spacing, "
                + "Euler for sdxl).")
        @OptionGroup var choice: ModelChoice
        @OptionGroup var output: Output
        @Option(help: "Image height and width in pixels.") var size: Int = 512
        @Option(help: "Denoising steps.") var steps: Int = 20
        @Option(help: "Classifier-free guidance scale (≤ 1: no guidance batch).") var guidance: Float = 7.5
        @Option(help: "Decoder: the model's VAE, or taesd (a random-weight tiny autoencoder), or a VAE folder.") var vae: String?

        func validate() throws {
            if steps < 1 { throw ValidationError("--steps must be at least 1") }
            if size < 8 || size % 8 != 0 { throw ValidationError("--size must be a positive multiple of 8 (got \(size))") }
        }

        func run() throws {
            try choice.applyPrecision()
            if (choice.architecture ?? "sd15") != "sd15" || vae != nil { return try runPipeline() }
            let text = try choice.network("text_encoder", CLIPTextConfig.self, architecture: KnownArchitectures.sd15Text,
                                          build: CLIPTextModel.init(config:))
            let unet = try choice.network("unet", UNetConfig.self, architecture: KnownArchitectures.sd15UNet,
                                          build: UNet2DConditionModel.init(config:))
            let vae = try choice.network("vae", VAEConfig.self, architecture: KnownArchitectures.sd15VAE,
                                         build: AutoencoderKL.init(config:))
            let latent = size / vae.config.downsamplingFactor
            guard latent % unet.downsamplingFactor == 0 else {
                throw ValidationError("this model needs sizes that are multiples of \(vae.config.downsamplingFactor * unet.downsamplingFactor) pixels")
            }
            let progress = ProgressReporter(label: "bench image")
            let start = DispatchTime.now().uptimeNanoseconds
            let t = try benchmarkImage(text: text, unet: unet, vae: vae, size: size, steps: steps, guidance: guidance) { i, n in
                progress.report(step: i, total: n, elapsed: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, final: i == n)
            }
            print(t.summary)
            try output.write(t)
        }
    }

}

extension BenchCommand.Image {
    /// A whole image through the library's pipeline, from a model folder or random-weight networks.
    func runPipeline() throws {
        let progress = ProgressReporter(label: "bench image")
        let pipeline: StableDiffusionPipeline
        var sampler: SamplerName? = nil
        if let folder = choice.folder {
            pipeline = try StableDiffusionPipeline.load(model: folder.path)
        } else {
            let families = URL(fileURLWithPath: "Checkpoints/families")
            let family = choice.sdxl ? "sdxl" : (choice.architecture == "sd21-turbo" ? "sd2" : "sd1")
            let dir = families.appendingPathComponent(family)
            guard FileManager.default.fileExists(atPath: dir.path) else {
                throw ValidationError("run from the repository: the tokenizers come from \(dir.path)")
            }
            progress.note("building \(choice.architecture ?? "") with random weights")
            func random<M: Module>(_ m: M) -> M { randomize(m, seed: 0); return m }
            let text = random(try CLIPTextModel(config: choice.textConfig))
            let unet = random(try UNet2DConditionModel(config: choice.unetConfig))
            let vae = random(try AutoencoderKL(config: choice.vaeConfig))
            let tokenizer = try CLIPTokenizer.load(folder: dir.appendingPathComponent("tokenizer"))
            pipeline = StableDiffusionPipeline(folder: dir, tokenizer: tokenizer, textEncoder: text, unet: unet, space: .vae(vae))
            if choice.sdxl {
                try pipeline.setSecondTextEncoder(random(try CLIPTextModel(config: KnownArchitectures.sdxlText2)),
                                                  tokenizer: CLIPTokenizer.load(folder: dir.appendingPathComponent("tokenizer_2")))
            }
            let turbo = choice.architecture?.hasSuffix("turbo") ?? false
            var config: [String: Any] = ["_class_name": choice.architecture == "sdxl-turbo" ? "EulerAncestralDiscreteScheduler" : "EulerDiscreteScheduler",
                                         "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "steps_offset": 1,
                                         "timestep_spacing": turbo ? "trailing" : "leading"]
            config["prediction_type"] = "epsilon"
            pipeline.schedulerConfigOverride = try JSONSerialization.data(withJSONObject: config)
            sampler = nil
        }
        if let vae {
            if vae == "taesd" {
                let tiny = try AutoencoderTiny(config: KnownArchitectures.taesd)
                randomize(tiny, seed: 0)
                try pipeline.replaceAutoencoder(.tiny(tiny))
            } else {
                try pipeline.replaceAutoencoder(LatentSpace(vaeFolder: URL(fileURLWithPath: vae)))
            }
        }
        var r = GenerationRequest(prompt: "a photograph of an astronaut riding a horse on the moon")
        r.steps = steps
        r.guidance = guidance
        r.sampler = sampler
        r.width = size
        r.height = size
        r.rng = .swift
        MemoryStatistics.resetPeak()
        let start = DispatchTime.now().uptimeNanoseconds
        _ = try pipeline.generate(r, progress: { i, n in
            progress.report(step: i, total: n, elapsed: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, final: i == n)
        })
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let parameters = pipeline.textEncoders.reduce(0) { $0 + $1.encoder.parameterCount } + pipeline.unet.parameterCount
            + (pipeline.space.vae?.decoder.parameterCount ?? pipeline.space.tiny?.decoder.parameterCount ?? 0)
        let decoder = pipeline.space.tiny != nil ? "tiny autoencoder" : "VAE"
        let t = ModelTiming(network: "image", shape: "\(choice.architecture ?? "model") \(size)×\(size), \(steps) steps, guidance "
                                + String(format: "%g", guidance) + ", \(decoder) decode",
                            parameters: parameters, secondsPerCall: seconds, bestSeconds: seconds, calls: 1,
                            peakTensorBytes: MemoryStatistics.peakBytes, peakResidentBytes: MemoryStatistics.peakResidentBytes,
                            blas: blasDescription)
        print(t.summary)
        try output.write(t)
    }
}

extension BenchCommand {
    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "train",
            abstract: "Samples per second of the U-Net + text-encoder training step (forward, backward, AdamW, EMA).")
        @OptionGroup var output: Output
        @Option(help: "Training settings (diffusion-training.json; default: the shipped model's, Checkpoints/training/unet/).")
        var config: String?
        @Option(help: "The frozen VAE (default: Checkpoints/vae).") var vae: String = "Checkpoints/vae"
        @Option(help: "Timed steps (after one warm-up step).") var steps: Int = 5
        @Option(help: "Images per step (default: the settings').") var batch: Int?

        func validate() throws {
            if steps < 1 { throw ValidationError("--steps must be at least 1") }
            if let batch, batch < 1 { throw ValidationError("--batch must be at least 1") }
        }

        func run() throws {
            let path = config ?? "Checkpoints/training/unet/diffusion-training.json"
            var c = DiffusionTrainingConfig()
            if let data = FileManager.default.contents(atPath: path) {
                do { c = try JSONDecoder().decode(DiffusionTrainingConfig.self, from: data) } catch {
                    throw ValidationError("\(path) is not a diffusion-training.json: \(error)")
                }
            } else if config != nil {
                throw ValidationError("cannot read \(path)")
            }
            if let batch { c.batchSize = batch }
            guard FileManager.default.fileExists(atPath: URL(fileURLWithPath: vae).appendingPathComponent("config.json").path) else {
                throw ValidationError("no VAE at \(vae) (give --vae DIR)")
            }
            let t = try benchmarkDiffusionTraining(config: c, space: try LatentSpace(vaeFolder: URL(fileURLWithPath: vae)), steps: steps)
            print(t.summary)
            print(String(format: "%.1f samples/s", Double(c.batchSize) / t.secondsPerCall))
            try output.write(t)
        }
    }

    struct LatentVsPixel: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "latent-vs-pixel",
            abstract: "The same U-Net in latent space and in pixel space at equal resolution: FLOPs, seconds, memory.",
            discussion: """
                Rows in pairs: the model in --model (default Checkpoints/ when it holds a model) at 64×64, and the \
                Stable Diffusion 1.x architecture (random weights) at 256×256 and 512×512, as configured and without \
                attention at the top level. Calls too large to run whole are extrapolated from sampled blocks \
                (marked in the table and `measured: false` in the JSON).
                """)
        @OptionGroup var output: Output
        @Option(help: "Also draw seconds per image as a bar chart (PNG).") var chart: String?
        @Flag(help: "Tiny sizes, for a quick check (seconds); uses no model unless --model is given.") var quick = false
        @Option(help: "A diffusers model folder for the model row (default: Checkpoints/ when it holds a model).")
        var model: String?
        @Option(help: "Denoising steps per image.") var steps: Int = 20

        func validate() throws {
            if steps < 1 { throw ValidationError("--steps must be at least 1 (got \(steps))") }
            if let chart, !chart.lowercased().hasSuffix(".png") { throw ValidationError("--chart must end in .png") }
            if let model, !FileManager.default.fileExists(atPath: URL(fileURLWithPath: model).appendingPathComponent("model_index.json").path) {
                throw ValidationError("no diffusers model folder at \(model) (model_index.json missing)")
            }
        }

        /// --model, else (not with --quick) Checkpoints/ in the working folder or beside the repository the binary was built in.
        func modelFolder() -> (folder: URL, name: String)? {
            if let model {
                let url = URL(fileURLWithPath: model)
                return (url, url.standardized.lastPathComponent)
            }
            if quick { return nil }
            let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            let candidates = [URL(fileURLWithPath: "Checkpoints"),
                              exe.deletingLastPathComponent().appendingPathComponent("../../../Checkpoints").standardized]
            for c in candidates where FileManager.default.fileExists(atPath: c.appendingPathComponent("model_index.json").path) {
                return (c, "shipped model")
            }
            return nil
        }

        func run() throws {
            let model = modelFolder()
            let options = LatentVsPixelOptions(steps: steps, quick: quick, model: model) { line in
                FileHandle.standardError.write((line + "\n").data(using: .utf8)!)
            }
            var report = try runLatentVsPixel(options)
            if model == nil {
                report.notes.insert(quick ? "model row skipped (--quick uses no model unless --model is given)"
                                          : "model row skipped: no model in Checkpoints/ yet and no --model given", at: 0)
            }
            print(report.table)
            try output.write(report)
            if let chart { try report.chart().render().write(to: chart) }
        }
    }
}

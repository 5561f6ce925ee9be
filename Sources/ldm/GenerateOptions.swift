// Option groups shared by txt2img, img2img and inpaint, and the code that turns them into a
// GenerationRequest and writes the results.

import ArgumentParser
import Foundation
import LDMCore
import LDMDiffusion
import LDMIO
import LDMModels
import LDMService

/// Where the model comes from.
struct ModelArguments: ParsableArguments {
    @Option(help: "A diffusers model folder, or a single-file checkpoint (.safetensors or .ckpt, SD 1.x/2.x/SDXL) (default: the shipped model in Checkpoints/).")
    var model: String?

    @Option(help: "For a single-file --model: a diffusers folder whose configs, tokenizer and scheduler describe it.")
    var config: String?

    @Option(help: "Override the prediction type: epsilon or v_prediction (e.g. an SD 2.x 512 base file).")
    var prediction: String?

    @Option(help: "Use this autoencoder folder instead of the model's VAE: an AutoencoderKL (e.g. a fine-tuned VAE) or an AutoencoderTiny (TAESD, TAESDXL: a much faster decode).")
    var vae: String?

    @Option(help: "The networks' products: fp32 (the default, the parity reference), bf16 (bf16 operands with fp32 accumulation through oneDNN; needs AVX512-BF16 or AMX, else fp32 with a notice) or auto (bf16 where the CPU has it).")
    var precision: String = "fp32"

    /// Sets the products' precision for this process; says so on stderr when it is not what was asked
    /// or was chosen for the user.
    func applyPrecision() throws {
        let (p, note): (Precision, String?)
        do { (p, note) = try ComputePrecision.resolve(precision) } catch { throw ValidationError("--precision: \(error)") }
        if let note { FileHandle.standardError.write(Data("ldm: \(note)\n".utf8)) }
        ComputePrecision.current = p
    }

    /// The model folder: --model, else Checkpoints/ in the working folder or beside the repository the binary was built in.
    func folder() throws -> URL {
        let fm = FileManager.default
        if let model {
            guard fm.fileExists(atPath: model) else { throw ValidationError("no model at \(model)") }
            return URL(fileURLWithPath: model)
        }
        if let shipped = shippedModel() { return shipped }
        throw ValidationError("no model in Checkpoints/ yet (train one with `make checkpoints`, or pass --model DIR)")
    }

    /// Checkpoints/ in the working folder or beside the repository the binary was built in.
    func shippedModel() -> URL? {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let candidates = [URL(fileURLWithPath: "Checkpoints"),
                          exe.deletingLastPathComponent().appendingPathComponent("../../../Checkpoints").standardized]
        return candidates.first { FileManager.default.fileExists(atPath: $0.appendingPathComponent("model_index.json").path) }
    }

    /// How to open the model: --config, --prediction and the shipped family defaults.
    var loadOptions: ModelLoadOptions {
        ModelLoadOptions(config: config.map { URL(fileURLWithPath: $0) },
                         familyDefaults: shippedModel()?.appendingPathComponent("families"), predictionType: prediction,
                         vae: vae.map { URL(fileURLWithPath: $0) })
    }

    /// Opens the model (folder or single file).
    func pipeline(notice: (String) -> Void) throws -> StableDiffusionPipeline {
        try check()
        return try StableDiffusionPipeline.load(model: folder().path, options: loadOptions, notice: notice)
    }

    /// Checks --prediction, --config and --vae.
    func check() throws {
        if let vae {
            guard FileManager.default.fileExists(atPath: URL(fileURLWithPath: vae).appendingPathComponent("config.json").path) else {
                throw ValidationError("--vae must be an autoencoder folder with a config.json (got \(vae))")
            }
        }
        if let prediction, !["epsilon", "v_prediction"].contains(prediction) {
            throw ValidationError("--prediction must be epsilon or v_prediction (got \(prediction))")
        }
        if let config {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: config, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("--config must be a diffusers model folder (got \(config))")
            }
        }
    }
}

/// The options every generation has.
struct GenerateArguments: ParsableArguments {
    @Option(help: "What to draw.") var prompt: String?
    @Option(help: "What to avoid (SDXL: without this option the negative embeddings are zeros, as diffusers; --negative-prompt \"\" encodes the empty text).")
    var negativePrompt: String?
    @Option(help: "Denoising steps (default: the model's, else 20).") var steps: Int?
    @Option(help: "Classifier-free guidance scale (default: the model's, else 7.5).") var guidance: Float?
    @Option(help: "Guidance rescale φ in [0, 1] (default: the model's, else 0).") var guidanceRescale: Float?
    @Option(help: "Sampler: \(SamplerName.allCases.map(\.rawValue).joined(separator: " ")) (default: the model's scheduler).")
    var sampler: String?
    @Option(help: "Seed (with --prompts, prompt k of the file, counted from 0, uses seed + k).") var seed: UInt64 = 0
    @Option(help: "Random source: torch (same image as diffusers for the same seed) or swift.") var rng: String = "torch"
    @Option(help: "Width in pixels, a multiple of 8.") var width: Int?
    @Option(help: "Height in pixels, a multiple of 8.") var height: Int?
    @Flag(help: "Decode the VAE in tiles, keeping peak memory flat (experimental: the image shifts slightly from an untiled decode).")
    var tileVae = false
    @Option(help: "Latent pixels per VAE tile when tiling (default \(TiledDecoding().tile)).") var vaeTile: Int?
    @Option(help: "Images per prompt.") var batch: Int = 1
    @Option(help: "A file of prompts, one per line (# starts a comment): one image (set) per prompt.") var prompts: String?
    @Option(help: ArgumentHelp("Run only shard I of N of the prompts (prompt k when k mod N = I), skipping images already written; default: from a Slurm job array, a Kubernetes Indexed Job or MPI ranks when run under one.",
                               valueName: "I/N"))
    var shard: String?
    @Option(help: "The number of shards of a Kubernetes Indexed Job (its completions; or set LDM_SHARD_COUNT).") var shardCount: Int?
    @Flag(help: "Skip prompts whose images are all already written (sharded runs always do).") var skipExisting = false
    @Option(name: [.short, .long], help: "Output PNG (numbered -1, -2 … when there are several images).") var output: String = "image.png"
    @Option(help: ArgumentHelp("A LoRA file (kohya or diffusers/peft .safetensors) and its weight, default 1; repeatable.",
                               valueName: "path[:weight]"))
    var lora: [String] = []
    @Option(help: "Folder of LoRA files named by <lora:NAME:WEIGHT> prompt tags (default: loras/ beside the model).")
    var loraDir: String?
    @Option(help: ArgumentHelp("A textual-inversion embedding (.pt, .safetensors, .bin); its file name is the word that triggers it; repeatable.",
                               valueName: "path"))
    var embedding: [String] = []
    @Option(help: "Folder of embeddings, each triggered by its file name (default: embeddings/ beside the model).")
    var embeddingsDir: String?
    @Flag(help: "Read prompts literally, as diffusers does: no A1111 (emphasis:1.2), [de-emphasis], BREAK or 75-token chunks.")
    var plainPrompt = false
    @Option(help: "A1111's clip skip: 1 = the text encoder's last layer, 2 = the one before it (then the final layer norm), …")
    var clipSkip: Int = 1
    @Option(help: ArgumentHelp("SDXL: the original image size the model is told about (default: the output size).", valueName: "WxH"))
    var originalSize: String?
    @Option(help: ArgumentHelp("SDXL: the crop's top-left corner, pixels from the left and from the top (default 0,0).", valueName: "x,y"))
    var crop: String?
    @Option(help: ArgumentHelp("SDXL: the target size the model is told about (default: the output size).", valueName: "WxH"))
    var targetSize: String?
    @Option(help: "SDXL refiner: aesthetic score of the prompt (default 6).") var aestheticScore: Float?
    @Option(help: "SDXL refiner: aesthetic score of the negative prompt (default 2.5).") var negativeAestheticScore: Float?
    @Option(help: "A refiner model (folder or file) that takes over the last part of the schedule.") var refiner: String?
    @Option(help: "Fraction of the schedule after which the refiner takes over (default 0.8).") var refinerSwitch: Double = 0.8
    @Option(help: "Also write every image of the run side by side in this one PNG, prompt after prompt (a contact sheet).")
    var grid: String?
    @Option(help: "Images per row of --grid (default: the images per prompt when there are several, else about the square root of the count).")
    var gridColumns: Int?
    @Option(help: "Write a preview of the image so far every N steps, to OUTPUT-preview.png (replaced each time).")
    var preview: Int?
    @Option(help: "Decode previews with this tiny autoencoder folder (TAESD for SD 1.x/2.x, TAESDXL for SDXL); default: a linear latent-to-RGB approximation.")
    var previewVae: String?

    func validate() throws {
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1 (got \(steps))") }
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
        if let shard { do { _ = try Shard.parse(shard) } catch { throw ValidationError("\(error)") } }
        if let shardCount, shardCount < 1 { throw ValidationError("--shard-count must be at least 1") }
        if let sampler, SamplerName(rawValue: sampler) == nil {
            throw ValidationError("unknown sampler \(sampler); choose one of: \(SamplerName.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if RNGKind(rawValue: rng) == nil { throw ValidationError("--rng must be torch or swift") }
        for (name, v) in [("width", width), ("height", height)] {
            if let v, v <= 0 || v % 8 != 0 { throw ValidationError("--\(name) must be a positive multiple of 8 (got \(v))") }
        }
        try validateGuidanceRescale(guidanceRescale)
        if let problem = vaeTiling.problem { throw ValidationError("--vae-tile: " + problem) }
        if !output.lowercased().hasSuffix(".png") { throw ValidationError("--output must end in .png") }
        if clipSkip < 1 { throw ValidationError("--clip-skip must be at least 1 (1 = the last layer, A1111's numbering)") }
        _ = try sizes()
        if !(refinerSwitch > 0 && refinerSwitch < 1) { throw ValidationError("--refiner-switch must be between 0 and 1 (got \(refinerSwitch))") }
        if let refiner, !FileManager.default.fileExists(atPath: refiner) { throw ValidationError("--refiner: no model at \(refiner)") }
        if let preview, preview < 1 { throw ValidationError("--preview must be at least 1 step (got \(preview))") }
        if previewVae != nil && preview == nil { throw ValidationError("--preview-vae needs --preview N") }
        if let grid, !grid.lowercased().hasSuffix(".png") { throw ValidationError("--grid must end in .png") }
        if let gridColumns, gridColumns < 1 { throw ValidationError("--grid-columns must be at least 1 (got \(gridColumns))") }
        if gridColumns != nil && grid == nil { throw ValidationError("--grid-columns needs --grid PATH") }
    }

    /// --original-size, --crop and --target-size as (height, width) and (top, left).
    func sizes() throws -> (original: (height: Int, width: Int)?, crop: (top: Int, left: Int)?, target: (height: Int, width: Int)?) {
        func pair(_ text: String?, _ separator: Character, _ option: String, allowZero: Bool) throws -> (Int, Int)? {
            guard let text else { return nil }
            let parts = text.lowercased().split(separator: separator, omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 2, let a = parts[0], let b = parts[1], a >= (allowZero ? 0 : 1), b >= (allowZero ? 0 : 1),
                  a <= 1 << 20, b <= 1 << 20 else {
                throw ValidationError("--\(option) must be \(separator == "x" ? "WIDTHxHEIGHT, e.g. 1024x1024" : "X,Y, e.g. 0,0") (got \(text))")
            }
            return (a, b)
        }
        let o = try pair(originalSize, "x", "original-size", allowZero: false)
        let c = try pair(crop, ",", "crop", allowZero: true)
        let t = try pair(targetSize, "x", "target-size", allowZero: false)
        return (o.map { (height: $0.1, width: $0.0) }, c.map { (top: $0.1, left: $0.0) }, t.map { (height: $0.1, width: $0.0) })
    }

    /// The VAE tiling: the library's, with --vae-tile.
    var vaeTiling: TiledDecoding {
        var t = TiledDecoding()
        if let vaeTile { t.tile = vaeTile }
        return t
    }

    /// The prompts to run: --prompt, or the non-comment lines of --prompts.
    func promptList() throws -> [String] {
        if let prompt {
            if prompts != nil { throw ValidationError("give either --prompt or --prompts, not both") }
            return [prompt]
        }
        if prompts == nil { throw ValidationError("give a prompt: --prompt TEXT or --prompts FILE") }
        guard let path = prompts, let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("cannot read prompt file \(prompts ?? "")")
        }
        let list = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        if list.isEmpty { throw ValidationError("prompt file \(path) has no prompts") }
        return list
    }
}

/// Rejects a --guidance-rescale outside [0, 1].
func validateGuidanceRescale(_ value: Float?) throws {
    if let value, value < 0 || value > 1 { throw ValidationError("--guidance-rescale must be in [0, 1]") }
}

/// Runs the library's Generator for every prompt (of this task's shard) and writes the PNGs (with
/// their `parameters` text): prompt k of the list uses seed + k and writes the images numbered
/// k·batch + 1 …, so shards together write exactly what one unsharded run writes.
func runGeneration(model: ModelArguments, args: GenerateArguments, label: String,
                   prepare: (inout GenerationJob) throws -> Void = { _ in }) throws {
    let prompts = try args.promptList()
    let shard: Shard?
    do { shard = try Shard.resolve(flag: args.shard, shardCount: args.shardCount) } catch { throw ValidationError("\(error)") }
    let mine = prompts.indices.filter { shard?.contains($0) ?? true }
    let modelPath = try model.folder()
    try model.check()
    try model.applyPrecision()
    if let dir = args.embeddingsDir {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ValidationError("--embeddings-dir \(dir) is not a folder")
        }
    }
    let progress = ProgressReporter(label: label)
    let networks = NetworkSettings(loraFolder: args.loraDir.map { URL(fileURLWithPath: $0) }, embeddingFiles: args.embedding,
                                   embeddingsFolder: args.embeddingsDir.map { URL(fileURLWithPath: $0) })
    let generator = Generator(loadOptions: model.loadOptions, networks: networks, capacity: 1, note: { progress.note($0) })
    let loras = try args.lora.map(parseLoRASpec)
    let previewDecoder = try args.previewVae.map { path -> AutoencoderTiny in
        guard let tiny = try LatentSpace(vaeFolder: URL(fileURLWithPath: path)).tiny else {
            throw ValidationError("--preview-vae must be a tiny autoencoder (AutoencoderTiny) folder: \(path)")
        }
        return tiny
    }
    let previewPath = URL(fileURLWithPath: args.output).deletingPathExtension().path + "-preview.png"
    let total = prompts.count * args.batch
    if let shard {
        progress.note("\(shard): \(mine.count) of \(prompts.count) prompts"
                      + (mine.isEmpty ? "" : " (prompt \(mine.prefix(4).map { String($0 + 1) }.joined(separator: ", "))\(mine.count > 4 ? ", …" : ""))"))
    }
    let skipExisting = args.skipExisting || shard != nil
    for pi in mine {
        let prompt = prompts[pi]
        let paths = (0..<args.batch).map { outputPath(args.output, index: pi * args.batch + $0, total: total) }
        if skipExisting && paths.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) {
            progress.note("prompt \(pi + 1)/\(prompts.count): \(paths.count == 1 ? paths[0] : "its images") already written, skipped")
            continue
        }
        var job = GenerationJob(prompt: prompt)
        job.negativePrompt = args.negativePrompt
        job.steps = args.steps
        job.guidance = args.guidance
        job.guidanceRescale = args.guidanceRescale
        job.sampler = args.sampler.flatMap(SamplerName.init(rawValue:))
        job.seed = args.seed &+ UInt64(pi)
        job.rng = RNGKind(rawValue: args.rng) ?? .torch
        job.width = args.width
        job.height = args.height
        job.batch = args.batch
        job.tileVAE = args.tileVae
        job.vaeTiling = args.vaeTiling
        job.loras = loras.map { (path: $0.0, weight: $0.1) }
        job.clipSkip = args.clipSkip
        job.promptStyle = args.plainPrompt ? .plain : .a1111
        let sizes = try args.sizes()
        job.originalSize = sizes.original
        job.cropTopLeft = sizes.crop
        job.targetSize = sizes.target
        job.aestheticScore = args.aestheticScore
        job.negativeAestheticScore = args.negativeAestheticScore
        job.refiner = args.refiner.map { URL(fileURLWithPath: $0) }
        job.refinerSwitch = args.refinerSwitch
        try prepare(&job)
        let start = Date()
        var step = 0
        var writePreview: ((LatentPreview, Tensor) -> Void)?
        if let every = args.preview { writePreview = { linear, latents in
            step += 1
            guard step % every == 0 else { return }
            let png: PNGImage
            if let previewDecoder {
                let first = Tensor(shape: [1] + latents.shape.dropFirst(),
                                   Array(UnsafeBufferPointer(start: latents.data, count: latents.count / latents.shape[0])))
                let s = previewDecoder.config.scalingFactor
                png = pngImage(map(previewDecoder.decode(map(first) { $0 / s })) { min(max($0 * 0.5 + 0.5, 0), 1) }, index: 0)
            } else {
                png = linear.image(latents)
            }
            do { try png.write(to: previewPath) } catch { progress.note("preview not written: \(error)") }
        } }
        let images = try generator.generate(job, model: modelPath, progress: { i, n in
            progress.report(step: i, total: n, elapsed: Date().timeIntervalSince(start),
                            detail: prompts.count > 1 ? "prompt \(pi + 1)/\(prompts.count)" : "", final: i == n)
        }, preview: writePreview)
        for (image, path) in zip(images, paths) {
            try image.png.write(to: path)   // whole or not at all: a temporary file, then a rename
            progress.note("wrote \(path)")
        }
    }
    if let grid = args.grid {
        // Every image of the run that is on disk (a shard sees only its own and those written before).
        let paths = (0..<total).map { outputPath(args.output, index: $0, total: total) }
            .filter { FileManager.default.fileExists(atPath: $0) }
        let tiles = try paths.map { try PNGImage.read(path: $0) }
        guard let first = tiles.first else { throw ValidationError("--grid: no images were written") }
        guard tiles.allSatisfy({ $0.width == first.width && $0.height == first.height }) else {
            throw ValidationError("--grid: the images differ in size (an earlier run's files?); the grid needs one size")
        }
        let columns = args.gridColumns ?? (args.batch > 1 ? args.batch : Int(Double(tiles.count).squareRoot().rounded(.up)))
        try imageGrid(tiles, columns: min(columns, tiles.count)).write(to: grid)
        progress.note("wrote \(grid) (\(tiles.count) images, \(min(columns, tiles.count)) per row)")
    }
}

/// `out.png` for one image; `out-1.png`, `out-2.png`, … for several.
func outputPath(_ base: String, index: Int, total: Int) -> String {
    guard total > 1 else { return base }
    let url = URL(fileURLWithPath: base)
    let stem = url.deletingPathExtension().lastPathComponent
    return url.deletingLastPathComponent().appendingPathComponent("\(stem)-\(index + 1).png").path
}

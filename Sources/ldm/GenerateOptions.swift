// Option groups shared by txt2img, img2img and inpaint, and the code that turns them into a
// GenerationRequest and writes the results.

import ArgumentParser
import Foundation
import LDMCore
import LDMDiffusion
import LDMIO
import LDMModels

/// Where the model comes from.
struct ModelArguments: ParsableArguments {
    @Option(help: "A diffusers model folder, or a single-file checkpoint (.safetensors or .ckpt, SD 1.x/2.x) (default: the shipped model in Checkpoints/).")
    var model: String?

    @Option(help: "For a single-file --model: a diffusers folder whose configs, tokenizer and scheduler describe it.")
    var config: String?

    @Option(help: "Override the prediction type: epsilon or v_prediction (e.g. an SD 2.x 512 base file).")
    var prediction: String?

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
                         familyDefaults: shippedModel()?.appendingPathComponent("families"), predictionType: prediction)
    }

    /// Opens the model (folder or single file).
    func pipeline(notice: (String) -> Void) throws -> StableDiffusionPipeline {
        if let prediction, !["epsilon", "v_prediction"].contains(prediction) {
            throw ValidationError("--prediction must be epsilon or v_prediction (got \(prediction))")
        }
        if let config {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: config, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("--config must be a diffusers model folder (got \(config))")
            }
        }
        return try StableDiffusionPipeline.load(model: folder().path, options: loadOptions, notice: notice)
    }
}

/// The options every generation has.
struct GenerateArguments: ParsableArguments {
    @Option(help: "What to draw.") var prompt: String?
    @Option(help: "What to avoid.") var negativePrompt: String = ""
    @Option(help: "Denoising steps (default: the model's, else 20).") var steps: Int?
    @Option(help: "Classifier-free guidance scale (default: the model's, else 7.5).") var guidance: Float?
    @Option(help: "Guidance rescale φ in [0, 1] (default: the model's, else 0).") var guidanceRescale: Float?
    @Option(help: "Sampler: \(SamplerName.allCases.map(\.rawValue).joined(separator: " ")) (default: the model's scheduler).")
    var sampler: String?
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Random source: torch (same image as diffusers for the same seed) or swift.") var rng: String = "torch"
    @Option(help: "Width in pixels, a multiple of 8.") var width: Int?
    @Option(help: "Height in pixels, a multiple of 8.") var height: Int?
    @Flag(help: "Decode the VAE in tiles, keeping peak memory flat (experimental: the image shifts slightly from an untiled decode).")
    var tileVae = false
    @Option(help: "Latent pixels per VAE tile when tiling (default \(TiledDecoding().tile)).") var vaeTile: Int?
    @Option(help: "Images per prompt.") var batch: Int = 1
    @Option(help: "A file of prompts, one per line (# starts a comment): one image (set) per prompt.") var prompts: String?
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

    func validate() throws {
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1 (got \(steps))") }
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
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

/// Defaults a model folder may carry in `ldm_defaults.json` (steps, guidance, guidance_rescale, sampler).
struct ModelDefaults: Decodable {
    var steps: Int?
    var guidance: Float?
    var guidanceRescale: Float?
    var sampler: String?
    enum CodingKeys: String, CodingKey { case steps, guidance, guidanceRescale = "guidance_rescale", sampler }
    static func load(_ folder: URL) -> ModelDefaults {
        guard let data = try? Data(contentsOf: folder.appendingPathComponent("ldm_defaults.json")),
              let d = try? JSONDecoder().decode(ModelDefaults.self, from: data) else { return ModelDefaults() }
        return d
    }
}

/// Runs the pipeline for every prompt and writes the PNGs with their `parameters` text.
func runGeneration(model: ModelArguments, args: GenerateArguments, label: String,
                   prepare: (inout GenerationRequest) throws -> Void = { _ in },
                   extraSettings: [(String, String)] = [],
                   finish: (Tensor, Int) throws -> PNGImage = { images, i in pngImage(images, index: i) }) throws {
    let prompts = try args.promptList()
    let modelPath = try model.folder()
    let defaults = ModelDefaults.load(modelPath)
    let progress = ProgressReporter(label: label)
    progress.note("loading \(modelPath.path)")
    let pipeline = try model.pipeline(notice: { progress.note($0) })
    pipeline.warn = { progress.note("warning: " + $0) }
    let samplerName = args.sampler ?? defaults.sampler
    let sampler = samplerName.flatMap(SamplerName.init(rawValue:))
    let total = prompts.count * args.batch
    var written = 0
    let loras = LoRAResolver(pipeline: pipeline, modelPath: modelPath, folder: args.loraDir)
    let commandLoRAs = try args.lora.map(parseLoRASpec)
    pipeline.embeddings = try loadEmbeddings(args, pipeline: pipeline, modelPath: modelPath, note: { progress.note($0) })
    let style: PromptStyle = args.plainPrompt ? .plain : .a1111
    for (pi, prompt) in prompts.enumerated() {
        let (text, tags) = extractLoRATags(prompt)
        let applied = LoRAApplication()
        defer { applied.restore() }
        var loraHashes: [String] = []
        for (path, weight, name) in commandLoRAs.map({ ($0.0, $0.1, URL(fileURLWithPath: $0.0).deletingPathExtension().lastPathComponent) })
            + (try tags.map { (try loras.path(named: $0.name), $0.weight, $0.name) }) {
            let file = try loras.file(path)
            try applied.apply(file, weight: weight, unet: pipeline.unet, textEncoder: pipeline.textEncoder)
            progress.note("LoRA \(name) at \(String(format: "%g", weight)): \(file.summary)")
            if let hash = try? loras.shortHash(path) { loraHashes.append(networkLabel(name) + ": " + hash) }
        }
        var r = GenerationRequest(prompt: text)
        r.promptStyle = style
        r.clipSkip = args.clipSkip
        r.negativePrompt = args.negativePrompt
        r.steps = args.steps ?? defaults.steps ?? 20
        r.guidance = args.guidance ?? defaults.guidance ?? 7.5
        r.guidanceRescale = args.guidanceRescale ?? defaults.guidanceRescale ?? 0
        r.sampler = sampler
        r.seed = args.seed
        r.rng = RNGKind(rawValue: args.rng) ?? .torch
        r.width = args.width
        r.height = args.height
        r.batch = args.batch
        r.tileVAE = args.tileVae
        r.vaeTiling = args.vaeTiling
        try prepare(&r)
        let start = Date()
        let images = try pipeline.generate(r) { i, n in
            progress.report(step: i, total: n, elapsed: Date().timeIntervalSince(start),
                            detail: prompts.count > 1 ? "prompt \(pi + 1)/\(prompts.count)" : "", final: i == n)
        }
        let size = "\(images.shape[3])x\(images.shape[2])"
        let samplerLabel = sampler?.displayName ?? pipeline.folderSamplerLabel
        for i in 0..<args.batch {
            var settings: [(String, String)] = [("Steps", "\(r.steps)"), ("Sampler", samplerLabel),
                                                ("CFG scale", String(format: "%g", r.guidance)), ("Seed", "\(r.seed)"),
                                                ("Size", size), ("Model", pipeline.modelName),
                                                ("RNG", r.rng.rawValue)]
            if args.batch > 1 { settings += [("Batch size", "\(args.batch)"), ("Batch pos", "\(i)")] }
            if r.guidanceRescale > 0 { settings.append(("Guidance rescale", String(format: "%g", r.guidanceRescale))) }
            if r.clipSkip > 1 { settings.append(("Clip skip", "\(r.clipSkip)")) }
            if args.plainPrompt { settings.append(("Prompt syntax", "plain")) }
            if !commandLoRAs.isEmpty {
                settings.append(("LoRA", commandLoRAs.map { URL(fileURLWithPath: $0.0).deletingPathExtension().lastPathComponent + ":" + String(format: "%g", $0.1) }
                    .joined(separator: ", ")))
            }
            let used = pipeline.embeddingsUsed(in: text, style: style) + pipeline.embeddingsUsed(in: r.negativePrompt, style: style)
            var tiHashes: [String] = []
            for e in used where !tiHashes.contains(where: { $0.hasPrefix(networkLabel(e.name) + ": ") }) {
                if let hash = try? SHA256.networkShortHash(e.path, skipSafeTensorsHeader: false) { tiHashes.append(networkLabel(e.name) + ": " + hash) }
            }
            if !tiHashes.isEmpty { settings.append(("TI hashes", tiHashes.joined(separator: ", "))) }
            if !loraHashes.isEmpty { settings.append(("Lora hashes", loraHashes.joined(separator: ", "))) }
            settings += extraSettings
            var png = try finish(images, i)
            png.texts = [PNGTextChunk(keyword: "parameters",
                                      text: GenerationParameters(prompt: prompt, negativePrompt: r.negativePrompt, settings: settings).text)]
            let path = outputPath(args.output, index: written, total: total)
            try png.write(to: path)
            progress.note("wrote \(path)")
            written += 1
        }
    }
}

/// `out.png` for one image; `out-1.png`, `out-2.png`, … for several.
func outputPath(_ base: String, index: Int, total: Int) -> String {
    guard total > 1 else { return base }
    let url = URL(fileURLWithPath: base)
    let stem = url.deletingPathExtension().lastPathComponent
    return url.deletingLastPathComponent().appendingPathComponent("\(stem)-\(index + 1).png").path
}

/// Image i of [B, 3, H, W] in [0, 1] as 8-bit RGB: round(255 x), ties to even (numpy's rounding).
func pngImage(_ images: Tensor, index i: Int) -> PNGImage {
    let h = images.shape[2], w = images.shape[3], plane = h * w
    var pixels = [UInt8](repeating: 0, count: plane * 3)
    let base = images.data + i * 3 * plane
    for p in 0..<plane { for c in 0..<3 {
        pixels[p * 3 + c] = UInt8((base[c * plane + p] * 255).rounded(.toNearestOrEven))
    } }
    return PNGImage(width: w, height: h, channels: 3, pixels: pixels)
}

/// `PATH[:WEIGHT]` of --lora (the weight after the last colon when it parses as a number).
func parseLoRASpec(_ spec: String) throws -> (String, Float) {
    if let colon = spec.lastIndex(of: ":"), let w = Float(spec[spec.index(after: colon)...]) {
        return (String(spec[..<colon]), w)
    }
    guard !spec.isEmpty else { throw ValidationError("--lora needs a file") }
    return (spec, 1)
}

/// The prompt without its `<lora:NAME:WEIGHT>` tags (A1111's extra-network syntax; weight default 1),
/// and the tags.
func extractLoRATags(_ prompt: String) -> (String, [(name: String, weight: Float)]) {
    var text = "", tags: [(name: String, weight: Float)] = []
    var rest = Substring(prompt)
    while let open = rest.range(of: "<lora:") {
        guard let close = rest[open.upperBound...].firstIndex(of: ">") else { break }
        text += rest[..<open.lowerBound]
        let fields = rest[open.upperBound..<close].split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let weight = fields.count > 1 ? Float(fields[1]) ?? 1 : 1
        tags.append((fields[0], weight))
        rest = rest[rest.index(after: close)...]
    }
    return (text + rest, tags)
}

/// Finds and caches LoRA files: by path, or by tag name in the LoRA folder.
final class LoRAResolver {
    let pipeline: StableDiffusionPipeline
    let folder: URL
    private var cache: [String: LoRAFile] = [:]
    init(pipeline: StableDiffusionPipeline, modelPath: URL, folder: String?) {
        self.pipeline = pipeline
        var isDirectory: ObjCBool = false
        FileManager.default.fileExists(atPath: modelPath.path, isDirectory: &isDirectory)
        let beside = isDirectory.boolValue ? modelPath.appendingPathComponent("loras") : modelPath.deletingLastPathComponent().appendingPathComponent("loras")
        self.folder = folder.map { URL(fileURLWithPath: $0) } ?? beside
    }
    func path(named name: String) throws -> String {
        for ext in ["safetensors", "pt", "ckpt"] {
            let p = folder.appendingPathComponent(name + "." + ext).path
            if FileManager.default.fileExists(atPath: p) { return p }
        }
        throw ValidationError("<lora:\(name)>: no \(name).safetensors in \(folder.path) (set --lora-dir)")
    }
    /// A1111's short hash of the file (cached).
    func shortHash(_ path: String) throws -> String {
        if let h = hashes[path] { return h }
        let h = try SHA256.networkShortHash(path, skipSafeTensorsHeader: path.lowercased().hasSuffix(".safetensors"))
        hashes[path] = h
        return h
    }
    private var hashes: [String: String] = [:]
    func file(_ path: String) throws -> LoRAFile {
        if let f = cache[path] { return f }
        guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("no LoRA file at \(path)") }
        let f = try LoRAFile(path: path, unet: pipeline.unet, textEncoder: pipeline.textEncoder, unetConfig: pipeline.unet.config)
        cache[path] = f
        return f
    }
}

/// A network's name as A1111 writes it in "Lora hashes" / "TI hashes": without `:` and `,`.
func networkLabel(_ name: String) -> String { name.filter { $0 != ":" && $0 != "," } }

/// The embeddings for a run: every --embedding (an error stops the run), then the files in
/// --embeddings-dir or embeddings/ beside the model (files for other model families are skipped
/// with a notice, as A1111 skips them). The first of two with one name wins.
func loadEmbeddings(_ args: GenerateArguments, pipeline: StableDiffusionPipeline, modelPath: URL,
                    note: (String) -> Void) throws -> [TextualInversion] {
    let width = pipeline.textEncoder.config.hiddenSize
    var list: [TextualInversion] = []
    func add(_ e: TextualInversion) {
        if list.contains(where: { $0.name == e.name }) {
            note("embedding \(e.name) from \(e.path) is ignored: an embedding of that name is already loaded")
        } else {
            list.append(e)
        }
    }
    for path in args.embedding {
        guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("no embedding file at \(path)") }
        let e = try TextualInversion(path: path)
        _ = try e.vectors(width: width)
        add(e)
    }
    var isDirectory: ObjCBool = false
    FileManager.default.fileExists(atPath: modelPath.path, isDirectory: &isDirectory)
    let beside = (isDirectory.boolValue ? modelPath : modelPath.deletingLastPathComponent()).appendingPathComponent("embeddings")
    let folder = args.embeddingsDir.map { URL(fileURLWithPath: $0) } ?? beside
    if let dir = args.embeddingsDir, !FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory) || !isDirectory.boolValue {
        throw ValidationError("--embeddings-dir \(dir) is not a folder")
    }
    let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted()
        .filter { ["pt", "safetensors", "bin"].contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) }
    var skipped: [String] = []
    for file in files {
        let path = folder.appendingPathComponent(file).path
        do {
            let e = try TextualInversion(path: path)
            _ = try e.vectors(width: width)
            add(e)
        } catch {
            skipped.append(file)
            note("embedding \(file) skipped: \(error)")
        }
    }
    if !list.isEmpty { note("embeddings: " + list.map { "\($0.name) (\($0.vectorCount) vector\($0.vectorCount == 1 ? "" : "s"))" }.joined(separator: ", ")) }
    return list
}

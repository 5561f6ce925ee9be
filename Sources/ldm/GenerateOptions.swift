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
    @Option(help: "A diffusers model folder (default: the shipped model in Checkpoints/).")
    var model: String?

    /// The model folder: --model, else Checkpoints/ in the working folder or beside the repository the binary was built in.
    func folder() throws -> URL {
        let fm = FileManager.default
        if let model {
            guard fm.fileExists(atPath: model) else { throw ValidationError("no model folder at \(model)") }
            return URL(fileURLWithPath: model)
        }
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let candidates = [URL(fileURLWithPath: "Checkpoints"),
                          exe.deletingLastPathComponent().appendingPathComponent("../../../Checkpoints").standardized]
        for c in candidates where fm.fileExists(atPath: c.appendingPathComponent("model_index.json").path) { return c }
        throw ValidationError("no model in Checkpoints/ yet (train one with `make checkpoints`, or pass --model DIR)")
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
func runGeneration(pipelineFolder: URL, args: GenerateArguments, label: String,
                   prepare: (inout GenerationRequest) throws -> Void = { _ in },
                   extraSettings: [(String, String)] = [],
                   finish: (Tensor, Int) throws -> PNGImage = { images, i in pngImage(images, index: i) }) throws {
    let prompts = try args.promptList()
    let defaults = ModelDefaults.load(pipelineFolder)
    let progress = ProgressReporter(label: label)
    progress.note("loading \(pipelineFolder.path)")
    let pipeline = try StableDiffusionPipeline(folder: pipelineFolder)
    pipeline.warn = { progress.note("warning: " + $0) }
    let samplerName = args.sampler ?? defaults.sampler
    let sampler = samplerName.flatMap(SamplerName.init(rawValue:))
    let total = prompts.count * args.batch
    var written = 0
    for (pi, prompt) in prompts.enumerated() {
        var r = GenerationRequest(prompt: prompt)
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
                                                ("Size", size), ("Model", pipelineFolder.standardized.lastPathComponent),
                                                ("RNG", r.rng.rawValue)]
            if args.batch > 1 { settings += [("Batch size", "\(args.batch)"), ("Batch pos", "\(i)")] }
            if r.guidanceRescale > 0 { settings.append(("Guidance rescale", String(format: "%g", r.guidanceRescale))) }
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

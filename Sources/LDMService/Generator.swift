// The generation service under both faces (`ldm txt2img|img2img|inpaint` and `ldm serve`): a
// long-lived generator that keeps the last few models loaded, applies a request's LoRAs and
// embeddings, runs the pipeline with per-step progress and a stop check, pastes the unmasked part
// of an inpainting input back, and returns PNGs carrying A1111's `parameters` text.
//
// One request at a time: the generator is not thread-safe (a server queues requests in front of it).

import Foundation
import LDMCore
import LDMDiffusion
import LDMIO
import LDMModels

/// Defaults a model folder may carry in `ldm_defaults.json` (steps, guidance, guidance_rescale, sampler).
public struct ModelDefaults: Decodable, Sendable {
    public var steps: Int?
    public var guidance: Float?
    public var guidanceRescale: Float?
    public var sampler: String?
    enum CodingKeys: String, CodingKey { case steps, guidance, guidanceRescale = "guidance_rescale", sampler }
    public init() {}

    /// What a few-step model runs at when neither the user nor `ldm_defaults.json` says: an LCM
    /// U-Net 4 steps at guidance 8.5 (diffusers' LatentConsistencyModelPipeline defaults); a folder
    /// whose scheduler is Euler or Euler ancestral with "trailing" spacing (SD-Turbo, SDXL-Turbo,
    /// and the other adversarially distilled models) 1 step at guidance 0. Returns the note to say.
    public mutating func inferFewStep(_ pipeline: StableDiffusionPipeline) -> String? {
        guard steps == nil && guidance == nil else { return nil }
        if pipeline.unet.config.timeCondProjDim != nil {
            steps = 4; guidance = 8.5
            return "LCM U-Net: 4 steps at guidance 8.5 unless --steps/--guidance say otherwise"
        }
        let url = pipeline.folder.appendingPathComponent("scheduler/scheduler_config.json")
        guard let data = pipeline.schedulerConfigOverride ?? (try? Data(contentsOf: url)),
              let config = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let name = config["_class_name"] as? String,
              ["EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler"].contains(name),
              config["timestep_spacing"] as? String == "trailing",
              !(config["rescale_betas_zero_snr"] as? Bool ?? false) else { return nil }
        steps = 1; guidance = 0
        return "few-step model (\(name) with trailing timesteps): 1 step at guidance 0 unless --steps/--guidance say otherwise"
    }

    public static func load(_ folder: URL) -> ModelDefaults {
        guard let data = try? Data(contentsOf: folder.appendingPathComponent("ldm_defaults.json")),
              let d = try? JSONDecoder().decode(ModelDefaults.self, from: data) else { return ModelDefaults() }
        return d
    }
}

/// One generation: a prompt (which may carry `<lora:NAME:WEIGHT>` tags) and its settings. Unset
/// values take the model's defaults (`ldm_defaults.json`), then the pipeline's.
public struct GenerationJob {
    public var prompt: String
    /// nil: none given (SDXL models then use zero negative embeddings, others "").
    public var negativePrompt: String?
    public var sampler: SamplerName?
    public var steps: Int?
    /// A server's ceilings, applied to what the job resolves to, the model's defaults included
    /// (a request that names no size or steps must not exceed them either).
    public var ceilings: GenerationCeilings?
    public var guidance: Float?
    public var guidanceRescale: Float?
    public var seed: UInt64 = 0
    public var rng: RNGKind = .torch
    public var width: Int?
    public var height: Int?
    /// Images drawn together from one seed (diffusers' batch).
    public var batch = 1
    /// img2img / inpaint input.
    public var initImage: PNGImage?
    /// Inpaint: [1, 1, H, W], 1 = regenerate (the input's size).
    public var mask: Tensor?
    /// Inpaint: pixels over which the generated region fades into the kept one.
    public var feather = 4
    public var strength: Double = 1
    /// LoRA files with weights, besides the prompt's tags.
    public var loras: [(path: String, weight: Float)] = []
    public var clipSkip = 1
    public var promptStyle: PromptStyle = .a1111
    /// SDXL micro-conditioning (height, width) and crop corner (top, left); nil: the defaults.
    public var originalSize: (height: Int, width: Int)?
    public var cropTopLeft: (top: Int, left: Int)?
    public var targetSize: (height: Int, width: Int)?
    /// SDXL refiner-style models: aesthetic scores of the prompt and the negative prompt.
    public var aestheticScore: Float?
    public var negativeAestheticScore: Float?
    /// A refiner model (folder or file) taking over after `refinerSwitch` of the schedule.
    public var refiner: URL?
    public var refinerSwitch: Double = 0.8
    public var tileVAE = false
    public var vaeTiling = TiledDecoding()
    /// Settings added to the parameters text after the generator's own (e.g. "Denoising strength").
    public var extraSettings: [(String, String)] = []

    public init(prompt: String) { self.prompt = prompt }
}

/// One image with its parameters text (also in the PNG's `parameters` chunk).
public struct GeneratedImage {
    public var png: PNGImage
    public var parameters: String
    public var seed: UInt64
}

/// How a generator finds LoRAs and embeddings.
public struct NetworkSettings: Sendable {
    /// Where `<lora:NAME>` tags look (nil: `loras/` beside the model).
    public var loraFolder: URL?
    /// Embedding files every model gets.
    public var embeddingFiles: [String] = []
    /// An embeddings folder (nil: `embeddings/` beside the model).
    public var embeddingsFolder: URL?
    public init(loraFolder: URL? = nil, embeddingFiles: [String] = [], embeddingsFolder: URL? = nil) {
        self.loraFolder = loraFolder; self.embeddingFiles = embeddingFiles; self.embeddingsFolder = embeddingsFolder
    }
}

/// A model in memory, with what was found beside it.
public final class LoadedModel {
    public let path: URL
    public let pipeline: StableDiffusionPipeline
    public let defaults: ModelDefaults
    public let loras: LoRAResolver
    /// The latent → RGB map for step previews, fitted on first use.
    public lazy var preview: LatentPreview = LatentPreview.fit(pipeline.space)
    init(path: URL, pipeline: StableDiffusionPipeline, networks: NetworkSettings, note: (String) -> Void) throws {
        self.path = path
        self.pipeline = pipeline
        var defaults = ModelDefaults.load(path)
        if let inferred = defaults.inferFewStep(pipeline) { note(inferred) }
        self.defaults = defaults
        loras = LoRAResolver(pipeline: pipeline, folder: networks.loraFolder ?? folderBeside(model: path, "loras"))
        pipeline.embeddings = try loadEmbeddings(files: networks.embeddingFiles,
                                                 folder: networks.embeddingsFolder ?? folderBeside(model: path, "embeddings"),
                                                 width: pipeline.textEncoder.config.hiddenSize, note: note)
    }
}

/// Holds up to `capacity` models (least recently used dropped first) and runs jobs on them.
public final class Generator: @unchecked Sendable {
    public let loadOptions: ModelLoadOptions
    public let networks: NetworkSettings
    public let capacity: Int
    /// One-line notes (model loading, LoRAs applied, warnings).
    public var note: (String) -> Void
    private var models: [LoadedModel] = []

    public init(loadOptions: ModelLoadOptions = ModelLoadOptions(), networks: NetworkSettings = NetworkSettings(), capacity: Int = 2,
                note: @escaping (String) -> Void = { _ in }) {
        self.loadOptions = loadOptions
        self.networks = networks
        self.capacity = max(1, capacity)
        self.note = note
    }

    /// The model at `path`, loaded once and kept (most recently used last).
    public func model(_ path: URL) throws -> LoadedModel {
        let key = path.standardizedFileURL
        if let i = models.firstIndex(where: { $0.path.standardizedFileURL == key }) {
            let m = models.remove(at: i)
            models.append(m)
            return m
        }
        note("loading \(path.path)")
        let pipeline = try StableDiffusionPipeline.load(model: path.path, options: loadOptions, notice: note)
        pipeline.warn = { [weak self] in self?.note("warning: " + $0) }
        let m = try LoadedModel(path: path, pipeline: pipeline, networks: networks, note: note)
        if models.count >= capacity { models.removeFirst() }
        models.append(m)
        return m
    }

    /// A refiner for a run on `base`: a loaded model when it is in memory, else loaded and kept only
    /// when that does not drop `base` (with a capacity of 1 it lives for the run).
    func refinerModel(_ path: URL, keeping base: LoadedModel) throws -> LoadedModel {
        if let m = models.first(where: { $0.path.standardizedFileURL == path.standardizedFileURL }) { return m }
        if models.count < capacity { return try model(path) }
        note("loading refiner \(path.path)")
        let pipeline = try StableDiffusionPipeline.load(model: path.path, options: loadOptions, notice: note)
        pipeline.warn = { [weak self] in self?.note("warning: " + $0) }
        return try LoadedModel(path: path, pipeline: pipeline, networks: networks, note: note)
    }

    /// The paths of the models in memory, least recently used first.
    public var loadedPaths: [URL] { models.map(\.path) }

    /// Runs `job` on the model at `path`. `progress(step, steps)` after each step; `shouldStop()`
    /// after a step ends the run with what it has (A1111's interrupt). With `preview`, each step's
    /// latents are passed on with the model's preview map (see LatentPreview).
    public func generate(_ job: GenerationJob, model path: URL, progress: (Int, Int) -> Void = { _, _ in },
                         shouldStop: () -> Bool = { false },
                         preview: ((LatentPreview, Tensor) -> Void)? = nil) throws -> [GeneratedImage] {
        let m = try model(path)
        let pipeline = m.pipeline
        let width = job.width ?? job.initImage?.width ?? pipeline.defaultSize
        let height = job.height ?? job.initImage?.height ?? pipeline.defaultSize
        let steps = job.steps ?? m.defaults.steps ?? 20
        if let c = job.ceilings {
            guard width <= c.side, height <= c.side, width * height <= c.pixels else {
                throw GenerationError("\(width)×\(height) (the model's default size unless given) is more than this server allows "
                                      + "(\(c.pixels) pixels, \(c.side) a side): send a smaller width and height")
            }
            guard steps <= c.steps else {
                throw GenerationError("\(steps) steps (the model's default unless given) is more than this server's \(c.steps): send steps")
            }
        }
        try MemoryBudget.check(MemoryBudget.generationBytes(pipeline: pipeline, width: width, height: height, batch: job.batch,
                                                            tiledDecode: job.tileVAE),
                               what: "\(job.batch) image\(job.batch == 1 ? "" : "s") of \(width)×\(height)")
        let (text, tags) = extractLoRATags(job.prompt)
        let applied = LoRAApplication()
        defer { applied.restore() }
        var loraHashes: [String] = [], loraLabels: [String] = []
        let requested = job.loras.map { ($0.path, $0.weight, URL(fileURLWithPath: $0.path).deletingPathExtension().lastPathComponent, true) }
            + (try tags.map { (try m.loras.path(named: $0.name), $0.weight, $0.name, false) })
        for (path, weight, name, given) in requested {
            let file = try m.loras.file(path)
            try applied.apply(file, weight: weight, unet: pipeline.unet, textEncoder: pipeline.textEncoder,
                              textEncoder2: pipeline.textEncoder2)
            note("LoRA \(name) at \(String(format: "%g", weight)): \(file.summary)")
            if let hash = try? m.loras.shortHash(path) { loraHashes.append(networkLabel(name) + ": " + hash) }
            if given { loraLabels.append(name + ":" + String(format: "%g", weight)) }
        }
        var r = GenerationRequest(prompt: text)
        r.negativePrompt = job.negativePrompt
        r.steps = steps
        r.guidance = job.guidance ?? m.defaults.guidance ?? 7.5
        r.guidanceRescale = job.guidanceRescale ?? m.defaults.guidanceRescale ?? 0
        r.sampler = job.sampler ?? m.defaults.sampler.flatMap(SamplerName.init(rawValue:))
        r.seed = job.seed
        r.rng = job.rng
        r.width = job.width
        r.height = job.height
        r.batch = job.batch
        r.promptStyle = job.promptStyle
        r.clipSkip = job.clipSkip
        r.originalSize = job.originalSize
        if let crop = job.cropTopLeft { r.cropTopLeft = crop }
        r.targetSize = job.targetSize
        if let a = job.aestheticScore { r.aestheticScore = a }
        if let a = job.negativeAestheticScore { r.negativeAestheticScore = a }
        if let refinerPath = job.refiner {
            r.refiner = try refinerModel(refinerPath, keeping: m).pipeline
            r.refinerSwitch = job.refinerSwitch
        }
        r.tileVAE = job.tileVAE
        r.vaeTiling = job.vaeTiling
        if let image = job.initImage {
            r.initImage = imageTensor(image)
            r.strength = job.strength
            r.mask = job.mask
        }
        let map = preview == nil ? nil : m.preview
        let images = try pipeline.generate(r, progress: progress, shouldStop: shouldStop, onLatents: { _, latents in
            if let preview, let map { preview(map, latents) }
        })

        let size = "\(images.shape[3])x\(images.shape[2])"
        let samplerLabel = r.sampler?.displayName ?? pipeline.folderSamplerLabel
        let used = pipeline.embeddingsUsed(in: text, style: job.promptStyle) + pipeline.embeddingsUsed(in: r.negativePrompt ?? "", style: job.promptStyle)
        var tiHashes: [String] = []
        for e in used where !tiHashes.contains(where: { $0.hasPrefix(networkLabel(e.name) + ": ") }) {
            if let hash = try? SHA256.networkShortHash(e.path, skipSafeTensorsHeader: false) { tiHashes.append(networkLabel(e.name) + ": " + hash) }
        }
        var out: [GeneratedImage] = []
        for i in 0..<job.batch {
            var settings: [(String, String)] = [("Steps", "\(r.steps)"), ("Sampler", samplerLabel),
                                                ("CFG scale", String(format: "%g", r.guidance)), ("Seed", "\(r.seed)"),
                                                ("Size", size), ("Model", pipeline.modelName), ("RNG", r.rng.rawValue)]
            if job.batch > 1 { settings += [("Batch size", "\(job.batch)"), ("Batch pos", "\(i)")] }
            if r.guidanceRescale > 0 { settings.append(("Guidance rescale", String(format: "%g", r.guidanceRescale))) }
            if r.clipSkip > 1 { settings.append(("Clip skip", "\(r.clipSkip)")) }
            if let refiner = job.refiner {
                settings += [("Refiner", refiner.deletingPathExtension().lastPathComponent),
                             ("Refiner switch at", String(format: "%g", job.refinerSwitch))]
            }
            if job.promptStyle == .plain { settings.append(("Prompt syntax", "plain")) }
            if !loraLabels.isEmpty { settings.append(("LoRA", loraLabels.joined(separator: ", "))) }
            if !tiHashes.isEmpty { settings.append(("TI hashes", tiHashes.joined(separator: ", "))) }
            if !loraHashes.isEmpty { settings.append(("Lora hashes", loraHashes.joined(separator: ", "))) }
            settings += job.extraSettings
            var png = pngImage(images, index: i)
            if let original = job.initImage, let mask = job.mask {
                png = restoreUnmasked(generated: png, original: original, mask: mask, feather: job.feather)
            }
            let parameters = GenerationParameters(prompt: job.prompt, negativePrompt: r.negativePrompt ?? "", settings: settings).text
            png.texts = [PNGTextChunk(keyword: "parameters", text: parameters)]
            out.append(GeneratedImage(png: png, parameters: parameters, seed: r.seed))
        }
        return out
    }
}

// The Stable Diffusion pipelines: txt2img, img2img and inpainting (9-channel inpainting U-Nets, and
// ordinary 4-channel U-Nets by latent blending), following diffusers' StableDiffusionPipeline,
// StableDiffusionImg2ImgPipeline and StableDiffusionInpaintPipeline step for step — including the
// order of every random draw, so that `TorchRandomSource(seed)` reproduces a diffusers run with
// `generator=torch.manual_seed(seed)` on the CPU.
//
// A model folder without `vae/` is a pixel-space model (`ldm train unet --pixel`): the same loop
// runs on the image itself (`LatentSpace.pixels`: encoding and decoding are the identity, f = 1,
// 3 channels), and img2img and inpainting work the same way with no VAE draw.
//
// Classifier-free guidance (Ho & Salimans, 2022):  ε̂ = ε_u + g (ε_c − ε_u),
// optionally rescaled (Lin et al., 2023, §3.4):   ε̂ ← φ · ε̂ · std(ε_c)/std(ε̂) + (1 − φ) ε̂.

import Foundation
import LDMCore
import LDMIO
import LDMModels

/// Which random source draws the noise.
public enum RNGKind: String, CaseIterable, Sendable {
    /// Bit-exact `torch.randn` on the CPU: the same seed gives diffusers' image.
    case torch
    /// The native xoshiro256** source.
    case swift
}

/// Everything that determines one generation.
public struct GenerationRequest: Sendable {
    /// The text to draw.
    public var prompt: String
    /// What to steer away from; nil when none was given — plain unconditional guidance from "",
    /// except on SDXL models with `force_zeros_for_empty_prompt`, where it means zero embeddings.
    public var negativePrompt: String?
    /// Denoising steps.
    public var steps: Int = 20
    /// Classifier-free guidance scale (≤ 1 turns guidance off).
    public var guidance: Float = 7.5
    /// Guidance rescale φ (0 = off).
    public var guidanceRescale: Float = 0
    /// The sampler; nil uses the model folder's own scheduler.
    public var sampler: SamplerName?
    /// Seed of the random source.
    public var seed: UInt64 = 0
    /// Which random source.
    public var rng: RNGKind = .torch
    /// Output size in pixels (multiples of 8); nil takes the U-Net's sample size × the VAE factor.
    public var width: Int?
    public var height: Int?
    /// Images generated for the prompt.
    public var batch: Int = 1
    /// img2img / inpaint: the starting image [1, 3, H, W] in [-1, 1].
    public var initImage: Tensor?
    /// img2img / inpaint: how much to change, in (0, 1].
    public var strength: Double = 1
    /// inpaint: [1, 1, H, W], 1 where the image is regenerated.
    public var mask: Tensor?
    /// Whether the VAE decodes in tiles (`AutoencoderKL.decodeTiled`: flat peak memory, but with
    /// its default single statistics pass the whole image shifts slightly from an untiled decode —
    /// see TiledDecoding — so it is asked for, never chosen automatically).
    public var tileVAE = false
    /// How the VAE tiles, when it does.
    public var vaeTiling = TiledDecoding()
    /// How prompts are read: A1111's syntax (default) or literally.
    public var promptStyle: PromptStyle = .a1111
    /// A1111's clip skip: 1 = the text encoder's last layer, 2 = the one before, …
    public var clipSkip = 1
    /// SDXL micro-conditioning (height, width): the original size (default: the output size),
    /// the crop's top-left corner (default (0, 0)) and the target size (default: the output size).
    public var originalSize: (height: Int, width: Int)?
    public var cropTopLeft: (top: Int, left: Int) = (0, 0)
    public var targetSize: (height: Int, width: Int)?
    /// SDXL refiner-style U-Nets (5 time ids): the aesthetic scores of the prompt and the negative.
    public var aestheticScore: Float = 6
    public var negativeAestheticScore: Float = 2.5
    /// A second model that takes over after `refinerSwitch` of the schedule (diffusers'
    /// `denoising_end` on this model and `denoising_start` on the refiner).
    public var refiner: StableDiffusionPipeline?
    public var refinerSwitch: Double = 0.8

    public init(prompt: String) { self.prompt = prompt }
}

/// Errors a user can cause, one line each.
public enum PipelineError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    public var description: String { switch self { case let .invalid(m): return m } }
}

/// A loaded diffusers model folder: tokenizer, text encoder, U-Net, VAE (none in pixel space) and
/// scheduler config. SDXL folders add a second tokenizer and text encoder; an SDXL refiner has only
/// the second, which is then `tokenizer`/`textEncoder` here.
public final class StableDiffusionPipeline {
    public let folder: URL
    public let tokenizer: CLIPTokenizer
    public let textEncoder: CLIPTextModel
    /// SDXL's second tokenizer (pads with "!") and text encoder (with projection).
    public private(set) var tokenizer2: CLIPTokenizer?
    public private(set) var textEncoder2: CLIPTextModel?
    /// SDXL: a missing negative prompt means zero negative embeddings (model_index.json's
    /// `force_zeros_for_empty_prompt`, true unless it says otherwise).
    public var forceZerosForEmptyPrompt = true
    public let unet: UNet2DConditionModel
    /// The VAE's latents, or the pixels when the folder has no `vae/`.
    public private(set) var space: LatentSpace
    /// The VAE; nil for a pixel-space model.
    public var vae: AutoencoderKL? { space.vae }
    /// The model's name for the `Model:` of the parameters text (the folder's or file's name).
    public lazy var modelName: String = folder.standardized.lastPathComponent
    /// Called with warnings such as a prompt cut to the tokenizer's length.
    public var warn: (String) -> Void = { FileHandle.standardError.write(("warning: " + $0 + "\n").data(using: .utf8)!) }

    /// Loads every component of the folder. Without `vae/` the model runs in pixel space; its U-Net
    /// must then take and give 3 channels (7 in, for an inpainting U-Net).
    public init(folder: URL) throws {
        self.folder = folder
        let fm = FileManager.default
        func isFolder(_ part: String) -> Bool {
            var isDir: ObjCBool = false
            return fm.fileExists(atPath: folder.appendingPathComponent(part).path, isDirectory: &isDir) && isDir.boolValue
        }
        for part in ["unet", "scheduler"] where !isFolder(part) {
            throw PipelineError.invalid("\(folder.path) is not a diffusers model folder: it has no \(part)/ folder")
        }
        let first = isFolder("text_encoder") ? "" : "_2"
        for part in ["tokenizer" + first, "text_encoder" + first] where !isFolder(part) {
            throw PipelineError.invalid("\(folder.path) is not a diffusers model folder: it has no \(part)/ folder")
        }
        let hasVAE = isFolder("vae")
        if !hasVAE && modelIndexListsVAE(folder) {
            throw PipelineError.invalid("\(folder.path) has no vae/ folder, but its model_index.json lists a vae")
        }
        func encoder(_ name: String) throws -> CLIPTextModel {
            let t = folder.appendingPathComponent(name)
            let model = try CLIPTextModel(config: loadConfig(CLIPTextConfig.self, from: t.appendingPathComponent("config.json")))
            try model.load(folder: t, component: name)
            return model
        }
        tokenizer = try CLIPTokenizer.load(folder: folder.appendingPathComponent("tokenizer" + first))
        textEncoder = try encoder("text_encoder" + first)
        if first.isEmpty && isFolder("text_encoder_2") {
            guard isFolder("tokenizer_2") else { throw PipelineError.invalid("\(folder.path) has text_encoder_2/ but no tokenizer_2/") }
            tokenizer2 = try CLIPTokenizer.load(folder: folder.appendingPathComponent("tokenizer_2"))
            textEncoder2 = try encoder("text_encoder_2")
        }
        forceZerosForEmptyPrompt = modelIndexFlag(folder, "force_zeros_for_empty_prompt") ?? true
        let u = folder.appendingPathComponent("unet")
        unet = try UNet2DConditionModel(config: loadConfig(UNetConfig.self, from: u.appendingPathComponent("config.json")))
        try unet.load(folder: u, component: "unet")
        space = hasVAE ? try LatentSpace(vaeFolder: folder.appendingPathComponent("vae")) : .pixels
        let c = unet.config
        if !hasVAE && !((c.inChannels == 3 || c.inChannels == 7) && c.outChannels == 3) {
            throw PipelineError.invalid("\(folder.path) has no vae/ folder, so it runs in pixel space, which needs a U-Net with 3 "
                + "input and output channels (this one has in_channels \(c.inChannels), out_channels \(c.outChannels))")
        }
        try checkConditioningWidths()
    }

    /// Throws unless the text encoders' widths fit the U-Net (the context width, and for SDXL the
    /// pooled width plus the time ids).
    func checkConditioningWidths() throws {
        let widths = textEncoders.map { $0.encoder.config.hiddenSize }
        let c = unet.config
        guard widths.reduce(0, +) == c.crossAttentionDim else {
            throw PipelineError.invalid("text encoder width \(widths.map(String.init).joined(separator: " + ")) does not match the U-Net's "
                + "cross_attention_dim \(c.crossAttentionDim)")
        }
        if c.takesTextTime {
            let last = textEncoders.last!.encoder
            guard last.textProjection != nil else {
                throw PipelineError.invalid("this U-Net takes a pooled text embedding (SDXL), but the last text encoder has no text_projection")
            }
            let rest = (c.projectionClassEmbeddingsInputDim ?? 0) - last.config.projectionDim
            guard let a = c.additionTimeEmbedDim, rest > 0, rest % a == 0, [5, 6].contains(rest / a) else {
                throw PipelineError.invalid("the U-Net's projection_class_embeddings_input_dim \(c.projectionClassEmbeddingsInputDim ?? 0) "
                    + "does not fit a pooled width of \(last.config.projectionDim) and 5 or 6 time ids of \(c.additionTimeEmbedDim ?? 0)")
            }
        }
    }

    /// Uses `replacement` (another AutoencoderKL, or a tiny autoencoder) in place of the model's VAE.
    public func replaceAutoencoder(_ replacement: LatentSpace) throws {
        guard !space.isPixelSpace else {
            throw PipelineError.invalid("this model works in pixel space (no vae/ folder): there is no VAE to replace")
        }
        guard replacement.channels == space.channels, replacement.downsamplingFactor == space.downsamplingFactor else {
            throw PipelineError.invalid("the replacement VAE has \(replacement.channels) latent channels and f = \(replacement.downsamplingFactor); "
                + "this model's has \(space.channels) and f = \(space.downsamplingFactor)")
        }
        space = replacement
    }

    /// SDXL: how many micro-conditioning ids the U-Net takes (6; 5 for refiner-style U-Nets, whose
    /// last id is the aesthetic score); 0 for other models.
    public var timeIdCount: Int {
        let c = unet.config
        guard c.takesTextTime, let a = c.additionTimeEmbedDim, let p = c.projectionClassEmbeddingsInputDim else { return 0 }
        return (p - textEncoders.last!.encoder.config.projectionDim) / a
    }

    /// Sets the second text encoder of an SDXL model loaded from a single file.
    public func setSecondTextEncoder(_ encoder: CLIPTextModel, tokenizer: CLIPTokenizer) throws {
        textEncoder2 = encoder
        tokenizer2 = tokenizer
        try checkConditioningWidths()
    }

    /// A pipeline from models already in memory; `folder` only supplies `scheduler/scheduler_config.json`.
    public init(folder: URL, tokenizer: CLIPTokenizer, textEncoder: CLIPTextModel, unet: UNet2DConditionModel, space: LatentSpace) {
        self.folder = folder
        self.tokenizer = tokenizer
        self.textEncoder = textEncoder
        self.unet = unet
        self.space = space
    }

    /// The scheduler config used instead of the folder's `scheduler/scheduler_config.json`
    /// (a single file's, with its prediction type set).
    public var schedulerConfigOverride: Data?

    /// The scheduler for `sampler` (nil: the folder's own class) configured from the folder.
    public func makeScheduler(_ sampler: SamplerName?) throws -> any Scheduler {
        if let schedulerConfigOverride { return try LDMDiffusion.makeScheduler(configJSON: schedulerConfigOverride, sampler: sampler) }
        return try LDMDiffusion.makeScheduler(folderConfig: folder.appendingPathComponent("scheduler/scheduler_config.json"), sampler: sampler)
    }

    /// Image pixels per latent pixel (1 in pixel space).
    public var vaeScaleFactor: Int { space.downsamplingFactor }

    /// The default output size: the U-Net's sample size in pixels.
    public var defaultSize: Int { unet.config.sampleSize * vaeScaleFactor }

    /// Textual-inversion embeddings, triggered by their names in prompts (see PromptEncoding).
    public var embeddings: [TextualInversion] = []

    /// Runs the pipeline; returns decoded images [B, 3, H, W] in [0, 1]. `progress(i, n)` after each
    /// step; when `shouldStop()` is true after a step, the loop ends there and the latents so far are
    /// decoded (A1111's interrupt: the job returns what it has). `onLatents(step, latents)` sees
    /// the latents after each step (for previews; it must not keep them without copying).
    public func generate(_ r: GenerationRequest, progress: (Int, Int) -> Void = { _, _ in },
                         shouldStop: () -> Bool = { false }, onLatents: (Int, Tensor) -> Void = { _, _ in }) throws -> Tensor {
        let f = vaeScaleFactor
        guard r.steps >= 1 else { throw PipelineError.invalid("steps must be at least 1 (got \(r.steps))") }
        guard r.batch >= 1 else { throw PipelineError.invalid("batch must be at least 1 (got \(r.batch))") }
        guard r.strength > 0 && r.strength <= 1 else { throw PipelineError.invalid("strength must be in (0, 1] (got \(r.strength))") }
        if let problem = r.vaeTiling.problem { throw PipelineError.invalid(problem) }
        if r.tileVAE && space.isPixelSpace {
            throw PipelineError.invalid("this model works in pixel space (no vae/ folder): there is no VAE decode to tile")
        }
        if r.tileVAE && space.tiny != nil {
            throw PipelineError.invalid("the tiny autoencoder decodes whole images; VAE tiling applies to AutoencoderKL")
        }
        var width = r.width ?? defaultSize, height = r.height ?? defaultSize
        if let img = r.initImage { width = img.shape[3]; height = img.shape[2] }
        guard width > 0, height > 0, width % 8 == 0, height % 8 == 0 else {
            throw PipelineError.invalid("width and height must be positive multiples of 8 (got \(width)×\(height))")
        }
        let lh = height / f, lw = width / f
        let levels = unet.downsamplingFactor
        guard lh % levels == 0, lw % levels == 0 else {
            throw PipelineError.invalid("this model needs width and height that are multiples of \(f * levels) pixels (got \(width)×\(height))")
        }
        if let m = r.mask, let img = r.initImage, m.shape[2] != img.shape[2] || m.shape[3] != img.shape[3] {
            throw PipelineError.invalid("the mask is \(m.shape[3])×\(m.shape[2]) but the image is \(img.shape[3])×\(img.shape[2])")
        }
        let inpainting = r.mask != nil
        let channels = unet.config.inChannels, latentChannels = space.channels
        if inpainting && r.initImage == nil { throw PipelineError.invalid("inpainting needs an image") }
        if channels == 2 * latentChannels + 1 && !inpainting {
            throw PipelineError.invalid("this is an inpainting model (\(channels) input channels): use ldm inpaint")
        }
        guard channels == latentChannels || (channels == 2 * latentChannels + 1 && inpainting) else {
            let fit = space.isPixelSpace ? "pixel space's 3 channels" : "the VAE's \(latentChannels) latent channels"
            throw PipelineError.invalid("U-Net in_channels \(channels) does not fit \(fit)")
        }

        var random: any RandomSource = r.rng == .torch ? TorchRandomSource(seed: r.seed) : SwiftRandomSource(seed: r.seed)
        var scheduler = try makeScheduler(r.sampler)
        try scheduler.setTimesteps(r.steps)
        if let refiner = r.refiner {
            guard r.refinerSwitch > 0 && r.refinerSwitch < 1 else {
                throw PipelineError.invalid("the refiner switch must be between 0 and 1 (got \(r.refinerSwitch))")
            }
            guard refiner.space.channels == space.channels, refiner.unet.config.inChannels == space.channels else {
                throw PipelineError.invalid("the refiner's latents (\(refiner.unet.config.inChannels) channels) do not fit this model's")
            }
        }

        // 1. Prompt conditioning, unconditional first (diffusers' order): [u × B, c × B].
        let b = r.batch
        let conditioning = try prepareConditioning(r, width: width, height: height)

        // 2. Timesteps (strength skips the first ones; a refiner takes over the last ones).
        var timesteps = scheduler.timesteps
        if r.initImage != nil && r.strength < 1 {
            let initT = min(Int(Double(r.steps) * r.strength), r.steps)
            let tStart = max(r.steps - initT, 0)
            guard initT >= 1 else {
                throw PipelineError.invalid("strength \(r.strength) with \(r.steps) steps leaves no denoising step; raise --strength or --steps")
            }
            timesteps = Array(timesteps[(tStart * scheduler.order)...])
            scheduler.setBeginIndex(tStart * scheduler.order)
        }
        if r.refiner != nil {
            // diffusers' denoising_end: keep the timesteps at or above T − switch · T.
            let cutoff = Float((Double(scheduler.numTrainTimesteps) * (1 - r.refinerSwitch)).rounded())
            timesteps = timesteps.filter { $0 >= cutoff }
        }

        // 3. Latents, and what inpainting needs, in diffusers' draw order.
        let shape = [b, latentChannels, lh, lw]
        var latents: Tensor
        var imageLatents: Tensor?, noise: Tensor?, maskLatent: Tensor?, maskedImageLatents: Tensor?
        if let image = r.initImage, let mask = r.mask {
            let strengthMax = r.strength >= 1
            if channels == latentChannels || !strengthMax { imageLatents = repeatBatch(encodeImage(image, &random), b) }
            noise = Tensor(shape: shape, random.normal(count: shape.reduce(1, *)))
            if strengthMax {
                latents = scale(noise!, scheduler.initNoiseSigma)
            } else {
                latents = scheduler.addNoise(original: imageLatents!, noise: noise!, timestep: timesteps[0])
            }
            let masked = multiply(image, map(mask) { $0 < 0.5 ? 1 : 0 })
            maskLatent = repeatBatch(nearestDownsample(mask, factor: f), b)
            maskedImageLatents = repeatBatch(encodeImage(masked, &random), b)
        } else if let image = r.initImage {
            let init_ = repeatBatch(encodeImage(image, &random), b)
            let n = Tensor(shape: shape, random.normal(count: shape.reduce(1, *)))
            latents = scheduler.addNoise(original: init_, noise: n, timestep: timesteps[0])
        } else {
            latents = scale(Tensor(shape: shape, random.normal(count: shape.reduce(1, *))), scheduler.initNoiseSigma)
        }
        let inpaint = maskLatent.map { mask in
            InpaintInputs(mask: mask, maskedImage: maskedImageLatents!, imageLatents: imageLatents, noise: noise)
        }

        // 4. The denoising loop (and the refiner's, from the latents reached).
        let total = timesteps.count + (try r.refiner.map { try $0.refinerTimesteps(r).count } ?? 0)
        var stopped = false
        latents = denoise(latents, timesteps: timesteps, scheduler: &scheduler, conditioning: conditioning, request: r,
                          inpaint: inpaint, random: &random, stepOffset: 0, total: total, progress: progress,
                          shouldStop: shouldStop, stopped: &stopped, onLatents: onLatents)
        if let refiner = r.refiner, !stopped {
            latents = try refiner.refine(latents, request: r, random: &random, stepOffset: timesteps.count, total: total,
                                         progress: progress, shouldStop: shouldStop, onLatents: onLatents)
            return refiner.decodeImages(latents, r)
        }
        return decodeImages(latents, r)
    }

    /// 5. Decode: x = D(z / s) (x = z in pixel space), then [-1, 1] → [0, 1]; in tiles when asked.
    func decodeImages(_ latents: Tensor, _ r: GenerationRequest) -> Tensor {
        let decoded = space.decode(latents, tiling: r.tileVAE ? r.vaeTiling : nil)
        return map(decoded) { min(max($0 * 0.5 + 0.5, 0), 1) }
    }

    /// The refiner's share of a run: its schedule of `r.steps` from `r.refinerSwitch` on
    /// (diffusers' `denoising_start`; for second-order samplers one more step when the count is odd).
    func refinerTimesteps(_ r: GenerationRequest) throws -> [Float] {
        var scheduler = try makeScheduler(r.sampler)
        try scheduler.setTimesteps(r.steps)
        return refinerSchedule(&scheduler, r)
    }

    func refinerSchedule(_ scheduler: inout any Scheduler, _ r: GenerationRequest) -> [Float] {
        let cutoff = Float((Double(scheduler.numTrainTimesteps) * (1 - r.refinerSwitch)).rounded())
        var n = scheduler.timesteps.filter { $0 < cutoff }.count
        if scheduler.order == 2 && n % 2 == 1 { n += 1 }
        let start = scheduler.timesteps.count - n
        scheduler.setBeginIndex(start)
        return Array(scheduler.timesteps[start...])
    }

    /// The refiner's pass: continues from `latents` (no noise added) with its own conditioning.
    func refine(_ latents: Tensor, request r: GenerationRequest, random: inout any RandomSource, stepOffset: Int, total: Int,
                progress: (Int, Int) -> Void, shouldStop: () -> Bool, onLatents: (Int, Tensor) -> Void) throws -> Tensor {
        var scheduler = try makeScheduler(r.sampler)
        try scheduler.setTimesteps(r.steps)
        let timesteps = refinerSchedule(&scheduler, r)
        let width = latents.shape[3] * vaeScaleFactor, height = latents.shape[2] * vaeScaleFactor
        var inner = r
        inner.refiner = nil
        let conditioning = try prepareConditioning(inner, width: width, height: height)
        var stopped = false
        return denoise(latents, timesteps: timesteps, scheduler: &scheduler, conditioning: conditioning, request: inner,
                       inpaint: nil, random: &random, stepOffset: stepOffset, total: total, progress: progress,
                       shouldStop: shouldStop, stopped: &stopped, onLatents: onLatents)
    }

    /// What the U-Net is conditioned on during a run.
    struct RunConditioning {
        /// The context of the whole guidance batch, or (when the prompt and negative differ in chunk
        /// count) one per half.
        var context: Tensor?
        var contexts: [Tensor]
        var added: UNetAddedConditions
        var guided: Bool
    }

    /// The prompt, negative prompt and (SDXL, LCM) added conditions of a run.
    func prepareConditioning(_ r: GenerationRequest, width: Int, height: Int) throws -> RunConditioning {
        let lcm = unet.config.timeCondProjDim
        // An LCM U-Net has guidance built in: no guidance batch, no negative prompt.
        let guided = r.guidance > 1 && lcm == nil
        if lcm != nil, let negative = r.negativePrompt, !negative.isEmpty {
            warn("this LCM U-Net has guidance built in (no negative pass): the negative prompt is not used")
        }
        let b = r.batch
        let cond = try encodeConditioning(r.prompt, style: r.promptStyle, clipSkip: r.clipSkip)
        var uncond = cond
        if guided {
            if usesSDXLConditioning && r.negativePrompt == nil && forceZerosForEmptyPrompt {
                uncond = cond.zeros
            } else {
                uncond = try encodeConditioning(r.negativePrompt ?? "", style: r.promptStyle, clipSkip: r.clipSkip)
            }
        }
        // A prompt and negative prompt of different chunk counts cannot share a batch: then the U-Net
        // runs on each half with its own context (A1111's default; it pads only with `pad_cond_uncond`).
        let together = !guided || uncond.context.shape[1] == cond.context.shape[1]
        let halves = guided ? [uncond, cond] : [cond]
        var added = UNetAddedConditions()
        if usesSDXLConditioning {
            let original = r.originalSize ?? (height, width), target = r.targetSize ?? (height, width)
            func ids(aesthetic: Float) -> [Float] {
                let head = [original.height, original.width, r.cropTopLeft.top, r.cropTopLeft.left].map(Float.init)
                return head + (timeIdCount == 5 ? [aesthetic] : [Float(target.height), Float(target.width)])
            }
            let idRows = guided ? [ids(aesthetic: r.negativeAestheticScore), ids(aesthetic: r.aestheticScore)]
                                : [ids(aesthetic: r.aestheticScore)]
            added.timeIds = Tensor(shape: [idRows.count * b, timeIdCount], idRows.flatMap { row in (0..<b).flatMap { _ in row } })
            added.textEmbeds = concat(halves.map { repeatBatch($0.pooled!, b) }, dim: 0)
        }
        if let lcm {
            added.timestepCond = UNet2DConditionModel.guidanceEmbedding(Array(repeating: r.guidance - 1, count: b), dim: lcm)
        }
        if together {
            return RunConditioning(context: concat(halves.map { repeatBatch($0.context, b) }, dim: 0), contexts: [],
                                   added: added, guided: guided)
        }
        return RunConditioning(context: nil, contexts: halves.map { repeatBatch($0.context, b) }, added: added, guided: guided)
    }

    /// What inpainting adds to the loop.
    struct InpaintInputs {
        var mask: Tensor
        var maskedImage: Tensor
        /// 4-channel inpainting: the image's latents and the noise that re-noises them each step.
        var imageLatents: Tensor?
        var noise: Tensor?
    }

    /// The denoising loop over `timesteps`; sets `stopped` when `shouldStop()` ended it early.
    func denoise(_ start: Tensor, timesteps: [Float], scheduler: inout any Scheduler, conditioning c: RunConditioning,
                 request r: GenerationRequest, inpaint: InpaintInputs?, random: inout any RandomSource, stepOffset: Int,
                 total: Int, progress: (Int, Int) -> Void, shouldStop: () -> Bool, stopped: inout Bool,
                 onLatents: (Int, Tensor) -> Void) -> Tensor {
        var latents = start
        let b = latents.shape[0], guided = c.guided
        let channels = unet.config.inChannels, latentChannels = space.channels
        let maskIn = inpaint.map { guided ? concat([$0.mask, $0.mask], dim: 0) : $0.mask }
        let maskedIn = inpaint.map { guided ? concat([$0.maskedImage, $0.maskedImage], dim: 0) : $0.maskedImage }
        for (i, t) in timesteps.enumerated() {
            var x = guided ? concat([latents, latents], dim: 0) : latents
            x = scheduler.scaleModelInput(x, timestep: t)
            if channels == 2 * latentChannels + 1, let maskIn, let maskedIn { x = concat([x, maskIn, maskedIn], dim: 1) }
            let out: Tensor
            if let context = c.context {
                out = unet(x, timesteps: Array(repeating: t, count: x.shape[0]), context: context, added: c.added)
            } else {
                let halves = split(x, sizes: [b, b], dim: 0)
                out = concat(zip(halves, c.contexts).enumerated().map { k, pair in
                    unet(pair.0, timesteps: Array(repeating: t, count: b), context: pair.1, added: c.added.rows(k * b..<(k + 1) * b))
                }, dim: 0)
            }
            var eps = out
            if guided {
                let parts = split(out, sizes: [b, b], dim: 0)
                eps = zipMap(parts[0], parts[1]) { u, c in u + r.guidance * (c - u) }
                if r.guidanceRescale > 0 { eps = rescaleGuidance(eps, text: parts[1], phi: r.guidanceRescale) }
            }
            latents = scheduler.step(output: eps, timestep: t, sample: latents, random: &random)
            if channels == latentChannels, let inpaint, let imageLatents = inpaint.imageLatents, let noise = inpaint.noise {
                // 4-channel inpainting: keep the known region on the noise level of the next step.
                var proper = imageLatents
                if i < timesteps.count - 1 {
                    proper = scheduler.addNoise(original: imageLatents, noise: noise, timestep: timesteps[i + 1])
                }
                latents = blend(known: proper, generated: latents, mask: inpaint.mask)
            }
            onLatents(stepOffset + i + 1, latents)
            progress(stepOffset + i + 1, total)
            if stepOffset + i + 1 < total && shouldStop() { stopped = true; break }
        }
        return latents
    }

    /// A posterior sample of the VAE (one normal draw of the latent's shape), times the scaling
    /// factor; in pixel space the image itself.
    func encodeImage(_ image: Tensor, _ random: inout any RandomSource) -> Tensor { space.encode(image, &random) }
}

// A pipeline is used by one thread at a time (the generator queues requests in front of it); a
// request may carry a refiner pipeline across that queue.
extension StableDiffusionPipeline: @unchecked Sendable {}

/// Stacks `n` copies of a batch-1 tensor.
func repeatBatch(_ x: Tensor, _ n: Int) -> Tensor { n == 1 ? x : concat(Array(repeating: x, count: n), dim: 0) }

/// Nearest-neighbour downsampling by an integer factor: pixel [f·i, f·j] (torch's `interpolate`, mode nearest).
func nearestDownsample(_ x: Tensor, factor f: Int) -> Tensor {
    let n = x.shape[0], c = x.shape[1], h = x.shape[2] / f, w = x.shape[3] / f
    let y = Tensor(uninitialized: [n, c, h, w])
    for p in 0..<n * c { for i in 0..<h { for j in 0..<w {
        y.data[(p * h + i) * w + j] = x.data[(p * x.shape[2] + i * f) * x.shape[3] + j * f]
    } } }
    return y
}

/// (1 − m) · known + m · generated, with the mask [B, 1, h, w] broadcast over channels.
func blend(known: Tensor, generated: Tensor, mask: Tensor) -> Tensor {
    let b = known.shape[0], c = known.shape[1], hw = known.shape[2] * known.shape[3]
    let out = Tensor(uninitialized: known.shape)
    for i in 0..<b { for ch in 0..<c { for p in 0..<hw {
        let k = (i * c + ch) * hw + p, m = mask.data[i * hw + p]
        out.data[k] = (1 - m) * known.data[k] + m * generated.data[k]
    } } }
    return out
}

/// Guidance rescale: per sample, scale the guided prediction to the text prediction's standard
/// deviation (unbiased, over C·H·W), then mix with the unrescaled one by φ.
func rescaleGuidance(_ cfg: Tensor, text: Tensor, phi: Float) -> Tensor {
    let b = cfg.shape[0], per = cfg.count / b
    let out = Tensor(uninitialized: cfg.shape)
    func std(_ t: Tensor, _ i: Int) -> Double {
        var s = 0.0, ss = 0.0
        for j in 0..<per { let v = Double(t.data[i * per + j]); s += v; ss += v * v }
        let m = s / Double(per)
        return ((ss - Double(per) * m * m) / Double(per - 1)).squareRoot()
    }
    for i in 0..<b {
        let ratio = Float(std(text, i) / std(cfg, i))
        for j in 0..<per {
            let v = cfg.data[i * per + j]
            out.data[i * per + j] = phi * (v * ratio) + (1 - phi) * v
        }
    }
    return out
}

/// A boolean of `model_index.json` in `folder`, when present.
func modelIndexFlag(_ folder: URL, _ key: String) -> Bool? {
    guard let data = try? Data(contentsOf: folder.appendingPathComponent("model_index.json")),
          let index = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
    return index[key] as? Bool
}

/// Whether `model_index.json` in `folder` names a vae component (an entry other than [null, null]).
func modelIndexListsVAE(_ folder: URL) -> Bool {
    guard let data = try? Data(contentsOf: folder.appendingPathComponent("model_index.json")),
          let index = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
          let entry = index["vae"] as? [Any] else { return false }
    return entry.contains { !($0 is NSNull) }
}

extension StableDiffusionPipeline {
    /// The A1111 name of the folder's own scheduler (e.g. "DPM++ 2M Karras").
    public var folderSamplerLabel: String {
        let url = folder.appendingPathComponent("scheduler/scheduler_config.json")
        guard let data = schedulerConfigOverride ?? (try? Data(contentsOf: url)),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let cls = obj["_class_name"] as? String else { return "unknown" }
        let karras = obj["use_karras_sigmas"] as? Bool ?? false
        let names: [String: SamplerName] = [
            "DDPMScheduler": .ddpm, "DDIMScheduler": .ddim, "PNDMScheduler": .pndm, "LMSDiscreteScheduler": .lms,
            "EulerDiscreteScheduler": .euler, "EulerAncestralDiscreteScheduler": .eulerA, "HeunDiscreteScheduler": .heun,
            "DPMSolverMultistepScheduler": karras ? .dpmpp2mKarras : .dpmpp2m, "UniPCMultistepScheduler": .unipc,
            "LCMScheduler": .lcm,
        ]
        return names[cls]?.displayName ?? cls
    }
}

// A1111 request bodies → generation jobs. Field names, defaults and meanings follow A1111's
// `modules/api/models.py` (StableDiffusionTxt2ImgProcessingAPI / Img2ImgProcessingAPI) and
// `processing.py`; unknown fields are ignored, as clients send many. Where our models need other
// defaults than A1111's 512×512 / 50 steps / Euler, a field left out takes the model's own
// (ldm_defaults.json, the U-Net's sample size, its scheduler).

import Foundation
import LDMCore
import LDMDiffusion
import LDMIO
import LDMService

/// A client error: HTTP status, A1111's error name and a one-line reason.
struct APIError: Error, CustomStringConvertible {
    var status: Int
    var detail: String
    var kind = "HTTPException"
    var description: String { detail }
    static func unprocessable(_ detail: String) -> APIError { APIError(status: 422, detail: detail) }
}

/// Limits on what one request may ask for, checked before anything large is allocated.
public struct ServeLimits: Sendable {
    public var maxBodyBytes = 64 << 20
    public var maxPixels = 1024 * 1024
    public var maxSide = 2048
    public var maxSteps = 150
    public var maxImages = 16
    public var maxPromptCharacters = 20_000
    public init() {}
}

/// A JSON object with typed, forgiving reads (numbers given as strings are not accepted; null = absent).
struct JSONFields {
    let object: [String: Any]

    init(_ data: Data) throws {
        guard !data.isEmpty else { self.object = [:]; return }
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            throw APIError.unprocessable("the request body is not valid JSON")
        }
        guard let object = parsed as? [String: Any] else { throw APIError.unprocessable("the request body must be a JSON object") }
        self.object = object
    }

    init(object: [String: Any]) { self.object = object }

    private func value(_ key: String) -> Any? {
        guard let v = object[key], !(v is NSNull) else { return nil }
        return v
    }

    func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v as? String else { throw APIError.unprocessable("\(key) must be a string") }
        return s
    }

    func int(_ key: String) throws -> Int? {
        guard let v = value(key) else { return nil }
        guard let n = v as? NSNumber, n.doubleValue.isFinite,
              n.doubleValue == n.doubleValue.rounded(), abs(n.doubleValue) < 1e15 else {
            throw APIError.unprocessable("\(key) must be an integer")
        }
        return n.intValue
    }

    func double(_ key: String) throws -> Double? {
        guard let v = value(key) else { return nil }
        guard let n = v as? NSNumber, n.doubleValue.isFinite else { throw APIError.unprocessable("\(key) must be a number") }
        return n.doubleValue
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        if let b = v as? Bool { return b }
        if let n = v as? NSNumber { return n.intValue != 0 }
        throw APIError.unprocessable("\(key) must be true or false")
    }

    func strings(_ key: String) throws -> [String]? {
        guard let v = value(key) else { return nil }
        guard let list = v as? [Any] else { throw APIError.unprocessable("\(key) must be a list of strings") }
        return try list.map { item in
            guard let s = item as? String else { throw APIError.unprocessable("\(key) must be a list of strings") }
            return s
        }
    }

    func objectField(_ key: String) throws -> JSONFields? {
        guard let v = value(key) else { return nil }
        guard let o = v as? [String: Any] else { throw APIError.unprocessable("\(key) must be an object") }
        return JSONFields(object: o)
    }
}

/// A1111's sampler names (and ours) → our samplers. "Automatic" schedules are the sampler's own.
enum SamplerNames {
    static let all: [(name: String, sampler: SamplerName, aliases: [String])] = [
        ("Euler a", .eulerA, ["k_euler_a", "k_euler_ancestral"]),
        ("Euler", .euler, ["k_euler"]),
        ("LMS", .lms, ["k_lms"]),
        ("Heun", .heun, ["k_heun"]),
        ("DPM++ 2M", .dpmpp2m, ["k_dpmpp_2m"]),
        ("DPM++ 2M Karras", .dpmpp2mKarras, ["k_dpmpp_2m_ka"]),
        ("DDIM", .ddim, ["ddim"]),
        ("PLMS", .pndm, ["plms", "PNDM"]),
        ("UniPC", .unipc, ["unipc"]),
        ("DDPM", .ddpm, ["ddpm"]),
    ]

    /// The sampler for an A1111 name (with an optional scheduler: "Karras" turns DPM++ 2M into its
    /// Karras form; "Automatic" and "" keep the sampler's own).
    static func sampler(_ name: String, scheduler: String?) throws -> SamplerName {
        let lowered = name.lowercased()
        guard var entry = all.first(where: { $0.name.lowercased() == lowered || $0.aliases.contains { $0.lowercased() == lowered }
                                       || $0.sampler.rawValue == lowered }) else {
            throw APIError.unprocessable("Sampler not found: \(name)")
        }
        switch scheduler?.lowercased() {
        case nil, "", "automatic": break
        case "karras":
            guard entry.sampler == .dpmpp2m || entry.sampler == .dpmpp2mKarras else {
                throw APIError.unprocessable("the Karras schedule is available with DPM++ 2M only")
            }
            entry = all.first { $0.sampler == .dpmpp2mKarras }!
        case "uniform":
            if entry.sampler == .dpmpp2mKarras { entry = all.first { $0.sampler == .dpmpp2m }! }
        default:
            throw APIError.unprocessable("Scheduler not found: \(scheduler!) (available: Automatic, Uniform, Karras)")
        }
        return entry.sampler
    }
}

/// An image from a request: raw base64 or a `data:` URL; http(s) URLs are refused.
func decodeImage(_ text: String, field: String, limits: ServeLimits) throws -> PNGImage {
    var payload = Substring(text.trimmingCharacters(in: .whitespacesAndNewlines))
    if payload.hasPrefix("http://") || payload.hasPrefix("https://") {
        throw APIError.unprocessable("\(field): image URLs are not fetched; send the image as base64")
    }
    if payload.hasPrefix("data:") {
        guard let comma = payload.firstIndex(of: ",") else { throw APIError.unprocessable("\(field): a data: URL without data") }
        guard payload[..<comma].hasSuffix(";base64") else { throw APIError.unprocessable("\(field): only base64 data: URLs are read") }
        payload = payload[payload.index(after: comma)...]
    }
    guard let data = Data(base64Encoded: String(payload), options: .ignoreUnknownCharacters), !data.isEmpty else {
        throw APIError.unprocessable("\(field): not valid base64")
    }
    let bytes = [UInt8](data)
    guard bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) else {
        throw APIError.unprocessable("\(field): only PNG images are read (this one is another format)")
    }
    let info: PNGInfo
    do { info = try PNGImage.info(data: bytes) } catch { throw APIError.unprocessable("\(field): a broken PNG (\(error))") }
    guard info.width <= limits.maxSide, info.height <= limits.maxSide, info.width * info.height <= 4 * limits.maxPixels else {
        throw APIError(status: 413, detail: "\(field): \(info.width)×\(info.height) is larger than this server takes")
    }
    do { return try PNGImage.decode(data: bytes) } catch { throw APIError.unprocessable("\(field): a broken PNG (\(error))") }
}

/// What a txt2img or img2img request asks for.
struct ParsedRequest {
    var job: GenerationJob
    var model: String?
    var seed: Int64
    var count: Int            // batch_size × n_iter
    var batchSize: Int
    var iterations: Int
    var samplerLabel: String?
    var kind: String          // txt2img, img2img, inpaint
    var denoisingStrength: Double?
    var echo: [String: Any]   // the request's own fields, echoed as `parameters`
    /// "Inpaint only masked": the region worked on at the request's size, the full input and mask.
    var onlyMasked: (region: PixelRegion, original: PNGImage, mask: Tensor, feather: Int)?
    /// Hires fix: the second pass, an img2img of the first image enlarged to this size.
    var hires: (width: Int, height: Int, steps: Int?, strength: Double, upscaler: String)?
}

/// A1111's upscaler names for the hires fix. Every one enlarges the decoded image (bilinear, area
/// averaged) and runs the second pass on it; the "Latent" ones do not work on the latents here.
let hiresUpscalers = ["Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)", "Latent (nearest)",
                      "Latent (nearest-exact)", "None", "Lanczos", "Nearest"]

func parseGenerationRequest(_ f: JSONFields, img2img: Bool, limits: ServeLimits) throws -> ParsedRequest {
    let prompt = try f.string("prompt") ?? ""
    let negative = try f.string("negative_prompt") ?? ""
    let styles = try f.strings("styles") ?? []
    guard prompt.count + negative.count <= limits.maxPromptCharacters else {
        throw APIError(status: 413, detail: "the prompt is longer than \(limits.maxPromptCharacters) characters")
    }
    if !styles.isEmpty { throw APIError.unprocessable("styles are not supported (send the text in the prompt)") }
    var job = GenerationJob(prompt: prompt)
    job.negativePrompt = negative
    job.ceilings = GenerationCeilings(pixels: limits.maxPixels, side: limits.maxSide, steps: limits.maxSteps)
    let samplerName = try f.string("sampler_name") ?? f.string("sampler_index")
    if let samplerName, !samplerName.isEmpty { job.sampler = try SamplerNames.sampler(samplerName, scheduler: try f.string("scheduler")) }
    if let steps = try f.int("steps") {
        guard (1...limits.maxSteps).contains(steps) else { throw APIError.unprocessable("steps must be between 1 and \(limits.maxSteps) (got \(steps))") }
        job.steps = steps
    }
    if let cfg = try f.double("cfg_scale") {
        guard cfg >= 0 && cfg <= 100 else { throw APIError.unprocessable("cfg_scale must be between 0 and 100") }
        job.guidance = Float(cfg)
    }
    let width = try f.int("width"), height = try f.int("height")
    for (name, v) in [("width", width), ("height", height)] {
        if let v, v < 8 || v > limits.maxSide || v % 8 != 0 {
            throw APIError.unprocessable("\(name) must be a multiple of 8 from 8 to \(limits.maxSide) (got \(v))")
        }
    }
    if let width, let height, width * height > limits.maxPixels {
        throw APIError(status: 413, detail: "\(width)×\(height) is more than this server's \(limits.maxPixels) pixels per image")
    }
    job.width = width
    job.height = height
    let batchSize = try f.int("batch_size") ?? 1, iterations = try f.int("n_iter") ?? 1
    guard batchSize >= 1, iterations >= 1, batchSize * iterations <= limits.maxImages else {
        throw APIError.unprocessable("batch_size × n_iter must be between 1 and \(limits.maxImages) (got \(batchSize) × \(iterations))")
    }
    if let clipSkip = try f.int("clip_skip") { job.clipSkip = max(1, clipSkip) }
    var seed = Int64(try f.int("seed") ?? -1)
    if seed < 0 { seed = Int64(UInt32.random(in: 0...UInt32.max)) }
    if try f.bool("restore_faces") == true { throw APIError.unprocessable("restore_faces is not supported") }
    if let subseed = try f.double("subseed_strength"), subseed != 0 { throw APIError.unprocessable("subseed_strength is not supported") }
    var model: String?
    if let overrides = try f.objectField("override_settings") {
        model = try overrides.string("sd_model_checkpoint")
        if let clipSkip = try overrides.int("CLIP_stop_at_last_layers") { job.clipSkip = max(1, clipSkip) }
    }
    var kind = "txt2img"
    var strength: Double?
    var onlyMasked: (region: PixelRegion, original: PNGImage, mask: Tensor, feather: Int)?
    if img2img {
        guard let images = try f.strings("init_images"), let first = images.first else {
            throw APIError.unprocessable("init_images must hold one image")
        }
        var image = try decodeImage(first, field: "init_images[0]", limits: limits)
        let w = width ?? image.width / 8 * 8, h = height ?? image.height / 8 * 8
        guard w >= 8, h >= 8, w * h <= limits.maxPixels else {
            throw APIError(status: 413, detail: "\(w)×\(h) is more than this server's \(limits.maxPixels) pixels per image")
        }
        let mode = ResizeMode(rawValue: try f.int("resize_mode") ?? 0) ?? .resize
        job.width = w; job.height = h
        let s = try f.double("denoising_strength") ?? 0.75
        guard s > 0 && s <= 1 else { throw APIError.unprocessable("denoising_strength must be in (0, 1] (got \(s))") }
        job.strength = s
        strength = s
        kind = "img2img"
        var settings = [("Denoising strength", String(format: "%g", s))]
        if let maskText = try f.string("mask"), !maskText.isEmpty {
            let maskPicture = try decodeImage(maskText, field: "mask", limits: limits)
            guard maskPicture.width == image.width, maskPicture.height == image.height else {
                throw APIError.unprocessable("the mask is \(maskPicture.width)×\(maskPicture.height) but the image is \(image.width)×\(image.height)")
            }
            let invert = (try f.int("inpainting_mask_invert") ?? 0) != 0
            var mask = maskTensor(maskPicture, invert: invert)
            let fill = try f.int("inpainting_fill") ?? 0
            guard (0...3).contains(fill) else { throw APIError.unprocessable("inpainting_fill must be 0, 1, 2 or 3") }
            let blur = try f.int("mask_blur") ?? 4
            guard (0...64).contains(blur) else { throw APIError.unprocessable("mask_blur must be between 0 and 64") }
            let padding = try f.int("inpaint_full_res_padding") ?? 0
            guard (0...1024).contains(padding) else { throw APIError.unprocessable("inpaint_full_res_padding must be between 0 and 1024") }
            // A1111's API default is "only masked": the masked region, padded, at the request's size.
            if try f.bool("inpaint_full_res") ?? true, let region = inpaintRegion(mask: mask, padding: padding, width: w, height: h) {
                onlyMasked = (region, image, mask, blur)
                image = resizedImage(cropped(image, region), width: w, height: h)
                mask = maskTensor(resizedImage(cropped(maskImage(mask), region), width: w, height: h))
                settings.append(("Masked area padding", "\(padding)"))
            } else {
                image = resizedImage(image, width: w, height: h, mode: mode)
                mask = maskTensor(resizedImage(maskImage(mask), width: w, height: h, mode: mode))
            }
            if fill == 0 { image = filledMaskedArea(image, mask: mask) }
            job.mask = mask
            job.feather = blur
            kind = "inpaint"
            settings += [("Mask blur", "\(blur)")]
        } else {
            image = resizedImage(image, width: w, height: h, mode: mode)
        }
        job.initImage = image
        job.extraSettings = settings
    }
    var hires: (width: Int, height: Int, steps: Int?, strength: Double, upscaler: String)?
    if !img2img, try f.bool("enable_hr") == true {
        let upscaler = try f.string("hr_upscaler") ?? "Latent"
        guard hiresUpscalers.contains(upscaler) else {
            throw APIError.unprocessable("hr_upscaler \(upscaler) is not available (GET /sdapi/v1/upscalers and latent-upscale-modes)")
        }
        guard let w = width, let h = height else { throw APIError.unprocessable("enable_hr needs width and height") }
        let scale = try f.double("hr_scale") ?? 2
        guard scale >= 1 && scale <= 4 else { throw APIError.unprocessable("hr_scale must be between 1 and 4") }
        var tw = try f.int("hr_resize_x") ?? 0, th = try f.int("hr_resize_y") ?? 0
        if tw == 0 && th == 0 { tw = Int(Double(w) * scale); th = Int(Double(h) * scale) }
        else if tw == 0 { tw = th * w / h } else if th == 0 { th = tw * h / w }
        tw = tw / 8 * 8; th = th / 8 * 8
        guard tw >= 8, th >= 8, tw <= limits.maxSide, th <= limits.maxSide, tw * th <= limits.maxPixels else {
            throw APIError(status: 413, detail: "the hires size \(tw)×\(th) is more than this server's \(limits.maxPixels) pixels per image")
        }
        let steps = try f.int("hr_second_pass_steps") ?? 0
        guard (0...limits.maxSteps).contains(steps) else { throw APIError.unprocessable("hr_second_pass_steps must be between 0 and \(limits.maxSteps)") }
        let s = try f.double("denoising_strength") ?? 0.75
        guard s > 0 && s <= 1 else { throw APIError.unprocessable("denoising_strength must be in (0, 1] (got \(s))") }
        hires = (tw, th, steps == 0 ? nil : steps, s, upscaler)
        strength = s
    }
    let echo = f.object.filter { !["init_images", "mask"].contains($0.key) }
    return ParsedRequest(job: job, model: model, seed: seed, count: batchSize * iterations, batchSize: batchSize,
                         iterations: iterations, samplerLabel: samplerName, kind: kind, denoisingStrength: strength, echo: echo,
                         onlyMasked: onlyMasked, hires: hires)
}

/// The request decoding of txt2img and img2img on raw bytes, for the fuzzing harness: every
/// outcome is a decoded request or an APIError (small limits keep each run cheap).
public func fuzzA1111Request(_ data: Data) {
    var limits = ServeLimits()
    limits.maxPixels = 64 * 64
    limits.maxSide = 256
    for img2img in [false, true] {
        _ = try? parseGenerationRequest(try JSONFields(data), img2img: img2img, limits: limits)
    }
}

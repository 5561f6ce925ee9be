// The routes: A1111's /sdapi/v1/… and ours (/, /ldm/history, /ldm/images/…).

import Foundation
import Hummingbird
import LDMCore
import LDMDiffusion
import LDMIO
import LDMModels
import LDMService
import NIOCore

/// Results carried from the job thread back to the HTTP side.
struct JobResult: @unchecked Sendable {
    var images: [GeneratedImage]
    var seeds: [Int64]
    var interrupted: Bool
    var model: ModelEntry
}

func addRoutes(_ router: Router<BasicRequestContext>, state: ServerState) {
    let limits = state.settings.limits
    @Sendable func body(_ request: Request) async throws -> Data {
        do {
            let buffer = try await request.body.collect(upTo: limits.maxBodyBytes)
            return Data(buffer.readableBytesView)
        } catch {
            throw APIError(status: 413, detail: "the request body is larger than \(limits.maxBodyBytes >> 20) MB")
        }
    }
    let api = router.group("sdapi/v1")

    for (path, img2img) in [("txt2img", false), ("img2img", true)] {
        api.post(RouterPath(stringLiteral: path)) { request, _ -> Response in
            let parsed = try parseGenerationRequest(try JSONFields(await body(request)), img2img: img2img, limits: limits)
            guard let entry = try parsed.model.map({ name -> ModelEntry in
                guard let e = state.settings.catalog.entry(named: name) else {
                    throw APIError.unprocessable("model \(name) is not one of this server's models (GET /sdapi/v1/sd-models)")
                }
                return e
            }) ?? state.current else { throw APIError.unprocessable("this server has no model") }
            let result: JobResult = try await state.runner.run { generator, reporter in
                reporter.begin(images: parsed.count)
                var images: [GeneratedImage] = [], seeds: [Int64] = []
                for k in 0..<parsed.count {
                    if reporter.interrupted { break }
                    reporter.beginImage(k)
                    var job = parsed.job
                    job.seed = UInt64(parsed.seed + Int64(k))
                    job.batch = 1
                    images += try generator.generate(job, model: entry.path, progress: { reporter.step($0, of: $1) },
                                                     shouldStop: { reporter.shouldStop },
                                                     preview: { map, latents in reporter.latents(latents, map: map) })
                    if let hr = parsed.hires, !reporter.interrupted, let first = images.popLast() {
                        // Hires fix: the first image enlarged, then redrawn at that size (same seed).
                        var second = parsed.job
                        second.seed = job.seed
                        second.batch = 1
                        second.width = hr.width
                        second.height = hr.height
                        second.steps = hr.steps ?? parsed.job.steps
                        second.initImage = resizedImage(first.png, width: hr.width, height: hr.height)
                        second.strength = hr.strength
                        second.extraSettings = [("Denoising strength", String(format: "%g", hr.strength)),
                                                ("Hires upscale", String(format: "%g", Double(hr.width) / Double(first.png.width))),
                                                ("Hires upscaler", hr.upscaler)]
                            + (hr.steps.map { [("Hires steps", "\($0)")] } ?? [])
                        reporter.beginImage(k)
                        images += try generator.generate(second, model: entry.path, progress: { reporter.step($0, of: $1) },
                                                         shouldStop: { reporter.shouldStop },
                                                         preview: { map, latents in reporter.latents(latents, map: map) })
                    }
                    if let full = parsed.onlyMasked, var last = images.popLast() {
                        // Back into the whole picture: the region's result pasted, unmasked pixels exact.
                        var png = restoreUnmasked(generated: pasted(last.png, into: full.original, at: full.region),
                                                  original: full.original, mask: full.mask, feather: full.feather)
                        png.texts = last.png.texts
                        last.png = png
                        images.append(last)
                    }
                    seeds.append(parsed.seed + Int64(k))
                    reporter.endImage()
                }
                return JobResult(images: images, seeds: seeds, interrupted: reporter.interrupted, model: entry)
            }
            do { try state.history.add(result, request: parsed) } catch { state.log("history: \(error)") }
            return jsonResponse(try generationResponse(result, parsed))
        }
    }

    api.post("png-info") { request, _ -> Response in
        let f = try JSONFields(await body(request))
        guard let text = try f.string("image"), !text.isEmpty else { throw APIError.unprocessable("image is required") }
        let png = try decodeImage(text, field: "image", limits: limits)
        let info = png.texts.text(forKeyword: "parameters") ?? ""
        var items: [String: Any] = [:]
        for chunk in png.texts where chunk.keyword != "parameters" { items[chunk.keyword] = chunk.text }
        return jsonResponse(["info": info, "items": items, "parameters": parseInfotext(info)])
    }
    api.post("interrupt") { _, _ -> Response in state.runner.interrupt(); return jsonResponse([String: Any]()) }
    api.post("skip") { _, _ -> Response in state.runner.skip(); return jsonResponse([String: Any]()) }

    api.get("options") { _, _ -> Response in jsonResponse(options(state)) }
    api.post("options") { request, _ -> Response in
        let f = try JSONFields(await body(request))
        if let name = try f.string("sd_model_checkpoint") { _ = try state.select(name) }
        return jsonResponse(NSNull())
    }
    api.get("sd-models") { _, _ -> Response in
        jsonResponse(state.settings.catalog.entries.map { e -> [String: Any] in
            ["title": e.title, "model_name": e.name, "hash": NSNull(), "sha256": NSNull(), "filename": e.path.path, "config": NSNull()]
        })
    }
    api.post("refresh-checkpoints") { _, _ -> Response in jsonResponse(NSNull()) }
    api.get("samplers") { _, _ -> Response in
        jsonResponse(SamplerNames.all.map { ["name": $0.name, "aliases": $0.aliases, "options": [String: String]()] as [String: Any] })
    }
    api.get("schedulers") { _, _ -> Response in
        jsonResponse([["name": "automatic", "label": "Automatic", "aliases": NSNull(), "default_rho": -1, "need_inner_model": false],
                      ["name": "uniform", "label": "Uniform", "aliases": NSNull(), "default_rho": -1, "need_inner_model": false],
                      ["name": "karras", "label": "Karras", "aliases": NSNull(), "default_rho": 7.0, "need_inner_model": false]])
    }
    api.get("upscalers") { _, _ -> Response in
        jsonResponse(["None", "Lanczos", "Nearest"].map { ["name": $0, "model_name": NSNull(), "model_path": NSNull(), "model_url": NSNull(), "scale": 4] as [String: Any] })
    }
    api.get("latent-upscale-modes") { _, _ -> Response in
        jsonResponse(hiresUpscalers.filter { $0.hasPrefix("Latent") }.map { ["name": $0] })
    }
    api.get("sd-vae") { _, _ -> Response in jsonResponse([Any]()) }
    api.get("hypernetworks") { _, _ -> Response in jsonResponse([Any]()) }
    api.get("face-restorers") { _, _ -> Response in jsonResponse([Any]()) }
    api.get("prompt-styles") { _, _ -> Response in jsonResponse([Any]()) }
    api.get("scripts") { _, _ -> Response in jsonResponse(["txt2img": [String](), "img2img": [String]()]) }
    api.get("loras") { _, _ -> Response in
        guard let model = state.current else { return jsonResponse([Any]()) }
        let folder = state.settings.networks.loraFolder ?? folderBeside(model: model.path, "loras")
        return jsonResponse(LoRAResolver.names(in: folder).map { ["name": $0.name, "alias": $0.name, "path": $0.path, "metadata": [String: String]()] as [String: Any] })
    }
    api.get("embeddings") { _, _ -> Response in
        var loaded: [String: Any] = [:]
        if let model = state.current {
            let folder = state.settings.networks.embeddingsFolder ?? folderBeside(model: model.path, "embeddings")
            let files = state.settings.networks.embeddingFiles
                + (((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted().map { folder.appendingPathComponent($0).path })
            for path in files { if let e = try? TextualInversion(path: path), loaded[e.name] == nil {
                loaded[e.name] = ["step": NSNull(), "sd_checkpoint": NSNull(), "sd_checkpoint_name": NSNull(), "shape": e.width, "vectors": e.vectorCount]
            } }
        }
        return jsonResponse(["loaded": loaded, "skipped": [String: Any]()])
    }
    api.get("progress") { request, _ -> Response in
        let skip = ["true", "1"].contains(request.uri.queryParameters.get("skip_current_image")?.lowercased() ?? "")
        return jsonResponse(progress(state, withImage: !skip))
    }
    api.get("cmd-flags") { _, _ -> Response in
        let s = state.settings
        return jsonResponse(["listen": s.listen, "port": s.port, "api": true, "api_auth": !s.users.isEmpty, "nowebui": false,
                             "data_dir": s.dataFolder.path, "cors_allow_origins": s.corsOrigins.joined(separator: ","),
                             "ckpt_dir": NSNull(), "lora_dir": s.networks.loraFolder?.path ?? NSNull(),
                             "embeddings_dir": s.networks.embeddingsFolder?.path ?? NSNull()] as [String: Any])
    }
    api.get("memory") { _, _ -> Response in jsonResponse(memory()) }

    router.get("/") { _, _ -> Response in bytesResponse(Array(WebPage.html.utf8), type: "text/html; charset=utf-8") }
    router.get("ldm/defaults") { _, _ -> Response in jsonResponse(state.current.map(modelDefaults) ?? [String: Any]()) }
    router.get("ldm/history") { request, _ -> Response in
        let limit = min(200, max(1, request.uri.queryParameters.get("limit").flatMap(Int.init) ?? 60))
        let before = request.uri.queryParameters.get("before").flatMap(Int.init)
        return jsonResponse(try state.history.page(limit: limit, before: before))
    }
    router.get("ldm/images/:name") { _, context -> Response in
        let name = context.parameters.get("name") ?? ""
        guard name.range(of: #"^[0-9]{6}(-[0-9]+)?\.png$"#, options: .regularExpression) != nil else {
            throw APIError(status: 404, detail: "Not Found")
        }
        guard let data = FileManager.default.contents(atPath: state.history.images.appendingPathComponent(name).path) else {
            throw APIError(status: 404, detail: "Not Found")
        }
        return bytesResponse([UInt8](data), type: "image/png")
    }
}

/// The txt2img / img2img response: images as base64 PNG, the request's fields, and `info` (a JSON string).
func generationResponse(_ r: JobResult, _ p: ParsedRequest) throws -> [String: Any] {
    let images = try r.images.map { Data(try $0.png.encode()).base64EncodedString() }
    let infotexts = r.images.map(\.parameters)
    let first = r.images.first
    let width = first?.png.width ?? p.job.width ?? 0, height = first?.png.height ?? p.job.height ?? 0
    var info: [String: Any] = [
        "prompt": p.job.prompt, "all_prompts": Array(repeating: p.job.prompt, count: r.images.count),
        "negative_prompt": p.job.negativePrompt ?? "", "all_negative_prompts": Array(repeating: p.job.negativePrompt ?? "", count: r.images.count),
        "seed": p.seed, "all_seeds": r.seeds, "subseed": -1, "all_subseeds": r.seeds.map { _ in -1 }, "subseed_strength": 0,
        "width": width, "height": height, "sampler_name": infotextValue(first?.parameters, "Sampler") ?? p.samplerLabel ?? NSNull(),
        "cfg_scale": Double(infotextValue(first?.parameters, "CFG scale") ?? "") ?? NSNull(),
        "steps": Int(infotextValue(first?.parameters, "Steps") ?? "") ?? NSNull(),
        "batch_size": p.batchSize, "restore_faces": false, "face_restoration_model": NSNull(),
        "sd_model_name": r.model.name, "sd_model_hash": NSNull(), "sd_vae_name": NSNull(), "sd_vae_hash": NSNull(),
        "seed_resize_from_w": -1, "seed_resize_from_h": -1, "denoising_strength": p.denoisingStrength ?? NSNull(),
        "extra_generation_params": [String: Any](), "index_of_first_image": 0, "infotexts": infotexts, "styles": [String](),
        "job_timestamp": timestamp(), "clip_skip": p.job.clipSkip, "is_using_inpainting_conditioning": p.kind == "inpaint",
        "version": "ldm",
    ]
    if r.interrupted { info["interrupted"] = true }
    let infoText = String(data: try JSONSerialization.data(withJSONObject: info, options: [.withoutEscapingSlashes]), encoding: .utf8) ?? "{}"
    return ["images": images, "parameters": p.echo, "info": infoText]
}

func timestamp() -> String {
    let f = DateFormatter()
    f.dateFormat = "yyyyMMddHHmmss"
    f.timeZone = TimeZone(identifier: "UTC")
    return f.string(from: Date())
}

/// One value of a parameters text's settings line.
func infotextValue(_ text: String?, _ key: String) -> String? {
    guard let text else { return nil }
    return parseInfotext(text)[key] as? String
}

/// A1111's `parse_generation_parameters`: "Prompt", "Negative prompt" and each setting, as strings.
func parseInfotext(_ text: String) -> [String: Any] {
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    var result: [String: Any] = [:]
    guard !text.isEmpty else { return result }
    var settingsLine = ""
    if let last = lines.last, last.range(of: #"^(\s*[\w \-/]+:\s*("(?:\\.|[^\\"])*"|[^,]*)(,|$))+$"#, options: .regularExpression) != nil,
       last.contains("Steps:") || lines.count > 1 {
        settingsLine = last
        lines.removeLast()
    }
    var prompt: [String] = [], negative: [String] = [], inNegative = false
    for line in lines {
        if line.hasPrefix("Negative prompt:") { inNegative = true; negative.append(String(line.dropFirst("Negative prompt:".count)).trimmingCharacters(in: .whitespaces)); continue }
        if inNegative { negative.append(line) } else { prompt.append(line) }
    }
    result["Prompt"] = prompt.joined(separator: "\n")
    result["Negative prompt"] = negative.joined(separator: "\n")
    // key: value pairs; values may be JSON-quoted.
    var rest = Substring(settingsLine)
    while !rest.isEmpty {
        rest = rest.drop { $0 == " " || $0 == "," }
        guard let colon = rest.firstIndex(of: ":") else { break }
        let key = rest[..<colon].trimmingCharacters(in: .whitespaces)
        rest = rest[rest.index(after: colon)...].drop { $0 == " " }
        var value = ""
        if rest.first == "\"" {
            var i = rest.index(after: rest.startIndex), escaped = false
            while i < rest.endIndex { let c = rest[i]; if c == "\"" && !escaped { break }; escaped = c == "\\" && !escaped; i = rest.index(after: i) }
            let quoted = String(rest[rest.startIndex...min(i, rest.index(before: rest.endIndex))])
            value = (try? JSONSerialization.jsonObject(with: Data(quoted.utf8), options: [.fragmentsAllowed]) as? String) ?? quoted
            rest = i < rest.endIndex ? rest[rest.index(after: i)...] : ""
        } else {
            let end = rest.firstIndex(of: ",") ?? rest.endIndex
            value = rest[..<end].trimmingCharacters(in: .whitespaces)
            rest = rest[end...]
        }
        if !key.isEmpty { result[key] = value }
    }
    return result
}

func options(_ state: ServerState) -> [String: Any] {
    ["sd_model_checkpoint": state.current?.title ?? NSNull(), "sd_checkpoint_hash": NSNull(), "sd_vae": "Automatic",
     "CLIP_stop_at_last_layers": 1, "samples_format": "png", "outdir_samples": state.settings.dataFolder.path,
     "save_images": true, "enable_pnginfo": true, "eta_noise_seed_delta": 0, "randn_source": "CPU",
     "sd_checkpoints_limit": state.settings.capacity, "live_previews_enable": false, "show_progressbar": true,
     "interrogate_clip_num_beams": 1, "face_restoration": false, "upscaler_for_img2img": NSNull()]
}

func progress(_ state: ServerState, withImage: Bool = true) -> [String: Any] {
    let s = state.runner.status
    var fraction = 0.0, eta: Any = NSNull()
    if s.running, s.imagesTotal > 0 {
        let inImage = s.steps > 0 ? Double(s.step) / Double(s.steps) : 0
        fraction = min(1, (Double(s.imagesDone) + inImage) / Double(s.imagesTotal))
        if fraction > 0, let started = s.started {
            let elapsed = Date().timeIntervalSince(started)
            eta = elapsed / fraction - elapsed
        }
    }
    return ["progress": fraction, "eta_relative": eta,
            "state": ["skipped": s.skipped, "interrupted": s.interrupted, "stopping_generation": s.interrupted,
                      "job": s.running ? "job" : "", "job_count": s.running ? s.jobCount : 0, "job_timestamp": timestamp(),
                      "job_no": s.jobNumber, "sampling_step": s.step, "sampling_steps": s.steps, "queued": s.queued] as [String: Any],
            "current_image": withImage ? (s.preview.flatMap { p in try? Data(p.map.image(p.latents).encode()).base64EncodedString() } ?? NSNull()) as Any : NSNull(),
            "textinfo": s.running ? "step \(s.step)/\(s.steps)" : NSNull()]
}

func memory() -> [String: Any] {
    var total = 0.0, available = 0.0
    if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) {
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2, let kb = Double(parts[1]) else { continue }
            if parts[0] == "MemTotal:" { total = kb * 1024 }
            if parts[0] == "MemAvailable:" { available = kb * 1024 }
        }
    }
    return ["ram": ["free": available, "used": total - available, "total": total],
            "cuda": ["error": "this server runs on the CPU"]]
}

/// A model's own defaults for the page: its image size (a folder's U-Net sample size × the VAE's
/// factor), and steps, guidance and sampler from ldm_defaults.json. Single files: the sampler's
/// and the family's, as far as known without loading.
func modelDefaults(_ entry: ModelEntry) -> [String: Any] {
    var out: [String: Any] = [:]
    func config(_ part: String) -> [String: Any]? {
        guard let data = try? Data(contentsOf: entry.path.appendingPathComponent(part).appendingPathComponent("config.json")) else { return nil }
        return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    }
    if let unet = config("unet"), let sample = unet["sample_size"] as? Int {
        let levels = (config("vae")?["block_out_channels"] as? [Any])?.count
        let size = sample * (levels.map { 1 << ($0 - 1) } ?? 1)
        out["width"] = size; out["height"] = size
    }
    let d = ModelDefaults.load(entry.path)
    if let steps = d.steps { out["steps"] = steps }
    if let g = d.guidance { out["cfg_scale"] = Double(g) }
    if let name = d.sampler.flatMap(SamplerName.init(rawValue:)) {
        out["sampler_name"] = SamplerNames.all.first { $0.sampler == name }?.name ?? name.displayName
    }
    return out
}

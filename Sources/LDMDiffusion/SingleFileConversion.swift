// `ldm convert FILE --out DIR`: a single-file checkpoint written once as a diffusers folder, every
// tensor in the element type the file stores it in (bit for bit: no float round trip), configs as
// inferred or given, tokenizer and scheduler from the config folder (or the family defaults). The
// folder is assembled beside its destination and renamed into place, so nothing half-written is
// ever visible.

import Foundation
import LDMCore
import LDMIO
import LDMModels

extension SingleFileCheckpoint {
    /// Writes the diffusers folder `out` (which must not exist). `configFolder` supplies the
    /// tokenizer and scheduler; `predictionType` replaces the scheduler's when given.
    public func writeDiffusersFolder(to out: URL, configFolder: URL, predictionType: String? = nil) throws {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: out.path) else { throw PipelineError.invalid("\(out.path) already exists; choose a new folder") }
        let staging = out.deletingLastPathComponent().appendingPathComponent(".\(out.lastPathComponent).partial-\(getpid())")
        try? fm.removeItem(at: staging)
        do {
            try fm.createDirectory(at: staging, withIntermediateDirectories: true)
            // SDXL: the second text encoder as text_encoder_2; a refiner's only one is that too.
            let refiner = family == .sdxl && textConfig2 == nil
            let firstText = refiner ? "text_encoder_2" : "text_encoder"
            var parts: [(String, Module, String, (String) -> StoredLocation, String)] = [
                ("unet", try UNet2DConditionModel(config: unetConfig), SingleFileMapping.unetPrefix,
                 { SingleFileMapping.unet($0, config: self.unetConfig) }, "diffusion_pytorch_model.safetensors"),
                ("vae", try AutoencoderKL(config: vaeConfig), SingleFileMapping.vaePrefix,
                 { SingleFileMapping.vae($0, config: self.vaeConfig) }, "diffusion_pytorch_model.safetensors"),
                (firstText, try CLIPTextModel(config: textConfig), textPrefix, textRule, "model.safetensors"),
            ]
            if let textConfig2 {
                parts.append(("text_encoder_2", try CLIPTextModel(config: textConfig2), SingleFileCheckpoint.sdxlText2Prefix,
                              { SingleFileMapping.textEncoder($0, layout: .openCLIP) }, "model.safetensors"))
            }
            for (name, model, prefix, rule, file) in parts {
                let folder = staging.appendingPathComponent(name)
                try fm.createDirectory(at: folder, withIntermediateDirectories: true)
                let view = try mappedSource(model, prefix: prefix, rule: rule)
                var writer = SafeTensorsWriter(metadata: ["format": "pt"])
                for (param, p) in model.namedParameters() {
                    guard view.contains(param) else { throw ModelError.missingTensor(component: name, name: param, shape: p.shape) }
                    let t = try view.storedTensor(param)
                    guard t.shape == p.shape else {
                        throw ModelError.shapeMismatch(component: name, name: param, expected: p.shape, found: t.shape)
                    }
                    try writer.add(param, dtype: t.dtype, shape: t.shape, rawBytes: t.bytes)
                }
                try writer.write(to: folder.appendingPathComponent(file).path)
            }
            try saveConfig(unetConfig, to: staging.appendingPathComponent("unet/config.json"))
            try saveConfig(vaeConfig, to: staging.appendingPathComponent("vae/config.json"))
            try saveConfig(textConfig, to: staging.appendingPathComponent(firstText + "/config.json"))
            if let textConfig2 { try saveConfig(textConfig2, to: staging.appendingPathComponent("text_encoder_2/config.json")) }
            let tokenizers = family != .sdxl ? ["tokenizer"] : (refiner ? ["tokenizer_2"] : ["tokenizer", "tokenizer_2"])
            for part in tokenizers + ["scheduler"] {
                let from = configFolder.appendingPathComponent(part), to = staging.appendingPathComponent(part)
                try fm.createDirectory(at: to, withIntermediateDirectories: true)
                for item in try fm.contentsOfDirectory(atPath: from.path) {
                    // Contents, not links: the family defaults share files by symbolic link.
                    try Data(contentsOf: from.appendingPathComponent(item).resolvingSymlinksInPath())
                        .write(to: to.appendingPathComponent(item))
                }
            }
            if let predictionType {
                let url = staging.appendingPathComponent("scheduler/scheduler_config.json")
                try schedulerConfig(url, predictionType: predictionType).write(to: url)
            }
            let scheduler = (try? JSONSerialization.jsonObject(with: Data(contentsOf: staging.appendingPathComponent("scheduler/scheduler_config.json")))
                as? [String: Any])?["_class_name"] as? String ?? "PNDMScheduler"
            var index: [String: Any] = [
                "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
                "feature_extractor": [NSNull(), NSNull()], "safety_checker": [NSNull(), NSNull()], "requires_safety_checker": false,
                "scheduler": ["diffusers", scheduler], "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
                "vae": ["diffusers", "AutoencoderKL"],
            ]
            if family == .sdxl {
                index["safety_checker"] = nil; index["requires_safety_checker"] = nil
                index["_class_name"] = refiner ? "StableDiffusionXLImg2ImgPipeline" : "StableDiffusionXLPipeline"
                index["text_encoder_2"] = ["transformers", "CLIPTextModelWithProjection"]
                index["tokenizer_2"] = ["transformers", "CLIPTokenizer"]
                index["force_zeros_for_empty_prompt"] = !refiner
                if refiner {
                    index["text_encoder"] = [NSNull(), NSNull()]; index["tokenizer"] = [NSNull(), NSNull()]
                    index["requires_aesthetics_score"] = true
                }
            }
            try JSONSerialization.data(withJSONObject: index, options: [.prettyPrinted, .sortedKeys])
                .write(to: staging.appendingPathComponent("model_index.json"))
            try fm.moveItem(at: staging, to: out)
        } catch {
            try? fm.removeItem(at: staging)
            throw error
        }
    }

}

/// `ldm convert DIR --to single-file`: a diffusers folder (SD 1.x / 2.x / SDXL) written as one
/// LDM-layout `.safetensors`, the reverse of `writeDiffusersFolder` through the same mapping table:
/// every tensor in its stored element type, moved to its single-file name (VAE attention back to
/// 1×1 convolutions, SD 2.x's q/k/v fused into `in_proj`, `text_projection` transposed back). What
/// the folder does not hold is not invented, with two exceptions said in notices: an SD 2.x file's
/// last OpenCLIP block, which diffusers drops on reading (SD 2.x conditions on the penultimate
/// layer), is written as zeros so the block count stays what readers expect; and a v-prediction
/// model gets the empty `v_pred` marker tensor (the convention ComfyUI reads, and `ldm` too).
public enum SingleFileExport {
    /// Writes `folder` as the single file `out` (which must not exist); returns the notices.
    @discardableResult
    public static func write(folder: URL, to out: URL) throws -> [String] {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: out.path) else { throw PipelineError.invalid("\(out.path) already exists; choose a new file name") }
        guard out.pathExtension.lowercased() == "safetensors" else { throw PipelineError.invalid("the single file must end in .safetensors (got \(out.lastPathComponent))") }
        func weights(_ part: String) throws -> SafeTensorsFile {
            for name in ["diffusion_pytorch_model.safetensors", "model.safetensors"] {
                let url = folder.appendingPathComponent(part).appendingPathComponent(name)
                if fm.fileExists(atPath: url.path) { return try SafeTensorsFile(path: url.path) }
            }
            throw PipelineError.invalid("\(folder.path)/\(part) has no weights in one .safetensors file")
        }
        let unetConfig = try loadConfig(UNetConfig.self, from: folder.appendingPathComponent("unet/config.json"))
        let vaeConfig = try loadConfig(VAEConfig.self, from: folder.appendingPathComponent("vae/config.json"))
        let sdxl = unetConfig.takesTextTime
        let hasFirst = fm.fileExists(atPath: folder.appendingPathComponent("text_encoder/config.json").path)
        let refiner = sdxl && !hasFirst
        let textConfig = try loadConfig(CLIPTextConfig.self, from: folder.appendingPathComponent(refiner ? "text_encoder_2/config.json" : "text_encoder/config.json"))
        guard unetConfig.additionEmbedType == nil || sdxl else {
            throw PipelineError.invalid("\(folder.path): a U-Net with added embeddings other than SDXL's does not convert to a single file")
        }
        // SD 2.x: OpenCLIP's text encoder (GELU; 1024 wide in the real models), SD 1.x: CLIP's (quick GELU).
        // SDXL: CLIP's as embedder 0 and the projected OpenCLIP one as embedder 1 (a refiner: only that, as 0).
        let sd2 = !sdxl && (unetConfig.crossAttentionDim == 1024 || textConfig.hiddenAct == "gelu")
        let layout: TextEncoderLayout = sd2 || refiner ? .openCLIP : .transformers
        let textPrefix = sdxl ? (refiner ? "conditioner.embedders.0.model." : "conditioner.embedders.0.transformer.")
                              : (sd2 ? SingleFileMapping.sd2TextPrefix : SingleFileMapping.sd1TextPrefix)
        var notices: [String] = []
        var writer = SafeTensorsWriter(metadata: ["format": "pt"])
        var fused: [String: [Int: StoredTensor]] = [:]

        func add(_ source: SafeTensorsFile, prefix: String, rename: (String) -> String?, rule: (String) -> StoredLocation) throws {
            for name in source.names {
                guard let diffusersName = rename(name) else { continue }
                let loc = rule(diffusersName)
                let t = try source.stored(name)
                let stored = prefix + loc.name
                switch loc.transform {
                case .none:
                    try writer.add(stored, dtype: t.dtype, shape: t.shape, rawBytes: t.bytes)
                case .reshape:
                    try writer.add(stored, dtype: t.dtype, shape: t.shape.count == 2 ? t.shape + [1, 1] : t.shape, rawBytes: t.bytes)
                case .transpose:
                    guard t.shape.count == 2 else { throw PipelineError.invalid("\(name) has shape \(t.shape), expected a matrix") }
                    try writer.add(stored, dtype: t.dtype, shape: [t.shape[1], t.shape[0]],
                                   rawBytes: transposeBytes(t.bytes, rows: t.shape[0], columns: t.shape[1], size: t.dtype.byteSize))
                case let .rows(part, parts):
                    fused[stored, default: [:]][part] = t
                    guard let all = fused[stored], all.count == parts else { continue }
                    let pieces = (0..<parts).map { all[$0]! }
                    guard pieces.allSatisfy({ $0.dtype == t.dtype && Array($0.shape.dropFirst()) == Array(t.shape.dropFirst()) }) else {
                        throw PipelineError.invalid("the parts of \(stored) differ in type or shape")
                    }
                    try writer.add(stored, dtype: t.dtype, shape: [pieces.map { $0.shape[0] }.reduce(0, +)] + t.shape.dropFirst(),
                                   rawBytes: pieces.flatMap(\.bytes))
                    fused[stored] = nil
                }
            }
        }
        try add(try weights("unet"), prefix: SingleFileMapping.unetPrefix, rename: { $0 }, rule: { SingleFileMapping.unet($0, config: unetConfig) })
        try add(try weights("vae"), prefix: SingleFileMapping.vaePrefix, rename: { $0 }, rule: { SingleFileMapping.vae($0, config: vaeConfig) })
        func textName(_ name: String) -> String? {
            if name.hasSuffix("position_ids") { return nil }
            if name.hasPrefix("text_model.") || name.hasPrefix("text_projection") { return name }
            return "text_model." + name
        }
        let text = try weights(refiner ? "text_encoder_2" : "text_encoder")
        try add(text, prefix: textPrefix, rename: textName, rule: { SingleFileMapping.textEncoder($0, layout: layout) })
        if sdxl && !refiner {
            try add(try weights("text_encoder_2"), prefix: "conditioner.embedders.1.model.", rename: textName,
                    rule: { SingleFileMapping.textEncoder($0, layout: .openCLIP) })
        }
        if let (name, _) = fused.first { throw PipelineError.invalid("\(folder.path): \(name) is missing some of its q/k/v parts") }
        if sd2 {
            // The block diffusers dropped: zeros in the shapes of the last kept one.
            let last = textConfig.numHiddenLayers - 1
            let from = "\(textPrefix)transformer.resblocks.\(last).", to = "\(textPrefix)transformer.resblocks.\(last + 1)."
            for name in writer.names where name.hasPrefix(from) {
                let t = try writer.info(name)
                try writer.add(to + name.dropFirst(from.count), dtype: t.dtype, shape: t.shape,
                               rawBytes: [UInt8](repeating: 0, count: t.shape.reduce(1, *) * t.dtype.byteSize))
            }
            notices.append("SD 2.x: OpenCLIP's last text block (unused: SD 2.x reads the penultimate layer) written as zeros, as the folder does not hold it")
        }
        let schedulerURL = folder.appendingPathComponent("scheduler/scheduler_config.json")
        if let data = try? Data(contentsOf: schedulerURL),
           let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           object["prediction_type"] as? String == "v_prediction" {
            try writer.add("v_pred", dtype: .f32, shape: [0], floats: [])
            notices.append("v-prediction: marked by an empty v_pred tensor (read by ComfyUI and ldm; A1111 detects it by itself)")
        }
        try writer.write(to: out.path)
        return notices
    }
}

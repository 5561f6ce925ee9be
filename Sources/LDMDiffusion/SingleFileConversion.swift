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
            let parts: [(String, Module, String, (String) -> StoredLocation, String)] = [
                ("unet", try UNet2DConditionModel(config: unetConfig), SingleFileMapping.unetPrefix,
                 { SingleFileMapping.unet($0, config: self.unetConfig) }, "diffusion_pytorch_model.safetensors"),
                ("vae", try AutoencoderKL(config: vaeConfig), SingleFileMapping.vaePrefix,
                 { SingleFileMapping.vae($0, config: self.vaeConfig) }, "diffusion_pytorch_model.safetensors"),
                ("text_encoder", try CLIPTextModel(config: textConfig), textPrefix, textRule, "model.safetensors"),
            ]
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
            try saveConfig(textConfig, to: staging.appendingPathComponent("text_encoder/config.json"))
            for part in ["tokenizer", "scheduler"] {
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
            let index: [String: Any] = [
                "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
                "feature_extractor": [NSNull(), NSNull()], "safety_checker": [NSNull(), NSNull()], "requires_safety_checker": false,
                "scheduler": ["diffusers", scheduler], "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
                "vae": ["diffusers", "AutoencoderKL"],
            ]
            try JSONSerialization.data(withJSONObject: index, options: [.prettyPrinted, .sortedKeys])
                .write(to: staging.appendingPathComponent("model_index.json"))
            try fm.moveItem(at: staging, to: out)
        } catch {
            try? fm.removeItem(at: staging)
            throw error
        }
    }

}

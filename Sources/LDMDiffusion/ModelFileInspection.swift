// `ldm inspect FILE` for the model files people download: what a file is, read from its tensor
// names and shapes (never its file name) — a single-file checkpoint (family, variant, inferred
// architecture), a LoRA (format, rank, alpha, which modules, the kohya training metadata), or a
// textual-inversion embedding (vectors and width, and so the family it is for).

import Foundation
import LDMIO
import LDMModels

public enum ModelFileInspection {
    /// The description, or nil when the file is none of these kinds.
    public static func describe(path: String) throws -> String? {
        let source = try openTensorFile(path)
        let names = source.names
        if names.contains(where: { $0.hasPrefix(SingleFileMapping.unetPrefix) || $0.hasPrefix("conditioner.embedders.") }) {
            return try describeCheckpoint(path: path, source: source)
        }
        if names.contains(where: { $0.contains("lora_down") || $0.contains("lora_A") || $0.contains(".lora.down.")
                                  || $0.contains("hada_w1") || $0.contains("lokr_w1") }) {
            return try describeLoRA(path: path, source: source)
        }
        if let embedding = try? TextualInversion(path: path) { return describeEmbedding(embedding, source: source) }
        return nil
    }

    static func dtypeCounts(_ source: any TensorSource) -> String {
        var counts: [String: Int] = [:]
        for n in source.names { if let d = try? source.dtype(of: n) { counts[d.rawValue, default: 0] += 1 } }
        return counts.sorted { $0.value > $1.value }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
    }

    static func describeCheckpoint(path: String, source: any TensorSource) throws -> String {
        let c: SingleFileCheckpoint
        do { c = try SingleFileCheckpoint(path: path, configFolder: nil) } catch {
            return "\(path): has single-file checkpoint names, but cannot be read as one: \(error)\n  tensors: \(source.names.count) (\(dtypeCounts(source)))"
        }
        let u = c.unetConfig, t = c.textConfig, v = c.vaeConfig
        var variant = u.inChannels == 9 ? "inpainting (9 input channels)" : "text-to-image"
        if c.family == .sdxl && c.textConfig2 == nil { variant += ", refiner (one text encoder, aesthetic score)" }
        if source.contains("v_pred") { variant += ", v-prediction (v_pred marker)" }
        let ema = source.names.contains { $0.hasPrefix("model_ema.") && $0 != "model_ema.decay" && $0 != "model_ema.num_updates" }
        var lines = [
            "\(path): \(c.family.displayName) single-file checkpoint (LDM layout), \(variant)",
            "  U-Net: channels \(u.blockOutChannels), \(layers(u.layersPerBlock, u.blockOutChannels.count)) layers per block, cross-attention width \(u.crossAttentionDim), "
                + (u.useLinearProjection ? "linear" : "convolutional") + " projections, \(u.inChannels) in / \(u.outChannels) out channels",
            "  text encoder: " + (c.textLayout == .openCLIP ? "OpenCLIP" : "CLIP") + " \(t.numHiddenLayers) layers × \(t.hiddenSize), "
                + "vocabulary \(t.vocabSize), \(t.maxPositionEmbeddings) positions (prefix \(c.textPrefix))",
        ] + (c.textConfig2.map { t2 in ["  text encoder 2: OpenCLIP \(t2.numHiddenLayers) layers × \(t2.hiddenSize), projection \(t2.projectionDim) "
                + "(prefix \(SingleFileCheckpoint.sdxlText2Prefix))"] } ?? []) + [
            "  VAE: channels \(v.blockOutChannels), \(v.latentChannels) latent channels",
            "  tensors: \(source.names.count) (\(dtypeCounts(source)))" + (ema ? "; EMA weights (model_ema.*) present, not used" : ""),
        ]
        lines += c.notices.map { "  note: " + $0 }
        return lines.joined(separator: "\n")
    }

    static func layers(_ value: IntOrList, _ count: Int) -> String {
        let list = value.perBlock(count)
        return Set(list).count == 1 ? "\(list[0])" : "\(list)"
    }

    static func describeLoRA(path: String, source: any TensorSource) throws -> String {
        let names = source.names
        let kind: String
        if names.contains(where: { $0.contains("hada_w1") }) { kind = "LoHa (not supported)" }
        else if names.contains(where: { $0.contains("lokr_w1") }) { kind = "LoKr (not supported)" }
        else if names.contains(where: { $0.hasSuffix("dora_scale") || $0.contains("lora_magnitude_vector") }) { kind = "DoRA (not supported)" }
        else if names.contains(where: { $0.hasSuffix(".lora_down.weight") }) { kind = "kohya LoRA" }
        else { kind = "diffusers/peft LoRA" }
        let downs = names.filter { $0.hasSuffix(".lora_down.weight") || $0.hasSuffix(".lora_A.weight") || $0.hasSuffix(".lora.down.weight") }
        var ranks = Set<Int>(), alphas = Set<Float>(), components: [String: Int] = [:], conv = 0, widths = Set<Int>()
        for down in downs {
            let shape = try source.shape(of: down)
            ranks.insert(shape.first ?? 0)
            if shape.count == 4 && (shape[2] > 1 || shape[3] > 1) { conv += 1 }
            let component: String
            switch true {
            case down.hasPrefix("lora_unet_"), down.hasPrefix("unet."): component = "U-Net"
            case down.hasPrefix("lora_te2_"), down.hasPrefix("text_encoder_2."): component = "text encoder 2"
            case down.hasPrefix("lora_te"), down.hasPrefix("text_encoder."): component = "text encoder"
            default: component = "U-Net"
            }
            components[component, default: 0] += 1
            if component.hasPrefix("text encoder"), down.contains("q_proj"), shape.count == 2 { widths.insert(shape[1]) }
            if down.hasSuffix(".lora_down.weight") {
                let alpha = String(down.dropLast(".lora_down.weight".count)) + ".alpha"
                if let a = try? source.floatArray(alpha), a.count == 1 { alphas.insert(a[0]) } else { alphas.insert(Float(shape.first ?? 0)) }
            }
        }
        let metadata = (source as? SafeTensorsFile)?.metadata ?? [:]
        if kind.hasPrefix("diffusers"), let json = metadata["lora_adapter_metadata"],
           let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] {
            if let a = (object["lora_alpha"] as? NSNumber)?.floatValue { alphas.insert(a) }
            for case let n as NSNumber in (object["alpha_pattern"] as? [String: Any] ?? [:]).values { alphas.insert(n.floatValue) }
        }
        let family: String
        if components["text encoder 2"] != nil || names.contains(where: { $0.hasPrefix("lora_te1_") }) { family = "SDXL" }
        else if widths == [768] { family = "SD 1.x" }
        else if widths == [1024] { family = "SD 2.x" }
        else { family = "family not told by its text-encoder modules" }
        var lines = [
            "\(path): \(kind), \(downs.count) modules (" + components.sorted { $0.key > $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                + (conv > 0 ? "; \(conv) LoCon convolutions" : "") + "), \(family)",
            "  rank " + ranks.sorted().map(String.init).joined(separator: "/")
                + (alphas.isEmpty ? "" : ", alpha " + alphas.sorted().map { String(format: "%g", $0) }.joined(separator: "/")),
        ]
        let keys = ["ss_output_name", "ss_sd_model_name", "ss_base_model_version", "ss_network_module", "ss_network_dim", "ss_network_alpha",
                    "ss_resolution", "ss_num_train_images", "ss_training_comment"]
        for key in keys { if let value = metadata[key], !value.isEmpty { lines.append("  \(key): \(value.prefix(120))") } }
        return lines.joined(separator: "\n")
    }

    static func describeEmbedding(_ e: TextualInversion, source: any TensorSource) -> String {
        let family: String
        if e.parts["clip_l"] != nil { family = "SDXL (clip_l \(e.parts["clip_l"]?.first?.count ?? 0) + clip_g \(e.parts["clip_g"]?.first?.count ?? 0))" }
        else { family = ["768": "SD 1.x", "1024": "SD 2.x"][String(e.width)] ?? "a \(e.width)-wide text encoder" }
        var line = "\(e.path): textual-inversion embedding \"\(e.name)\" (the word that triggers it), \(e.vectorCount) vector"
            + (e.vectorCount == 1 ? "" : "s") + " of width \(e.width), for \(family)"
        if let ckpt = source as? TorchCheckpointFile {
            let extra = ["name", "step", "sd_checkpoint_name"].compactMap { k in ckpt.metadata[k].map { "\(k) \($0)" } }
            if !extra.isEmpty { line += "\n  " + extra.joined(separator: ", ") }
        }
        return line
    }
}

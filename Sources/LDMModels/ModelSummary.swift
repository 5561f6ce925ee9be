// What `ldm inspect` prints for a model folder or a known architecture: each component's class,
// main configuration values and parameter count.

import Foundation
import LDMIO

/// A description of a diffusers model folder.
public struct ModelSummary: CustomStringConvertible {
    public struct Component {
        public var name: String
        public var className: String
        public var settings: [(String, String)]
        public var parameters: Int
    }
    public var title: String
    public var components: [Component]

    /// Reads the configs and counts the parameters stored in each component's safetensors file.
    public init(folder: URL) throws {
        title = folder.path
        components = []
        let fm = FileManager.default
        func count(_ dir: URL) throws -> Int {
            for f in ["diffusion_pytorch_model.safetensors", "model.safetensors"] {
                let url = dir.appendingPathComponent(f)
                if fm.fileExists(atPath: url.path) { return try SafeTensorsFile(path: url.path).parameterCount }
            }
            throw ModelError.missingFile(dir.appendingPathComponent("diffusion_pytorch_model.safetensors").path)
        }
        var found = false
        let unetDir = folder.appendingPathComponent("unet")
        if fm.fileExists(atPath: unetDir.appendingPathComponent("config.json").path) {
            let c = try loadConfig(UNetConfig.self, from: unetDir.appendingPathComponent("config.json"))
            components.append(Component(name: "unet", className: "UNet2DConditionModel", settings: ModelSummary.describe(c),
                                        parameters: try count(unetDir)))
            found = true
        }
        let vaeDir = folder.appendingPathComponent("vae")
        if fm.fileExists(atPath: vaeDir.appendingPathComponent("config.json").path) {
            let c = try loadConfig(VAEConfig.self, from: vaeDir.appendingPathComponent("config.json"))
            components.append(Component(name: "vae", className: "AutoencoderKL", settings: ModelSummary.describe(c),
                                        parameters: try count(vaeDir)))
            found = true
        }
        let textDir = folder.appendingPathComponent("text_encoder")
        if fm.fileExists(atPath: textDir.appendingPathComponent("config.json").path) {
            let c = try loadConfig(CLIPTextConfig.self, from: textDir.appendingPathComponent("config.json"))
            components.append(Component(name: "text_encoder", className: "CLIPTextModel", settings: ModelSummary.describe(c),
                                        parameters: try count(textDir)))
            found = true
        }
        let sched = folder.appendingPathComponent("scheduler/scheduler_config.json")
        if let data = try? Data(contentsOf: sched), let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            let keys = ["beta_schedule", "prediction_type", "timestep_spacing", "num_train_timesteps"]
            components.append(Component(name: "scheduler", className: obj["_class_name"] as? String ?? "?",
                                        settings: keys.compactMap { k in obj[k].map { (k, "\($0)") } }, parameters: 0))
        }
        if !found { throw ModelError.invalidInput("\(folder.path): no unet/, vae/ or text_encoder/ config.json found (not a diffusers model folder)") }
    }

    /// The known architecture `name` ("sd15"), built with zero weights to count its parameters.
    public static func architecture(_ name: String) throws -> ModelSummary {
        guard name == "sd15" else { throw ModelError.invalidInput("unknown architecture \(name) (known: sd15)") }
        let u = KnownArchitectures.sd15UNet, v = KnownArchitectures.sd15VAE, t = KnownArchitectures.sd15Text
        return ModelSummary(title: "Stable Diffusion 1.x architecture (random weights)", components: [
            Component(name: "unet", className: "UNet2DConditionModel", settings: describe(u),
                      parameters: try UNet2DConditionModel(config: u).parameterCount),
            Component(name: "vae", className: "AutoencoderKL", settings: describe(v),
                      parameters: try AutoencoderKL(config: v).parameterCount),
            Component(name: "text_encoder", className: "CLIPTextModel", settings: describe(t),
                      parameters: try CLIPTextModel(config: t).parameterCount),
        ])
    }

    init(title: String, components: [Component]) { self.title = title; self.components = components }

    static func describe(_ c: UNetConfig) -> [(String, String)] {
        [("in_channels", "\(c.inChannels)"), ("block_out_channels", "\(c.blockOutChannels)"),
         ("layers_per_block", "\(c.layersPerBlock.perBlock(c.blockOutChannels.count))"),
         ("attention heads", "\(c.heads)"), ("cross_attention_dim", "\(c.crossAttentionDim)"),
         ("use_linear_projection", "\(c.useLinearProjection)"), ("sample_size", "\(c.sampleSize)")]
    }
    static func describe(_ c: VAEConfig) -> [(String, String)] {
        [("block_out_channels", "\(c.blockOutChannels)"), ("layers_per_block", "\(c.layersPerBlock)"),
         ("latent_channels", "\(c.latentChannels)"), ("downsampling factor", "\(c.downsamplingFactor)"),
         ("scaling_factor", "\(c.scalingFactor)")]
    }
    static func describe(_ c: CLIPTextConfig) -> [(String, String)] {
        [("hidden_size", "\(c.hiddenSize)"), ("layers", "\(c.numHiddenLayers)"), ("heads", "\(c.numAttentionHeads)"),
         ("vocab_size", "\(c.vocabSize)"), ("hidden_act", c.hiddenAct), ("max_position_embeddings", "\(c.maxPositionEmbeddings)")]
    }

    public var description: String {
        var lines = [title]
        for c in components {
            lines.append("\(c.name): \(c.className)" + (c.parameters > 0 ? ", \(groupedDigits(c.parameters)) parameters" : ""))
            for (k, v) in c.settings { lines.append("  \(k): \(v)") }
        }
        return lines.joined(separator: "\n")
    }
}

/// Configurations of well-known architectures, built from their published configs.
public enum KnownArchitectures {
    /// Stable Diffusion 1.x U-Net: 320/640/1280/1280, 8 heads, context 768.
    public static var sd15UNet: UNetConfig { UNetConfig(sampleSize: 64, crossAttentionDim: 768) }
    /// Stable Diffusion's VAE: 128/256/512/512, f = 8.
    public static var sd15VAE: VAEConfig { VAEConfig() }
    /// CLIP ViT-L/14's text transformer: 768 wide, 12 layers, 12 heads.
    public static var sd15Text: CLIPTextConfig {
        CLIPTextConfig(vocabSize: 49408, hiddenSize: 768, intermediateSize: 3072, numHiddenLayers: 12, numAttentionHeads: 12)
    }
    /// Stable Diffusion 2.x U-Net (SD 2.1, SD-Turbo): heads of 64 channels, context 1024, linear projections.
    public static func sd21UNet(sampleSize: Int = 96) -> UNetConfig {
        UNetConfig(sampleSize: sampleSize, crossAttentionDim: 1024, attentionHeadDim: .list([5, 10, 20, 20]), useLinearProjection: true)
    }
    /// OpenCLIP ViT-H/14's text transformer as SD 2.x keeps it: 1024 wide, 23 layers, 16 heads, GELU.
    public static var sd21Text: CLIPTextConfig {
        var c = CLIPTextConfig(vocabSize: 49408, hiddenSize: 1024, intermediateSize: 4096, numHiddenLayers: 23,
                               numAttentionHeads: 16, hiddenAct: "gelu")
        c.padTokenId = 0; c.projectionDim = 512
        return c
    }
    /// SDXL's U-Net: 320/640/1280, transformer depths 0/2/10, heads of 64 channels, context 2048,
    /// pooled 1280 + 6 time ids × 256 (2.6 B parameters).
    public static func sdxlUNet(sampleSize: Int = 128) -> UNetConfig {
        var c = UNetConfig(sampleSize: sampleSize,
                           downBlockTypes: ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                           upBlockTypes: ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                           blockOutChannels: [320, 640, 1280], crossAttentionDim: 2048, attentionHeadDim: .list([5, 10, 20]),
                           useLinearProjection: true)
        c.transformerLayersPerBlock = .list([1, 2, 10])
        c.additionEmbedType = "text_time"
        c.additionTimeEmbedDim = 256
        c.projectionClassEmbeddingsInputDim = 2816
        return c
    }
    /// SDXL's second text encoder: OpenCLIP ViT-bigG/14, 1280 wide, 32 layers, 20 heads, projected to 1280.
    public static var sdxlText2: CLIPTextConfig {
        var c = CLIPTextConfig(vocabSize: 49408, hiddenSize: 1280, intermediateSize: 5120, numHiddenLayers: 32,
                               numAttentionHeads: 20, hiddenAct: "gelu")
        c.padTokenId = 0; c.projectionDim = 1280; c.architectures = ["CLIPTextModelWithProjection"]
        return c
    }
    /// SDXL's VAE: SD's architecture with scaling factor 0.13025.
    public static var sdxlVAE: VAEConfig { VAEConfig(sampleSize: 1024, scalingFactor: 0.13025) }
    /// TAESD / TAESDXL: the tiny autoencoder's defaults (64 channels, f = 8).
    public static var taesd: AutoencoderTinyConfig { AutoencoderTinyConfig() }
}

/// 1234567 → "1,234,567".
public func groupedDigits(_ n: Int) -> String {
    let s = String(abs(n))
    var out = ""
    for (i, ch) in s.enumerated() {
        if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return n < 0 ? "-" + out : out
}

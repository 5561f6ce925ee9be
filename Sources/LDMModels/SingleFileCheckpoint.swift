// Single-file Stable Diffusion checkpoints (the CompVis/Stability "LDM" layout): which family a
// file is, the diffusers configs of its parts — from a config folder when one is given (as
// diffusers' `from_single_file(config=DIR)`), otherwise inferred from tensor names and shapes with
// the family's defaults for what shapes cannot tell — and the three models loaded through the
// mapping of SingleFileMapping.swift.
//
// What shapes tell: channels per level, layers per block, which levels have attention, transformer
// depth, linear or convolutional projections, context width, in/out channels, text-encoder width,
// depth and vocabulary. What they cannot: attention heads, norm groups, activation, prediction type
// (ε or v), the scheduler and the tokenizer. Those come from the family defaults below (SD1.x as
// runwayml/stable-diffusion-v1-5's configs; SD2.x as stabilityai/stable-diffusion-2-1's: v-prediction
// at 768×768), which is what diffusers fetches for a file without `config=`.

import Foundation
import LDMCore
import LDMIO

/// The model families single files come in.
public enum ModelFamily: String, Sendable {
    /// SD 1.x: transformers CLIP ViT-L/14 text encoder (768-wide context).
    case sd1
    /// SD 2.x: OpenCLIP ViT-H/14 text encoder (1024-wide context), heads of 64 channels.
    case sd2
    /// SDXL: two text encoders and the text_time embedding.
    case sdxl

    public var displayName: String { ["sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"][rawValue]! }
}

/// Errors about a single file, one line each.
public enum SingleFileError: Error, CustomStringConvertible, Equatable {
    case notACheckpoint(path: String, reason: String)
    case unsupported(path: String, reason: String)
    case leftover(path: String, names: [String])
    public var description: String {
        switch self {
        case let .notACheckpoint(p, r): return "\(p) is not a Stable Diffusion single-file checkpoint: \(r)"
        case let .unsupported(p, r): return "\(p): \(r)"
        case let .leftover(p, n):
            return "\(p): \(n.count) tensor\(n.count == 1 ? "" : "s") of the model do not fit the inferred architecture (first: \(n[0]))"
        }
    }
}

/// Opens a tensor file by its content: a zip (PyTorch `.ckpt`/`.pt`, read by the restricted
/// unpickler) or safetensors.
public func openTensorFile(_ path: String) throws -> any TensorSource {
    guard let handle = FileHandle(forReadingAtPath: path) else {
        throw SingleFileError.notACheckpoint(path: path, reason: "cannot open the file")
    }
    let magic = [UInt8]((try? handle.read(upToCount: 4)) ?? Data())
    try? handle.close()
    if magic.starts(with: [0x50, 0x4B]) { return try TorchCheckpointFile(path: path) }
    return try SafeTensorsFile(path: path)
}

/// A single-file checkpoint, classified, with its components' configs.
public struct SingleFileCheckpoint {
    public let path: String
    public let source: any TensorSource
    public let family: ModelFamily
    public let textLayout: TextEncoderLayout
    public var unetConfig: UNetConfig
    public var vaeConfig: VAEConfig
    public var textConfig: CLIPTextConfig
    /// SDXL: the second (OpenCLIP, projected) text encoder's config; nil otherwise and for a refiner,
    /// whose only text encoder is the OpenCLIP one (then `textConfig`).
    public var textConfig2: CLIPTextConfig?
    /// Notes for the user (defaults taken, tensors ignored), one line each.
    public var notices: [String] = []

    /// The text encoder's prefix in the file (for transformers' layout it includes "text_model."
    /// when the file has it; some files lack it).
    public var textPrefix: String { Self.textPrefix(source, textLayout, family: family) }

    /// SDXL's second text encoder's prefix.
    public static let sdxlText2Prefix = "conditioner.embedders.1.model."

    static func textPrefix(_ source: any TensorSource, _ layout: TextEncoderLayout, family: ModelFamily) -> String {
        if family == .sdxl {
            // Base: CLIP ViT-L (transformers) first; refiner: only OpenCLIP ViT-bigG, as embedder 0.
            return layout == .openCLIP ? "conditioner.embedders.0.model." : "conditioner.embedders.0.transformer.text_model."
        }
        switch layout {
        case .openCLIP: return SingleFileMapping.sd2TextPrefix
        case .transformers:
            let withModel = SingleFileMapping.sd1TextPrefix + "text_model."
            return source.names.contains(where: { $0.hasPrefix(withModel) }) ? withModel : SingleFileMapping.sd1TextPrefix
        }
    }

    /// Opens and classifies `path`; with `configFolder` (a diffusers folder describing the file)
    /// its unet/vae/text_encoder configs are used, otherwise they are inferred.
    public init(path: String, configFolder: URL? = nil) throws {
        self.path = path
        source = try openTensorFile(path)
        let names = source.names
        let u = SingleFileMapping.unetPrefix
        guard names.contains(u + "input_blocks.0.0.weight") else {
            if names.contains(where: { $0.hasPrefix("lora_") || $0.contains(".lora_") }) {
                throw SingleFileError.notACheckpoint(path: path, reason: "it is a LoRA (use --lora)")
            }
            if names.contains("emb_params") || names.contains(where: { $0.hasPrefix("string_to_param") }) {
                throw SingleFileError.notACheckpoint(path: path, reason: "it is a textual-inversion embedding (use --embedding)")
            }
            throw SingleFileError.notACheckpoint(path: path, reason: "it has no \(u)input_blocks.0.0.weight")
        }
        let sdxl = names.contains(where: { $0.hasPrefix("conditioner.embedders.") }) || names.contains(u + "label_emb.0.0.weight")
        if sdxl {
            if names.contains(where: { $0.hasPrefix("conditioner.embedders.0.transformer.text_model.") }) {
                guard names.contains(where: { $0.hasPrefix(Self.sdxlText2Prefix) }) else {
                    throw SingleFileError.notACheckpoint(path: path, reason: "an SDXL file with no second text encoder (\(Self.sdxlText2Prefix)*)")
                }
                textLayout = .transformers
            } else if names.contains(where: { $0.hasPrefix("conditioner.embedders.0.model.") }) {
                textLayout = .openCLIP
            } else {
                throw SingleFileError.notACheckpoint(path: path, reason: "an SDXL file with no text encoder (conditioner.embedders.*)")
            }
        } else if names.contains(where: { $0.hasPrefix(SingleFileMapping.sd2TextPrefix) }) {
            textLayout = .openCLIP
        } else if names.contains(where: { $0.hasPrefix(SingleFileMapping.sd1TextPrefix) }) {
            textLayout = .transformers
        } else {
            throw SingleFileError.notACheckpoint(path: path, reason: "it has no text encoder (cond_stage_model.*)")
        }
        guard names.contains(SingleFileMapping.vaePrefix + "encoder.conv_in.weight") else {
            throw SingleFileError.notACheckpoint(path: path, reason: "it has no VAE (first_stage_model.*)")
        }
        let context = try Self.contextWidth(source)
        family = sdxl ? .sdxl : (context == 1024 || textLayout == .openCLIP ? .sd2 : .sd1)

        if let configFolder {
            func config<C: Decodable>(_ type: C.Type, _ part: String) throws -> C {
                try loadConfig(type, from: configFolder.appendingPathComponent(part + "/config.json"))
            }
            unetConfig = try config(UNetConfig.self, "unet")
            vaeConfig = try config(VAEConfig.self, "vae")
            let refiner = family == .sdxl && textLayout == .openCLIP
            textConfig = try config(CLIPTextConfig.self, refiner ? "text_encoder_2" : "text_encoder")
            if family == .sdxl && !refiner { textConfig2 = try config(CLIPTextConfig.self, "text_encoder_2") }
        } else {
            let prefix = Self.textPrefix(source, textLayout, family: family)
            textConfig = try Self.inferText(source, layout: textLayout, prefix: prefix, path: path, family: family)
            if family == .sdxl && textLayout == .transformers {
                textConfig2 = try Self.inferText(source, layout: .openCLIP, prefix: Self.sdxlText2Prefix, path: path, family: family)
            }
            let pooled = family == .sdxl ? (textConfig2 ?? textConfig).projectionDim : nil
            unetConfig = try Self.inferUNet(source, family: family, path: path, pooledWidth: pooled)
            vaeConfig = try Self.inferVAE(source, path: path)
            if family == .sdxl { vaeConfig.scalingFactor = 0.13025; vaeConfig.sampleSize = 1024 }
            notices.append("\(URL(fileURLWithPath: path).lastPathComponent): \(family.displayName) checkpoint; heads, norm groups, "
                + "prediction type, scheduler and tokenizer are the \(family.displayName) defaults (pass --config DIR to set them)")
        }
    }

    // MARK: Loading

    /// The U-Net with the file's weights.
    public func loadUNet() throws -> UNet2DConditionModel {
        let model = try UNet2DConditionModel(config: unetConfig)
        try load(model, component: "unet", prefix: SingleFileMapping.unetPrefix) { SingleFileMapping.unet($0, config: unetConfig) }
        return model
    }

    /// The VAE with the file's weights.
    public func loadVAE() throws -> AutoencoderKL {
        let model = try AutoencoderKL(config: vaeConfig)
        try load(model, component: "vae", prefix: SingleFileMapping.vaePrefix) { SingleFileMapping.vae($0, config: vaeConfig) }
        return model
    }

    /// The text encoder with the file's weights.
    public func loadTextEncoder() throws -> CLIPTextModel {
        let model = try CLIPTextModel(config: textConfig)
        try load(model, component: "text_encoder", prefix: textPrefix, rule: textRule)
        return model
    }

    /// SDXL: the second text encoder with the file's weights (nil for other families and refiners).
    public func loadTextEncoder2() throws -> CLIPTextModel? {
        guard let textConfig2 else { return nil }
        let model = try CLIPTextModel(config: textConfig2)
        try load(model, component: "text_encoder_2", prefix: Self.sdxlText2Prefix) {
            SingleFileMapping.textEncoder($0, layout: .openCLIP)
        }
        return model
    }

    /// The text encoder's rule, relative to `textPrefix` (for transformers' layout the prefix
    /// already ends in "text_model." when the file has it).
    public var textRule: (String) -> StoredLocation {
        let layout = textLayout
        return { name in
            let location = SingleFileMapping.textEncoder(name, layout: layout)
            guard layout == .transformers, location.name.hasPrefix("text_model.") else { return location }
            return StoredLocation(String(location.name.dropFirst("text_model.".count)), location.transform)
        }
    }

    /// The mapped view of one component: every parameter of `model` under its diffusers name.
    public func mappedSource(_ model: Module, prefix: String, rule: (String) -> StoredLocation) throws -> MappedTensorSource {
        var locations: [String: StoredLocation] = [:], shapes: [String: [Int]] = [:]
        for (name, p) in model.namedParameters() {
            var loc = rule(name)
            loc.name = prefix + loc.name
            locations[name] = loc
            shapes[name] = p.shape
        }
        return try MappedTensorSource(base: source, locations: locations, expectedShapes: shapes)
    }

    private func load(_ model: Module, component: String, prefix: String, rule: (String) -> StoredLocation) throws {
        let view = try mappedSource(model, prefix: prefix, rule: rule)
        try model.load(from: view, component: component, optionalPrefix: "\u{0}")
        let unused = unusedTensors(prefix: prefix, used: Set(view.locations.values.map(\.name)))
        if !unused.isEmpty { throw SingleFileError.leftover(path: path, names: unused) }
    }

    // MARK: Inference from shapes

    /// Width of the U-Net's cross-attention context (`attn2.to_k` input width).
    static func contextWidth(_ s: any TensorSource) throws -> Int {
        let key = s.names.first { $0.hasPrefix(SingleFileMapping.unetPrefix) && $0.hasSuffix("attn2.to_k.weight") }
        guard let key else { throw SingleFileError.notACheckpoint(path: s.path, reason: "its U-Net has no cross-attention") }
        return try s.shape(of: key).last ?? 0
    }

    /// Indices N of `prefix`N.… keys.
    static func indices(_ names: [String], _ prefix: String) -> [Int] {
        Set(names.compactMap { n -> Int? in
            guard n.hasPrefix(prefix) else { return nil }
            return Int(n.dropFirst(prefix.count).prefix { $0 != "." })
        }).sorted()
    }

    static func inferUNet(_ s: any TensorSource, family: ModelFamily, path: String, pooledWidth: Int? = nil) throws -> UNetConfig {
        let p = SingleFileMapping.unetPrefix
        let names = s.names.filter { $0.hasPrefix(p) }
        let convIn = try s.shape(of: p + "input_blocks.0.0.weight")
        // Walk input_blocks 1…: a block is a resnet (+ attention), or a downsampler ending a level.
        var channels: [Int] = [], layers: [Int] = [], attention: [Bool] = [], depth: [Int] = []
        var count = 0, width = 0, levelDepth = 0
        func endLevel() { channels.append(width); layers.append(count); attention.append(levelDepth > 0); depth.append(max(levelDepth, 1)); count = 0; levelDepth = 0 }
        for i in indices(names, p + "input_blocks.").dropFirst() {
            let b = p + "input_blocks.\(i)."
            if s.contains(b + "0.op.weight") { endLevel(); continue }
            width = try s.shape(of: b + "0.in_layers.2.weight")[0]
            count += 1
            if s.contains(b + "1.proj_in.weight") { levelDepth = indices(names, b + "1.transformer_blocks.").count }
        }
        endLevel()
        guard layers.allSatisfy({ $0 == layers[0] && $0 > 0 }) else {
            throw SingleFileError.notACheckpoint(path: path, reason: "its U-Net input blocks do not form levels of equal depth")
        }
        let linear = try s.shape(of: names.first { $0.hasSuffix(".proj_in.weight") } ?? "").count == 2
        let context = try contextWidth(s)
        var c = UNetConfig(sampleSize: [.sd1: 64, .sd2: 96, .sdxl: 128][family]!, inChannels: convIn[1],
                           outChannels: try s.shape(of: p + "out.2.weight")[0],
                           downBlockTypes: attention.map { $0 ? "CrossAttnDownBlock2D" : "DownBlock2D" },
                           upBlockTypes: attention.reversed().map { $0 ? "CrossAttnUpBlock2D" : "UpBlock2D" },
                           blockOutChannels: channels, layersPerBlock: layers[0], normNumGroups: 32,
                           crossAttentionDim: context,
                           attentionHeadDim: family == .sd1 ? .one(8) : .list(channels.map { max($0 / 64, 1) }),
                           useLinearProjection: linear)
        c.transformerLayersPerBlock = Set(depth).count == 1 ? .one(depth[0]) : .list(depth)
        if family == .sd2 { c.upcastAttention = true }
        if family == .sdxl, let pooledWidth {
            // label_emb.0.0 takes the pooled text embedding and 6 time ids (5 for the refiner) of
            // addition_time_embed_dim sinusoid features each.
            let input = try s.shape(of: p + "label_emb.0.0.weight")[1]
            let rest = input - pooledWidth
            guard let ids = [6, 5].first(where: { rest > 0 && rest % $0 == 0 && (rest / $0) % 2 == 0 }) else {
                throw SingleFileError.notACheckpoint(path: path, reason: "its added embedding takes \(input) values, which does not fit a pooled width of \(pooledWidth) and 5 or 6 time ids")
            }
            c.additionEmbedType = "text_time"
            c.additionTimeEmbedDim = rest / ids
            c.projectionClassEmbeddingsInputDim = input
        }
        return c
    }

    static func inferVAE(_ s: any TensorSource, path: String) throws -> VAEConfig {
        let p = SingleFileMapping.vaePrefix
        let names = s.names.filter { $0.hasPrefix(p) }
        let levels = indices(names, p + "encoder.down.")
        guard !levels.isEmpty else { throw SingleFileError.notACheckpoint(path: path, reason: "its VAE encoder has no levels") }
        let channels = try levels.map { try s.shape(of: p + "encoder.down.\($0).block.0.conv1.weight")[0] }
        let layers = indices(names, p + "encoder.down.0.block.").count
        let latent = try s.shape(of: p + "decoder.conv_in.weight")[1]
        var c = VAEConfig(blockOutChannels: channels, layersPerBlock: layers, latentChannels: latent, normNumGroups: 32,
                          sampleSize: 512, scalingFactor: 0.18215)
        c.useQuantConv = s.contains(p + "quant_conv.weight")
        c.usePostQuantConv = s.contains(p + "post_quant_conv.weight")
        c.midBlockAddAttention = s.contains(p + "encoder.mid.attn_1.q.weight")
        return c
    }

    static func inferText(_ s: any TensorSource, layout: TextEncoderLayout, prefix: String, path: String,
                          family: ModelFamily) throws -> CLIPTextConfig {
        guard !prefix.isEmpty else { return CLIPTextConfig() }
        let names = s.names.filter { $0.hasPrefix(prefix) }
        switch layout {
        case .transformers:
            let tok = try s.shape(of: prefix + "embeddings.token_embedding.weight")
            let pos = try s.shape(of: prefix + "embeddings.position_embedding.weight")
            let layers = indices(names, prefix + "encoder.layers.").count
            let inter = try s.shape(of: prefix + "encoder.layers.0.mlp.fc1.weight")[0]
            var c = CLIPTextConfig(vocabSize: tok[0], hiddenSize: tok[1], intermediateSize: inter, numHiddenLayers: layers,
                                   numAttentionHeads: max(tok[1] / 64, 1), maxPositionEmbeddings: pos[0], hiddenAct: "quick_gelu")
            c.bosTokenId = tok[0] - 2; c.eosTokenId = tok[0] - 1; c.padTokenId = 1; c.projectionDim = 768
            return c
        case .openCLIP:
            let tok = try s.shape(of: prefix + "token_embedding.weight")
            let pos = try s.shape(of: prefix + "positional_embedding")
            let blocks = indices(names, prefix + "transformer.resblocks.").count
            let inter = try s.shape(of: prefix + "transformer.resblocks.0.mlp.c_fc.weight")[0]
            // SD 2.x conditions on the penultimate layer: diffusers' text encoder has one layer fewer.
            // SDXL keeps every layer (it takes the penultimate state and pools the last).
            let sdxl = family == .sdxl
            var c = CLIPTextConfig(vocabSize: tok[0], hiddenSize: tok[1], intermediateSize: inter,
                                   numHiddenLayers: sdxl ? blocks : max(blocks - 1, 1),
                                   numAttentionHeads: max(tok[1] / 64, 1), maxPositionEmbeddings: pos[0], hiddenAct: "gelu")
            c.bosTokenId = tok[0] - 2; c.eosTokenId = tok[0] - 1; c.padTokenId = sdxl ? 0 : 1; c.projectionDim = 512
            if sdxl {
                c.projectionDim = try s.shape(of: prefix + "text_projection").last ?? tok[1]
                c.architectures = ["CLIPTextModelWithProjection"]
            }
            return c
        }
    }

    /// Names under the model's prefixes that no parameter read: the file does not fit the
    /// configuration. SD 2.x's last OpenCLIP block, `text_projection`, `logit_scale`,
    /// `position_ids` and the EMA copy (`model_ema.*`) are expected leftovers.
    public func unusedTensors(prefix: String, used: Set<String>) -> [String] {
        let textPrefix = self.textPrefix
        return source.names.filter { n in
            guard n.hasPrefix(prefix), !used.contains(n) else { return false }
            if n.hasSuffix("position_ids") || n.hasSuffix("logit_scale") || n.hasSuffix("text_projection") || n.hasSuffix(".attn_mask") {
                return false
            }
            if n.hasPrefix(SingleFileMapping.vaePrefix + "loss.") { return false }
            if textLayout == .openCLIP && n.hasPrefix(textPrefix) {
                let body = n.dropFirst(textPrefix.count)
                if body == "attn_mask" { return false }
                if let i = Int(body.dropFirst("transformer.resblocks.".count).prefix { $0 != "." }),
                   body.hasPrefix("transformer.resblocks."), i >= textConfig.numHiddenLayers { return false }
            }
            return true
        }
    }
}

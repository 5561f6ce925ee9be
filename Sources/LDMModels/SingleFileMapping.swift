// The key mapping between diffusers' names and the original CompVis/Stability ("LDM") layout of
// single-file Stable Diffusion checkpoints — one table of rules per component, applied in the
// diffusers → LDM direction (each parameter of our module tree asks where it is stored). Loading
// a single file and writing one (`ldm convert --to single-file`) use the same rules.
//
// Compared with diffusers' loaders/single_file_utils.py (`convert_ldm_unet_checkpoint`,
// `convert_ldm_vae_checkpoint`, `convert_open_clip_checkpoint`, `convert_ldm_clip_checkpoint`);
// the parity test converts a file with both and compares every tensor.
//
//   U-Net (prefix model.diffusion_model.)
//     conv_in                      input_blocks.0.0
//     time_embedding.linear_1/_2   time_embed.0 / time_embed.2
//     add_embedding.linear_1/_2    label_emb.0.0 / label_emb.0.2                 (SDXL)
//     down_blocks.b.resnets.l      input_blocks.(1 + Σ_{k<b}(L_k+1) + l).0        resnet renames below
//     down_blocks.b.attentions.l   input_blocks.(…same…).1                        names unchanged
//     down_blocks.b.downsamplers.0.conv  input_blocks.(1 + Σ_{k≤b}(L_k+1) − 1).0.op
//     mid_block.resnets.0 / attentions.0 / resnets.1   middle_block.0 / .1 / .2
//     up_blocks.b.resnets.l        output_blocks.(Σ_{k<b}(L'_k+1) + l).0          (L' = layers of the up level, +1 resnet)
//     up_blocks.b.attentions.l     output_blocks.(…).1
//     up_blocks.b.upsamplers.0.conv  output_blocks.(last of level).(2 with attention, else 1).conv
//     conv_norm_out / conv_out     out.0 / out.2
//     resnet: norm1 in_layers.0, conv1 in_layers.2, time_emb_proj emb_layers.1, norm2 out_layers.0,
//             conv2 out_layers.3, conv_shortcut skip_connection
//   VAE (prefix first_stage_model.)
//     encoder.down_blocks.i.resnets.j  encoder.down.i.block.j     (conv_shortcut → nin_shortcut)
//     encoder.down_blocks.i.downsamplers.0.conv  encoder.down.i.downsample.conv
//     decoder.up_blocks.i.…        decoder.up.(n−1−i).block.j / .upsample.conv   (LDM numbers up levels from the bottom)
//     *.mid_block.resnets.0/1      *.mid.block_1 / block_2
//     *.mid_block.attentions.0.group_norm / to_q / to_k / to_v / to_out.0   *.mid.attn_1.norm / q / k / v / proj_out
//                                  (stored as 1×1 convolutions [C, C, 1, 1]: reshaped to [C, C])
//     *.conv_norm_out              *.norm_out
//   CLIP, transformers layout (SD1: cond_stage_model.transformer.; SDXL: conditioner.embedders.0.transformer.)
//     names unchanged; some files lack "text_model."
//   OpenCLIP (SD2: cond_stage_model.model.; SDXL: conditioner.embedders.1.model.)
//     text_model.embeddings.token_embedding.weight     token_embedding.weight
//     text_model.embeddings.position_embedding.weight  positional_embedding
//     text_model.final_layer_norm                      ln_final
//     text_model.encoder.layers.i.layer_norm1 / 2      transformer.resblocks.i.ln_1 / ln_2
//     …self_attn.q_proj / k_proj / v_proj              …attn.in_proj_weight / _bias, rows [0,D) [D,2D) [2D,3D)
//     …self_attn.out_proj                              …attn.out_proj
//     …mlp.fc1 / fc2                                   …mlp.c_fc / c_proj
//     text_projection.weight                           text_projection, transposed

import Foundation
import LDMCore
import LDMIO

/// Where one diffusers tensor is stored in a single file, and how it is read from there.
public struct StoredLocation: Equatable, Sendable {
    /// How the stored tensor becomes the diffusers one.
    public enum Transform: Equatable, Sendable {
        /// Stored as is.
        case none
        /// Same elements, other shape (a 1×1 convolution's [C, C, 1, 1] read as a linear [C, C]).
        case reshape
        /// Part `part` of `parts` equal blocks of rows (OpenCLIP's fused q/k/v projection).
        case rows(part: Int, parts: Int)
        /// A matrix stored transposed (OpenCLIP's text_projection).
        case transpose
    }
    public var name: String
    public var transform: Transform
    public init(_ name: String, _ transform: Transform = .none) { self.name = name; self.transform = transform }
}

/// The text-encoder layouts single files use.
public enum TextEncoderLayout: String, Sendable {
    /// transformers' CLIPTextModel names (SD1's `cond_stage_model.transformer.`).
    case transformers
    /// OpenCLIP's names (SD2's `cond_stage_model.model.`).
    case openCLIP
}

/// The rules, by component.
public enum SingleFileMapping {
    public static let unetPrefix = "model.diffusion_model."
    public static let vaePrefix = "first_stage_model."
    public static let sd1TextPrefix = "cond_stage_model.transformer."
    public static let sd2TextPrefix = "cond_stage_model.model."

    // MARK: U-Net

    /// The stored name of U-Net parameter `name` (without the file's prefix).
    public static func unet(_ name: String, config: UNetConfig) -> StoredLocation {
        var parts = name.split(separator: ".").map(String.init)
        func rest(_ from: Int) -> String { parts[from...].joined(separator: ".") }
        let levels = config.blockOutChannels.count
        let layers = config.layersPerBlock.perBlock(levels)
        switch parts[0] {
        case "conv_in": return StoredLocation("input_blocks.0.0." + rest(1))
        case "time_embedding":
            return StoredLocation((parts[1] == "linear_1" ? "time_embed.0." : "time_embed.2.") + rest(2))
        case "add_embedding":
            return StoredLocation((parts[1] == "linear_1" ? "label_emb.0.0." : "label_emb.0.2.") + rest(2))
        case "conv_norm_out": return StoredLocation("out.0." + rest(1))
        case "conv_out": return StoredLocation("out.2." + rest(1))
        case "mid_block":
            let index = parts[1] == "attentions" ? 1 : (parts[2] == "0" ? 0 : 2)
            if parts[1] == "resnets" { parts[3] = resnetName(parts[3]) }
            return StoredLocation("middle_block.\(index)." + rest(3))
        case "down_blocks":
            let b = Int(parts[1])!, l = Int(parts[3])!
            let first = 1 + layers[..<b].reduce(0) { $0 + $1 + 1 }
            switch parts[2] {
            case "resnets":
                parts[4] = resnetName(parts[4])
                return StoredLocation("input_blocks.\(first + l).0." + rest(4))
            case "attentions": return StoredLocation("input_blocks.\(first + l).1." + rest(4))
            default: return StoredLocation("input_blocks.\(first + layers[b]).0.op." + rest(5))  // downsamplers.0.conv.X
            }
        case "up_blocks":
            let b = Int(parts[1])!, l = Int(parts[3])!
            let upLayers = Array(layers.reversed())
            let first = upLayers[..<b].reduce(0) { $0 + $1 + 1 }
            switch parts[2] {
            case "resnets":
                parts[4] = resnetName(parts[4])
                return StoredLocation("output_blocks.\(first + l).0." + rest(4))
            case "attentions": return StoredLocation("output_blocks.\(first + l).1." + rest(4))
            default:
                let hasAttention = config.upBlockTypes[b].contains("CrossAttn")
                return StoredLocation("output_blocks.\(first + upLayers[b]).\(hasAttention ? 2 : 1).conv." + rest(5))
            }
        default: return StoredLocation(name)
        }
    }

    /// diffusers' ResnetBlock2D names → LDM's ResBlock names.
    static func resnetName(_ part: String) -> String {
        switch part {
        case "norm1": return "in_layers.0"
        case "conv1": return "in_layers.2"
        case "time_emb_proj": return "emb_layers.1"
        case "norm2": return "out_layers.0"
        case "conv2": return "out_layers.3"
        case "conv_shortcut": return "skip_connection"
        default: return part
        }
    }

    // MARK: VAE

    /// The stored name of VAE parameter `name` (without the file's prefix).
    public static func vae(_ name: String, config: VAEConfig) -> StoredLocation {
        var parts = name.split(separator: ".").map(String.init)
        guard parts[0] == "encoder" || parts[0] == "decoder", parts.count > 2 else { return StoredLocation(name) }
        let side = parts[0]
        func rest(_ from: Int) -> String { parts[from...].joined(separator: ".") }
        switch parts[1] {
        case "conv_norm_out": return StoredLocation("\(side).norm_out." + rest(2))
        case "down_blocks", "up_blocks":
            let i = Int(parts[2])!
            let level = parts[1] == "down_blocks" ? "down.\(i)" : "up.\(config.blockOutChannels.count - 1 - i)"
            switch parts[3] {
            case "resnets":
                if parts[5] == "conv_shortcut" { parts[5] = "nin_shortcut" }
                return StoredLocation("\(side).\(level).block.\(parts[4])." + rest(5))
            case "downsamplers": return StoredLocation("\(side).\(level).downsample." + rest(5))
            default: return StoredLocation("\(side).\(level).upsample." + rest(5))
            }
        case "mid_block":
            if parts[2] == "resnets" { return StoredLocation("\(side).mid.block_\(Int(parts[3])! + 1)." + rest(4)) }
            // attentions.0.<group_norm | to_q | to_k | to_v | to_out.0>.<weight | bias>
            let field = parts.last!
            let module = parts[4...].dropLast().joined(separator: ".")
            let stored = ["group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"][module] ?? module
            return StoredLocation("\(side).mid.attn_1.\(stored).\(field)", module == "group_norm" ? .none : .reshape)
        default: return StoredLocation(name)
        }
    }

    // MARK: Text encoders

    /// The stored name of CLIP text-model parameter `name` (transformers' name, with `text_model.`).
    public static func textEncoder(_ name: String, layout: TextEncoderLayout) -> StoredLocation {
        guard layout == .openCLIP else { return StoredLocation(name) }
        if name == "text_projection.weight" { return StoredLocation("text_projection", .transpose) }
        let body = name.hasPrefix("text_model.") ? String(name.dropFirst("text_model.".count)) : name
        switch body {
        case "embeddings.token_embedding.weight": return StoredLocation("token_embedding.weight")
        case "embeddings.position_embedding.weight": return StoredLocation("positional_embedding")
        default: break
        }
        var parts = body.split(separator: ".").map(String.init)
        if parts[0] == "final_layer_norm" { return StoredLocation("ln_final." + parts[1]) }
        // encoder.layers.i.<module…>.<field>
        guard parts.count >= 5, parts[0] == "encoder", parts[1] == "layers" else { return StoredLocation(body) }
        let block = "transformer.resblocks.\(parts[2])."
        parts = Array(parts[3...])
        let field = parts.removeLast()
        let module = parts.joined(separator: ".")
        switch module {
        case "layer_norm1": return StoredLocation(block + "ln_1." + field)
        case "layer_norm2": return StoredLocation(block + "ln_2." + field)
        case "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj":
            let part = ["self_attn.q_proj": 0, "self_attn.k_proj": 1, "self_attn.v_proj": 2][module]!
            return StoredLocation(block + "attn.in_proj_" + field, .rows(part: part, parts: 3))
        case "self_attn.out_proj": return StoredLocation(block + "attn.out_proj." + field)
        case "mlp.fc1": return StoredLocation(block + "mlp.c_fc." + field)
        case "mlp.fc2": return StoredLocation(block + "mlp.c_proj." + field)
        default: return StoredLocation(block + module + "." + field)
        }
    }
}

/// A view of another tensor source under diffusers' names: each name reads its stored tensor
/// through the mapping, applying the stored location's transform.
public final class MappedTensorSource: TensorSource {
    public let base: any TensorSource
    public let path: String
    public let names: [String]
    /// diffusers name → where it is stored (full name in `base`).
    public let locations: [String: StoredLocation]
    private let shapes: [String: [Int]]

    /// `expectedShapes`: the shapes the model wants, used by `.reshape`.
    public init(base: any TensorSource, locations: [String: StoredLocation], expectedShapes: [String: [Int]]) throws {
        self.base = base
        path = base.path
        self.locations = locations.filter { base.contains($0.value.name) }
        names = self.locations.keys.sorted()
        var shapes: [String: [Int]] = [:]
        for name in names {
            let loc = self.locations[name]!
            let s = try base.shape(of: loc.name)
            switch loc.transform {
            case .none: shapes[name] = s
            case .reshape:
                let want = expectedShapes[name] ?? s
                shapes[name] = want.reduce(1, *) == s.reduce(1, *) ? want : s
            case let .rows(_, parts):
                guard let rows = s.first, rows % parts == 0 else {
                    throw ModelError.invalidInput("\(path): \(loc.name) has shape \(s), which does not split into \(parts) equal row blocks")
                }
                shapes[name] = [rows / parts] + s.dropFirst()
            case .transpose:
                guard s.count == 2 else { throw ModelError.invalidInput("\(path): \(loc.name) has shape \(s), expected a matrix") }
                shapes[name] = [s[1], s[0]]
            }
        }
        self.shapes = shapes
    }

    public func contains(_ name: String) -> Bool { locations[name] != nil }

    public func shape(of name: String) throws -> [Int] {
        guard let s = shapes[name] else { throw ModelError.missingTensor(component: path, name: name, shape: []) }
        return s
    }

    public func dtype(of name: String) throws -> SafeTensorsDType {
        guard let loc = locations[name] else { throw ModelError.missingTensor(component: path, name: name, shape: []) }
        return try base.dtype(of: loc.name)
    }

    public func copyFloats(_ name: String, into destination: UnsafeMutablePointer<Float>, count: Int) throws {
        guard let loc = locations[name] else { throw ModelError.missingTensor(component: path, name: name, shape: []) }
        switch loc.transform {
        case .none, .reshape:
            try base.copyFloats(loc.name, into: destination, count: count)
        case let .rows(part, parts):
            let all = try base.floatArray(loc.name)
            let block = all.count / parts
            guard block == count else { throw ModelError.invalidInput("\(path): \(loc.name) does not hold \(parts) blocks of \(count)") }
            all.withUnsafeBufferPointer { destination.update(from: $0.baseAddress! + part * block, count: block) }
        case .transpose:
            let all = try base.floatArray(loc.name)
            let s = try base.shape(of: loc.name)
            guard all.count == count else { throw ModelError.invalidInput("\(path): \(loc.name) has \(all.count) elements, expected \(count)") }
            for i in 0..<s[0] { for j in 0..<s[1] { destination[j * s[0] + i] = all[i * s[1] + j] } }
        }
    }

    /// The diffusers tensor as stored bytes in the stored element type (bit-exact, for conversion).
    public func storedTensor(_ name: String) throws -> StoredTensor {
        guard let loc = locations[name] else { throw ModelError.missingTensor(component: path, name: name, shape: []) }
        let t = try base.stored(loc.name)
        let shape = try self.shape(of: name)
        let size = t.dtype.byteSize
        switch loc.transform {
        case .none, .reshape: return StoredTensor(dtype: t.dtype, shape: shape, bytes: t.bytes)
        case let .rows(part, parts):
            let block = t.bytes.count / parts
            return StoredTensor(dtype: t.dtype, shape: shape, bytes: Array(t.bytes[part * block..<(part + 1) * block]))
        case .transpose:
            return StoredTensor(dtype: t.dtype, shape: shape, bytes: transposeBytes(t.bytes, rows: t.shape[0], columns: t.shape[1], size: size))
        }
    }
}

/// A [rows, columns] matrix of `size`-byte elements, transposed.
public func transposeBytes(_ bytes: [UInt8], rows: Int, columns: Int, size: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: bytes.count)
    for i in 0..<rows { for j in 0..<columns {
        let from = (i * columns + j) * size, to = (j * rows + i) * size
        for k in 0..<size { out[to + k] = bytes[from + k] }
    } }
    return out
}

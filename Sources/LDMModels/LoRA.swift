// LoRA files (Hu et al., 2021): low-rank updates W ← W + w · (α / r) · up · down, per module.
//
// Formats read:
//   kohya (sd-scripts, what A1111 and ComfyUI users download): `lora_unet_<module path, "." → "_">`
//     and `lora_te_…` (SD 1.x/2.x text encoder; SDXL: `lora_te1_…`, `lora_te2_…`) with `.lora_down.weight` [r, in(, kh, kw)],
//     `.lora_up.weight` [out, r(, 1, 1)] and `.alpha` (a scalar; absent = r). The U-Net path is
//     diffusers' (`down_blocks_0_attentions_0_…`) or the LDM one (`input_blocks_1_1_…`), the latter
//     mapped through SingleFileMapping. LoCon: 3×3 convolution downs with 1×1 ups.
//   diffusers / peft: `unet.<path>.lora_A.weight` [r, in], `.lora_B.weight` [out, r] (also
//     `text_encoder.…`, `text_encoder_2.…`; the older `.lora.down.weight` / `.lora.up.weight`), α from the
//     `lora_adapter_metadata` header entry (`lora_alpha`, `r`, `alpha_pattern`), else α = r.
//   Refused with one line: LoHa (`hada_*`), LoKr (`lokr_*`), DoRA (`dora_scale`), and others.
//
// The scale of a kohya module is its own α / its own r (kohya's and A1111's formula). diffusers
// 0.42.1 converts some kohya files with one α for several modules; where the two differ we follow
// kohya. Updates are added in float32 to the loaded weights; `LoRAApplication.restore()` puts back
// the exact original values, so a long-lived generator can serve the next request without them.

import Foundation
import LDMCore
import LDMIO

/// Errors about a LoRA file, one line each.
public enum LoRAError: Error, CustomStringConvertible, Equatable {
    case unsupported(path: String, kind: String)
    case notALoRA(path: String)
    case unknownModule(path: String, key: String)
    case shapeMismatch(path: String, module: String, expected: [Int], found: [Int])
    case badTensor(path: String, key: String, reason: String)
    public var description: String {
        switch self {
        case let .unsupported(p, k): return "\(p): \(k) files are not supported (only LoRA/LoCon in kohya or diffusers/peft form)"
        case let .notALoRA(p): return "\(p) is not a LoRA file (no lora_down/lora_up or lora_A/lora_B tensors)"
        case let .unknownModule(p, k): return "\(p): LoRA module \(k) does not exist in this model (a LoRA for another architecture?)"
        case let .shapeMismatch(p, m, e, f):
            return "\(p): LoRA update for \(m) has shape \(f), the model's weight is \(e) (a LoRA for another architecture?)"
        case let .badTensor(p, k, r): return "\(p): tensor \(k) \(r)"
        }
    }
}

/// One module's low-rank pair.
public struct LoRAModule {
    /// "unet", "text_encoder" or "text_encoder_2".
    public var component: String
    /// The diffusers parameter name of the weight it updates (e.g. `down_blocks.0.….to_q.weight`).
    public var target: String
    /// Names of the down / up tensors in the file.
    public var down: String, up: String
    public var rank: Int
    public var alpha: Float
}

/// A LoRA file, parsed: which weights it updates and how.
public struct LoRAFile {
    public enum Format: String { case kohya, peft }
    public let path: String
    public let source: any TensorSource
    public let format: Format
    public let modules: [LoRAModule]

    /// Reads and checks `path` against the models it will update (their parameter names).
    public init(path: String, unet: Module, textEncoder: Module, textEncoder2: Module? = nil, unetConfig: UNetConfig) throws {
        self.path = path
        let source = try openTensorFile(path)
        self.source = source
        let names = source.names
        if names.contains(where: { $0.contains("hada_w1") }) { throw LoRAError.unsupported(path: path, kind: "LoHa") }
        if names.contains(where: { $0.contains("lokr_w1") }) { throw LoRAError.unsupported(path: path, kind: "LoKr") }
        if names.contains(where: { $0.hasSuffix("dora_scale") || $0.contains("lora_magnitude_vector") }) {
            throw LoRAError.unsupported(path: path, kind: "DoRA")
        }
        let unetWeights = Set(unet.namedParameters().map(\.0))
        let textWeights = Set(textEncoder.namedParameters().map { $0.0 })
        let text2Weights = Set(textEncoder2?.namedParameters().map { $0.0 } ?? [])
        var modules: [LoRAModule] = []
        if names.contains(where: { $0.hasSuffix(".lora_down.weight") }) {
            format = .kohya
            // kohya's flattened names → our parameter names, for every weight of both models.
            var flat: [String: (String, String)] = [:]
            for w in unetWeights where w.hasSuffix(".weight") {
                let module = String(w.dropLast(".weight".count))
                flat["lora_unet_" + module.replacingOccurrences(of: ".", with: "_")] = ("unet", w)
                let ldm = SingleFileMapping.unet(w, config: unetConfig).name
                flat["lora_unet_" + ldm.dropLast(".weight".count).replacingOccurrences(of: ".", with: "_")] = ("unet", w)
            }
            for w in textWeights where w.hasSuffix(".weight") {
                let module = String(w.dropLast(".weight".count))
                let key = module.replacingOccurrences(of: ".", with: "_")
                flat["lora_te_" + key] = ("text_encoder", w)
                flat["lora_te1_" + key] = ("text_encoder", w)
            }
            for w in text2Weights where w.hasSuffix(".weight") {
                flat["lora_te2_" + w.dropLast(".weight".count).replacingOccurrences(of: ".", with: "_")] = ("text_encoder_2", w)
            }
            for down in names where down.hasSuffix(".lora_down.weight") {
                let base = String(down.dropLast(".lora_down.weight".count))
                guard let (component, target) = flat[base] else { throw LoRAError.unknownModule(path: path, key: base) }
                let up = base + ".lora_up.weight"
                guard source.contains(up) else { throw LoRAError.badTensor(path: path, key: down, reason: "has no matching \(up)") }
                let rank = try source.shape(of: down).first ?? 0
                var alpha = Float(rank)
                if source.contains(base + ".alpha") {
                    let a = try source.floatArray(base + ".alpha")
                    guard a.count == 1 else { throw LoRAError.badTensor(path: path, key: base + ".alpha", reason: "is not a scalar") }
                    alpha = a[0]
                }
                modules.append(LoRAModule(component: component, target: target, down: down, up: up, rank: rank, alpha: alpha))
            }
        } else if names.contains(where: { $0.hasSuffix(".lora_A.weight") || $0.hasSuffix(".lora.down.weight") }) {
            format = .peft
            let meta = (source as? SafeTensorsFile)?.metadata["lora_adapter_metadata"]
            let (defaultAlpha, alphaPattern) = Self.peftAlpha(meta)
            for down in names where down.hasSuffix(".lora_A.weight") || down.hasSuffix(".lora.down.weight") {
                let isA = down.hasSuffix(".lora_A.weight")
                let base = String(down.dropLast(isA ? ".lora_A.weight".count : ".lora.down.weight".count))
                let up = base + (isA ? ".lora_B.weight" : ".lora.up.weight")
                guard source.contains(up) else { throw LoRAError.badTensor(path: path, key: down, reason: "has no matching \(up)") }
                var component = "unet", module = base
                for (prefix, name) in [("unet.", "unet"), ("text_encoder_2.", "text_encoder_2"), ("text_encoder.", "text_encoder"),
                                       ("base_model.model.", "unet")]
                where base.hasPrefix(prefix) {
                    component = name; module = String(base.dropFirst(prefix.count)); break
                }
                var target = module + ".weight"
                let pool = component == "unet" ? unetWeights : (component == "text_encoder" ? textWeights : text2Weights)
                if !pool.contains(target), component != "unet", pool.contains("text_model." + target) { target = "text_model." + target }
                guard pool.contains(target) else { throw LoRAError.unknownModule(path: path, key: base) }
                let rank = try source.shape(of: down).first ?? 0
                let alpha = alphaPattern.first(where: { module.hasSuffix($0.key) })?.value ?? defaultAlpha ?? Float(rank)
                modules.append(LoRAModule(component: component, target: target, down: down, up: up, rank: rank, alpha: alpha))
            }
        } else {
            throw LoRAError.notALoRA(path: path)
        }
        self.modules = modules.sorted { $0.target < $1.target }
    }

    /// peft's `lora_alpha` and `alpha_pattern` from the `lora_adapter_metadata` JSON.
    static func peftAlpha(_ json: String?) -> (Float?, [String: Float]) {
        guard let json, let data = json.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return (nil, [:]) }
        let alpha = (object["lora_alpha"] as? NSNumber)?.floatValue
        var pattern: [String: Float] = [:]
        for (k, v) in object["alpha_pattern"] as? [String: Any] ?? [:] { if let n = v as? NSNumber { pattern[k] = n.floatValue } }
        return (alpha, pattern)
    }

    /// Where the file's modules go, summarised ("unet: 32 modules, text_encoder: 12; rank 4, alpha 2").
    public var summary: String {
        let parts = Dictionary(grouping: modules, by: \.component).sorted { $0.key > $1.key }.map { "\($0.key): \($0.value.count) modules" }
        let ranks = Set(modules.map(\.rank)).sorted(), alphas = Set(modules.map(\.alpha)).sorted()
        return "\(format.rawValue) LoRA, " + parts.joined(separator: ", ")
            + "; rank \(ranks.map(String.init).joined(separator: "/")), alpha \(alphas.map { String(format: "%g", $0) }.joined(separator: "/"))"
    }
}

/// LoRAs added to loaded models, with the original weights kept to undo them exactly.
public final class LoRAApplication {
    private var saved: [(Parameter, [Float])] = []
    public init() {}

    /// Adds `weight · α/r · up·down` of every module of `file` to the models.
    public func apply(_ file: LoRAFile, weight: Float, unet: Module, textEncoder: Module, textEncoder2: Module? = nil) throws {
        let params = Dictionary(uniqueKeysWithValues: unet.namedParameters().map { ("unet/" + $0.0, $0.1) }
            + textEncoder.namedParameters().map { ("text_encoder/" + $0.0, $0.1) }
            + (textEncoder2?.namedParameters().map { ("text_encoder_2/" + $0.0, $0.1) } ?? []))
        for m in file.modules {
            guard let p = params[m.component + "/" + m.target] else { throw LoRAError.unknownModule(path: file.path, key: m.target) }
            let downShape = try file.source.shape(of: m.down), upShape = try file.source.shape(of: m.up)
            let rank = downShape.first ?? 0
            let out = upShape.first ?? 0
            let inner = downShape.dropFirst().reduce(1, *)
            guard rank > 0, upShape.count >= 2, upShape[1] == rank, upShape.dropFirst(2).allSatisfy({ $0 == 1 }),
                  out * inner == p.value.count, p.shape.first == out else {
                throw LoRAError.shapeMismatch(path: file.path, module: m.target, expected: p.shape, found: [out, inner])
            }
            let down = try file.source.floatArray(m.down), up = try file.source.floatArray(m.up)
            let scale = weight * m.alpha / Float(rank)
            if !saved.contains(where: { $0.0 === p }) { saved.append((p, Array(UnsafeBufferPointer(start: p.value.data, count: p.value.count)))) }
            // ΔW[o, i] = scale · Σ_k up[o, k] · down[k, i]  (out × rank times rank × inner)
            var delta = [Float](repeating: 0, count: out * inner)
            for o in 0..<out { for k in 0..<rank {
                let u = up[o * rank + k] * scale
                if u == 0 { continue }
                for i in 0..<inner { delta[o * inner + i] += u * down[k * inner + i] }
            } }
            for i in 0..<delta.count { p.value.data[i] += delta[i] }
        }
    }

    /// Puts back every weight a LoRA changed.
    public func restore() {
        for (p, values) in saved { values.withUnsafeBufferPointer { p.value.data.update(from: $0.baseAddress!, count: values.count) } }
        saved.removeAll()
    }
}

// Writing trained models in diffusers' folder layout, so diffusers can load them.

import Foundation
import LDMCore
import LDMIO
import LDMModels

/// Writes a config with diffusers' `_class_name` / `_diffusers_version` (or transformers'
/// `architectures`) entries next to the model's own keys.
public func writeComponentConfig<T: Encodable>(_ config: T, extra: [String: Any], to url: URL) throws {
    let data = try JSONEncoder().encode(config)
    guard var dict = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw TrainingError.invalidArgument("config did not encode as an object")
    }
    for (k, v) in extra { dict[k] = v }
    let out = try JSONSerialization.data(withJSONObject: dict, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    try out.write(to: url, options: .atomic)
}

/// Saves a VAE as `<folder>/config.json` + `diffusion_pytorch_model.safetensors`.
public func saveVAE(_ vae: AutoencoderKL, to folder: URL, dtype: SafeTensorsDType = .f32) throws {
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    try writeComponentConfig(vae.config, extra: ["_class_name": "AutoencoderKL", "_diffusers_version": "0.30.0"],
                             to: folder.appendingPathComponent("config.json"))
    try vae.save(to: folder.appendingPathComponent("diffusion_pytorch_model.safetensors"), dtype: dtype)
}

/// Saves a U-Net as `<folder>/config.json` + `diffusion_pytorch_model.safetensors`.
public func saveUNet(_ unet: UNet2DConditionModel, to folder: URL, dtype: SafeTensorsDType = .f32) throws {
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    try writeComponentConfig(unet.config, extra: ["_class_name": "UNet2DConditionModel", "_diffusers_version": "0.30.0"],
                             to: folder.appendingPathComponent("config.json"))
    try unet.save(to: folder.appendingPathComponent("diffusion_pytorch_model.safetensors"), dtype: dtype)
}

/// Saves a CLIP text encoder as `<folder>/config.json` + `model.safetensors`.
public func saveTextEncoder(_ model: CLIPTextModel, to folder: URL, dtype: SafeTensorsDType = .f32) throws {
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    // Only keys whose JSON form is unambiguous: JSONSerialization writes 1.0 as 1, which
    // transformers' strict config fields reject for float-typed keys.
    try writeComponentConfig(model.config, extra: ["architectures": ["CLIPTextModel"], "model_type": "clip_text_model"],
                             to: folder.appendingPathComponent("config.json"))
    try model.save(to: folder.appendingPathComponent("model.safetensors"), dtype: dtype)
}

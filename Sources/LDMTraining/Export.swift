// Exporting trained models as diffusers folders.

import Foundation
import LDMCore
import LDMIO
import LDMModels

/// Writes the VAE with `scaling_factor` set to 1/std of its latents (posterior means) on held-out images,
/// as Stable Diffusion's factor was chosen.
public func exportVAE(_ vae: AutoencoderKL, heldOut: ImageCaptionDataset, to folder: URL, images: Int = 256,
                      dtype: SafeTensorsDType = .f32) throws {
    var sum = 0.0, sumSq = 0.0, n = 0.0
    var done = 0
    while done < images {
        let k = min(32, images - done)
        let (x, _) = try heldOut.batch(from: done, count: k)
        let m = vae.encode(x).mean
        for i in 0..<m.count { let v = Double(m.data[i]); sum += v; sumSq += v * v; n += 1 }
        done += k
    }
    let variance = sumSq / n - (sum / n) * (sum / n)
    var config = vae.config
    config.scalingFactor = Float(1 / max(variance, 1e-12).squareRoot())
    let out = try AutoencoderKL(config: config)
    for ((_, a), (_, b)) in zip(out.namedParameters(), vae.namedParameters()) { a.value.copy(from: b.value) }
    try saveVAE(out, to: folder, dtype: dtype)
}

/// Writes the full diffusers folder of a diffusion run: EMA U-Net and text encoder, its tokenizer,
/// the VAE it trained on, a scheduler config matching the training noise schedule, model_index.json.
/// A pixel-space run has no VAE: the folder then has no `vae/` (a stale one is removed) and
/// model_index.json lists none, which is how `StableDiffusionPipeline` knows to work on pixels.
public func exportDiffusionModel(_ trainer: DiffusionTrainer, to folder: URL, dtype: SafeTensorsDType = .f32) throws {
    let fm = FileManager.default
    try fm.createDirectory(at: folder, withIntermediateDirectories: true)
    let (unet, text) = try trainer.emaModels()
    try saveUNet(unet, to: folder.appendingPathComponent("unet"), dtype: dtype)
    try saveTextEncoder(text, to: folder.appendingPathComponent("text_encoder"), dtype: dtype)
    // The VAE is small: kept in float32 so a run resumed from the exported folder sees the same latents.
    let vaeFolder = folder.appendingPathComponent("vae")
    if let vae = trainer.vae {
        try saveVAE(vae, to: vaeFolder, dtype: .f32)
    } else if fm.fileExists(atPath: vaeFolder.path) {
        try fm.removeItem(at: vaeFolder)
    }
    let tok = folder.appendingPathComponent("tokenizer")
    try? fm.removeItem(at: tok)
    try fm.copyItem(at: trainer.runFolder.appendingPathComponent("tokenizer"), to: tok)
    try writeSchedulerConfig(trainer.config, to: folder)
    var index: [String: Any] = [
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0",
        "feature_extractor": [NSNull(), NSNull()], "safety_checker": [NSNull(), NSNull()], "requires_safety_checker": false,
        "scheduler": ["diffusers", "DPMSolverMultistepScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
    ]
    if trainer.vae != nil { index["vae"] = ["diffusers", "AutoencoderKL"] }
    try JSONSerialization.data(withJSONObject: index, options: [.prettyPrinted, .sortedKeys])
        .write(to: folder.appendingPathComponent("model_index.json"), options: .atomic)
}

/// Writes `scheduler/scheduler_config.json` in `folder`: DPM-Solver++ (2M) over the training noise
/// schedule. A zero-terminal-SNR schedule samples with "trailing" timesteps, so the first step is
/// t = T − 1, the pure-noise step the model was trained on.
public func writeSchedulerConfig(_ c: DiffusionTrainingConfig, to folder: URL) throws {
    let zero = c.zeroTerminalSNR ?? false
    var scheduler: [String: Any] = [
        "_class_name": "DPMSolverMultistepScheduler", "_diffusers_version": "0.30.0",
        "num_train_timesteps": c.trainTimesteps, "beta_start": c.betaStart, "beta_end": c.betaEnd,
        "beta_schedule": "scaled_linear", "prediction_type": c.predictionType, "timestep_spacing": "leading",
        "steps_offset": 1, "algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": false,
        "set_alpha_to_one": false, "clip_sample": false, "trained_betas": NSNull(),
    ]
    if zero {
        scheduler["rescale_betas_zero_snr"] = true
        scheduler["timestep_spacing"] = "trailing"
    }
    try FileManager.default.createDirectory(at: folder.appendingPathComponent("scheduler"), withIntermediateDirectories: true)
    try JSONSerialization.data(withJSONObject: scheduler, options: [.prettyPrinted, .sortedKeys])
        .write(to: folder.appendingPathComponent("scheduler/scheduler_config.json"), options: .atomic)
}

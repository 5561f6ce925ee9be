// `ldm bench train`: samples per second of the U-Net + text-encoder training step.

import Foundation
import LDMCore
import LDMModels
import LDMTraining

/// Times `steps` diffusion training steps (forward, backward, clipping, AdamW, EMA) after one
/// warm-up step, on generated Shapes images, in a temporary run folder removed afterwards.
/// `secondsPerCall` is seconds per optimiser step; samples/s is the batch over it.
public func benchmarkDiffusionTraining(config: DiffusionTrainingConfig, space: LatentSpace, steps: Int) throws -> ModelTiming {
    let fm = FileManager.default
    let folder = fm.temporaryDirectory.appendingPathComponent("ldm-bench-train-\(UUID().uuidString)")
    defer { try? fm.removeItem(at: folder) }
    let data = ShapesDataset(seed: 0)
    let captions = try (0..<1000).map { try data.sample($0).caption }
    let trainer = try DiffusionTrainer(config: config, space: space, dataset: data, captions: captions, runFolder: folder)
    let u = trainer.unet.config
    let shape = "batch \(config.batchSize), \(space.isPixelSpace ? "pixels" : "latent") \(u.inChannels)×\(u.sampleSize)×\(u.sampleSize)"
    return try time("training step", shape: shape, parameters: trainer.unet.parameterCount + trainer.text.parameterCount,
                    calls: steps) { _ = try trainer.trainStep() }
}

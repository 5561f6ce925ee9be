// `ldm train lora`: LoRA fine-tuning of a model (folder or single file) on a folder of captioned
// pictures, with the base weights frozen; resumable, written in kohya's or diffusers/peft's form.

import ArgumentParser
import Foundation
import LDMCore
import LDMDiffusion
import LDMIO
import LDMModels
import LDMService
import LDMTraining

extension TrainCommand {
    struct LoRA: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "lora", abstract: "Train a LoRA for a model on a folder of PNGs with .txt captions (base weights frozen).")
        @OptionGroup var model: ModelArguments
        @Option(name: .customLong("run"), help: "Run folder: checkpoints and the training settings live here.") var runPath: String
        @Flag(help: "Continue from the newest complete checkpoint in the run folder.") var resume = false
        @Option(help: "Folder of training pictures (PNG, any size: centre-cropped to squares) with same-named .txt captions.")
        var dataset: String
        @Option(help: "Where to write the LoRA (.safetensors) when the run ends.") var output: String
        @Option(help: "kohya (A1111, ComfyUI; default) or peft (diffusers' load_lora_weights).") var format = "kohya"
        @Option(help: "Rank r of the updates.") var rank = 4
        @Option(help: "α: updates are scaled by α / r (default: r).") var alpha: Float?
        @Option(help: "What to adapt: unet, text, or unet,text.") var targets = "unet"
        @Flag(help: "Also adapt the U-Net's 3×3 convolutions (LoCon).") var conv = false
        @Option(help: "Total optimiser steps.") var steps = 500
        @Option(help: "Images per step.") var batch = 2
        @Option(help: "Learning rate (constant after warm-up).") var lr: Float = 1e-4
        @Option(help: "Warm-up steps.") var warmup = 20
        @Option(help: "Image size the pictures are trained at (default: the model's).") var size: Int?
        @Option(help: "Seed of the LoRA's initial weights and of the noise.") var seed: UInt64 = 0
        @Option(help: "Steps between checkpoints.") var checkpointEvery = 100
        @Option(help: "Steps between sample images, with and without the LoRA, and at the end (default: the checkpoint interval; 0: none — a 512² sample pair takes minutes on a CPU).")
        var sampleEvery: Int?
        @Option(help: "Start from this LoRA file's weights (written by ldm train lora with the same targets, rank and alpha).")
        var initFrom: String?
        @Option(help: "Prompt of the sample images drawn at every checkpoint, with and without the LoRA (default: the first caption).")
        var samplePrompt: String?
        @Flag(help: "Gradient checkpointing: keep only the inputs of the U-Net's residual blocks and transformers and recompute the rest in the backward pass (less memory, about a third more time; the same weights).")
        var gradientCheckpointing = false

        func validate() throws {
            guard ["kohya", "peft"].contains(format) else { throw ValidationError("--format must be kohya or peft") }
            guard output.lowercased().hasSuffix(".safetensors") else { throw ValidationError("--output must end in .safetensors") }
            if let size, size < 8 || size % 8 != 0 { throw ValidationError("--size must be a positive multiple of 8") }
            if let sampleEvery, sampleEvery < 0 { throw ValidationError("--sample-every must be 0 (no samples) or more") }
        }

        func run() throws {
            let progress = ProgressReporter(label: "train lora")
            try model.check()
            let modelPath = try model.folder()
            let pipeline = try StableDiffusionPipeline.load(model: modelPath.path, options: model.loadOptions, notice: { progress.note($0) })
            var c = LoRATrainingConfig()
            c.rank = rank
            c.alpha = alpha ?? Float(rank)
            c.targets = targets.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            c.conv = conv
            c.steps = steps
            c.batchSize = batch
            c.learningRate = lr
            c.warmupSteps = warmup
            c.seed = seed
            c.checkpointEvery = checkpointEvery
            c.sampleEvery = sampleEvery ?? checkpointEvery
            c.imageSize = size ?? pipeline.defaultSize
            c.baseModel = modelPath.path
            let runFolder = URL(fileURLWithPath: runPath)
            let settings = runFolder.appendingPathComponent("lora-training.json")
            if resume, let data = try? Data(contentsOf: settings), let saved = try? JSONDecoder().decode(LoRATrainingConfig.self, from: data) {
                // The run's own settings decide what the weights mean; only the length may grow.
                let steps = c.steps
                c = saved
                c.steps = max(steps, saved.steps)
                if let sampleEvery { c.sampleEvery = sampleEvery }
            }
            let data = try FolderImageDataset(directory: dataset, size: c.imageSize)
            guard data.folder.count > 0 else { throw ValidationError("no captioned PNGs in \(dataset)") }
            for s in data.folder.skipped.prefix(5) { progress.note("skipped \(s)") }
            let captions = try (0..<data.folder.count).map { try data.folder.caption(at: $0) }
            let trainer = try LoRATrainer(config: c, pipeline: pipeline, dataset: data, captions: captions, runFolder: runFolder)
            trainer.gradientCheckpointing = gradientCheckpointing
            if resume, let s = try trainer.resume() {
                progress.note("resumed from step \(s)")
            } else if let initFrom {
                let fresh = try trainer.initialize(from: initFrom)
                progress.note("starting from the weights of \(initFrom)"
                              + (fresh > 0 ? " (\(fresh) modules it lacks start fresh)" : ""))
            }
            let trained = trainer.targets.reduce(0) { $0 + $1.down.value.count + $1.up.value.count }
            progress.note("LoRA rank \(c.rank), alpha \(String(format: "%g", c.alpha)): \(trainer.targets.count) layers "
                          + "(\(c.targets.joined(separator: ", "))\(c.conv ? ", convolutions" : "")), \(groupedDigits(trained)) parameters; "
                          + "\(captions.count) pictures at \(c.imageSize)²; batch \(c.batchSize); run folder \(runFolder.path)")
            let prompt = samplePrompt ?? captions[0]
            let samples = runFolder.appendingPathComponent("samples")
            InterruptFlag.install()
            try trainer.run(report: { TrainCommand.report(progress, $0) }, onSample: { step in
                try FileManager.default.createDirectory(at: samples, withIntermediateDirectories: true)
                let lora = samples.appendingPathComponent(".sample.safetensors")
                try trainer.export(to: lora, format: .kohya, dtype: .f32)
                defer { try? FileManager.default.removeItem(at: lora) }
                var r = GenerationRequest(prompt: prompt)
                r.steps = 20
                r.seed = 1
                r.width = c.imageSize
                r.height = c.imageSize
                let base = try pipeline.generate(r)
                let applied = LoRAApplication()
                let file = try LoRAFile(path: lora.path, unet: pipeline.unet, textEncoder: pipeline.textEncoder, unetConfig: pipeline.unet.config)
                try applied.apply(file, weight: 1, unet: pipeline.unet, textEncoder: pipeline.textEncoder)
                let with = try pipeline.generate(r)
                applied.restore()
                var png = pngImage(concat([base, with], dim: 3), index: 0)
                png.texts = [PNGTextChunk(keyword: "parameters", text: "\(prompt)\nleft: base model, right: with the LoRA at step \(step)")]
                let path = samples.appendingPathComponent(String(format: "step-%06d.png", step)).path
                try png.write(to: path)
                return "sample \(path) (left without, right with the LoRA)"
            })
            if trainer.step >= c.steps {
                let url = URL(fileURLWithPath: output)
                try trainer.export(to: url, format: format == "peft" ? .peft : .kohya)
                progress.note("wrote \(output) (\(format), \(trainer.targets.count) modules, rank \(c.rank), alpha \(String(format: "%g", c.alpha)))")
            }
        }
    }
}

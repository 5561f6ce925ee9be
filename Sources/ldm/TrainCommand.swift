// `ldm train vae | unet`: training runs with progress, checkpoints, resume and export.

import ArgumentParser
import Foundation
import LDMBench
import LDMCore
import LDMDiffusion
import LDMIO
import LDMModels
import LDMService
import LDMTraining

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train the VAE, the U-Net with its text encoder, or a LoRA for any model.",
        subcommands: [VAE.self, UNet.self, LoRA.self])

    /// Options every training run has.
    struct RunOptions: ParsableArguments {
        @Option(help: "Run folder: checkpoints, logs and the training settings live here.")
        var run: String
        @Flag(help: "Continue from the newest complete checkpoint in the run folder.")
        var resume = false
        @Option(help: "Total optimiser steps.") var steps: Int?
        @Option(help: "Images per step (the global batch: in a data-parallel run it is split over the ranks).") var batch: Int?
        @Option(help: "Images per forward/backward pass: each rank's share of the batch runs in pieces of at most this many, their gradients added (gradient accumulation: less memory, the same step up to rounding).")
        var microBatch: Int?
        @Option(help: "Peak learning rate.") var lr: Float?
        @Option(help: "Seed of the initial weights and the noise.") var seed: UInt64?
        @Option(help: "Steps between checkpoints.") var checkpointEvery: Int?
        @Option(help: "Training images: 'shapes' (generated) or a folder of PNGs with .txt captions.")
        var dataset: String = "shapes"
        @Option(help: "Write the trained (EMA) model here when the run ends.") var export: String?
        @Flag(help: "Store exported weights as F16 (half the size).") var exportF16 = false

        func validate() throws {
            if let steps, steps < 1 { throw ValidationError("--steps must be at least 1") }
            if let batch, batch < 1 { throw ValidationError("--batch must be at least 1") }
            if let microBatch, microBatch < 1 { throw ValidationError("--micro-batch must be at least 1") }
        }

        var folder: URL { URL(fileURLWithPath: run) }

        /// The training and held-out sets; `captionMix` weights the Shapes caption forms of the
        /// training set and `spreadRelations` is its share of spread relation layouts (the
        /// held-out set keeps the even mix and random layouts).
        func makeDataset(captionMix: [Int]? = nil, spreadRelations: Double? = nil) throws -> (ImageCaptionDataset, ImageCaptionDataset) {
            if dataset == "shapes" {
                var generator = try captionMix.map { try ShapesGenerator(seed: 1, formWeights: $0) } ?? ShapesGenerator(seed: 1)
                generator.spreadRelations = spreadRelations ?? 0
                return (ShapesDataset(generator: generator), ShapesDataset(seed: 2))
            }
            if captionMix != nil { throw ValidationError("--caption-mix applies to the shapes dataset only") }
            if spreadRelations != nil { throw ValidationError("--spread-relations applies to the shapes dataset only") }
            let d = try FolderImageDataset(directory: dataset, size: 64)
            return (d, d)
        }
    }

    /// Generates the sample prompts with the EMA weights, writes them as a grid PNG in `samples/`,
    /// and scores them with the Shapes analyser.
    static func sampleGrid(_ trainer: DiffusionTrainer, prompts: [String], folder: URL, step: Int) throws -> String {
        let (unet, text) = try trainer.emaModels()
        let pipe = StableDiffusionPipeline(folder: folder, tokenizer: trainer.tokenizer, textEncoder: text, unet: unet, space: trainer.space)
        let analyser = ShapesAnalyser()
        var evaluation = ShapesEvaluation()
        var tiles: [PNGImage] = []
        for (i, prompt) in prompts.enumerated() {
            var r = GenerationRequest(prompt: prompt)
            r.steps = 20
            r.guidance = 5
            r.seed = UInt64(i)
            r.rng = .swift
            let png = pngImage(try pipe.generate(r), index: 0)
            if let caption = ShapesCaption.parse(prompt) { evaluation.record(analyser.evaluate(RGBImage(png), caption: caption)) }
            tiles.append(png)
        }
        let dir = folder.appendingPathComponent("samples")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var grid = imageGrid(tiles, columns: 5)
        grid.texts = [PNGTextChunk(keyword: "parameters", text: prompts.joined(separator: "\n") + "\nSteps: 20, CFG scale: 5, Training step: \(step)")]
        let path = dir.appendingPathComponent(String(format: "step-%07d.png", step)).path
        try grid.write(to: path)
        let t = evaluation.overall
        return "samples \(path)" + (t.total > 0 ? ": \(t.correct)/\(t.total) judged right" : "")
    }

    /// Runs a training command's body in this process's place among the ranks a launcher started
    /// (one process outside a launcher). In a multi-rank run an error on any rank ends every rank:
    /// this one prints it, MPI_Abort has the launcher stop the others, and they say so.
    static func onRanks(_ body: (DataParallel) throws -> Void) throws {
        let communicator: Communicator
        do { communicator = try ParallelLaunch.communicator() } catch { throw ValidationError("\(error)") }
        let parallel = DataParallel(communicator)
        guard parallel.size > 1 else { return try body(parallel) }
        ParallelLaunch.explainTermination(rank: parallel.rank, size: parallel.size)
        do { try body(parallel) } catch {
            ParallelLaunch.abort(communicator, message: "ldm: rank \(parallel.rank) of \(parallel.size): \(error)")
        }
    }

    /// Rank 0 makes what the run folder lacks first (the tokenizer a fresh run learns), the others
    /// read it after: `make` runs on rank 0, then on the rest.
    static func rootFirst<T>(_ parallel: DataParallel, _ make: () throws -> T) throws -> T {
        if !parallel.isRoot { try parallel.communicator.barrier() }
        let value = try make()
        if parallel.isRoot { try parallel.communicator.barrier() }
        return value
    }

    /// "; data-parallel over 2 ranks (4 samples each per step)" for the start-up line of a data-parallel run.
    static func ranksNote(_ parallel: DataParallel, batch: Int) -> String {
        guard parallel.size > 1 else { return "" }
        let shares = Set((0..<parallel.size).map { r in (r + 1) * batch / parallel.size - r * batch / parallel.size }).sorted()
        return "; data-parallel over \(parallel.size) ranks (\(shares.map(String.init).joined(separator: " or ")) samples each per step)"
    }

    static func report(_ p: ProgressReporter, _ t: TrainingProgress) {
        // Slow runs (SD-size models on a CPU) read better as seconds per sample.
        let rate = t.samplesPerSecond >= 1 || t.samplesPerSecond <= 0
            ? String(format: "%.1f samples/s", t.samplesPerSecond) : String(format: "%.1f s/sample", 1 / t.samplesPerSecond)
        let detail = String(format: "loss %.4f  ", t.loss) + rate
        p.report(step: t.step, total: t.totalSteps, elapsed: t.elapsed, detail: detail, startedAt: t.firstStep)
        if let m = t.message { p.note("step \(t.step): \(m)") }
    }

    struct VAE: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "vae", abstract: "Train the KL autoencoder (L1 + L2 + small KL).")
        @OptionGroup var options: RunOptions
        @Option(help: "Channels per level, comma separated (3 levels: f = 4; 4 levels: f = 8).")
        var channels: String?
        @Option(help: "Latent channels.") var latentChannels: Int?
        @Option(help: "Residual blocks per level.") var layers: Int?
        @Option(help: "Start from this trained VAE folder (config.json + weights) instead of random weights; its configuration is used. Give it again with --resume.")
        var initFrom: String?
        @Flag(help: "Train only the decoder (needs --init-from): the encoder, and so the latents a U-Net was trained on, stay unchanged.")
        var decoderOnly = false

        func validate() throws {
            if decoderOnly && initFrom == nil { throw ValidationError("--decoder-only needs --init-from DIR (a trained VAE)") }
            if initFrom != nil && (channels != nil || latentChannels != nil || layers != nil) {
                throw ValidationError("--init-from takes the configuration of its VAE: leave out --channels, --latent-channels and --layers")
            }
        }

        func run() throws {
            var c = VAETrainingConfig()
            if let initFrom {
                let start = try loadConfig(VAEConfig.self, from: URL(fileURLWithPath: initFrom).appendingPathComponent("config.json"))
                c.blockOutChannels = start.blockOutChannels
                c.layersPerBlock = start.layersPerBlock
                c.latentChannels = start.latentChannels
                c.normNumGroups = start.normNumGroups
                guard c.vaeConfig.useQuantConv == start.useQuantConv, c.vaeConfig.usePostQuantConv == start.usePostQuantConv,
                      start.sampleSize == 64 else {
                    throw ValidationError("\(initFrom) is not a VAE of the kind `ldm train vae` makes (64×64 images, quant convs)")
                }
                c.initialWeights = initFrom
                c.decoderOnly = decoderOnly
            }
            if let channels {
                let list = channels.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard list.count >= 1, list.count == channels.split(separator: ",").count else {
                    throw ValidationError("--channels must be a comma-separated list of integers")
                }
                c.blockOutChannels = list
            }
            if let v = latentChannels { c.latentChannels = v }
            if let v = layers { c.layersPerBlock = v }
            if let v = options.steps { c.steps = v }
            if let v = options.batch { c.batchSize = v }
            if let v = options.microBatch { c.microBatch = v }
            if let v = options.lr { c.learningRate = v }
            if let v = options.seed { c.seed = v }
            if let v = options.checkpointEvery { c.checkpointEvery = v; c.sampleEvery = v }
            try TrainCommand.onRanks { parallel in try train(c, parallel) }
        }

        private func train(_ c: VAETrainingConfig, _ parallel: DataParallel) throws {
            let (train, heldOut) = try options.makeDataset()
            let trainer = try VAETrainer(config: c, dataset: train, heldOut: heldOut, runFolder: options.folder)
            trainer.state.parallel = parallel
            var progress = ProgressReporter(label: "train vae")
            progress.silent = !parallel.isRoot
            if options.resume, let s = try trainer.resume() { progress.note("resumed from step \(s)") }
            progress.note("VAE \(groupedDigits(trainer.vae.parameterCount)) parameters, f = \(c.vaeConfig.downsamplingFactor), batch \(c.batchSize)"
                          + (c.decoderOnly ? ", decoder only (\(groupedDigits(trainer.state.params.reduce(0) { $0 + $1.1.value.count })) trained)" : "")
                          + (c.initialWeights.map { ", from \($0)" } ?? "") + "; run folder \(options.run)"
                          + TrainCommand.ranksNote(parallel, batch: c.batchSize))
            InterruptFlag.install()
            try trainer.run { TrainCommand.report(progress, $0) }
            if let export = options.export, trainer.step >= c.steps, parallel.isRoot {
                let url = URL(fileURLWithPath: export)
                let psnr = try trainer.heldOutPSNR(useEMA: true)
                let model = try trainer.emaModel()
                try exportVAE(model, heldOut: heldOut, to: url, dtype: options.exportF16 ? .f16 : .f32)
                let exported = try loadConfig(VAEConfig.self, from: url.appendingPathComponent("config.json"))
                progress.note(String(format: "exported to %@ (held-out PSNR %.2f dB, scaling factor %.5f)", export, psnr,
                                     exported.scalingFactor))
            }
        }
    }

    struct UNet: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "unet", abstract: "Train the U-Net and the text encoder jointly on a frozen VAE's latents, or in pixel space.")
        @OptionGroup var options: RunOptions
        @Option(help: "Folder of the trained VAE (config.json + weights): train on its latents.") var vae: String?
        @Flag(help: "Train in pixel space instead: x₀ is the image itself (3 channels, full size), no VAE.") var pixel = false
        @Option(help: "U-Net channels per level, comma separated.") var channels: String?
        @Option(help: "epsilon or v_prediction.") var prediction: String?
        @Option(help: "Residual blocks per U-Net level.") var layers: Int?
        @Option(help: "Steps of linear learning-rate warm-up before the cosine decay (default 500).") var warmup: Int?
        @Flag(help: "Rescale the noise schedule to zero terminal SNR (needs v_prediction); also switches a continued run.")
        var zeroTerminalSnr = false
        @Option(help: "Loss weighting by SNR: min_snr (min(SNR, γ) on the x₀ error) or min_snr_plus_one (min(SNR + 1, γ), v_prediction only); also switches a continued run.")
        var lossWeighting: String?
        @Option(help: "The text encoder's learning rate as a fraction of --lr, in (0, 1] (default 1); also switches a continued run.")
        var textLrScale: Float?
        @Option(help: "The learning rate of the U-Net's attention query and key weights as a fraction of --lr, in (0, 1] (default 1); also switches a continued run.")
        var qkLrScale: Float?
        @Option(help: "Share of samples, in [0, 1], whose timestep is drawn from the noisiest 40% (t ≥ 0.6 T), where layout is decided (default 0); also switches a continued run.")
        var highNoiseShare: Float?
        @Option(help: "Shapes caption forms' weights, comma separated, in the order color, size, background, position, relation (default 1,1,1,1,1); also switches a continued run.")
        var captionMix: String?
        @Option(help: "Share, in [0, 1], of Shapes relation captions whose two shapes are drawn spread apart in a fixed layout (far out along the relation's axis, centred across it) instead of placed at random: a curriculum that makes the relation decide more of the image (default 0); also switches a continued run.")
        var spreadRelations: Double?
        @Option(help: "Start from a compact checkpoint (written by --save-compact) when the run folder has none.")
        var resumeFrom: String?
        @Flag(help: "With --resume-from: keep the U-Net but start the text encoder from fresh random weights.")
        var reinitTextEncoder = false
        @Option(help: "When the run stops, also write a compact F16 copy of its state here (to carry it to another machine).")
        var saveCompact: String?

        func validate() throws {
            if let warmup, warmup < 0 { throw ValidationError("--warmup must be 0 or more steps") }
            if vae != nil && pixel { throw ValidationError("give either --vae DIR (latent space) or --pixel (pixel space), not both") }
            if vae == nil && !pixel { throw ValidationError("give --vae DIR (train on a VAE's latents) or --pixel (train in pixel space)") }
            if reinitTextEncoder && resumeFrom == nil { throw ValidationError("--reinit-text-encoder goes with --resume-from") }
            if let spreadRelations, !(spreadRelations >= 0 && spreadRelations <= 1) {
                throw ValidationError("--spread-relations must be a share in [0, 1]; got \(spreadRelations)")
            }
            if let captionMix {
                let weights = try parsedMix(captionMix)
                do { _ = try ShapesGenerator(seed: 0, formWeights: weights) } catch { throw ValidationError("--caption-mix: \(error)") }
            }
        }

        func parsedMix(_ text: String) throws -> [Int] {
            let parts = text.split(separator: ",", omittingEmptySubsequences: false)
            let weights = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard weights.count == parts.count else {
                throw ValidationError("--caption-mix takes whole numbers separated by commas, such as 1,2,1,3,3; got \(text)")
            }
            return weights
        }

        func run() throws {
            var c = DiffusionTrainingConfig()
            if let channels {
                c.blockOutChannels = channels.split(separator: ",").compactMap { Int($0) }
            }
            if let v = prediction { c.predictionType = v }
            if let v = layers { c.layersPerBlock = v }
            if let v = warmup { c.warmupSteps = v }
            if let v = options.steps { c.steps = v }
            if let v = options.batch { c.batchSize = v }
            c.microBatch = options.microBatch
            if let v = options.lr { c.learningRate = v }
            if let v = options.seed { c.seed = v }
            if let v = options.checkpointEvery { c.checkpointEvery = v }
            // A run that continues keeps its own settings (architecture, objective, schedule);
            // only --steps, --batch and --checkpoint-every given on this command line change them.
            func continuing(_ saved: URL, of source: String) throws {
                guard let data = try? Data(contentsOf: saved) else { return }
                let old = try JSONDecoder().decode(DiffusionTrainingConfig.self, from: data)
                if (old.pixelSpace ?? false) != pixel {
                    throw ValidationError(old.pixelSpace ?? false
                        ? "\(source) was trained in pixel space: continue it with --pixel, not --vae"
                        : "\(source) was trained on a VAE's latents: continue it with --vae DIR, not --pixel")
                }
                let given = c
                c = old
                if options.steps != nil { c.steps = given.steps }
                if options.batch != nil { c.batchSize = given.batchSize }
                if options.checkpointEvery != nil { c.checkpointEvery = given.checkpointEvery }
                c.microBatch = given.microBatch
            }
            var compactStep: Int?
            if let (_, url) = CheckpointStore(folder: options.folder).latest(), options.resume {
                try continuing(url.appendingPathComponent("diffusion-training.json"), of: "the run in \(options.run)")
            } else if let resumeFrom, CheckpointStore(folder: options.folder).latest() == nil {
                let from = URL(fileURLWithPath: resumeFrom)
                guard let data = try? Data(contentsOf: from.appendingPathComponent("state.json")),
                      let state = try JSONSerialization.jsonObject(with: data) as? [String: Any], let step = state["step"] as? Int else {
                    throw ValidationError("\(resumeFrom) is not a compact checkpoint (no state.json with a step)")
                }
                try continuing(from.appendingPathComponent("diffusion-training.json"), of: "the compact checkpoint \(resumeFrom)")
                compactStep = step
                c.restartStep = step
            }
            // The schedule and weighting flags apply to fresh and continued runs alike.
            if zeroTerminalSnr { c.zeroTerminalSNR = true }
            if let lossWeighting { c.lossWeighting = lossWeighting }
            if let textLrScale { c.textLearningRateScale = textLrScale }
            if let captionMix { c.captionMix = try parsedMix(captionMix) }
            if let highNoiseShare { c.highNoiseShare = highNoiseShare }
            if let spreadRelations { c.spreadRelations = spreadRelations }
            if let qkLrScale { c.attentionQKLearningRateScale = qkLrScale }
            try TrainCommand.onRanks { parallel in try train(c, compactStep: compactStep, parallel) }
        }

        private func train(_ c: DiffusionTrainingConfig, compactStep: Int?, _ parallel: DataParallel) throws {
            let (train, _) = try options.makeDataset(captionMix: c.captionMix, spreadRelations: c.spreadRelations)
            // The tokenizer learns its words from every caption of a folder, or 5,000 generated ones.
            let captions = try (0..<(train.count ?? 5000)).map { try train.sample($0).caption }
            let space: LatentSpace = try vae.map { try LatentSpace(vaeFolder: URL(fileURLWithPath: $0)) } ?? .pixels
            let trainer = try TrainCommand.rootFirst(parallel) {
                // A run started from a compact checkpoint keeps its tokenizer.
                let tok = options.folder.appendingPathComponent("tokenizer")
                let fm = FileManager.default
                if compactStep != nil, let resumeFrom, !fm.fileExists(atPath: tok.path) {
                    try fm.createDirectory(at: options.folder, withIntermediateDirectories: true)
                    try fm.copyItem(at: URL(fileURLWithPath: resumeFrom).appendingPathComponent("tokenizer"), to: tok)
                }
                return try DiffusionTrainer(config: c, space: space, dataset: train, captions: captions, runFolder: options.folder)
            }
            trainer.state.parallel = parallel
            var progress = ProgressReporter(label: "train unet")
            progress.silent = !parallel.isRoot
            if let compactStep, let resumeFrom {
                try trainer.load(checkpoint: URL(fileURLWithPath: resumeFrom), step: compactStep)
                progress.note("started from the compact checkpoint \(resumeFrom) at step \(compactStep)")
                if reinitTextEncoder {
                    trainer.reinitialiseTextEncoder(seed: c.seed &+ UInt64(compactStep))
                    progress.note("the text encoder starts again from random weights")
                }
            } else if options.resume, let s = try trainer.resume() {
                progress.note("resumed from step \(s)")
            }
            let u = trainer.unet.config
            let grid = "\(u.inChannels)×\(u.sampleSize)×\(u.sampleSize)"
            progress.note("U-Net \(groupedDigits(trainer.unet.parameterCount)) + text encoder \(groupedDigits(trainer.text.parameterCount)) parameters, vocabulary \(trainer.tokenizer.vocabularySize), batch \(c.batchSize); "
                + (space.isPixelSpace ? "pixel space, \(grid)" : "latent space, \(grid) (f = \(space.downsamplingFactor))")
                + TrainCommand.ranksNote(parallel, batch: c.batchSize))
            InterruptFlag.install()
            if parallel.isRoot { try writeSchedulerConfig(trainer.config, to: options.folder) }
            // Sample prompts: held-out Shapes captions, or 20 captions spread over a folder dataset.
            let samplePrompts: [String]
            if options.dataset == "shapes" {
                let held = ShapesDataset(seed: 2)
                samplePrompts = try (0..<20).map { try held.sample($0).caption }
            } else {
                let count = train.count ?? 20
                samplePrompts = try (0..<min(20, count)).map { try train.sample($0 * count / min(20, count)).caption }
            }
            try trainer.run(report: { TrainCommand.report(progress, $0) }, onSample: { step in
                try TrainCommand.sampleGrid(trainer, prompts: samplePrompts, folder: options.folder, step: step)
            })
            guard parallel.isRoot else { return }
            if let saveCompact {
                try trainer.saveCompact(to: URL(fileURLWithPath: saveCompact))
                progress.note("wrote the compact checkpoint \(saveCompact) (step \(trainer.step))")
            }
            if let export = options.export, trainer.step >= c.steps {
                try exportDiffusionModel(trainer, to: URL(fileURLWithPath: export), dtype: options.exportF16 ? .f16 : .f32)
                progress.note("exported to \(export)")
            }
        }
    }
}

/// Tiles same-sized images into a grid, row by row.
func imageGrid(_ tiles: [PNGImage], columns: Int) -> PNGImage {
    let w = tiles[0].width, h = tiles[0].height
    let rows = (tiles.count + columns - 1) / columns
    let gw = w * columns, gh = h * rows
    var pixels = [UInt8](repeating: 0, count: gw * gh * 3)
    for (k, t) in tiles.enumerated() {
        let ox = (k % columns) * w, oy = (k / columns) * h
        for y in 0..<h { for x in 0..<w { for c in 0..<3 {
            pixels[((oy + y) * gw + ox + x) * 3 + c] = t.pixels[(y * w + x) * t.channels + c]
        } } }
    }
    return PNGImage(width: gw, height: gh, channels: 3, pixels: pixels)
}

// `ldm eval --model DIR --prompts FILE [--json PATH]`: generate every prompt and score it with the
// Shapes analyser, printing accuracy per caption form and sampling seconds per image (optionally
// also as JSON, for `ldm report tradeoff`). `ldm eval --folder DIR` scores existing images instead
// (a folder dataset: each PNG beside a same-named .txt caption), with no model.

import ArgumentParser
import Foundation
import LDMBench
import LDMCore
import LDMDiffusion
import LDMEmoji
import LDMIO
import LDMModels
import LDMService
import LDMTraining

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Prompt adherence on the Shapes world, per caption form.")
    @OptionGroup var model: ModelArguments
    @Option(help: "shapes (the Shapes analyser) or emoji (emoji names judged against the colour emoji font's drawings of every emoji: identity and skin tone).")
    var kind: String = "shapes"
    @Option(help: "Prompts, one per line (# comments), in the Shapes caption grammar (--kind emoji: emoji-test.txt names).") var prompts: String?
    @Option(help: "Score the images of this folder instead of generating: each PNG beside a same-named .txt caption in the Shapes grammar (no model is loaded).")
    var folder: String?
    @Option(help: "Images per prompt.") var images: Int = 4
    @Option(help: "Denoising steps (default: the model's, else 20).") var steps: Int?
    @Option(help: "Guidance scale (default: the model's, else 7.5).") var guidance: Float?
    @Option(help: "Guidance rescale φ in [0, 1] (default: the model's, else 0).") var guidanceRescale: Float?
    @Option(help: "Sampler (default: the model's).") var sampler: String?
    @Option(help: "Seed of the first prompt (prompt i uses seed + i).") var seed: UInt64 = 1000
    @Option(help: "Also save every image (with its verdict in the file name) in this folder.") var out: String?
    @Flag(help: "Also print accuracy per attribute, and the strict reading (every judged shape also well formed).") var attributes = false
    @Option(help: ArgumentHelp("A LoRA file applied to the model for the whole evaluation, with its weight (default 1); repeatable.",
                               valueName: "path[:weight]"))
    var lora: [String] = []
    @Option(help: "Also write the settings, figures and sampling seconds per image as JSON to this path (for `ldm report tradeoff`).")
    var json: String?
    @Option(help: ArgumentHelp("Evaluate only shard I of N of the prompts (prompt k when k mod N = I; merge the shards' --json files with `ldm report merge`); default: from a Slurm job array, a Kubernetes Indexed Job or MPI ranks when run under one.",
                               valueName: "I/N"))
    var shard: String?
    @Option(help: "The number of shards of a Kubernetes Indexed Job (its completions; or set LDM_SHARD_COUNT).") var shardCount: Int?

    @Option(help: "--kind emoji: the names held out of training (default Prompts/emoji-holdout.txt); scores are given for them and for the rest apart.")
    var heldOut: String?
    @Option(help: "--kind emoji: the colour emoji font.") var font: String = EmojiFont.debianPath
    @Option(name: .customLong("emoji-test"), help: "--kind emoji: Unicode's emoji-test.txt.") var emojiTest: String = EmojiCatalogue.debianPath

    func validate() throws {
        if kind != "shapes" && kind != "emoji" { throw ValidationError("--kind is shapes or emoji, not \(kind)") }
        if (prompts == nil) == (folder == nil) { throw ValidationError("give either --prompts FILE or --folder DIR") }
        if images < 1 { throw ValidationError("--images must be at least 1") }
        if let sampler, SamplerName(rawValue: sampler) == nil { throw ValidationError("unknown sampler \(sampler)") }
        try validateGuidanceRescale(guidanceRescale)
        if let json { try requireWritableFolder(for: json, option: "--json") } // before a long run, not after it
        if let shard { do { _ = try Shard.parse(shard) } catch { throw ValidationError("\(error)") } }
        if let shardCount, shardCount < 1 { throw ValidationError("--shard-count must be at least 1") }
    }

    func run() throws {
        if kind == "emoji" { return try runEmoji() }
        if let folder { return try scoreFolder(folder) }
        guard let prompts else { return }
        guard let text = try? String(contentsOfFile: prompts, encoding: .utf8) else {
            throw ValidationError("cannot read prompt file \(prompts)")
        }
        let list = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        var parsed: [(String, ParsedCaption)] = []
        for p in list {
            guard let c = ShapesCaption.parse(p) else { throw ValidationError("not a Shapes caption: \"\(p)\"") }
            parsed.append((p, c))
        }
        if parsed.isEmpty { throw ValidationError("prompt file \(prompts) has no prompts") }
        let shard: Shard?
        do { shard = try Shard.resolve(flag: self.shard, shardCount: shardCount) } catch { throw ValidationError("\(error)") }
        let mine = parsed.indices.filter { shard?.contains($0) ?? true }
        if let shard { FileHandle.standardError.write(Data("\(shard): \(mine.count) of \(parsed.count) prompts\n".utf8)) }
        let folder = try model.folder()
        try model.applyPrecision()
        let defaults = ModelDefaults.load(folder)
        let pipeline = try StableDiffusionPipeline(folder: folder)
        let applied = LoRAApplication()
        defer { applied.restore() }
        for spec in lora {
            let (path, weight) = try parseLoRASpec(spec)
            let file = try LoRAFile(path: path, unet: pipeline.unet, textEncoder: pipeline.textEncoder, unetConfig: pipeline.unet.config)
            try applied.apply(file, weight: weight, unet: pipeline.unet, textEncoder: pipeline.textEncoder)
        }
        let analyser = ShapesAnalyser()
        var evaluation = ShapesEvaluation()
        let progress = ProgressReporter(label: "eval")
        let start = Date()
        var generationSeconds = 0.0 // the pipeline's calls only: no loading, judging or writing
        let steps = steps ?? defaults.steps ?? 20, guidance = guidance ?? defaults.guidance ?? 7.5
        let samplerName = (sampler ?? defaults.sampler).flatMap(SamplerName.init(rawValue:))
        let rescale = guidanceRescale ?? defaults.guidanceRescale ?? 0
        if let out { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) }
        for (done, i) in mine.enumerated() {
            let (prompt, caption) = parsed[i]
            var r = GenerationRequest(prompt: prompt)
            r.steps = steps
            r.guidance = guidance
            r.guidanceRescale = rescale
            r.sampler = samplerName
            r.seed = seed + UInt64(i)
            r.batch = images
            let t0 = DispatchTime.now().uptimeNanoseconds
            let result = try pipeline.generate(r)
            generationSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            for k in 0..<images {
                let png = pngImage(result, index: k)
                let verdict = analyser.evaluate(RGBImage(png), caption: caption)
                evaluation.record(verdict)
                if let out {
                    let name = String(format: "%04d-%d-%@.png", i, k, verdict.matches ? "ok" : "wrong")
                    var withText = png
                    withText.texts = [PNGTextChunk(keyword: "parameters", text: prompt)]
                    try withText.write(to: URL(fileURLWithPath: out).appendingPathComponent(name).path)
                }
            }
            progress.report(step: done + 1, total: mine.count, elapsed: Date().timeIntervalSince(start),
                            detail: String(format: "%.0f%% so far", 100 * (evaluation.overall.accuracy ?? 0)), final: done + 1 == mine.count)
        }
        var figures = ShapesEvaluationResult(evaluation, model: folder.path, prompts: prompts, imagesPerPrompt: images,
                                             steps: steps, guidance: guidance,
                                             sampler: samplerName?.displayName ?? pipeline.folderSamplerLabel, seed: seed,
                                             generationSeconds: generationSeconds)
        if let shard { (figures.shardIndex, figures.shardCount, figures.promptCount) = (shard.index, shard.count, parsed.count) }
        if let shard { print("\(shard): prompts \(mine.map { String($0 + 1) }.joined(separator: ", ")) of \(parsed.count)") }
        print("model \(folder.path), \(images) images per prompt, \(steps) steps, guidance \(guidance)"
              + (rescale > 0 ? ", guidance rescale \(rescale)" : ""))
        evaluation.printTable()
        if attributes { printAttributes(evaluation) }
        print(String(format: "sampling: %.3f s per image (%d images in %.1f s, model loading excluded)",
                     figures.secondsPerImage, figures.images, figures.generationSeconds))
        if let json { try figures.write(to: json) }
    }

    /// The per-attribute table and the strict reading (`--attributes`).
    private func printAttributes(_ evaluation: ShapesEvaluation) {
        print(evaluation.attributeTable)
        print(String(format: "strict (and every judged shape well formed: IoU ≥ %.2f with its kind's ideal outline)", ShapesAnalyser.wellFormed))
        print(evaluation.strictTable)
    }

    /// Scores every image of a folder dataset against its own caption.
    private func scoreFolder(_ path: String) throws {
        let dataset = try FolderDataset(directory: path, size: 64)
        let analyser = ShapesAnalyser()
        var evaluation = ShapesEvaluation()
        var notShapes = 0
        for i in 0..<dataset.count {
            let text = try dataset.caption(at: i)
            guard let caption = ShapesCaption.parse(text) else { notShapes += 1; continue }
            let imagePath = dataset.entries[i].imagePath
            let image: RGBImage
            do { image = try RGBImage.read(path: imagePath) } catch {
                throw ValidationError("cannot read \(imagePath): \(error)")
            }
            evaluation.record(analyser.evaluate(image, caption: caption))
        }
        if evaluation.overall.total == 0 {
            throw ValidationError("no image in \(path) has a caption in the Shapes grammar")
        }
        print("folder \(path): \(evaluation.overall.total) images scored"
              + (notShapes > 0 ? ", \(notShapes) skipped (caption not in the Shapes grammar)" : "")
              + (dataset.skipped.isEmpty ? "" : ", \(dataset.skipped.count) files without a caption or not PNG"))
        evaluation.printTable()
        if attributes { printAttributes(evaluation) }
    }

    /// `--kind emoji`: images drawn for emoji names (or a folder's images with their captions),
    /// judged against the font's drawings (LDMEmoji/EmojiEvaluation.swift), held-out names apart.
    private func runEmoji() throws {
        let catalogue: [EmojiEntry]
        let emojiFont: EmojiFont
        do {
            catalogue = try EmojiCatalogue.read(path: emojiTest).fullyQualified
            emojiFont = try EmojiFont(path: font)
        } catch { throw ValidationError("\(error)") }
        let heldOutNames: Set<String>
        if let path = heldOut ?? shippedFile("Prompts/emoji-holdout.txt")?.path {
            do { heldOutNames = Set(try EmojiExclusionList.read(path: path).names.map(\.name)) } catch { throw ValidationError("\(error)") }
        } else {
            heldOutNames = []
        }
        let known = Set(catalogue.map(\.name))
        FileHandle.standardError.write(Data("drawing the \(catalogue.count) reference emoji\n".utf8))
        let references = try EmojiReferences(entries: catalogue, font: emojiFont)
        var seen = EmojiScore(), held = EmojiScore()
        var judged: [EmojiJudgement] = []
        func record(_ j: EmojiJudgement) {
            if heldOutNames.contains(j.name) { held.record(j) } else { seen.record(j) }
            judged.append(j)
        }
        if let folder {
            let dataset = try FolderDataset(directory: folder, size: 64)
            for i in 0..<dataset.count {
                let name = try dataset.caption(at: i)
                guard known.contains(name) else { continue }
                record(references.judge(try RGBImage.read(path: dataset.entries[i].imagePath), name: name))
            }
        } else if let prompts {
            guard let text = try? String(contentsOfFile: prompts, encoding: .utf8) else { throw ValidationError("cannot read prompt file \(prompts)") }
            let names = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("#") }
            if let unknown = names.first(where: { !known.contains($0) }) {
                throw ValidationError("\"\(unknown)\" is not a fully-qualified emoji name of \(emojiTest)")
            }
            let folder = try model.folder()
            try model.applyPrecision()
            let defaults = ModelDefaults.load(folder)
            let pipeline = try StableDiffusionPipeline(folder: folder)
            let progress = ProgressReporter(label: "eval emoji")
            let start = Date()
            if let out { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) }
            for (i, name) in names.enumerated() {
                var r = GenerationRequest(prompt: name)
                r.steps = steps ?? defaults.steps ?? 20
                r.guidance = guidance ?? defaults.guidance ?? 7.5
                r.guidanceRescale = guidanceRescale ?? defaults.guidanceRescale ?? 0
                r.sampler = (sampler ?? defaults.sampler).flatMap(SamplerName.init(rawValue:))
                r.seed = seed + UInt64(i)
                r.batch = images
                let result = try pipeline.generate(r)
                for k in 0..<images {
                    let png = pngImage(result, index: k)
                    let j = references.judge(RGBImage(png), name: name)
                    record(j)
                    if let out {
                        var withText = png
                        withText.texts = [PNGTextChunk(keyword: "parameters", text: name + "\nnearest: " + j.nearest)]
                        try withText.write(to: URL(fileURLWithPath: out).appendingPathComponent(String(format: "%04d-%d.png", i, k)).path)
                    }
                }
                progress.report(step: i + 1, total: names.count, elapsed: Date().timeIntervalSince(start), final: i + 1 == names.count)
            }
        }
        if judged.isEmpty { throw ValidationError("no image to judge (no caption is an emoji name)") }
        print("seen names: \(seen.summary)")
        print("held-out names: \(held.summary)")
    }
}

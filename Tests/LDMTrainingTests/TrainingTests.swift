// Training runs on tiny configurations: the loss falls, a resumed run ends with exactly the weights
// of an uninterrupted one, and unfinished checkpoints are ignored.
import Foundation
import XCTest
import LDMCore
import LDMModels
@testable import LDMTraining

/// The first `n` Shapes images, repeated: a finite set small models can fit quickly.
struct FixedShapes: ImageCaptionDataset {
    let base = ShapesDataset(seed: 3)
    let n: Int
    var imageSize: Int { 64 }
    var count: Int? { n }
    func sample(_ index: Int) throws -> (image: [Float], caption: String) { try base.sample(index % n) }
}

/// A VAE small enough to train in a test: two levels of 8 channels, batch 2.
func tinyVAETrainingConfig(steps: Int) -> VAETrainingConfig {
    var c = VAETrainingConfig()
    c.blockOutChannels = [8, 8]
    c.layersPerBlock = 1
    c.normNumGroups = 4
    c.batchSize = 2
    c.steps = steps
    c.learningRate = 3e-3
    c.warmupSteps = 2
    c.checkpointEvery = 1000
    c.sampleEvery = 1000
    c.heldOutCount = 2
    return c
}

final class TrainingTests: XCTestCase {
    func tinyVAEConfig(steps: Int) -> VAETrainingConfig { tinyVAETrainingConfig(steps: steps) }

    func temporary() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ldm-train-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Training batches of a finite set visit every sample once per epoch, in an order that is not
    /// the files' and changes from epoch to epoch, and are the same for the same positions and seed.
    func testTrainingBatchesShuffleEachEpoch() throws {
        struct Numbered: ImageCaptionDataset {
            var imageSize: Int { 1 }
            var count: Int? { 40 }
            func sample(_ index: Int) throws -> (image: [Float], caption: String) { ([Float(index), 0, 0], "\(index)") }
        }
        let data = Numbered()
        func order(_ first: Int, _ n: Int, seed: UInt64 = 7) throws -> [Int] {
            try data.trainingBatch(from: first, count: n, seed: seed).1.map { Int($0)! }
        }
        // Batches of 8 and one of 40 over the same positions agree; a batch may straddle two epochs.
        let epoch0 = try (0..<5).flatMap { try order($0 * 8, 8) }
        XCTAssertEqual(epoch0, try order(0, 40))
        XCTAssertEqual(Set(epoch0), Set(0..<40))
        XCTAssertNotEqual(epoch0, Array(0..<40))
        let epoch1 = try order(40, 40)
        XCTAssertEqual(Set(epoch1), Set(0..<40))
        XCTAssertNotEqual(epoch0, epoch1)
        XCTAssertEqual(try order(36, 8), Array(epoch0[36...]) + Array(epoch1[..<4]))
        XCTAssertNotEqual(try order(0, 40, seed: 8), epoch0)
        // The images follow their captions.
        let (x, captions) = try data.trainingBatch(from: 3, count: 5, seed: 7)
        XCTAssertEqual((0..<5).map { Int(x.data[$0 * 3]) }, captions.map { Int($0)! })
        // A generator is read in index order.
        XCTAssertEqual(try ShapesDataset(seed: 3).trainingBatch(from: 5, count: 2, seed: 7).1,
                       try ShapesDataset(seed: 3).batch(from: 5, count: 2).1)
    }

    func testVAELossFalls() throws {
        let trainer = try VAETrainer(config: tinyVAEConfig(steps: 40), dataset: FixedShapes(n: 4), heldOut: FixedShapes(n: 4),
                                     runFolder: try temporary())
        var losses: [Float] = []
        for _ in 0..<40 { losses.append(try trainer.trainStep()) }
        let first = losses.prefix(5).reduce(0, +) / 5, last = losses.suffix(5).reduce(0, +) / 5
        XCTAssertLessThan(last, 0.7 * first, "losses \(losses)")
    }

    func testResumedVAERunEndsWithTheSameWeights() throws {
        let config = tinyVAEConfig(steps: 6)
        let straight = try VAETrainer(config: config, dataset: ShapesDataset(seed: 1), heldOut: FixedShapes(n: 2), runFolder: try temporary())
        for _ in 0..<6 { _ = try straight.trainStep() }

        let folder = try temporary()
        let first = try VAETrainer(config: config, dataset: ShapesDataset(seed: 1), heldOut: FixedShapes(n: 2), runFolder: folder)
        for _ in 0..<3 { _ = try first.trainStep() }
        try first.checkpoint()
        let second = try VAETrainer(config: config, dataset: ShapesDataset(seed: 1), heldOut: FixedShapes(n: 2), runFolder: folder)
        XCTAssertEqual(try second.resume(), 3)
        for _ in 0..<3 { _ = try second.trainStep() }

        for ((name, a), (_, b)) in zip(straight.vae.namedParameters(), second.vae.namedParameters()) {
            XCTAssertEqual(a.value.array, b.value.array, name)
        }
        for ((name, a), (_, b)) in zip(straight.ema.shadows, second.ema.shadows) { XCTAssertEqual(a.array, b.array, "EMA \(name)") }
    }

    func testDecoderOnlyFineTuneKeepsTheEncoder() throws {
        // A trained starting point, exported as a VAE folder.
        let base = try VAETrainer(config: tinyVAEConfig(steps: 4), dataset: FixedShapes(n: 4), heldOut: FixedShapes(n: 2),
                                  runFolder: try temporary())
        for _ in 0..<4 { _ = try base.trainStep() }
        let start = try temporary().appendingPathComponent("vae")
        try exportVAE(base.vae, heldOut: FixedShapes(n: 2), to: start, images: 2)

        var config = tinyVAEConfig(steps: 30)
        config.initialWeights = start.path
        config.decoderOnly = true
        let tune = try VAETrainer(config: config, dataset: FixedShapes(n: 4), heldOut: FixedShapes(n: 2), runFolder: try temporary())
        XCTAssertTrue(tune.state.params.allSatisfy { $0.0.hasPrefix("decoder.") || $0.0.hasPrefix("post_quant_conv.") })
        let loaded = Dictionary(uniqueKeysWithValues: tune.vae.namedParameters().map { ($0.0, $0.1.value.array) })
        var losses: [Float] = []
        for _ in 0..<30 { losses.append(try tune.trainStep()) }
        XCTAssertLessThan(losses.suffix(5).reduce(0, +), losses.prefix(5).reduce(0, +), "losses \(losses)")
        let exported = try tune.emaModel()
        var decoderChanged = false
        for ((name, p), (_, e)) in zip(tune.vae.namedParameters(), exported.namedParameters()) {
            if name.hasPrefix("encoder.") || name.hasPrefix("quant_conv.") {
                XCTAssertEqual(p.value.array, loaded[name], "trained weights \(name)")
                XCTAssertEqual(e.value.array, loaded[name], "exported weights \(name)")
            } else if p.value.array != loaded[name] {
                decoderChanged = true
            }
        }
        XCTAssertTrue(decoderChanged)
        // Its checkpoints resume only as a decoder-only run from the same VAE.
        let folder = try temporary()
        let first = try VAETrainer(config: config, dataset: FixedShapes(n: 4), heldOut: FixedShapes(n: 2), runFolder: folder)
        _ = try first.trainStep()
        try first.checkpoint()
        XCTAssertEqual(try VAETrainer(config: config, dataset: FixedShapes(n: 4), heldOut: FixedShapes(n: 2), runFolder: folder).resume(), 1)
        var whole = config
        whole.decoderOnly = false
        XCTAssertThrowsError(try VAETrainer(config: whole, dataset: FixedShapes(n: 4), heldOut: FixedShapes(n: 2), runFolder: folder).resume())
        // The decoder alone needs a trained VAE to start from.
        var bad = tinyVAEConfig(steps: 1)
        bad.decoderOnly = true
        XCTAssertThrowsError(try VAETrainer(config: bad, dataset: FixedShapes(n: 2), heldOut: FixedShapes(n: 2), runFolder: try temporary()))
    }

    func testCheckpointWithoutManifestIsIgnored() throws {
        let folder = try temporary()
        let trainer = try VAETrainer(config: tinyVAEConfig(steps: 4), dataset: FixedShapes(n: 2), heldOut: FixedShapes(n: 2), runFolder: folder)
        _ = try trainer.trainStep()
        try trainer.checkpoint()
        // An interrupted write: a later checkpoint folder whose manifest was never written.
        let broken = folder.appendingPathComponent("checkpoint-0000009")
        try FileManager.default.copyItem(at: folder.appendingPathComponent("checkpoint-0000001"), to: broken)
        try FileManager.default.removeItem(at: broken.appendingPathComponent("manifest.json"))
        // And one whose files do not match its manifest.
        let truncated = folder.appendingPathComponent("checkpoint-0000008")
        try FileManager.default.copyItem(at: folder.appendingPathComponent("checkpoint-0000001"), to: truncated)
        try Data([1, 2, 3]).write(to: truncated.appendingPathComponent("model.safetensors"))
        let manifest = try String(contentsOf: truncated.appendingPathComponent("manifest.json"), encoding: .utf8)
            .replacingOccurrences(of: "\"step\":1", with: "\"step\":8")
        try manifest.write(to: truncated.appendingPathComponent("manifest.json"), atomically: true, encoding: .utf8)

        XCTAssertEqual(CheckpointStore(folder: folder).latest()?.step, 1)
        let resumed = try VAETrainer(config: tinyVAEConfig(steps: 4), dataset: FixedShapes(n: 2), heldOut: FixedShapes(n: 2), runFolder: folder)
        XCTAssertEqual(try resumed.resume(), 1)
    }

    func testCheckpointsKeepTheNewestTwo() throws {
        let folder = try temporary()
        let trainer = try VAETrainer(config: tinyVAEConfig(steps: 4), dataset: FixedShapes(n: 2), heldOut: FixedShapes(n: 2), runFolder: folder)
        for _ in 0..<3 { _ = try trainer.trainStep(); try trainer.checkpoint() }
        XCTAssertEqual(CheckpointStore(folder: folder).complete().map(\.step), [2, 3])
    }

    func testDiffusionLossFallsAndResumes() throws {
        let root = try temporary()
        // A tiny frozen VAE (f = 2).
        let vaeFolder = root.appendingPathComponent("vae")
        let vae = try AutoencoderKL(config: VAEConfig(blockOutChannels: [8, 8], layersPerBlock: 1, latentChannels: 4, normNumGroups: 4,
                                                      sampleSize: 64, scalingFactor: 1))
        var rng = SwiftRandomSource(seed: 9)
        vae.initializeWeights(&rng)
        try saveVAE(vae, to: vaeFolder)
        var c = tinyDiffusionConfig(steps: 60)
        let data = FixedShapes(n: 4)
        let captions = try (0..<4).map { try data.sample($0).caption }
        let trainer = try DiffusionTrainer(config: c, vaeFolder: vaeFolder, dataset: data, captions: captions,
                                           runFolder: root.appendingPathComponent("run"))
        var losses: [Float] = []
        for _ in 0..<60 { losses.append(try trainer.trainStep()) }
        let first = losses.prefix(10).reduce(0, +) / 10, last = losses.suffix(10).reduce(0, +) / 10
        XCTAssertLessThan(last, 0.8 * first, "losses \(losses)")

        // Interrupted at step 2 and resumed: the same weights as 4 straight steps.
        c.steps = 4
        let straight = try DiffusionTrainer(config: c, vaeFolder: vaeFolder, dataset: data, captions: captions, runFolder: root.appendingPathComponent("a"))
        for _ in 0..<4 { _ = try straight.trainStep() }
        let partA = try DiffusionTrainer(config: c, vaeFolder: vaeFolder, dataset: data, captions: captions, runFolder: root.appendingPathComponent("b"))
        for _ in 0..<2 { _ = try partA.trainStep() }
        try partA.checkpoint()
        let partB = try DiffusionTrainer(config: c, vaeFolder: vaeFolder, dataset: data, captions: captions, runFolder: root.appendingPathComponent("b"))
        XCTAssertEqual(try partB.resume(), 2)
        for _ in 0..<2 { _ = try partB.trainStep() }
        for ((name, a), (_, b)) in zip(straight.params, partB.params) { XCTAssertEqual(a.value.array, b.value.array, name) }
    }

    func testLearnedVocabularyTokenizesCaptionWordsAsSingleTokens() throws {
        let folder = try temporary()
        let vocab = LearnedVocabulary(wordCounts: ["a": 10, "red": 5, "circle": 3, "above": 2])
        try vocab.save(to: folder, maxLength: 16)
        let tok = try CLIPTokenizer.load(folder: folder)
        XCTAssertEqual(tok.tokenize("a red circle above"), ["a</w>", "red</w>", "circle</w>", "above</w>"])
        XCTAssertEqual(tok.encode("a red circle").ids.count, 16)
        // Words outside the captions still tokenize (byte fallback).
        XCTAssertEqual(tok.tokenize("zebra").joined(), "zebra</w>")
    }
}

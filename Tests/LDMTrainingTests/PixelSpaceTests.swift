// Pixel-space diffusion on tiny configurations: the trainer learns on the images themselves, and
// its exported folder (no vae/) loads in the pipeline, which samples, redraws and inpaints pixels.
import Foundation
import XCTest
import LDMCore
import LDMDiffusion
import LDMModels
@testable import LDMTraining

/// The first `n` Shapes images, 4 × 4-averaged to 16 × 16, repeated: small enough for a pixel-space
/// U-Net to fit in a test.
struct SmallShapes: ImageCaptionDataset {
    let base = ShapesDataset(seed: 3)
    let n: Int
    var imageSize: Int { 16 }
    var count: Int? { n }
    func sample(_ index: Int) throws -> (image: [Float], caption: String) {
        let (big, caption) = try base.sample(index % n)
        let s = base.imageSize, f = s / 16
        var small = [Float](repeating: 0, count: 3 * 16 * 16)
        for c in 0..<3 { for y in 0..<s { for x in 0..<s {
            small[(c * 16 + y / f) * 16 + x / f] += big[(c * s + y) * s + x] / Float(f * f)
        } } }
        return (small, caption)
    }
}

/// The tiny U-Net and text encoder the diffusion-training tests share (ε-prediction, no min-SNR).
func tinyDiffusionConfig(steps: Int) -> DiffusionTrainingConfig {
    var c = DiffusionTrainingConfig.tiny
    c.batchSize = 4
    c.steps = steps
    c.learningRate = 2e-3
    c.warmupSteps = 5
    c.predictionType = "epsilon"
    c.minSNRGamma = 0
    return c
}

final class PixelSpaceTests: XCTestCase {
    func temporary() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ldm-pixel-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    func pixelTrainer(steps: Int, root: URL) throws -> DiffusionTrainer {
        let data = SmallShapes(n: 4)
        let captions = try (0..<4).map { try data.sample($0).caption }
        return try DiffusionTrainer(config: tinyDiffusionConfig(steps: steps), space: .pixels, dataset: data, captions: captions,
                                    runFolder: root.appendingPathComponent("run"))
    }

    func testPixelSpaceLossFalls() throws {
        let trainer = try pixelTrainer(steps: 60, root: try temporary())
        XCTAssertNil(trainer.vae)
        XCTAssertEqual(trainer.config.pixelSpace, true)
        let u = trainer.unet.config
        XCTAssertEqual([u.inChannels, u.outChannels, u.sampleSize], [3, 3, 16])
        var losses: [Float] = []
        for _ in 0..<60 { losses.append(try trainer.trainStep()) }
        let first = losses.prefix(10).reduce(0, +) / 10, last = losses.suffix(10).reduce(0, +) / 10
        XCTAssertLessThan(last, 0.8 * first, "losses \(losses)")
    }

    func testExportedPixelModelSamplesRedrawsAndInpaints() throws {
        let root = try temporary()
        let trainer = try pixelTrainer(steps: 2, root: root)
        for _ in 0..<2 { _ = try trainer.trainStep() }
        let folder = root.appendingPathComponent("model")
        // A stale vae/ from an earlier latent export must not survive.
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("vae"), withIntermediateDirectories: true)
        try exportDiffusionModel(trainer, to: folder)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("vae").path))
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("model_index.json"))) as! [String: Any]
        XCTAssertNil(index["vae"])
        XCTAssertNotNil(index["unet"])

        let pipe = try StableDiffusionPipeline(folder: folder)
        XCTAssertTrue(pipe.space.isPixelSpace)
        XCTAssertEqual(pipe.vaeScaleFactor, 1)
        XCTAssertEqual(pipe.defaultSize, 16)
        var r = GenerationRequest(prompt: "a red circle")
        r.steps = 2
        r.batch = 2
        r.rng = .swift
        let images = try pipe.generate(r)
        XCTAssertEqual(images.shape, [2, 3, 16, 16])
        XCTAssertTrue(images.array.allSatisfy { $0 >= 0 && $0 <= 1 })

        // img2img: the starting image is the starting sample.
        let (initImage, _) = try SmallShapes(n: 1).batch(from: 0, count: 1)
        r.batch = 1
        r.initImage = initImage
        r.strength = 0.5
        r.steps = 4
        XCTAssertEqual(try pipe.generate(r).shape, [1, 3, 16, 16])

        // Inpainting (blending, as for a 4-channel latent U-Net): outside the mask the output is the input.
        let mask = Tensor(uninitialized: [1, 1, 16, 16])
        for y in 0..<16 { for x in 0..<16 { mask.data[y * 16 + x] = x < 8 ? 1 : 0 } }
        r.mask = mask
        r.strength = 1
        let painted = try pipe.generate(r)
        for c in 0..<3 { for y in 0..<16 { for x in 8..<16 {
            let k = (c * 16 + y) * 16 + x
            XCTAssertEqual(painted.data[k], min(max(initImage.data[k] * 0.5 + 0.5, 0), 1), "pixel \(x),\(y) channel \(c)")
        } } }

        // What cannot apply to pixels is one clear error.
        var tiled = GenerationRequest(prompt: "a red circle")
        tiled.tileVAE = true
        XCTAssertThrowsError(try pipe.generate(tiled)) { XCTAssertTrue("\($0)".contains("pixel space"), "\($0)") }
    }

    func testFolderWithoutVAEMustBeAPixelModel() throws {
        let root = try temporary()
        let trainer = try pixelTrainer(steps: 1, root: root)
        let folder = root.appendingPathComponent("model")
        try exportDiffusionModel(trainer, to: folder)
        // A U-Net for 4 latent channels in a folder without vae/.
        var c = trainer.unet.config
        c.inChannels = 4
        c.outChannels = 4
        try saveUNet(try UNet2DConditionModel(config: c), to: folder.appendingPathComponent("unet"))
        XCTAssertThrowsError(try StableDiffusionPipeline(folder: folder)) {
            XCTAssertTrue("\($0)".contains("has no vae/ folder, so it runs in pixel space"), "\($0)")
        }
        // A model_index.json that lists a vae the folder lacks.
        var index = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("model_index.json"))) as! [String: Any]
        index["vae"] = ["diffusers", "AutoencoderKL"]
        try JSONSerialization.data(withJSONObject: index).write(to: folder.appendingPathComponent("model_index.json"))
        XCTAssertThrowsError(try StableDiffusionPipeline(folder: folder)) {
            XCTAssertTrue("\($0)".contains("model_index.json lists a vae"), "\($0)")
        }
    }
}

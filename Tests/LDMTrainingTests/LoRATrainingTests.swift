// LoRA training: gradients of A and B against finite differences of the loss, the exported files
// (kohya and peft) read back by the LoRA loader as the trained update, and resume equality.
import XCTest
import Foundation
import LDMCore
import LDMIO
import LDMModels
import LDMDiffusion
@testable import LDMTraining

final class LoRATrainingTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    var tiny: String { root.appendingPathComponent("Tests/Fixtures/models/tiny-sd").path }

    func temporary() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lora-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// Two 64×64 pictures with captions.
    func dataset() throws -> URL {
        let dir = try temporary().appendingPathComponent("data")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (i, caption) in ["a red circle", "a blue square"].enumerated() {
            var pixels = [UInt8](repeating: 0, count: 64 * 64 * 3)
            for p in 0..<64 * 64 { pixels[p * 3 + i * 2] = UInt8((p * 7 + i * 50) % 256); pixels[p * 3 + 1] = UInt8(p % 64 * 4) }
            try PNGImage(width: 64, height: 64, channels: 3, pixels: pixels).write(to: dir.appendingPathComponent("\(i).png").path)
            try caption.write(to: dir.appendingPathComponent("\(i).txt"), atomically: true, encoding: .utf8)
        }
        return dir
    }

    func trainer(_ config: LoRATrainingConfig, run: URL? = nil) throws -> LoRATrainer {
        let pipeline = try StableDiffusionPipeline.load(model: tiny)
        let data = try FolderImageDataset(directory: try dataset().path, size: 64)
        return try LoRATrainer(config: config, pipeline: pipeline, dataset: data, captions: ["a red circle", "a blue square"],
                               runFolder: try run ?? temporary().appendingPathComponent("run"))
    }

    /// B = 0 makes ∂L/∂A vanish: small random B values first.
    func randomiseUps(_ t: LoRATrainer, seed: UInt64) {
        var random = SwiftRandomSource(seed: seed)
        for target in t.targets {
            let u = random.normal(count: target.up.value.count)
            for i in 0..<u.count { target.up.value.data[i] = 0.05 * u[i] }
        }
    }

    /// Central differences of the loss at the `count` largest-gradient entries of each of the
    /// target's A and B, against the analytic gradients of the last `lossAndGradients()`.
    func checkFiniteDifferences(_ t: LoRATrainer, _ target: LoRATarget, count: Int) throws -> Int {
        var checked = 0
        for p in [target.down, target.up] {
            let analytic = Array(UnsafeBufferPointer(start: p.grad!.data, count: p.grad!.count))
            for i in analytic.indices.sorted(by: { abs(analytic[$0]) > abs(analytic[$1]) }).prefix(count) {
                let saved = p.value.data[i], h: Float = 0.02
                p.value.data[i] = saved + h
                let plus = try t.lossAndGradients(gradients: false)
                p.value.data[i] = saved - h
                let minus = try t.lossAndGradients(gradients: false)
                p.value.data[i] = saved
                let numeric = (plus - minus) / Double(2 * h)
                XCTAssertEqual(numeric, Double(analytic[i]), accuracy: 0.03 * abs(numeric) + 2e-6,
                               "\(target.weightName) \(p === target.down ? "down" : "up")[\(i)]")
                checked += 1
            }
        }
        return checked
    }

    func testGradientsOfAAndBMatchFiniteDifferences() throws {
        var c = LoRATrainingConfig()
        c.rank = 2; c.alpha = 3; c.targets = ["unet", "text"]; c.conv = true; c.batchSize = 2; c.captionDropout = 0
        let t = try trainer(c)
        randomiseUps(t, seed: 5)
        _ = try t.lossAndGradients()
        // Frozen weights get no gradient, linear targets' full ∂L/∂W included (A's and B's come
        // through rank r); convolution targets keep theirs for the projection.
        let frozen = t.pipeline.unet.namedParameters().filter { name, _ in !t.targets.contains { $0.weightName == name } }
        XCTAssertFalse(frozen.isEmpty)
        XCTAssertTrue(frozen.allSatisfy { $0.1.grad == nil }, "\(frozen.first { $0.1.grad != nil }?.0 ?? "")")
        XCTAssertTrue(t.targets.filter { $0.weight.shape.count == 2 }.allSatisfy { $0.weight.grad == nil })
        XCTAssertTrue(t.targets.filter { $0.weight.shape.count == 4 }.allSatisfy { $0.weight.grad != nil })
        let picks = [t.targets.first { $0.weightName.hasSuffix("attn2.to_k.weight") }!,
                     t.targets.first { $0.weightName.hasSuffix("conv1.weight") }!,
                     t.targets.first { $0.component == "text_encoder" && $0.weightName.hasSuffix("q_proj.weight") }!]
        var checked = 0
        for target in picks { checked += try checkFiniteDifferences(t, target, count: 2) }
        XCTAssertEqual(checked, 12)
    }

    /// SDXL: the U-Net's LoRA trained with both encoders' context, the pooled embedding and the
    /// size ids; A's and B's gradients match finite differences, the loss falls, and the kohya
    /// file (LDM module names, as kohya's SDXL scripts write) loads back as the trained update.
    func testSDXLUNetLoRA() throws {
        var c = LoRATrainingConfig()
        c.rank = 2; c.alpha = 2; c.targets = ["unet"]; c.batchSize = 2; c.captionDropout = 0; c.imageSize = 64
        c.learningRate = 3e-2; c.warmupSteps = 0
        let sdxl = root.appendingPathComponent("Tests/Fixtures/models/tiny-sdxl").path
        func make(_ c: LoRATrainingConfig) throws -> LoRATrainer {
            let pipeline = try StableDiffusionPipeline.load(model: sdxl)
            return try LoRATrainer(config: c, pipeline: pipeline, dataset: try FolderImageDataset(directory: try dataset().path, size: 64),
                                   captions: ["a red circle", "a blue square"], runFolder: try temporary().appendingPathComponent("run"))
        }
        var text = c
        text.targets = ["unet", "text"]
        XCTAssertThrowsError(try make(text)) { XCTAssertTrue("\($0)".contains("text encoders"), "\($0)") }
        let t = try make(c)
        randomiseUps(t, seed: 9)
        _ = try t.lossAndGradients()
        XCTAssertEqual(try checkFiniteDifferences(t, t.targets.first { $0.weightName.hasSuffix("attn2.to_k.weight") }!, count: 1), 2)
        // Training on the two pictures lowers their loss below the base model's (same batch, noise
        // and timesteps: the LoRA's B set to zero gives the base model).
        c.steps = 12
        let trained = try make(c)
        for _ in 0..<12 { _ = try trained.trainStep() }
        let after = try trained.lossAndGradients(gradients: false)
        let ups = trained.targets.map { Array(UnsafeBufferPointer(start: $0.up.value.data, count: $0.up.value.count)) }
        for target in trained.targets { target.up.value.data.update(repeating: 0, count: target.up.value.count) }
        let base = try trained.lossAndGradients(gradients: false)
        for (target, u) in zip(trained.targets, ups) { u.withUnsafeBufferPointer { target.up.value.data.update(from: $0.baseAddress!, count: u.count) } }
        XCTAssertLessThan(after, base)
        let url = try temporary().appendingPathComponent("sdxl.safetensors")
        try trained.export(to: url, format: .kohya, dtype: .f32)
        let file = try SafeTensorsFile(path: url.path)
        XCTAssertTrue(file.names.contains { $0.hasPrefix("lora_unet_input_blocks_") }, "\(file.names.prefix(3))")
        XCTAssertEqual(file.metadata["ss_base_model_version"], "sdxl_base_v1-0")
        let fresh = try StableDiffusionPipeline.load(model: sdxl)
        let lora = try LoRAFile(path: url.path, unet: fresh.unet, textEncoder: fresh.textEncoder, textEncoder2: fresh.textEncoder2,
                                unetConfig: fresh.unet.config)
        XCTAssertEqual(lora.modules.count, trained.targets.count)
        try LoRAApplication().apply(lora, weight: 1, unet: fresh.unet, textEncoder: fresh.textEncoder, textEncoder2: fresh.textEncoder2)
        let weights = Dictionary(uniqueKeysWithValues: fresh.unet.namedParameters())
        for target in trained.targets {
            target.merge(scale: trained.scale)
            let expected = Array(UnsafeBufferPointer(start: target.weight.value.data, count: target.weight.value.count))
            target.restore()
            let got = weights[target.weightName]!
            let worst = zip(expected, UnsafeBufferPointer(start: got.value.data, count: got.value.count)).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(worst, 1e-5, target.weightName)
        }
    }

    /// Gradient checkpointing recomputes the blocks' activations in backward: the same gradients.
    func testGradientCheckpointingGivesTheSameGradients() throws {
        var c = LoRATrainingConfig()
        c.rank = 2; c.alpha = 2; c.targets = ["unet", "text"]; c.conv = true; c.batchSize = 2; c.captionDropout = 0
        func gradients(_ checkpointing: Bool) throws -> (Double, [[Float]]) {
            let t = try trainer(c)
            randomiseUps(t, seed: 5)
            t.gradientCheckpointing = checkpointing
            let loss = try t.lossAndGradients()
            return (loss, t.targets.flatMap { [$0.down.grad!, $0.up.grad!] }.map { Array(UnsafeBufferPointer(start: $0.data, count: $0.count)) })
        }
        let (plainLoss, plain) = try gradients(false)
        let (loss, recomputed) = try gradients(true)
        XCTAssertEqual(loss, plainLoss)
        XCTAssertEqual(plain.count, recomputed.count)
        XCTAssertTrue(plain.joined().contains { $0 != 0 })
        for (a, b) in zip(plain, recomputed) { XCTAssertEqual(a, b) }
    }

    func testExportedFilesCarryTheTrainedUpdateAndResumeIsExact() throws {
        var c = LoRATrainingConfig()
        c.rank = 4; c.alpha = 2; c.targets = ["unet", "text"]; c.steps = 2; c.batchSize = 1; c.learningRate = 1e-2; c.warmupSteps = 0
        c.checkpointEvery = 1
        let run = try temporary().appendingPathComponent("run")
        let a = try trainer(c, run: run)
        _ = try a.trainStep(); try a.checkpoint()
        _ = try a.trainStep()
        // A second trainer resumed from step 1 reaches the same A and B at step 2.
        let b = try trainer(c, run: run)
        XCTAssertEqual(try b.resume(), 1)
        _ = try b.trainStep()
        for (x, y) in zip(a.targets, b.targets) {
            for (p, q) in [(x.down, y.down), (x.up, y.up)] {
                XCTAssertEqual(Array(UnsafeBufferPointer(start: p.value.data, count: p.value.count)),
                               Array(UnsafeBufferPointer(start: q.value.data, count: q.value.count)), x.weightName)
            }
        }
        XCTAssertTrue(a.targets.contains { t in (0..<t.up.value.count).contains { t.up.value.data[$0] != 0 } }, "B moved from zero")
        // Both formats, read by the loader and applied at weight 1, give W₀ + (α/r)·B·A.
        let dir = try temporary()
        for format in [LoRAFile.Format.kohya, .peft] {
            let url = dir.appendingPathComponent("\(format.rawValue).safetensors")
            try a.export(to: url, format: format, dtype: .f32)
            let fresh = try StableDiffusionPipeline.load(model: tiny)
            let file = try LoRAFile(path: url.path, unet: fresh.unet, textEncoder: fresh.textEncoder, unetConfig: fresh.unet.config)
            XCTAssertEqual(file.modules.count, a.targets.count)
            try LoRAApplication().apply(file, weight: 1, unet: fresh.unet, textEncoder: fresh.textEncoder)
            let weights = Dictionary(uniqueKeysWithValues: fresh.unet.namedParameters().map { ("unet/" + $0.0, $0.1) }
                                     + fresh.textEncoder.namedParameters().map { ("text_encoder/" + $0.0, $0.1) })
            for t in a.targets {
                t.merge(scale: a.scale)
                let expected = Array(UnsafeBufferPointer(start: t.weight.value.data, count: t.weight.value.count))
                t.restore()
                let got = weights[t.component + "/" + t.weightName]!
                let worst = zip(expected, UnsafeBufferPointer(start: got.value.data, count: got.value.count)).map { abs($0 - $1) }.max()!
                XCTAssertLessThan(worst, 1e-5, "\(format) \(t.weightName)")
            }
            if format == .kohya {
                let meta = try SafeTensorsFile(path: url.path).metadata
                XCTAssertEqual(meta["ss_network_module"], "networks.lora")
                XCTAssertEqual(meta["ss_network_dim"], "4")
                XCTAssertEqual(meta["ss_network_alpha"], "2")
                XCTAssertEqual(meta["ss_base_model_version"], "sd_v1")
            }
        }
    }

    func testInitialisingFromALoRAWithFewerModules() throws {
        // A LoRA trained without convolutions starts a run that adds them: its modules are loaded,
        // the convolutions start fresh (B = 0); a file with none of the run's modules is refused.
        var c = LoRATrainingConfig()
        c.rank = 4; c.alpha = 4; c.targets = ["unet"]; c.steps = 1; c.batchSize = 1; c.learningRate = 1e-2; c.warmupSteps = 0
        let plain = try trainer(c)
        randomiseUps(plain, seed: 3)
        let file = try temporary().appendingPathComponent("plain.safetensors")
        try plain.export(to: file, format: .kohya, dtype: .f32)
        c.conv = true
        let wider = try trainer(c)
        let fresh = try wider.initialize(from: file.path)
        XCTAssertEqual(fresh, wider.targets.count - plain.targets.count)
        XCTAssertGreaterThan(fresh, 0)
        let loaded = Dictionary(uniqueKeysWithValues: plain.targets.map { ($0.weightName, $0) })
        for t in wider.targets {
            let up = Array(UnsafeBufferPointer(start: t.up.value.data, count: t.up.value.count))
            if let p = loaded[t.weightName] {
                XCTAssertEqual(up, Array(UnsafeBufferPointer(start: p.up.value.data, count: p.up.value.count)), t.weightName)
            } else {
                XCTAssertTrue(up.allSatisfy { $0 == 0 }, "\(t.weightName) starts fresh")
            }
        }
        c.conv = false; c.targets = ["text"]
        XCTAssertThrowsError(try trainer(c).initialize(from: file.path))
    }
}

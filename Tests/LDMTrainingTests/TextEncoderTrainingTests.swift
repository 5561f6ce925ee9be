// The text encoder's own learning rate and its re-initialisation under a kept U-Net.
import Foundation
import XCTest
import LDMCore
@testable import LDMTraining

final class TextEncoderTrainingTests: XCTestCase {
    func trainer(textScale: Float?, qkScale: Float? = nil) throws -> (DiffusionTrainer, URL) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ldm-text-lr-\(UUID().uuidString)")
        var c = tinyDiffusionConfig(steps: 2)
        c.textLearningRateScale = textScale
        c.attentionQKLearningRateScale = qkScale
        let data = SmallShapes(n: 4)
        let captions = try (0..<4).map { try data.sample($0).caption }
        return (try DiffusionTrainer(config: c, space: .pixels, dataset: data, captions: captions, runFolder: root), root)
    }

    /// AdamW's first step moves each weight by lr·(g/|g|): the largest move of a bias (no weight
    /// decay) is the step's rate, times the scale for the text encoder's.
    func testTextEncoderLearnsAtItsOwnRate() throws {
        let (t, root) = try trainer(textScale: 0.25)
        defer { try? FileManager.default.removeItem(at: root) }
        let before = t.state.params.map { $0.1.value.copy() }
        _ = try t.trainStep()
        let lr = LearningRateSchedule(peak: t.config.learningRate, warmupSteps: t.config.warmupSteps, totalSteps: t.config.steps)(0)
        var largest = ["unet.": Float(0), "text_encoder.": Float(0)]
        for ((name, p), old) in zip(t.state.params, before) where name.hasSuffix(".bias") {
            let move = zip(p.value.array, old.array).map { abs($0 - $1) }.max() ?? 0
            for prefix in largest.keys where name.hasPrefix(prefix) { largest[prefix] = max(largest[prefix]!, move) }
        }
        XCTAssertEqual(largest["unet."]!, lr, accuracy: lr * 1e-3)
        XCTAssertEqual(largest["text_encoder."]!, 0.25 * lr, accuracy: lr * 1e-3)
    }

    /// The U-Net's attention query and key weights move at their own rate: at most
    /// scale · lr · (1 + λ|w|) on the first step, while other U-Net weights move by up to lr.
    func testAttentionQueriesAndKeysLearnAtTheirOwnRate() throws {
        let (t, root) = try trainer(textScale: nil, qkScale: 0.1)
        defer { try? FileManager.default.removeItem(at: root) }
        let before = t.state.params.map { $0.1.value.copy() }
        _ = try t.trainStep()
        let lr = LearningRateSchedule(peak: t.config.learningRate, warmupSteps: t.config.warmupSteps, totalSteps: t.config.steps)(0)
        var qk: Float = 0, other: Float = 0, qkCount = 0
        for ((name, p), old) in zip(t.state.params, before) where name.hasPrefix("unet.") && name.hasSuffix(".weight") {
            let move = zip(p.value.array, old.array).map { abs($0 - $1) }.max() ?? 0
            if DiffusionTrainer.isAttentionQueryOrKey(name) { qk = max(qk, move); qkCount += 1 } else { other = max(other, move) }
        }
        XCTAssertTrue(qkCount > 0 && qkCount % 4 == 0, "attn1 and attn2, to_q and to_k, per block: \(qkCount)")
        XCTAssertEqual(qk, 0.1 * lr, accuracy: 0.1 * lr * 0.02)
        XCTAssertGreaterThan(other, 0.9 * lr)
        var c = DiffusionTrainingConfig()
        c.attentionQKLearningRateScale = 0
        XCTAssertThrowsError(try c.validate())
    }

    func testScaleOutsideTheRangeIsRejected() {
        var c = DiffusionTrainingConfig()
        for bad: Float in [0, -1, 1.5, .nan] {
            c.textLearningRateScale = bad
            XCTAssertThrowsError(try c.validate(), "\(bad)")
        }
        c.textLearningRateScale = 1
        XCTAssertNoThrow(try c.validate())
    }

    /// Re-initialising replaces the text encoder's weights and EMA (the same for the same seed) and
    /// leaves the U-Net's alone.
    func testReinitialisingTheTextEncoderKeepsTheUNet() throws {
        let (t, root) = try trainer(textScale: nil)
        defer { try? FileManager.default.removeItem(at: root) }
        _ = try t.trainStep()
        let before = t.state.params.map { $0.1.value.copy() }
        t.reinitialiseTextEncoder(seed: 7)
        let first = t.state.params.map { $0.1.value.copy() }
        t.reinitialiseTextEncoder(seed: 7)
        var textChanged = 0
        for (k, (name, p)) in t.state.params.enumerated() {
            XCTAssertEqual(p.value.array, first[k].array, name)
            if name.hasPrefix("text_encoder.") {
                XCTAssertEqual(t.state.ema.shadows[k].1.array, p.value.array, name)
                if p.value.array != before[k].array { textChanged += 1 }
            } else {
                XCTAssertEqual(p.value.array, before[k].array, name)
            }
        }
        XCTAssertGreaterThan(textChanged, 0)
    }
}

// The text encoder's preceding-words objective: its targets, its gradients by finite differences,
// and a continued run that turns it on.
import Foundation
import XCTest
import LDMCore
import LDMModels
@testable import LDMTraining

final class PrecedingWordsObjectiveTests: XCTestCase {
    /// Each position from the first word to the end token targets its own word (half) and the
    /// distinct words before it (the other half, shared evenly).
    func testTargetsAreTheOwnWordAndTheDistinctWordsBefore() {
        let bos: Int32 = 1, eos: Int32 = 2
        let ids: [[Int32]] = [[bos, 5, 6, 5, 7, eos, eos, eos], [bos, eos, eos, eos, eos, eos, eos, eos]]
        let t = PrecedingWordsObjective.targets(ids: ids, endID: eos)
        XCTAssertEqual(t.map(\.row), [1, 2, 3, 4, 5, 9])
        func weights(_ k: Int) -> [Int: Float] { Dictionary(uniqueKeysWithValues: t[k].words.map { ($0.id, $0.weight) }) }
        XCTAssertEqual(weights(0), [5: 1])
        XCTAssertEqual(weights(1), [6: 0.5, 5: 0.5])
        XCTAssertEqual(weights(2), [5: 0.75, 6: 0.25])
        XCTAssertEqual(weights(3), [7: 0.5, 5: 0.25, 6: 0.25])
        XCTAssertEqual(weights(4)[5]!, 0.5 / 3, accuracy: 1e-7)
        XCTAssertEqual(weights(4)[Int(eos)], 0.5)
        XCTAssertEqual(weights(5), [Int(eos): 1])
        for k in t.indices { XCTAssertEqual(t[k].words.map(\.weight).reduce(0, +), 1, accuracy: 1e-6) }
    }

    /// The gradient with respect to the hidden states and the head's weights and bias matches
    /// central differences of weight · L.
    func testGradientsMatchFiniteDifferences() {
        let width = 6, vocab = 9, tokens = 7
        let objective = PrecedingWordsObjective(hiddenSize: width, vocabularySize: vocab, weight: 0.7)
        var rng = SwiftRandomSource(seed: 4)
        objective.head.initializeWeights(&rng)
        let hidden = Tensor(shape: [2, tokens, width], rng.normal(count: 2 * tokens * width))
        let ids: [[Int32]] = [[0, 3, 4, 3, 8, 1, 1], [0, 5, 1, 1, 1, 1, 1]]
        objective.head.zeroGradients()
        let (_, grad) = objective.lossAndGradient(hidden: hidden, ids: ids, endID: 1)
        func loss() -> Double {
            let (l, _) = objective.lossAndGradient(hidden: hidden, ids: ids, endID: 1)
            return Double(l) * 0.7
        }
        func check(_ values: Tensor, _ analytic: [Float], _ label: String) {
            var worst: Float = 0
            for k in stride(from: 0, to: values.count, by: 3) {
                let keep = values.data[k], h: Float = 1e-2
                values.data[k] = keep + h; let up = loss()
                values.data[k] = keep - h; let down = loss()
                values.data[k] = keep
                let numeric = Float((up - down) / Double(2 * h))
                worst = max(worst, abs(numeric - analytic[k]) / max(1e-3, abs(numeric) + abs(analytic[k])))
            }
            XCTAssertLessThan(worst, 2e-2, label)
        }
        let weightGrad = objective.head.weight.grad!.array, biasGrad = objective.head.bias!.grad!.array
        XCTAssertGreaterThan(grad.array.map(abs).max()!, 1e-3)
        check(hidden, grad.array, "hidden")
        check(objective.head.weight.value, weightGrad, "head weight")
        check(objective.head.bias!.value, biasGrad, "head bias")
    }

    /// A run saved without the objective continues with it on: the networks load as saved, the head
    /// starts fresh, and the text encoder's step differs from the same step without the objective.
    func testContinuedRunCanTurnTheObjectiveOn() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ldm-words-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let c = tinyDiffusionConfig(steps: 4)
        let data = SmallShapes(n: 4)
        let captions = try (0..<4).map { try data.sample($0).caption }
        let first = try DiffusionTrainer(config: c, space: .pixels, dataset: data, captions: captions, runFolder: root)
        _ = try first.trainStep()
        try first.checkpoint()
        var on = c
        on.textAuxWeight = 0.5
        let plain = try DiffusionTrainer(config: c, space: .pixels, dataset: data, captions: captions, runFolder: root)
        let aux = try DiffusionTrainer(config: on, space: .pixels, dataset: data, captions: captions, runFolder: root)
        XCTAssertEqual(try plain.resume(), 1)
        XCTAssertEqual(try aux.resume(), 1)
        XCTAssertEqual(aux.state.params.count, plain.state.params.count + 2)
        for ((name, a), (_, b)) in zip(plain.state.params, aux.state.params) { XCTAssertEqual(a.value.array, b.value.array, name) }
        _ = try plain.trainStep()
        _ = try aux.trainStep()
        XCTAssertNotNil(aux.textAuxLoss)
        var textDiffers = false
        for ((name, a), (_, b)) in zip(plain.state.params, aux.state.params) {
            if name.hasPrefix("text_encoder."), a.value.array != b.value.array { textDiffers = true }
        }
        XCTAssertTrue(textDiffers)
        on.textAuxWeight = -1
        XCTAssertThrowsError(try on.validate())
    }
}

// The training noise schedule and loss weighting: zero terminal SNR against an independent
// double-precision reference of Lin et al.'s rescaling, the exported scheduler sampling from the
// pure-noise step the model was trained on, and the SNR loss weights.
import Foundation
import XCTest
import LDMCore
import LDMDiffusion
@testable import LDMTraining

final class NoiseScheduleTrainingTests: XCTestCase {
    /// ᾱ of the scaled-linear schedule rescaled to zero terminal SNR, in double, straight from
    /// the paper's Algorithm 1 (√ᾱ shifted so the last is 0, scaled so the first is kept).
    func referenceZeroSNRAlphas(steps: Int, start: Double, end: Double) -> [Double] {
        var prod = 1.0
        let sqrtAlphaBar = (0..<steps).map { t -> Double in
            let s = start.squareRoot() + (end.squareRoot() - start.squareRoot()) * Double(t) / Double(steps - 1)
            prod *= 1 - s * s
            return prod.squareRoot()
        }
        let first = sqrtAlphaBar[0], last = sqrtAlphaBar[steps - 1]
        return sqrtAlphaBar.map { v in let r = (v - last) * first / (first - last); return r * r }
    }

    func testZeroTerminalSNRScheduleMatchesTheReferenceAndTheExportedScheduler() throws {
        var c = DiffusionTrainingConfig()
        c.zeroTerminalSNR = false
        let plain = c.alphasCumprod
        c.zeroTerminalSNR = true
        let zero = c.alphasCumprod
        let reference = referenceZeroSNRAlphas(steps: 1000, start: Double(c.betaStart), end: Double(c.betaEnd))
        XCTAssertEqual(zero.count, 1000)
        XCTAssertEqual(zero[999], 0, "the last step is pure noise")
        XCTAssertGreaterThan(plain[999], 0.004, "the plain schedule leaves signal at the last step")
        for t in 0..<1000 {
            XCTAssertEqual(Double(zero[t]), reference[t], accuracy: 2e-5, "ᾱ at t = \(t)")
            if t > 0 { XCTAssertLessThan(zero[t], zero[t - 1], "ᾱ decreases at t = \(t)") }
        }
        XCTAssertEqual(zero[0], plain[0], accuracy: 1e-6, "the first step is kept")

        // The exported scheduler (DPM-Solver++) starts sampling at t = 999 with the zero-SNR
        // schedule; without it at 951 (leading spacing: 25 · ⌊999/26⌋ + offset 1).
        for (flag, first) in [(true, Float(999)), (false, Float(951))] {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ldm-zsnr-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: folder) }
            var config = DiffusionTrainingConfig()
            config.zeroTerminalSNR = flag
            try writeSchedulerConfig(config, to: folder)
            var scheduler = try makeScheduler(folderConfig: folder.appendingPathComponent("scheduler"), sampler: nil)
            try scheduler.setTimesteps(25)
            XCTAssertEqual(scheduler.timesteps.first, first, "zero terminal SNR \(flag)")
            XCTAssertEqual(scheduler.timesteps.count, 25)
        }
    }

    func testLossWeights() {
        var c = DiffusionTrainingConfig()
        c.predictionType = "v_prediction"
        c.lossWeighting = "min_snr"
        c.minSNRGamma = 5
        // ᾱ for SNR = s is s/(1 + s).
        func ab(_ snr: Float) -> Float { snr / (1 + snr) }
        // min_snr with v: min(SNR, γ)/(SNR + 1).
        XCTAssertEqual(c.lossWeight(alphaCumprod: 0), 0)
        XCTAssertEqual(c.lossWeight(alphaCumprod: ab(1)), 0.5, accuracy: 1e-6)
        XCTAssertEqual(c.lossWeight(alphaCumprod: ab(9)), 0.5, accuracy: 1e-5)
        // min_snr_plus_one: min(SNR + 1, γ)/(SNR + 1) — 1 at the noisy end, capped at the clean end.
        c.lossWeighting = "min_snr_plus_one"
        XCTAssertEqual(c.lossWeight(alphaCumprod: 0), 1)
        XCTAssertEqual(c.lossWeight(alphaCumprod: ab(1)), 1, accuracy: 1e-6)
        XCTAssertEqual(c.lossWeight(alphaCumprod: ab(9)), 0.5, accuracy: 1e-5)
        // min_snr with ε: min(SNR, γ)/SNR.
        c.lossWeighting = nil  // the old runs' setting: min_snr
        c.predictionType = "epsilon"
        XCTAssertEqual(c.lossWeight(alphaCumprod: ab(1)), 1, accuracy: 1e-6)
        XCTAssertEqual(c.lossWeight(alphaCumprod: ab(10)), 0.5, accuracy: 1e-5)
        c.minSNRGamma = 0
        XCTAssertEqual(c.lossWeight(alphaCumprod: ab(10)), 1)
    }

    func testSettingsThatDoNotGoTogetherAreRejected() {
        var c = DiffusionTrainingConfig()
        c.predictionType = "v_prediction"
        XCTAssertNoThrow(try c.validate())
        c.zeroTerminalSNR = true
        c.lossWeighting = "min_snr_plus_one"
        XCTAssertNoThrow(try c.validate())
        c.predictionType = "epsilon"
        XCTAssertThrowsError(try c.validate())
        c.zeroTerminalSNR = false
        XCTAssertThrowsError(try c.validate())
        c.lossWeighting = "min_snr"
        XCTAssertNoThrow(try c.validate())
        c.lossWeighting = "snr"
        c.predictionType = "v_prediction"
        XCTAssertThrowsError(try c.validate())
    }

    func testHighNoiseShareDrawsTheNoisiestTimesteps() {
        var c = DiffusionTrainingConfig()
        // No share: the plain uniform draw, value for value.
        var a = SwiftRandomSource(seed: 3), b = SwiftRandomSource(seed: 3)
        let plain = c.drawTimesteps(count: 4000, &a)
        XCTAssertEqual(plain, b.uniform(count: 4000).map { min(Int($0 * 1000), 999) })
        XCTAssertEqual(Double(plain.filter { $0 >= 600 }.count) / 4000, 0.4, accuracy: 0.03)
        c.highNoiseShare = 1
        var r = SwiftRandomSource(seed: 3)
        let all = c.drawTimesteps(count: 4000, &r)
        XCTAssertTrue(all.allSatisfy { $0 >= 600 && $0 <= 999 })
        XCTAssertEqual(Set(all).count, 400)
        // Half the samples from the top 40%, half uniform: 0.5 + 0.5 · 0.4 of them at t ≥ 600.
        c.highNoiseShare = 0.5
        var h = SwiftRandomSource(seed: 4)
        let half = c.drawTimesteps(count: 4000, &h)
        XCTAssertEqual(Double(half.filter { $0 >= 600 }.count) / 4000, 0.7, accuracy: 0.03)
        XCTAssertTrue(half.contains(0) || half.contains { $0 < 10 })
        c.highNoiseShare = 1.5
        XCTAssertThrowsError(try c.validate())
    }

    /// Runs saved before the settings existed decode with both unset (the old behaviour).
    func testOldRunSettingsDecode() throws {
        var c = DiffusionTrainingConfig()
        c.zeroTerminalSNR = true
        var json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(c)) as! [String: Any]
        XCTAssertEqual(json["zeroTerminalSNR"] as? Bool, true)
        json["zeroTerminalSNR"] = nil
        json["lossWeighting"] = nil
        let old = try JSONDecoder().decode(DiffusionTrainingConfig.self, from: JSONSerialization.data(withJSONObject: json))
        XCTAssertNil(old.zeroTerminalSNR)
        XCTAssertNil(old.lossWeighting)
    }

    /// A tiny zero-SNR run trains (finite losses, including the pure-noise step) and its exported
    /// model samples from t = 999 without overflow.
    func testZeroSNRRunTrainsAndSamples() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ldm-zsnr-run-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        var c = tinyDiffusionConfig(steps: 4)
        c.predictionType = "v_prediction"
        c.zeroTerminalSNR = true
        c.lossWeighting = "min_snr_plus_one"
        c.minSNRGamma = 5
        let data = SmallShapes(n: 4)
        let captions = try (0..<4).map { try data.sample($0).caption }
        let trainer = try DiffusionTrainer(config: c, space: .pixels, dataset: data, captions: captions,
                                           runFolder: root.appendingPathComponent("run"))
        for _ in 0..<4 { XCTAssertTrue(try trainer.trainStep().isFinite) }
        let folder = root.appendingPathComponent("model")
        try exportDiffusionModel(trainer, to: folder)
        let pipe = try StableDiffusionPipeline(folder: folder)
        var r = GenerationRequest(prompt: "a red circle")
        r.steps = 3
        r.rng = .swift
        let image = try pipe.generate(r)
        XCTAssertTrue(image.array.allSatisfy { $0.isFinite && $0 >= 0 && $0 <= 1 })
    }
}

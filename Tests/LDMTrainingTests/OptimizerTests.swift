// AdamW, clipping, the learning-rate schedule and the EMA against their formulas written out in
// Double, step by step.
import Foundation
import XCTest
import LDMCore
import LDMModels
@testable import LDMTraining

final class OptimizerTests: XCTestCase {
    /// Two parameters (a matrix, which decays, and a bias, which does not) with gradients set by `g`.
    func parameters() -> [(String, Parameter)] {
        [("layer.weight", Parameter(Tensor(shape: [2, 2], [0.5, -0.25, 1.0, 0.125]))),
         ("layer.bias", Parameter(Tensor(shape: [2], [0.1, -0.2])))]
    }

    func setGradients(_ ps: [(String, Parameter)], step: Int) {
        for (k, (_, p)) in ps.enumerated() {
            let g = Tensor(zeros: p.shape)
            for i in 0..<g.count { g.data[i] = Float(sin(Double(1 + i + 3 * k + 7 * step))) }
            p.grad = g
        }
    }

    func testAdamWMatchesTheFormulaOverSeveralSteps() {
        let ps = parameters()
        let adam = AdamW(ps, weightDecay: 0.1)
        var w = ps.map { $0.1.value.array.map(Double.init) }
        var m = w.map { [Double](repeating: 0, count: $0.count) }, v = m
        let lrs: [Double] = [1e-2, 5e-3, 2e-2, 1e-3, 1e-2]
        for (t, lr) in lrs.enumerated() {
            setGradients(ps, step: t)
            adam.update(lr: Float(lr), gradScale: 0.5)
            for k in 0..<ps.count {
                let decay = k == 0 ? 0.1 : 0
                for i in 0..<w[k].count {
                    let g = 0.5 * Double(ps[k].1.grad!.data[i])
                    m[k][i] = 0.9 * m[k][i] + 0.1 * g
                    v[k][i] = 0.999 * v[k][i] + 0.001 * g * g
                    let mh = m[k][i] / (1 - pow(0.9, Double(t + 1))), vh = v[k][i] / (1 - pow(0.999, Double(t + 1)))
                    w[k][i] -= lr * (mh / (vh.squareRoot() + 1e-8) + decay * w[k][i])
                }
            }
        }
        for k in 0..<ps.count {
            for (a, b) in zip(ps[k].1.value.array, w[k]) { XCTAssertEqual(Double(a), b, accuracy: 1e-6) }
        }
    }

    func testMomentsRoundTripWithTheirAge() throws {
        let ps = parameters()
        let adam = AdamW(ps)
        for t in 0..<3 { setGradients(ps, step: t); adam.update(lr: 1e-2) }
        let saved = Dictionary(uniqueKeysWithValues: adam.namedState.map { ($0.0, $0.1.copy()) })
        let other = AdamW(parameters())
        try other.restore(step: 1000, moments: saved)
        XCTAssertEqual(other.step, 3, "the moments' age, not the run's step, drives the bias corrections")
        for k in 0..<ps.count {
            XCTAssertEqual(other.m[k].array, adam.m[k].array)
            XCTAssertEqual(other.v[k].array, adam.v[k].array)
        }
        var old = saved
        old["adam.step"] = nil
        try other.restore(step: 7, moments: old)
        XCTAssertEqual(other.step, 7)
    }

    func testClippingScalesToTheMaximumNorm() {
        let ps = parameters()
        setGradients(ps, step: 0)
        let adam = AdamW(ps)
        let all = ps.flatMap { $0.1.grad!.array.map(Double.init) }
        let norm = all.map { $0 * $0 }.reduce(0, +).squareRoot()
        XCTAssertEqual(Double(adam.clipGradients(maxNorm: 0.5)), norm, accuracy: 1e-5)
        XCTAssertEqual(Double(adam.gradientNorm()), 0.5, accuracy: 1e-5)
        XCTAssertEqual(Double(adam.clipGradients(maxNorm: 10)), 0.5, accuracy: 1e-5)
        XCTAssertEqual(Double(adam.gradientNorm()), 0.5, accuracy: 1e-5, "a norm below the maximum is left alone")
    }

    func testScheduleWarmsUpDecaysAndWarmsUpAgainAfterARestart() {
        let s = LearningRateSchedule(peak: 1, warmupSteps: 10, totalSteps: 110, floor: 0.1)
        XCTAssertEqual(s(0), 0.1, accuracy: 1e-6)
        XCTAssertEqual(s(9), 1, accuracy: 1e-6)
        XCTAssertEqual(s(10), 1, accuracy: 1e-6)
        XCTAssertEqual(s(60), 0.55, accuracy: 1e-6)
        XCTAssertEqual(s(110), 0.1, accuracy: 1e-6)
        XCTAssertEqual(s(500), 0.1, accuracy: 1e-6)
        var r = s
        r.restartStep = 50
        XCTAssertEqual(r(49), s(49))
        XCTAssertEqual(r(50), s(50) * 0.1, accuracy: 1e-6)
        XCTAssertEqual(r(54), s(54) * 0.5, accuracy: 1e-6)
        XCTAssertEqual(r(60), s(60))
    }

    func testEMAFollowsItsFormula() {
        let ps = parameters()
        let ema = EMA(ps, decay: 0.9)
        var shadow = ps.map { $0.1.value.array.map(Double.init) }
        for t in 0..<30 {
            for (k, (_, p)) in ps.enumerated() { for i in 0..<p.value.count { p.value.data[i] += Float(0.01 * Double(k + i + t)) } }
            ema.update(ps, step: t)
            let d = min(0.9, Double(Float(1 + t) / Float(10 + t)))
            for k in 0..<ps.count {
                for i in 0..<shadow[k].count { shadow[k][i] = d * shadow[k][i] + (1 - d) * Double(ps[k].1.value.data[i]) }
            }
        }
        for k in 0..<ps.count {
            for (a, b) in zip(ema.shadows[k].1.array, shadow[k]) { XCTAssertEqual(Double(a), b, accuracy: 1e-5) }
        }
    }
}

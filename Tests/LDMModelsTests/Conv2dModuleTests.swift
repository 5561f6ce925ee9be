// The Conv2d module's Winograd path (large 3×3 convolutions) against the direct convolution, and its
// kept filters following changes made to the weights in place.
import XCTest
import LDMCore
@testable import LDMModels

final class Conv2dModuleTests: XCTestCase {
    /// Largest difference relative to the largest magnitude of b (F(4×4, 3×3)'s transforms scale by
    /// up to 8 and ⅙, so its rounding is relative to the outputs' size, not absolute).
    func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
        (zip(a.array, b.array).map { abs($0 - $1) }.max() ?? 0) / max(b.array.map { abs($0) }.max() ?? 0, 1e-30)
    }

    func testWinogradPathMatchesDirectConvolutionAndFollowsWeightChanges() {
        var rng = SwiftRandomSource(seed: 4)
        let conv = Conv2d(32, 40, kernel: 3, padding: 1)
        conv.initializeWeights(&rng)
        let x = Tensor(shape: [2, 32, 16, 18], rng.normal(count: 2 * 32 * 16 * 18))
        XCTAssertNotNil(winogradTile(inChannels: 32, outChannels: 40, kernel: 3, stride: 1, padding: 1, batch: 2, height: 16, width: 18,
                                     filtersKept: true))
        let direct = { conv2d(x, weight: conv.weight.value, bias: conv.bias?.value, stride: 1, padding: 1) }
        XCTAssertLessThan(maxDifference(conv(x), direct()), 1e-5)
        // Changed in place (as an optimiser or a finite-difference probe does): the next call sees it.
        conv.weight.value.data[123] += 0.5
        XCTAssertLessThan(maxDifference(conv(x), direct()), 1e-5)
        conv.setTraining(true)
        conv.weight.value.data[7] -= 0.25
        XCTAssertLessThan(maxDifference(conv(x), direct()), 1e-5)
    }

    /// The input gradient through the Winograd path (F(2×2) and F(4×4), chosen by the tile count)
    /// equals the im2col/col2im one, which GradientTests checks against finite differences; the
    /// weight and bias gradients are unchanged.
    func testWinogradInputGradientMatchesTheDirectBackward() {
        var rng = SwiftRandomSource(seed: 5)
        for (batch, expected) in [(2, WinogradTile.f2x2), (8, WinogradTile.f4x4)] {
            let conv = Conv2d(32, 40, kernel: 3, padding: 1)
            conv.initializeWeights(&rng)
            let x = Tensor(shape: [batch, 32, 16, 18], rng.normal(count: batch * 32 * 16 * 18))
            XCTAssertEqual(winogradTile(inChannels: 40, outChannels: 32, kernel: 3, stride: 1, padding: 1, batch: batch,
                                        height: 16, width: 18), expected)
            conv.setTraining(true)
            conv.zeroGradients()
            let y = conv(x)
            let dy = Tensor(shape: y.shape, rng.normal(count: y.count))
            let dx = conv.backward(dy)!
            let dw = Tensor(zeros: conv.weight.value.shape), db = Tensor(zeros: [40])
            let direct = conv2dBackward(dy, x: x, weight: conv.weight.value, stride: 1, padding: 1, weightGrad: dw, biasGrad: db)!
            XCTAssertLessThan(maxDifference(dx, direct), 2e-4, "batch \(batch)")
            XCTAssertLessThan(maxDifference(conv.weight.grad!, dw), 1e-3)
            XCTAssertLessThan(maxDifference(conv.bias!.grad!, db), 1e-3)
            XCTAssertNil(conv.backward(dy, needInputGrad: false))
        }
    }
}

// Compositing, padding and the area-average downsampler, against naive loops.
import Foundation
import XCTest
import LDMTraining
@testable import LDMEmoji

final class EmojiImageTests: XCTestCase {
    func testCompositingIsPremultipliedOverWhite() {
        // B, G, R, A premultiplied: clear; opaque red; red at α = 128/255; black at α = 128/255;
        // an invalid c > a sample (clamped).
        let bitmap = EmojiBitmap(width: 5, height: 1, pixels: [0, 0, 0, 0,  0, 0, 255, 255,  0, 0, 128, 128,
                                                                0, 0, 0, 128,  0, 0, 200, 100])
        let rgb = bitmap.compositedOnWhite()
        // out = c + (1 − a/255)·255 = c + 255 − a.
        XCTAssertEqual(rgb.pixels, [255, 255, 255,  255, 0, 0,  255, 127, 127,  127, 127, 127,  255, 155, 155])
    }

    func testPaddingCentresTheImageOnAWhiteSquare() {
        var wide = RGBImage(width: 3, height: 1, color: RGBColor(hex: 0))
        wide[2, 0] = RGBColor(hex: 0x102030)
        let square = wide.paddedToSquare(color: RGBColor(hex: 0xFFFFFF))
        XCTAssertEqual(square.width, 3)
        XCTAssertEqual(square.height, 3)
        XCTAssertEqual((0..<3).map { square[$0, 0] }, Array(repeating: RGBColor(hex: 0xFFFFFF), count: 3))
        XCTAssertEqual((0..<3).map { square[$0, 1] }, [RGBColor(hex: 0), RGBColor(hex: 0), RGBColor(hex: 0x102030)])
        XCTAssertEqual((0..<3).map { square[$0, 2] }, Array(repeating: RGBColor(hex: 0xFFFFFF), count: 3))
        // Odd padding: ⌊3/2⌋ = 1 column before, 2 after.
        let tall = RGBImage(width: 2, height: 5, color: RGBColor(hex: 0)).paddedToSquare(color: RGBColor(hex: 0xFFFFFF))
        XCTAssertEqual((0..<5).map { tall[$0, 2].red }, [255, 0, 0, 255, 255])
        XCTAssertEqual(tall.paddedToSquare(color: RGBColor(hex: 0)), tall)
    }

    /// `squareResampled` shrinking against the definition: output pixel (i, j) is the mean of the
    /// source over the square [j·r, (j+1)·r) × [i·r, (i+1)·r), r = n_src / n_dst, each source pixel
    /// weighted by the area it shares with that square.
    func testBoxDownsamplingMatchesANaiveAreaAverage() {
        var state: UInt64 = 12345
        // 34 → 16 has the ratio of the dataset's 136 → 64, 2.125.
        for (source, destination) in [(17, 8), (34, 16), (17, 5), (9, 4), (12, 3)] {
            var pixels = [UInt8](repeating: 0, count: source * source * 3)
            for i in pixels.indices {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                pixels[i] = UInt8(truncatingIfNeeded: state >> 56)
            }
            let image = RGBImage(width: source, height: source, pixels: pixels)
            let fast = image.squareResampled(to: destination)
            let r = Double(source) / Double(destination)
            func overlap(_ p: Int, _ o: Int) -> Double {
                max(0, min(Double(p + 1), Double(o + 1) * r) - max(Double(p), Double(o) * r))
            }
            var worst = 0.0
            for i in 0..<destination { for j in 0..<destination { for c in 0..<3 {
                var sum = 0.0
                for y in 0..<source { for x in 0..<source {
                    sum += overlap(y, i) * overlap(x, j) * Double(pixels[(y * source + x) * 3 + c])
                } }
                worst = max(worst, abs(sum / (r * r) - Double(fast[(i * destination + j) * 3 + c])))
            } } }
            XCTAssertLessThan(worst, 1e-3, "\(source) → \(destination)")
        }
    }

    func testTrainingImageOfAnOpaqueGlyphBox() {
        // A 136×128 opaque red box: padded with 4 white rows above and below, then 136 → 64.
        let red = EmojiBitmap(width: 136, height: 128, pixels: (0..<(136 * 128)).flatMap { _ in [UInt8(0), 0, 255, 255] })
        let image = red.trainingImage(size: 64)
        XCTAssertEqual(image.width, 64)
        XCTAssertEqual(image.height, 64)
        // Row 0 covers source rows [0, 2.125): padding only. Row 1 covers [2.125, 4.25): 1.875 white, 0.25 red.
        XCTAssertEqual(image[10, 0], RGBColor(hex: 0xFFFFFF))
        XCTAssertEqual(image[10, 1], RGBColor(red: 255, green: 225, blue: 225))  // 255·1.875/2.125 = 225
        XCTAssertEqual(image[10, 2], RGBColor(hex: 0xFF0000))
        XCTAssertEqual(image[32, 32], RGBColor(hex: 0xFF0000))
        XCTAssertEqual(image[10, 63], RGBColor(hex: 0xFFFFFF))
    }
}

import XCTest
@testable import LDMBench
@testable import LDMTraining

final class ShapesAnalyserTests: XCTestCase {
    private let analyser = ShapesAnalyser()

    // MARK: Accuracy on the generator's own images

    func testOwnCaptionsMatchAndMismatchesDoNot() {
        let samples = ShapesGenerator(seed: 2024).samples(0..<500)
        let (own, mismatched) = score(samples, distort: false)
        print("Shapes analyser, clean images, own captions:\n\(own.table)")
        print("Shapes analyser, clean images, one attribute changed:\n\(mismatched.table)")
        print(mismatched.attributeTable)
        XCTAssertEqual(own.attributeTallies[.count], .init(correct: 500, total: 500))
        XCTAssertEqual(own.attributeTallies[.relation]?.total, 100)
        XCTAssertGreaterThanOrEqual(own.overallAccuracy!, 0.99)
        XCTAssertLessThanOrEqual(mismatched.overallAccuracy!, 0.05)
        // The renderer's own shapes take their kinds' forms: the strict reading agrees.
        print("strict reading:\n\(own.strictTable)")
        let strict = own.strictTallies.values.reduce(ShapesEvaluation.Tally(), +)
        XCTAssertGreaterThanOrEqual(strict.accuracy!, 0.99)
    }

    func testABlobOfACirclesFillIsACircleButNotWellFormed() throws {
        // An upright ellipse 20 × 27 pixels: fill π/4 and aspect 1.35 make it a circle to the
        // tolerant reading; its best-fitting disc covers it poorly.
        let background = ShapesBackground.light.rgb, red = ShapeColor.red.rgb
        var pixels = [UInt8](repeating: 0, count: 64 * 64 * 3)
        for y in 0..<64 { for x in 0..<64 {
            let u = (Double(x) + 0.5 - 32) / 10, v = (Double(y) + 0.5 - 32) / 13.5
            let c = u * u + v * v <= 1 ? red : background
            pixels[(y * 64 + x) * 3] = c.red; pixels[(y * 64 + x) * 3 + 1] = c.green; pixels[(y * 64 + x) * 3 + 2] = c.blue
        }}
        let verdict = try analyser.evaluate(RGBImage(width: 64, height: 64, pixels: pixels), caption: "a red circle")
        XCTAssertTrue(verdict.matches)
        XCTAssertFalse(verdict.wellFormed)
        XCTAssertLessThan(verdict.detection.shapes[0].form!, ShapesAnalyser.wellFormed)
        // The renderer's circle of the same height is well formed.
        let circle = ShapesGenerator.render(ShapesScene(background: .light, shapes: [
            ShapeInstance(color: .red, kind: .circle, size: .large, centerX: 32, centerY: 32)]))
        let round = try analyser.evaluate(circle, caption: "a red circle")
        XCTAssertTrue(round.matchesStrictly)
        XCTAssertGreaterThan(round.detection.shapes[0].form!, 0.98)
    }

    func testRobustToNoiseAndBlur() {
        let samples = ShapesGenerator(seed: 31337).samples(0..<500)
        let (own, mismatched) = score(samples, distort: true)
        print("Shapes analyser, 3x3 box blur + Gaussian noise sigma 10/255, own captions:\n\(own.table)")
        print("Shapes analyser, 3x3 box blur + Gaussian noise sigma 10/255, one attribute changed:\n\(mismatched.table)")
        XCTAssertGreaterThanOrEqual(own.overallAccuracy!, 0.95)
        XCTAssertLessThanOrEqual(mismatched.overallAccuracy!, 0.05)
    }

    /// Judges each sample against its own caption and against the caption with one attribute
    /// changed; "correct" in the second tally means the analyser (wrongly) said it matches.
    private func score(_ samples: [ShapesSample], distort: Bool) -> (ShapesEvaluation, ShapesEvaluation) {
        var own = ShapesEvaluation(), mismatched = ShapesEvaluation()
        var random = SplitMix64(seed: 8)
        for (index, sample) in samples.enumerated() {
            let image = distort ? noisy(boxBlurred(sample.image), sigma: 10, random: &random) : sample.image
            let detection = analyser.detect(image)
            let verdict = analyser.judge(detection, caption: sample.parsedCaption)
            own.record(verdict)
            if !verdict.matches {
                print("own caption rejected: \(sample.caption) — \(verdict)")
                for s in detection.shapes { print("   ", s) }
            }
            let wrong = Self.changeOneAttribute(sample.parsedCaption, choice: index / 5, random: &random)
            XCTAssertFalse(wrong.describes(sample.scene), "\(wrong) still describes \(sample.caption)")
            let wrongVerdict = analyser.judge(detection, caption: wrong)
            mismatched.record(wrongVerdict)
            if wrongVerdict.matches {
                print("changed caption accepted: \(wrong) for \(sample.caption) — \(wrongVerdict)")
            }
        }
        return (own, mismatched)
    }

    /// `caption` with exactly one attribute replaced by another value: the attributes the form
    /// names are taken in turn by `choice`.
    static func changeOneAttribute(_ caption: ParsedCaption, choice: Int, random: inout SplitMix64) -> ParsedCaption {
        func other<T: Equatable>(_ value: T, _ all: [T]) -> T { random.pick(all.filter { $0 != value }) }
        func changed(_ d: ShapeDescription, _ which: Int) -> ShapeDescription {
            var d = d
            if which == 0 { d.color = other(d.color, ShapeColor.allCases) } else { d.kind = other(d.kind, ShapeKind.allCases) }
            return d
        }
        switch caption {
        case .colorShape(let d):
            return .colorShape(changed(d, choice % 2))
        case .sizeColorShape(let size, let d):
            let k = choice % 3
            return k == 0 ? .sizeColorShape(other(size, ShapeSize.allCases), d) : .sizeColorShape(size, changed(d, k - 1))
        case .background(let d, let background):
            let k = choice % 3
            return k == 0 ? .background(d, other(background, ShapesBackground.allCases)) : .background(changed(d, k - 1), background)
        case .position(let d, let position):
            let k = choice % 3
            return k == 0 ? .position(d, other(position, ShapePosition.allCases)) : .position(changed(d, k - 1), position)
        case .relation(let a, let relation, let b):
            switch choice % 5 {
            case 0, 1: return .relation(a, other(relation, ShapeRelation.allCases), b)
            case 2: return .relation(changed(a, 0), relation, b)
            case 3: return .relation(a, relation, changed(b, 1))
            default: return .relation(a, relation, changed(b, 0))
            }
        }
    }

    // MARK: Distortions

    /// 3×3 box blur, edges clamped.
    private func boxBlurred(_ image: RGBImage) -> RGBImage {
        var out = image
        for y in 0..<image.height {
            for x in 0..<image.width {
                for c in 0..<3 {
                    var sum = 0
                    for dy in -1...1 {
                        for dx in -1...1 {
                            let sx = min(max(x + dx, 0), image.width - 1), sy = min(max(y + dy, 0), image.height - 1)
                            sum += Int(image.pixels[(sy * image.width + sx) * 3 + c])
                        }
                    }
                    out.pixels[(y * image.width + x) * 3 + c] = UInt8((Double(sum) / 9).rounded())
                }
            }
        }
        return out
    }

    /// Adds independent Gaussian noise of standard deviation `sigma` (in 0…255 units) to every
    /// sample, rounding and clamping.
    private func noisy(_ image: RGBImage, sigma: Double, random: inout SplitMix64) -> RGBImage {
        var out = image
        for i in out.pixels.indices {
            let v = Double(out.pixels[i]) + sigma * random.nextNormal()
            out.pixels[i] = UInt8(min(max(v.rounded(), 0), 255))
        }
        return out
    }

    // MARK: Single cases

    func testDetectsEachShapeKindSizeAndColour() {
        for (i, kind) in ShapeKind.allCases.enumerated() {
            for size in ShapeSize.allCases {
                for color in ShapeColor.allCases {
                    let background: ShapesBackground = color == .white ? .dark : (color == .black ? .light : (i % 2 == 0 ? .light : .dark))
                    let scene = ShapesScene(background: background, shapes: [
                        ShapeInstance(color: color, kind: kind, size: size, centerX: 20, centerY: 40)])
                    let detection = analyser.detect(ShapesGenerator.render(scene))
                    XCTAssertEqual(detection.background, background)
                    XCTAssertEqual(detection.shapes.count, 1)
                    guard let shape = detection.shapes.first else { continue }
                    XCTAssertEqual(shape.color, color, "\(size) \(color) \(kind)")
                    XCTAssertEqual(shape.kind, kind, "\(size) \(color) \(kind), fill \(shape.fillRatio)")
                    XCTAssertEqual(shape.size, size, "\(size) \(color) \(kind)")
                    XCTAssertEqual(shape.centerX, 20, accuracy: 0.5)
                    XCTAssertEqual(shape.centerY, 40, accuracy: 0.5)
                    XCTAssertEqual(shape.position, .bottomLeft)
                }
            }
        }
    }

    func testAnExtraShapeMakesASingleShapeCaptionWrong() throws {
        let scene = ShapesScene(background: .light, shapes: [
            ShapeInstance(color: .red, kind: .circle, size: .large, centerX: 20, centerY: 20),
            ShapeInstance(color: .blue, kind: .square, size: .small, centerX: 48, centerY: 48)])
        let image = ShapesGenerator.render(scene)
        let verdict = try analyser.evaluate(image, caption: "a red circle")
        XCTAssertFalse(verdict.matches)
        XCTAssertEqual(verdict.attributes[.count], false)
        XCTAssertEqual(verdict.attributes[.color], true)
        XCTAssertEqual(verdict.attributes[.shape], true)
        XCTAssertTrue(try analyser.evaluate(image, caption: "a red circle above a blue square").matches == false)
        XCTAssertTrue(try analyser.evaluate(image, caption: "a red circle left of a blue square").matches == false)
        // Diagonal: neither axis dominates, so no relation holds.
        XCTAssertEqual(try analyser.evaluate(image, caption: "a red circle left of a blue square").attributes[.relation], false)
        // A relation caption judges the pair in either order.
        let pair = ShapesGenerator.render(ShapesScene(background: .dark, shapes: [
            ShapeInstance(color: .yellow, kind: .triangle, size: .medium, centerX: 14, centerY: 30),
            ShapeInstance(color: .white, kind: .circle, size: .large, centerX: 45, centerY: 33)]))
        XCTAssertTrue(try analyser.evaluate(pair, caption: "a yellow triangle left of a white circle").matches)
        XCTAssertTrue(try analyser.evaluate(pair, caption: "A white circle right of a yellow triangle").matches)
        XCTAssertFalse(try analyser.evaluate(pair, caption: "a white circle left of a yellow triangle").matches)
    }

    func testOtherImageSizesAreResizedFirst() throws {
        let sample = ShapesGenerator(seed: 11).sample(at: 3)  // a position caption
        let big = RGBImage(width: 128, height: 128, pixels: (0..<(128 * 128 * 3)).map { i in
            let p = i / 3, c = i % 3
            return sample.image.pixels[((p / 128 / 2) * 64 + (p % 128) / 2) * 3 + c]
        })
        XCTAssertTrue(try analyser.evaluate(big, caption: sample.caption).matches, sample.caption)
        // 64 wide, 80 tall: the centre crop is the original image.
        let band = [UInt8](repeating: 0, count: 64 * 8 * 3)
        let tall = RGBImage(width: 64, height: 80, pixels: band + sample.image.pixels + band)
        XCTAssertEqual(tall.squareResized(to: 64), sample.image)
        XCTAssertTrue(try analyser.evaluate(tall, caption: sample.caption).matches, sample.caption)
    }

    func testEmptyImageAndBadCaption() {
        let blank = RGBImage(width: 64, height: 64, color: ShapesBackground.dark.rgb)
        let verdict = try? analyser.evaluate(blank, caption: "a red circle")
        XCTAssertEqual(verdict?.matches, false)
        XCTAssertEqual(verdict?.detection.background, .dark)
        XCTAssertEqual(verdict?.detection.shapes.count, 0)
        XCTAssertThrowsError(try analyser.evaluate(blank, caption: "a cat")) { error in
            XCTAssertEqual("\(error)", "not a Shapes caption: \"a cat\"")
        }
    }

    func testEvaluationTable() {
        var evaluation = ShapesEvaluation()
        for i in 0..<10 { evaluation.record(form: .colorShape, correct: i < 9) }
        evaluation.record(form: .relation, correct: false)
        XCTAssertEqual(evaluation.accuracy(for: .colorShape), 0.9)
        XCTAssertNil(evaluation.accuracy(for: .position))
        XCTAssertEqual(evaluation.overall, .init(correct: 9, total: 11))
        XCTAssertEqual(evaluation.table, """
            caption form       correct   total  accuracy
            color shape              9      10     90.0%
            size color shape         0       0         -
            background               0       0         -
            position                 0       0         -
            relation                 0       1      0.0%
            overall                  9      11     81.8%
            """)
    }
}

// The Shapes dataset generator: 64×64 RGB images of one or two flat shapes with a caption that
// describes them (grammar in ShapesCaption.swift, geometry in ShapesScene.swift).
//
// Determinism. Sample i of seed S is drawn from its own SplitMix64 stream seeded with
//   seed_i = mix(S ⊕ mix(i + γ)),   γ = 0x9E3779B97F4A7C15,
// (mix = SplitMix64's output function), so any sample can be made alone, in any order, and the
// same (S, i) gives the same image on every machine. Sample i has caption form
// `formCycle[i mod formCycle.count]`; by default the cycle is the five forms once each, so every
// five consecutive samples cover them all. A weighted mix (`init(seed:formWeights:)`, weights
// w₁…w₅ in CaptionForm order) repeats each form wₖ times in the cycle, in form order.
//
// Drawing a scene for a form (all choices uniform):
//   1. background light or dark; colours from those the background allows (never white on light,
//      never black on dark); kind; size.
//   2. single-shape forms: one shape whose centre keeps its bounding box 2 pixels inside the
//      canvas. Size, background and position vary even when the caption does not mention them.
//      For the position form the centre is drawn inside the named region with a margin:
//      `center` within 3 pixels of the middle on each axis; a quadrant at least 9 pixels from the
//      middle on each axis (so ≥ 12.7 px away, beyond the 10 px `center` radius).
//   3. relation form: a relation, then two shapes whose descriptions (colour, kind) differ, placed
//      by rejection until the relation is unambiguous: along the relation's axis the bounding
//      boxes are apart by at least 3 pixels in the right order (so the shapes never overlap, even
//      after a 3×3 blur), and the centre offset along that axis is at least twice the offset
//      across it.
//      With a spread share p > 0 (`spreadRelations`, a training curriculum), a further uniform draw
//      u decides per relation sample: if u < p the pair is placed *spread* instead — along the
//      axis each shape as far out as its size allows, moved inwards by 0–3 pixels, and across the
//      axis both within 3 pixels of the middle — so the caption names one of four fixed layouts.
//      Spread pairs satisfy the same rule (gap ≥ 3 pixels, offset along ≥ twice across).
//
// Drawing. Each pixel takes the fraction of its 4×4 grid of sub-pixel samples, at
// (x + (i + ½)/4, y + (j + ½)/4), that fall inside the shape, and is blended
// round(background + (colour − background) · coverage). Pixels fully inside a shape have the
// exact palette colour; squares (whole-pixel edges) are not blended at all.

import Foundation

/// SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators", 2014):
/// a 64-bit state advanced by γ = 0x9E3779B97F4A7C15, output through a bit mixer. Small, fast
/// and fully specified here, so the Shapes dataset does not depend on the standard library's
/// random algorithms.
public struct SplitMix64: Sendable {
    /// The state; the next output is `mix(state + γ)`.
    public var state: UInt64

    /// The increment γ (the golden ratio as a 64-bit fraction).
    public static let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15

    public init(seed: UInt64) {
        state = seed
    }

    /// The output function: z ← (z ⊕ z≫30)·0xBF58476D1CE4E5B9; z ← (z ⊕ z≫27)·0x94D049BB133111EB;
    /// z ⊕ z≫31.
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= Self.gamma
        return Self.mix(state)
    }

    /// A uniform integer in 0..<bound (bound > 0), by Lemire's multiply-shift with rejection
    /// (exactly uniform).
    public mutating func next(below bound: Int) -> Int {
        precondition(bound > 0, "SplitMix64.next(below:): bound must be positive")
        let n = UInt64(bound)
        let threshold = (0 &- n) % n  // 2^64 mod n
        while true {
            let product = next().multipliedFullWidth(by: n)
            if product.low >= threshold { return Int(product.high) }
        }
    }

    /// A uniform integer in `range`.
    public mutating func next(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + next(below: range.upperBound - range.lowerBound + 1)
    }

    /// A uniform element of a non-empty array.
    public mutating func pick<T>(_ choices: [T]) -> T {
        choices[next(below: choices.count)]
    }

    /// A uniform double in [0, 1): the top 53 bits of `next()` over 2^53.
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    /// A standard normal sample by the Box–Muller transform of two `nextUnit()` draws:
    /// √(−2 ln(1 − u₁)) · cos(2π u₂).
    public mutating func nextNormal() -> Double {
        let u1 = nextUnit(), u2 = nextUnit()
        // 1 − u₁ ≥ 2^-53, so the logarithm is finite.
        return (-2 * log(1 - u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}

/// One generated example: an image, its caption, and what the image shows.
public struct ShapesSample: Sendable {
    /// The 64×64 picture.
    public var image: RGBImage
    /// The caption as structure.
    public var parsedCaption: ParsedCaption
    /// The scene the image was drawn from.
    public var scene: ShapesScene

    /// The caption text.
    public var caption: String { parsedCaption.text }
    /// The caption template.
    public var form: CaptionForm { parsedCaption.form }
}

/// Makes Shapes samples, deterministically from a seed (see the file header).
public struct ShapesGenerator: Sendable {
    /// The dataset seed.
    public var seed: UInt64
    /// The caption forms of samples 0, 1, 2, …, repeated (see the file header).
    public let formCycle: [CaptionForm]
    /// Share of relation samples placed in the spread layout (see the file header), in [0, 1].
    public var spreadRelations: Double = 0
    /// When set, every scene has a shape of this kind (a single-shape scene's shape; one of the
    /// two in a relation, as subject or object with even odds); other shapes stay classic. Used for
    /// datasets that teach a new shape, such as the star LoRA's.
    public var featuredKind: ShapeKind?

    /// Gap kept between a shape's bounding box and the canvas edge, in pixels.
    public static let edgeMargin = 2
    /// Smallest gap between two shapes' bounding boxes along the relation's axis, in pixels.
    public static let shapeGap = 3
    /// Sub-pixel samples per axis used for anti-aliasing.
    public static let supersampling = 4

    public init(seed: UInt64 = 0) {
        self.seed = seed
        formCycle = CaptionForm.allCases
    }

    /// A generator whose caption forms follow `formWeights` (one non-negative count per form, in
    /// `CaptionForm.allCases` order, at least one positive): form k makes up wₖ / Σw of the samples.
    public init(seed: UInt64, formWeights: [Int]) throws {
        let forms = CaptionForm.allCases
        guard formWeights.count == forms.count, formWeights.allSatisfy({ $0 >= 0 && $0 <= 100 }),
              formWeights.contains(where: { $0 > 0 }) else {
            throw ShapesMixError(weights: formWeights)
        }
        self.seed = seed
        formCycle = zip(forms, formWeights).flatMap { Array(repeating: $0.0, count: $0.1) }
    }

    /// The seed of sample `index`'s random stream.
    public static func sampleSeed(seed: UInt64, index: Int) -> UInt64 {
        SplitMix64.mix(seed ^ SplitMix64.mix(UInt64(index) &+ SplitMix64.gamma))
    }

    /// The caption form of sample `index`: the forms of the cycle in turn.
    public func form(at index: Int) -> CaptionForm {
        formCycle[index % formCycle.count]
    }

    /// Sample `index` (≥ 0) of this seed's dataset.
    public func sample(at index: Int) -> ShapesSample {
        precondition(index >= 0, "ShapesGenerator.sample(at:): index must not be negative")
        var random = SplitMix64(seed: Self.sampleSeed(seed: seed, index: index))
        let form = self.form(at: index)
        let (scene, caption) = Self.scene(for: form, spreadRelations: spreadRelations, featuredKind: featuredKind, random: &random)
        return ShapesSample(image: Self.render(scene), parsedCaption: caption, scene: scene)
    }

    /// Samples `range` of this seed's dataset.
    public func samples(_ range: Range<Int>) -> [ShapesSample] {
        range.map(sample(at:))
    }

    // MARK: Scenes

    /// A random scene for `form` and its caption; `spreadRelations` is the share of relation
    /// scenes drawn in the spread layout.
    public static func scene(for form: CaptionForm, spreadRelations: Double = 0, featuredKind: ShapeKind? = nil,
                             random: inout SplitMix64) -> (ShapesScene, ParsedCaption) {
        let background = random.pick(ShapesBackground.allCases)
        // With a featured kind, which of a relation's two shapes has it.
        let featuredSecond = featuredKind != nil && form == .relation && random.nextUnit() < 0.5
        switch form {
        case .colorShape, .sizeColorShape, .background, .position:
            var shape = randomShape(on: background, random: &random)
            if let featuredKind { shape.kind = featuredKind }
            let range = centerRange(shape.size)
            if form == .position {
                let position = random.pick(ShapePosition.allCases)
                let (xs, ys) = centerRanges(for: position, size: shape.size)
                shape.centerX = random.next(in: xs)
                shape.centerY = random.next(in: ys)
            } else {
                shape.centerX = random.next(in: range)
                shape.centerY = random.next(in: range)
            }
            let scene = ShapesScene(background: background, shapes: [shape])
            return (scene, ShapesCaption.caption(for: scene, form: form)!)
        case .relation:
            let relation = random.pick(ShapeRelation.allCases)
            let spread = spreadRelations > 0 && random.nextUnit() < spreadRelations
            while true {
                var a = randomShape(on: background, random: &random)
                var b = randomShape(on: background, random: &random)
                if let featuredKind { if featuredSecond { b.kind = featuredKind } else { a.kind = featuredKind } }
                while ShapeDescription(b) == ShapeDescription(a) {
                    b = randomShape(on: background, random: &random)
                    if let featuredKind, featuredSecond { b.kind = featuredKind }
                }
                let placed = spread ? placeSpread(a, b, relation: relation, random: &random)
                    : place(a, b, relation: relation, random: &random)
                if let (placedA, placedB) = placed {
                    let scene = ShapesScene(background: background, shapes: [placedA, placedB])
                    return (scene, .relation(ShapeDescription(placedA), relation, ShapeDescription(placedB)))
                }
            }
        }
    }

    /// A shape of random colour (allowed on `background`), kind and size, not yet placed.
    static func randomShape(on background: ShapesBackground, random: inout SplitMix64) -> ShapeInstance {
        ShapeInstance(color: random.pick(background.allowedColors), kind: random.pick(ShapeKind.classic),
                      size: random.pick(ShapeSize.allCases), centerX: 0, centerY: 0)
    }

    /// Centre coordinates that keep a shape of `size` `edgeMargin` pixels inside the canvas.
    static func centerRange(_ size: ShapeSize) -> ClosedRange<Int> {
        let half = size.extent / 2
        return (half + edgeMargin)...(ShapesScene.canvasSize - half - edgeMargin)
    }

    /// Centre coordinates (x, y) that put a shape of `size` clearly in `position`.
    static func centerRanges(for position: ShapePosition, size: ShapeSize)
        -> (ClosedRange<Int>, ClosedRange<Int>) {
        let range = centerRange(size)
        let middle = ShapesScene.canvasSize / 2
        let near = (middle - 3)...(middle + 3)
        let low = range.lowerBound...(middle - 9)
        let high = (middle + 9)...range.upperBound
        switch position {
        case .center: return (near, near)
        case .topLeft: return (low, low)
        case .topRight: return (high, low)
        case .bottomLeft: return (low, high)
        case .bottomRight: return (high, high)
        }
    }

    /// Places `a` and `b` so that `a` stands in `relation` to `b` unambiguously (see the file
    /// header), or nil when their sizes cannot be placed so.
    static func place(_ a: ShapeInstance, _ b: ShapeInstance, relation: ShapeRelation,
                      random: inout SplitMix64) -> (ShapeInstance, ShapeInstance)? {
        let rangeA = centerRange(a.size), rangeB = centerRange(b.size)
        // Along the axis the first shape (in reading order) is at the low end.
        let separation = (a.size.extent + b.size.extent) / 2 + shapeGap
        let (low, high) = relation == .leftOf || relation == .above ? (rangeA, rangeB) : (rangeB, rangeA)
        guard high.upperBound - low.lowerBound >= separation else { return nil }

        for _ in 0..<1000 {
            var pa = a, pb = b
            pa.centerX = random.next(in: rangeA)
            pa.centerY = random.next(in: rangeA)
            pb.centerX = random.next(in: rangeB)
            pb.centerY = random.next(in: rangeB)
            let dx = pb.centerX - pa.centerX, dy = pb.centerY - pa.centerY
            let (along, across): (Int, Int)
            switch relation {
            case .leftOf: (along, across) = (dx, dy)
            case .rightOf: (along, across) = (-dx, dy)
            case .above: (along, across) = (dy, dx)
            case .below: (along, across) = (-dy, dx)
            }
            if along >= separation && along >= 2 * abs(across) {
                return (pa, pb)
            }
        }
        return nil
    }

    /// Places `a` and `b` in the spread layout for `relation` (see the file header), or nil when
    /// their sizes cannot stand apart along the axis.
    static func placeSpread(_ a: ShapeInstance, _ b: ShapeInstance, relation: ShapeRelation,
                            random: inout SplitMix64) -> (ShapeInstance, ShapeInstance)? {
        let rangeA = centerRange(a.size), rangeB = centerRange(b.size)
        let separation = (a.size.extent + b.size.extent) / 2 + shapeGap
        let aFirst = relation == .leftOf || relation == .above
        let (low, high) = aFirst ? (rangeA, rangeB) : (rangeB, rangeA)
        let room = high.upperBound - low.lowerBound - separation
        guard room >= 0 else { return nil }
        // Inward moves of 0–3 pixels each, limited so the gap stays.
        let inLow = random.next(in: 0...min(3, room))
        let inHigh = random.next(in: 0...min(3, room - inLow))
        let lowAlong = low.lowerBound + inLow, highAlong = high.upperBound - inHigh
        let middle = ShapesScene.canvasSize / 2
        let acrossA = min(max(middle + random.next(in: -3...3), rangeA.lowerBound), rangeA.upperBound)
        let acrossB = min(max(middle + random.next(in: -3...3), rangeB.lowerBound), rangeB.upperBound)
        var pa = a, pb = b
        let (alongA, alongB) = aFirst ? (lowAlong, highAlong) : (highAlong, lowAlong)
        if relation == .leftOf || relation == .rightOf {
            (pa.centerX, pa.centerY, pb.centerX, pb.centerY) = (alongA, acrossA, alongB, acrossB)
        } else {
            (pa.centerX, pa.centerY, pb.centerX, pb.centerY) = (acrossA, alongA, acrossB, alongB)
        }
        return (pa, pb)
    }

    // MARK: Drawing

    /// Draws `scene` on a 64×64 canvas (see the file header for the anti-aliasing).
    public static func render(_ scene: ShapesScene) -> RGBImage {
        let size = ShapesScene.canvasSize
        var image = RGBImage(width: size, height: size, color: scene.background.rgb)
        let n = supersampling
        let samples = n * n
        for shape in scene.shapes {
            let bounds = shape.bounds
            let fg = shape.color.rgb
            for y in max(bounds.minY - 1, 0)...min(bounds.maxY, size - 1) {
                for x in max(bounds.minX - 1, 0)...min(bounds.maxX, size - 1) {
                    var inside = 0
                    for j in 0..<n {
                        let sy = Double(y) + (Double(j) + 0.5) / Double(n)
                        for i in 0..<n where shape.contains(x: Double(x) + (Double(i) + 0.5) / Double(n), y: sy) {
                            inside += 1
                        }
                    }
                    if inside == 0 { continue }
                    if inside == samples {
                        image[x, y] = fg
                        continue
                    }
                    let coverage = Double(inside) / Double(samples)
                    let bg = image[x, y]
                    func blend(_ b: UInt8, _ f: UInt8) -> UInt8 {
                        UInt8((Double(b) + (Double(f) - Double(b)) * coverage).rounded())
                    }
                    image[x, y] = RGBColor(red: blend(bg.red, fg.red), green: blend(bg.green, fg.green),
                                           blue: blend(bg.blue, fg.blue))
                }
            }
        }
        return image
    }
}

/// Caption-form weights that do not make a mix.
public struct ShapesMixError: Error, CustomStringConvertible {
    public let weights: [Int]
    public var description: String {
        "a caption mix needs \(CaptionForm.allCases.count) whole-number weights from 0 to 100 "
            + "(\(CaptionForm.allCases.map(\.rawValue).joined(separator: ", "))), not all zero; got \(weights.map(String.init).joined(separator: ","))"
    }
}

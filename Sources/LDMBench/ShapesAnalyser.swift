// The Shapes analyser: reads a Shapes-world image back into shapes and judges whether it shows
// what a caption says. It scores prompt adherence of generated images, so it is built to
// tolerate blur, noise and off-palette colours.
//
// Detection (the image is first centre-cropped and resized to 64×64 when it is not already so):
//   1. Background: the per-channel median of the 2-pixel border ring; light or dark, whichever
//      of #C8C8C8 / #404040 is nearer (Euclidean RGB).
//   2. Foreground, by unmixing: a pixel p is read as b + α·(c − b), a blend of the measured
//      background b and one palette colour c (anti-aliased and blurred edges are exactly such
//      blends). For each of the 8 colours, α_c = (p − b)·(c − b) / |c − b|², and the residual is
//      the distance from p to the segment from b to c (α clamped to [0, 1]); the colour with the
//      smallest residual is the pixel's colour, and the pixel is foreground when its α ≥ ½ (more
//      shape than background). Unmixing, unlike "nearest of the 9 colours", keeps a grey
//      blend of white and dark grey from passing for purple.
//   3. Objects: 8-connected components of foreground pixels; components smaller than
//      `minimumArea` = 36 pixels (half the area of the smallest true shape, a 12-pixel triangle)
//      are noise and dropped.
//   4. Colour of an object: majority vote of the pixels' colours (step 2) over its core pixels
//      (those whose four neighbours are in the object too), so edges, the noisiest part, do not
//      decide it.
//   5. The bounding box w × h is first trimmed of end rows and columns that are noise sticking
//      out of an edge: one pixel, or at most a quarter of the next line (a triangle's tip row
//      may go too; its rows otherwise grow by about one pixel each). Kind, from that box, the fill
//      f = (pixels in the box) / (w·h), and the mean row width of its top half against its
//      bottom half:
//        aspect max(w,h)/min(w,h) > 1.5             → none (not one of the shapes)
//        f < 0.45, or f < 0.6 and not pointing up   → star     (ideal f ≈ 0.33, rows about even top
//                                                     to bottom; no classic shape is that sparse:
//                                                     the triangle's ideal is ½, pointing up)
//        top < 0.75 × bottom and f < 0.9            → triangle (ideal: top = ⅓ bottom, f = ½; a
//                                                     small blurred one loses its tip and corners
//                                                     and tends to top ≈ 0.6 bottom, f ≈ 0.8)
//        f ≥ 0.85                                   → square   (ideal f = 1; blur rounds corners)
//        0.65 ≤ f < 0.85                            → circle   (ideal f = π/4 ≈ 0.785)
//        otherwise                                  → none
//   6. Size: `ShapeSize.classify` of max(w, h) (< 16 small, 16–25 medium, > 25 large).
//      Centre: the bounding box centre. Position and relation: the rules in ShapesScene.swift.
//
// Judging a caption. The objects are taken largest first.
//   Single-shape forms: the image must hold exactly one object (any other object counts as
//   showing something the caption does not say), and that object must have the caption's
//   colour and kind, and its size / the background / its position when the caption names them.
//   Relation form: exactly two objects; the caption's two shapes are matched to them in the way
//   that agrees on more of the four colour/kind attributes (on a tie, the way in which the
//   relation holds), then the relation of the first to the second must be the caption's.
// Every judged attribute is reported; `matches` is true when all of them hold.

import Foundation
import LDMTraining

/// One object found in an image.
public struct DetectedShape: Sendable, Hashable {
    /// The palette colour most of its core pixels are nearest to.
    public var color: ShapeColor
    /// Its shape, or nil when it is none of the three.
    public var kind: ShapeKind?
    /// Size class of its bounding box side.
    public var size: ShapeSize
    /// Bounding box centre, x, in canvas coordinates of the 64×64 image.
    public var centerX: Double
    /// Bounding box centre, y.
    public var centerY: Double
    /// Bounding box left column. The box leaves out stray end rows and columns (see step 5).
    public var minX: Int
    /// Bounding box top row.
    public var minY: Int
    /// Bounding box width in pixels.
    public var width: Int
    /// Bounding box height in pixels.
    public var height: Int
    /// Pixel count.
    public var area: Int
    /// Pixels inside the (trimmed) bounding box / (width · height).
    public var fillRatio: Double
    /// How well its pixels take its kind's form: intersection over union of the object's pixels
    /// with the ideal outline of that kind (disc, square, upright triangle) best fitted to them. Nil
    /// for stars and for objects of no kind.
    public var form: Double? = nil

    /// The region of the canvas its centre lies in.
    public var position: ShapePosition { ShapePosition.classify(x: centerX, y: centerY) }

    /// Whether it has the described colour and kind.
    public func matches(_ description: ShapeDescription) -> Bool {
        color == description.color && kind == description.kind
    }
}

/// What the analyser sees in an image.
public struct ShapesDetection: Sendable {
    /// The background class.
    public var background: ShapesBackground
    /// The measured background colour (median of the border).
    public var backgroundColor: RGBColor
    /// The objects, largest first.
    public var shapes: [DetectedShape]
}

/// An attribute a caption can be judged on.
public enum ShapesAttribute: String, CaseIterable, Sendable, Hashable {
    /// The number of objects (one, or two for a relation).
    case count
    /// The (first) shape's colour.
    case color
    /// The (first) shape's kind.
    case shape
    case size
    case background
    case position
    /// The second shape's colour, in a relation.
    case objectColor = "object color"
    /// The second shape's kind, in a relation.
    case objectShape = "object shape"
    case relation
}

/// The analyser's judgement of one image against one caption.
public struct ShapesVerdict: Sendable, CustomStringConvertible {
    /// The caption judged.
    public var caption: ParsedCaption
    /// What was found in the image.
    public var detection: ShapesDetection
    /// The verdict on each attribute the caption names, plus `count`.
    public var attributes: [ShapesAttribute: Bool]
    /// Whether every shape the caption was judged on also takes its kind's form closely
    /// (`DetectedShape.form` ≥ `ShapesAnalyser.wellFormed`): a stricter reading than `matches`,
    /// which accepts a blob of the right fill as a circle.
    public var wellFormed: Bool = false

    /// Matches, and every judged shape is well formed.
    public var matchesStrictly: Bool { matches && wellFormed }

    /// Whether every judged attribute holds.
    public var matches: Bool { attributes.values.allSatisfy { $0 } }

    /// "matches" or "differs", then each attribute as `name=yes|no`.
    public var description: String {
        let parts = ShapesAttribute.allCases.compactMap { a in attributes[a].map { "\(a.rawValue)=\($0 ? "yes" : "no")" } }
        return (matches ? "matches" : "differs") + ": " + parts.joined(separator: ", ")
    }
}

/// A caption could not be judged.
public enum ShapesAnalyserError: Error, Equatable, CustomStringConvertible {
    /// The text is not a caption of the Shapes grammar.
    case unparseableCaption(String)

    public var description: String {
        switch self {
        case .unparseableCaption(let text):
            let line = String(text.map { $0.isNewline ? " " : $0 })
            return "not a Shapes caption: \"\(line)\""
        }
    }
}

/// Finds the shapes in an image and judges captions against them (see the file header).
public struct ShapesAnalyser: Sendable {
    /// Components with fewer pixels are noise.
    public var minimumArea = 36

    public init() {}

    // MARK: Judging

    /// Judges `image` against a caption text; throws when the text is not of the grammar.
    public func evaluate(_ image: RGBImage, caption: String) throws -> ShapesVerdict {
        guard let parsed = ShapesCaption.parse(caption) else {
            throw ShapesAnalyserError.unparseableCaption(caption)
        }
        return evaluate(image, caption: parsed)
    }

    /// Judges `image` against a parsed caption.
    public func evaluate(_ image: RGBImage, caption: ParsedCaption) -> ShapesVerdict {
        let detection = detect(image)
        return judge(detection, caption: caption)
    }

    /// Judges a detection against a parsed caption.
    public func judge(_ detection: ShapesDetection, caption: ParsedCaption) -> ShapesVerdict {
        var verdict: [ShapesAttribute: Bool] = [:]
        let shapes = detection.shapes
        verdict[.count] = shapes.count == caption.form.shapeCount
        let subject = caption.subject

        if case .relation(_, let relation, let object) = caption {
            var first = shapes.first, second: DetectedShape? = shapes.count > 1 ? shapes[1] : nil
            if let a = first, let b = second {
                func score(_ x: DetectedShape, _ y: DetectedShape) -> (Int, Bool) {
                    let agreements = [x.color == subject.color, x.kind == subject.kind,
                                      y.color == object.color, y.kind == object.kind].filter { $0 }.count
                    return (agreements, Self.relation(x, y) == relation)
                }
                let (straight, swapped) = (score(a, b), score(b, a))
                if swapped.0 > straight.0 || (swapped.0 == straight.0 && swapped.1 && !straight.1) {
                    (first, second) = (b, a)
                }
            }
            verdict[.color] = first?.color == subject.color
            verdict[.shape] = first.map { $0.kind == subject.kind } ?? false
            verdict[.objectColor] = second?.color == object.color
            verdict[.objectShape] = second.map { $0.kind == object.kind } ?? false
            if let a = first, let b = second {
                verdict[.relation] = Self.relation(a, b) == relation
            } else {
                verdict[.relation] = false
            }
            return ShapesVerdict(caption: caption, detection: detection, attributes: verdict,
                                 wellFormed: [first, second].allSatisfy(Self.isWellFormed))
        }

        let first = shapes.first
        verdict[.color] = first?.color == subject.color
        verdict[.shape] = first.map { $0.kind == subject.kind } ?? false
        switch caption {
        case .sizeColorShape(let size, _):
            verdict[.size] = first?.size == size
        case .background(_, let background):
            verdict[.background] = detection.background == background
        case .position(_, let position):
            verdict[.position] = first?.position == position
        default:
            break
        }
        return ShapesVerdict(caption: caption, detection: detection, attributes: verdict, wellFormed: Self.isWellFormed(first))
    }

    /// The least `DetectedShape.form` of a well-formed shape. The Shapes renderer's own drawings
    /// score 0.99–1.0 (800 training images: every kind and size); by eye, generated shapes below
    /// 0.85 are flames, bells, blobs and rounded oblongs rather than triangles, circles and squares.
    public static let wellFormed = 0.85

    private static func isWellFormed(_ shape: DetectedShape?) -> Bool {
        guard let shape else { return false }
        return shape.kind == .star || (shape.form ?? 0) >= wellFormed
    }

    private static func relation(_ a: DetectedShape, _ b: DetectedShape) -> ShapeRelation? {
        ShapeRelation.classify(from: (a.centerX, a.centerY), to: (b.centerX, b.centerY))
    }

    // MARK: Detection

    /// Finds the background and the objects of `image` (resized to 64×64 first if needed).
    public func detect(_ image: RGBImage) -> ShapesDetection {
        let n = ShapesScene.canvasSize
        let image = image.squareResized(to: n)
        let count = n * n
        var rgb = [Float](repeating: 0, count: count * 3)
        for i in 0..<(count * 3) { rgb[i] = Float(image.pixels[i]) }

        // 1. Background: median of the 2-pixel border ring, per channel.
        var border: [[Float]] = [[], [], []]
        for y in 0..<n {
            for x in 0..<n where x < 2 || y < 2 || x >= n - 2 || y >= n - 2 {
                for c in 0..<3 { border[c].append(rgb[(y * n + x) * 3 + c]) }
            }
        }
        let bg = border.map { channel -> Float in
            let sorted = channel.sorted()
            return sorted[sorted.count / 2]
        }
        let background = ShapesBackground.allCases.min { a, b in
            Self.distance2(bg, a.rgb) < Self.distance2(bg, b.rgb)
        }!

        // 2. Foreground by unmixing: each pixel as background + α·(colour − background).
        let palette = ShapeColor.allCases.map { [Float($0.rgb.red) - bg[0], Float($0.rgb.green) - bg[1],
                                                 Float($0.rgb.blue) - bg[2]] }
        var nearest = [Int](repeating: 0, count: count)
        var foreground = [Bool](repeating: false, count: count)
        for p in 0..<count {
            let q0 = rgb[p * 3] - bg[0], q1 = rgb[p * 3 + 1] - bg[1], q2 = rgb[p * 3 + 2] - bg[2]
            var best = -1
            var bestResidual = Float.infinity
            var bestAlpha: Float = 0
            for (k, d) in palette.enumerated() {
                let norm = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
                guard norm >= 1 else { continue }  // a palette colour equal to the background
                let alpha = (q0 * d[0] + q1 * d[1] + q2 * d[2]) / norm
                let a = min(max(alpha, 0), 1)
                let r0 = q0 - a * d[0], r1 = q1 - a * d[1], r2 = q2 - a * d[2]
                let residual = r0 * r0 + r1 * r1 + r2 * r2
                if residual < bestResidual {
                    bestResidual = residual
                    best = k
                    bestAlpha = alpha
                }
            }
            if best >= 0 {
                nearest[p] = best
                foreground[p] = bestAlpha >= 0.5
            }
        }

        // 3. 8-connected components.
        var label = [Int](repeating: -1, count: count)
        var shapes: [DetectedShape] = []
        var stack: [Int] = []
        var members: [Int] = []
        var componentIndex = 0
        for start in 0..<count where foreground[start] && label[start] < 0 {
            label[start] = componentIndex
            stack.append(start)
            members.removeAll(keepingCapacity: true)
            while let p = stack.popLast() {
                members.append(p)
                let x = p % n, y = p / n
                for dy in -1...1 {
                    for dx in -1...1 where dx != 0 || dy != 0 {
                        let qx = x + dx, qy = y + dy
                        guard qx >= 0, qy >= 0, qx < n, qy < n else { continue }
                        let q = qy * n + qx
                        if foreground[q] && label[q] < 0 {
                            label[q] = componentIndex
                            stack.append(q)
                        }
                    }
                }
            }
            if members.count >= minimumArea {
                shapes.append(describe(members, component: componentIndex, labels: label, nearest: nearest, n: n))
            }
            componentIndex += 1
        }
        shapes.sort { ($0.area, -$0.minY, -$0.minX) > ($1.area, -$1.minY, -$1.minX) }
        let bgColor = RGBColor(red: UInt8(bg[0]), green: UInt8(bg[1]), blue: UInt8(bg[2]))
        return ShapesDetection(background: background, backgroundColor: bgColor, shapes: shapes)
    }

    /// Colour, kind, size and centre of one component (steps 4–6 of the file header).
    private func describe(_ members: [Int], component: Int, labels: [Int], nearest: [Int], n: Int) -> DetectedShape {
        var minX = n, minY = n, maxX = -1, maxY = -1
        for p in members {
            let x = p % n, y = p / n
            minX = min(minX, x); maxX = max(maxX, x)
            minY = min(minY, y); maxY = max(maxY, y)
        }
        // Trim end rows and columns holding at most one pixel (stray noise pixels on an edge).
        var inside = members
        while true {
            var rows = [Int](repeating: 0, count: maxY - minY + 1)
            var columns = [Int](repeating: 0, count: maxX - minX + 1)
            for p in inside {
                rows[p / n - minY] += 1
                columns[p % n - minX] += 1
            }
            let before = (minX, minY, maxX, maxY)
            if rows.count > 1 {
                if Self.isStray(rows[0], next: rows[1]) {
                    minY += 1
                } else if Self.isStray(rows[rows.count - 1], next: rows[rows.count - 2]) {
                    maxY -= 1
                }
            }
            if columns.count > 1 {
                if Self.isStray(columns[0], next: columns[1]) {
                    minX += 1
                } else if Self.isStray(columns[columns.count - 1], next: columns[columns.count - 2]) {
                    maxX -= 1
                }
            }
            if before == (minX, minY, maxX, maxY) { break }
            inside = inside.filter { p in
                let x = p % n, y = p / n
                return x >= minX && x <= maxX && y >= minY && y <= maxY
            }
        }
        let width = maxX - minX + 1, height = maxY - minY + 1

        // 4. Colour: vote over core pixels (all pixels if the object has no core).
        func inComponent(_ x: Int, _ y: Int) -> Bool {
            x >= 0 && y >= 0 && x < n && y < n && labels[y * n + x] == component
        }
        var votes = [Int](repeating: 0, count: ShapeColor.allCases.count)
        var coreCount = 0
        for p in members {
            let x = p % n, y = p / n
            if inComponent(x - 1, y) && inComponent(x + 1, y) && inComponent(x, y - 1) && inComponent(x, y + 1) {
                votes[nearest[p]] += 1
                coreCount += 1
            }
        }
        if coreCount == 0 {
            for p in members { votes[nearest[p]] += 1 }
        }
        let colorIndex = votes.indices.max { votes[$0] < votes[$1] || (votes[$0] == votes[$1] && $0 > $1) }!

        // 5. Kind: fill ratio, aspect, and top-half against bottom-half row widths.
        var rowWidths = [Int](repeating: 0, count: height)
        for p in inside { rowWidths[p / n - minY] += 1 }
        let half = height / 2
        let top = rowWidths[..<half].reduce(0, +)
        let bottom = rowWidths[(height - half)...].reduce(0, +)
        let pointsUp = half > 0 && Double(top) < 0.75 * Double(bottom)
        let fill = Double(inside.count) / Double(width * height)
        let aspect = Double(max(width, height)) / Double(min(width, height))
        let kind: ShapeKind?
        let starFill = 0.45
        if aspect > 1.5 {
            kind = nil
        } else if fill < starFill || (fill < 0.6 && !pointsUp) {
            kind = .star
        } else if pointsUp {
            kind = fill < 0.9 ? .triangle : nil
        } else if fill >= 0.85 {
            kind = .square
        } else if fill >= 0.65 {
            kind = .circle
        } else {
            kind = nil
        }

        // 6. Size and centre. A star's box says little (its points are thin, and the box sits low on
        // the star's centre): its area 1.1226 R² (ten triangles of sides R and 0.382 R) gives the
        // radius, and its centroid, which is its centre, the position.
        var extent = Double(max(width, height)), centerX = Double(minX + maxX + 1) / 2, centerY = Double(minY + maxY + 1) / 2
        if kind == .star, !members.isEmpty {
            extent = 2 * (Double(members.count) / 1.1226).squareRoot()
            centerX = members.reduce(0.0) { $0 + Double($1 % n) } / Double(members.count) + 0.5
            centerY = members.reduce(0.0) { $0 + Double($1 / n) } / Double(members.count) + 0.5
        }
        return DetectedShape(
            color: ShapeColor.allCases[colorIndex], kind: kind,
            size: ShapeSize.classify(extent: extent),
            centerX: centerX, centerY: centerY,
            minX: minX, minY: minY, width: width, height: height,
            area: members.count, fillRatio: fill,
            form: kind.flatMap { Self.form(of: members, kind: $0, minX: minX, minY: minY, width: width, height: height, n: n) })
    }

    /// The best intersection over union of `members` with the ideal outline of `kind` (rasterised
    /// as the Shapes renderer does: a pixel is in when at least half of its 4×4 sub-samples are),
    /// over sizes and centres near the box's (size −1 … +2 pixels, centre ±½ pixel on each axis:
    /// anti-aliasing thins a rendered shape's corners and tip by a pixel). Nil for a star.
    static func form(of members: [Int], kind: ShapeKind, minX: Int, minY: Int, width: Int, height: Int, n: Int) -> Double? {
        guard kind != .star, !members.isEmpty else { return nil }
        let x0 = max(0, minX - 3), y0 = max(0, minY - 3), x1 = min(n, minX + width + 3), y1 = min(n, minY + height + 3)
        var grid = [Bool](repeating: false, count: (x1 - x0) * (y1 - y0))
        for p in members {
            let x = p % n, y = p / n
            if x >= x0 && x < x1 && y >= y0 && y < y1 { grid[(y - y0) * (x1 - x0) + (x - x0)] = true }
        }
        func inside(_ x: Double, _ y: Double, cx: Double, cy: Double, half: Double) -> Bool {
            switch kind {
            case .square: return abs(x - cx) <= half && abs(y - cy) <= half
            case .circle: return (x - cx) * (x - cx) + (y - cy) * (y - cy) <= half * half
            default:
                let top = cy - half
                return y >= top && y <= cy + half && abs(x - cx) <= (y - top) / 2
            }
        }
        let side = Double(max(width, height))
        let boxX = Double(minX) + Double(width) / 2, boxY = Double(minY) + Double(height) / 2
        var best = 0.0
        for ds in [-1.0, 0, 1, 2] { for dx in [-0.5, 0, 0.5] { for dy in [-0.5, 0, 0.5] {
            let half = (side + ds) / 2, cx = boxX + dx, cy = boxY + dy
            var ideal = 0, both = 0
            for y in y0..<y1 {
                for x in x0..<x1 {
                    var hits = 0
                    for sy in 0..<4 { for sx in 0..<4 where inside(Double(x) + (Double(sx) + 0.5) / 4, Double(y) + (Double(sy) + 0.5) / 4,
                                                                     cx: cx, cy: cy, half: half) { hits += 1 } }
                    if hits >= 8 {
                        ideal += 1
                        if grid[(y - y0) * (x1 - x0) + (x - x0)] { both += 1 }
                    }
                }
            }
            best = max(best, Double(both) / Double(members.count + ideal - both))
        }}}
        return best
    }

    /// Whether an end row or column of `count` pixels, beside one of `next`, is noise sticking
    /// out of an edge: a single pixel, or at most a quarter of its neighbour.
    private static func isStray(_ count: Int, next: Int) -> Bool {
        count <= 1 || 4 * count <= next
    }

    private static func distance2(_ a: [Float], _ b: RGBColor) -> Float {
        let d = [a[0] - Float(b.red), a[1] - Float(b.green), a[2] - Float(b.blue)]
        return d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    }
}

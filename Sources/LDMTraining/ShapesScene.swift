// The Shapes world's vocabulary: colours, shape kinds, sizes, backgrounds, positions and
// relations, and the structured scene a Shapes image is drawn from.
//
// Geometry. Coordinates are continuous, in pixels, on a 64×64 canvas whose pixel (x, y) covers
// [x, x+1) × [y, y+1); the canvas middle is (32, 32). A shape's centre is the centre of its
// bounding box, and `ShapeSize.extent` is the bounding box's side:
//   square    [cx − s/2, cx + s/2] × [cy − s/2, cy + s/2]
//   circle    (x − cx)² + (y − cy)² ≤ (s/2)²
//   triangle  isosceles, pointing up: apex (cx, cy − s/2), base from (cx − s/2, cy + s/2) to
//             (cx + s/2, cy + s/2) — as wide as it is tall.
//   star      regular five-pointed, one point straight up: outer vertices on the circle of
//             radius s/2 about (cx, cy), inner ones at 0.382·s/2 (sin 18° / sin 54°). Not part of
//             the classic world the shipped model learnt: only datasets that ask for it draw it.
//
// Rules that captions are judged by (the analyser uses them as written here; the generator
// places shapes well inside them):
//   position   with d = centre − (32, 32): `center` when |d| ≤ 10 pixels; otherwise the quadrant
//              of the centre, left when dx < 0, top when dy < 0 (y grows downwards).
//   relation   "A left of B" when B.cx − A.cx ≥ 6 and |dx| > |dy| (the horizontal offset
//              dominates); right of, above, below likewise.

import Foundation

/// The eight shape colours, with their exact sRGB values.
public enum ShapeColor: String, CaseIterable, Sendable, Hashable {
    case red, green, blue, yellow, purple, orange, white, black

    /// The colour's exact value: red #E6261F, green #2DB83D, blue #1F5FE6, yellow #F5D81E,
    /// purple #8E3CC9, orange #F5871F, white #F5F5F5, black #141414.
    public var rgb: RGBColor {
        switch self {
        case .red: RGBColor(hex: 0xE6261F)
        case .green: RGBColor(hex: 0x2DB83D)
        case .blue: RGBColor(hex: 0x1F5FE6)
        case .yellow: RGBColor(hex: 0xF5D81E)
        case .purple: RGBColor(hex: 0x8E3CC9)
        case .orange: RGBColor(hex: 0xF5871F)
        case .white: RGBColor(hex: 0xF5F5F5)
        case .black: RGBColor(hex: 0x141414)
        }
    }
}

/// The flat shapes: the classic three, and the star (drawn only where asked for).
public enum ShapeKind: String, CaseIterable, Sendable, Hashable {
    /// A disc whose diameter is the size's extent.
    case circle
    /// An axis-aligned square whose side is the size's extent.
    case square
    /// An isosceles triangle pointing up, as wide as it is tall.
    case triangle
    /// A regular five-pointed star, one point up.
    case star

    /// The shapes of the classic Shapes world (what the generator draws unless told otherwise).
    public static let classic: [ShapeKind] = [.circle, .square, .triangle]
}

/// The three shape sizes, named by their bounding box side.
public enum ShapeSize: String, CaseIterable, Sendable, Hashable {
    case small, medium, large

    /// Bounding box side in pixels: 12, 20, 30.
    public var extent: Int {
        switch self {
        case .small: 12
        case .medium: 20
        case .large: 30
        }
    }

    /// The size class of a measured bounding box side: below 16 small, 16 to 25 medium,
    /// above 25 large (the midpoints between 12, 20 and 30, rounded).
    public static func classify(extent: Double) -> ShapeSize {
        if extent < 16 { return .small }
        if extent <= 25 { return .medium }
        return .large
    }
}

/// The two canvas backgrounds.
public enum ShapesBackground: String, CaseIterable, Sendable, Hashable {
    case light, dark

    /// light #C8C8C8, dark #404040.
    public var rgb: RGBColor {
        switch self {
        case .light: RGBColor(hex: 0xC8C8C8)
        case .dark: RGBColor(hex: 0x404040)
        }
    }

    /// Whether a shape of `color` may be drawn on this background: never white on light nor
    /// black on dark, which would be hard to see.
    public func allows(_ color: ShapeColor) -> Bool {
        switch self {
        case .light: color != .white
        case .dark: color != .black
        }
    }

    /// The colours allowed on this background, in `ShapeColor.allCases` order.
    public var allowedColors: [ShapeColor] { ShapeColor.allCases.filter(allows) }
}

/// Where a single shape's centre lies (see the file header for the rule).
public enum ShapePosition: String, CaseIterable, Sendable, Hashable {
    case topLeft = "top left"
    case topRight = "top right"
    case bottomLeft = "bottom left"
    case bottomRight = "bottom right"
    case center

    /// Distance from the canvas middle within which a centre counts as `center`, in pixels.
    public static let centerRadius = 10.0

    /// The position of a centre (x, y) on a square canvas of side `canvasSize`.
    public static func classify(x: Double, y: Double, canvasSize: Int = ShapesScene.canvasSize) -> ShapePosition {
        let middle = Double(canvasSize) / 2
        let dx = x - middle, dy = y - middle
        if (dx * dx + dy * dy).squareRoot() <= centerRadius { return .center }
        switch (dx < 0, dy < 0) {
        case (true, true): return .topLeft
        case (false, true): return .topRight
        case (true, false): return .bottomLeft
        case (false, false): return .bottomRight
        }
    }
}

/// How the first shape of a two-shape caption lies relative to the second
/// (see the file header for the rule).
public enum ShapeRelation: String, CaseIterable, Sendable, Hashable {
    case leftOf = "left of"
    case rightOf = "right of"
    case above
    case below

    /// The smallest centre offset along the dominant axis for a relation to hold, in pixels.
    public static let minimumOffset = 6.0

    /// The relation with the roles swapped: left of ↔ right of, above ↔ below.
    public var opposite: ShapeRelation {
        switch self {
        case .leftOf: .rightOf
        case .rightOf: .leftOf
        case .above: .below
        case .below: .above
        }
    }

    /// The relation of a shape centred at `a` to one centred at `b`, or nil when neither axis
    /// dominates or the centres are too close.
    public static func classify(from a: (x: Double, y: Double), to b: (x: Double, y: Double)) -> ShapeRelation? {
        let dx = b.x - a.x, dy = b.y - a.y
        if abs(dx) > abs(dy) {
            if dx >= minimumOffset { return .leftOf }
            if dx <= -minimumOffset { return .rightOf }
        } else if abs(dy) > abs(dx) {
            if dy >= minimumOffset { return .above }
            if dy <= -minimumOffset { return .below }
        }
        return nil
    }
}

/// One shape in a scene.
public struct ShapeInstance: Hashable, Sendable {
    /// Fill colour.
    public var color: ShapeColor
    /// Circle, square, triangle (or star).
    public var kind: ShapeKind
    /// Size class; the bounding box side is `size.extent`.
    public var size: ShapeSize
    /// Bounding box centre, x (pixels from the left edge).
    public var centerX: Int
    /// Bounding box centre, y (pixels from the top edge).
    public var centerY: Int

    public init(color: ShapeColor, kind: ShapeKind, size: ShapeSize, centerX: Int, centerY: Int) {
        self.color = color
        self.kind = kind
        self.size = size
        self.centerX = centerX
        self.centerY = centerY
    }

    /// Bounding box edges (left, top, right, bottom) in canvas coordinates; the sizes are even,
    /// so these are whole pixels.
    public var bounds: (minX: Int, minY: Int, maxX: Int, maxY: Int) {
        let half = size.extent / 2
        return (centerX - half, centerY - half, centerX + half, centerY + half)
    }

    /// The region the centre lies in.
    public var position: ShapePosition {
        ShapePosition.classify(x: Double(centerX), y: Double(centerY))
    }

    /// Whether the continuous point (x, y) is inside the shape (see the file header).
    public func contains(x: Double, y: Double) -> Bool {
        let cx = Double(centerX), cy = Double(centerY), half = Double(size.extent) / 2
        switch kind {
        case .square:
            return abs(x - cx) <= half && abs(y - cy) <= half
        case .circle:
            return (x - cx) * (x - cx) + (y - cy) * (y - cy) <= half * half
        case .triangle:
            // Half-width grows linearly from 0 at the apex (y = cy − s/2) to s/2 at the base.
            let top = cy - half
            return y >= top && y <= cy + half && abs(x - cx) <= (y - top) / 2
        case .star:
            return Self.starPolygon(cx: cx, cy: cy, radius: half).contains(x: x, y: y)
        }
    }

    /// The star's ten vertices, clockwise from the top point.
    static func starPolygon(cx: Double, cy: Double, radius: Double) -> Polygon {
        let inner = radius * sin(Double.pi / 10) / sin(3 * Double.pi / 10)
        let points = (0..<10).map { i -> (Double, Double) in
            let angle = -Double.pi / 2 + Double(i) * Double.pi / 5
            let r = i % 2 == 0 ? radius : inner
            return (cx + r * cos(angle), cy + r * sin(angle))
        }
        return Polygon(points: points)
    }
}

/// A simple polygon, for inside tests (even–odd rule).
struct Polygon {
    var points: [(Double, Double)]
    func contains(x: Double, y: Double) -> Bool {
        var inside = false
        var j = points.count - 1
        for i in points.indices {
            let (xi, yi) = points[i], (xj, yj) = points[j]
            if (yi > y) != (yj > y), x < (xj - xi) * (y - yi) / (yj - yi) + xi { inside.toggle() }
            j = i
        }
        return inside
    }
}

/// What a Shapes image shows: a background and one or two non-overlapping shapes.
public struct ShapesScene: Hashable, Sendable {
    /// Side of the square canvas in pixels.
    public static let canvasSize = 64

    /// The canvas colour.
    public var background: ShapesBackground
    /// The shapes, drawn in order. In a relation scene the first is the caption's subject.
    public var shapes: [ShapeInstance]

    public init(background: ShapesBackground, shapes: [ShapeInstance]) {
        self.background = background
        self.shapes = shapes
    }

    /// The relation of the first shape to the second, when there are two and one holds.
    public var relation: ShapeRelation? {
        guard shapes.count == 2 else { return nil }
        let a = shapes[0], b = shapes[1]
        return ShapeRelation.classify(from: (Double(a.centerX), Double(a.centerY)),
                                      to: (Double(b.centerX), Double(b.centerY)))
    }
}

/// The five caption templates of the Shapes world.
public enum CaptionForm: String, CaseIterable, Sendable, Hashable, CustomStringConvertible {
    /// `a {color} {shape}`
    case colorShape
    /// `a {size} {color} {shape}`
    case sizeColorShape
    /// `a {color} {shape} on a {light|dark} background`
    case background
    /// `a {color} {shape} in the {top left|top right|bottom left|bottom right|center}`
    case position
    /// `a {color} {shape} {left of|right of|above|below} a {color} {shape}`
    case relation

    /// A short human-readable name, as used in evaluation tables.
    public var description: String {
        switch self {
        case .colorShape: "color shape"
        case .sizeColorShape: "size color shape"
        case .background: "background"
        case .position: "position"
        case .relation: "relation"
        }
    }

    /// How many shapes a scene for this form has.
    public var shapeCount: Int { self == .relation ? 2 : 1 }
}

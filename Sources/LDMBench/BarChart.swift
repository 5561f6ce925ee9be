// A small bar chart drawn into an RGB image, for benchmark reports: groups of bars on a log10 scale
// (the default) or a linear one, labelled with a built-in 5×7 bitmap font (digits, capital letters
// and a few signs; lower-case letters are drawn as capitals). Written by PNGImage (LDMIO).

import Foundation
import LDMIO

/// Groups of bars on a logarithmic (default) or linear value axis.
public struct BarChart {
    /// How values map to bar heights.
    public enum Axis: Sendable, Equatable {
        /// Powers of ten, over the whole decades around the values; bars must be > 0.
        case log10
        /// Linear from `range.lowerBound` (the baseline) to `range.upperBound`, with a grid line
        /// every `tick`; values outside the range are clipped to it.
        case linear(ClosedRange<Double>, tick: Double)
    }

    /// One bar: its value (> 0 on the log axis), colour series and whether it is drawn hatched (an estimate).
    public struct Bar {
        public var value: Double
        public var series: Int
        public var hatched: Bool
        public init(value: Double, series: Int, hatched: Bool = false) {
            self.value = value; self.series = series; self.hatched = hatched
        }
    }
    /// Bars side by side under one label (each string one line).
    public struct Group {
        public var label: [String]
        public var bars: [Bar]
        public init(label: [String], bars: [Bar]) { self.label = label; self.bars = bars }
    }

    public var title: String
    /// Unit written after the axis values ("S").
    public var unit: String
    /// Names of the colour series, shown in the legend.
    public var series: [String]
    public var groups: [Group]
    /// Legend line explaining hatched bars (none when empty).
    public var hatchNote: String
    /// The value axis.
    public var axis: Axis

    public init(title: String, unit: String, series: [String], groups: [Group], hatchNote: String = "", axis: Axis = .log10) {
        self.title = title; self.unit = unit; self.series = series; self.groups = groups; self.hatchNote = hatchNote
        self.axis = axis
    }

    static let palette: [(UInt8, UInt8, UInt8)] = [(46, 110, 190), (226, 120, 40), (60, 160, 80), (170, 60, 160)]

    /// Draws the chart.
    public func render() -> PNGImage {
        let barWidth = 28, barGap = 4, groupGap = 24, left = 70, right = 20, top = 56, plotHeight = 260
        let labelLines = groups.map(\.label.count).max() ?? 1
        let bottom = 18 + 10 * labelLines + 24
        let groupWidths = groups.map { max($0.bars.count * (barWidth + barGap) - barGap, Canvas.textWidth($0.label.max { $0.count < $1.count } ?? "")) }
        let plotWidth = groupWidths.reduce(0) { $0 + $1 + groupGap } + groupGap
        let width = max(left + plotWidth + right, left + Canvas.textWidth(title, scale: 2) + right, 320)
        var canvas = Canvas(width: width, height: top + plotHeight + bottom)

        // Where a value sits between the baseline (0) and the top (1), and the grid lines with their labels.
        let position: (Double) -> Double
        let grid: [(value: Double, label: String)]
        switch axis {
        case .log10:
            // Whole decades around the values.
            let values = groups.flatMap(\.bars).map(\.value).filter { $0 > 0 && $0.isFinite }
            let lo = floor(log10(values.min() ?? 1)), hi = max(ceil(log10(values.max() ?? 10)), lo + 1)
            position = { v in (log10(max(v, pow(10, lo))) - lo) / (hi - lo) }
            grid = (Int(lo)...Int(hi)).map { e in (pow(10, Double(e)), Self.decade(e) + unit) }
        case let .linear(range, tick):
            let span = range.upperBound - range.lowerBound
            position = { v in span > 0 ? min(max((v - range.lowerBound) / span, 0), 1) : 0 }
            let ticks = tick > 0 ? Int((span / tick * (1 + 1e-9)).rounded(.down)) : 0
            grid = (0...ticks).map { i in
                let v = range.lowerBound + Double(i) * tick
                return (v, String(format: "%g", v) + unit)
            }
        }
        func y(_ v: Double) -> Int {
            top + plotHeight - Int((position(v) * Double(plotHeight)).rounded())
        }
        canvas.text(title, x: left, y: 10, scale: 2)
        // Legend.
        var lx = left
        for (i, name) in series.enumerated() {
            canvas.fill(x: lx, y: 34, width: 10, height: 10, colour: Self.palette[i % Self.palette.count])
            canvas.text(name, x: lx + 14, y: 36)
            lx += 14 + Canvas.textWidth(name) + 16
        }
        if !hatchNote.isEmpty {
            canvas.fill(x: lx, y: 34, width: 10, height: 10, colour: (120, 120, 120))
            canvas.hatch(x: lx, y: 34, width: 10, height: 10)
            canvas.text(hatchNote, x: lx + 14, y: 36)
        }
        // Grid lines (decades on the log axis) and their labels.
        for (value, label) in grid {
            let gy = y(value)
            canvas.fill(x: left, y: gy, width: plotWidth, height: 1, colour: (215, 215, 215))
            canvas.text(label, x: left - 6 - Canvas.textWidth(label), y: gy - 3)
        }
        canvas.fill(x: left, y: top, width: 1, height: plotHeight + 1, colour: (0, 0, 0))
        canvas.fill(x: left, y: top + plotHeight, width: plotWidth, height: 1, colour: (0, 0, 0))
        // Bars, with their values above them.
        var gx = left + groupGap
        for (group, gw) in zip(groups, groupWidths) {
            var bx = gx + (gw - (group.bars.count * (barWidth + barGap) - barGap)) / 2
            for bar in group.bars {
                let by = y(bar.value)
                let colour = Self.palette[bar.series % Self.palette.count]
                canvas.fill(x: bx, y: by, width: barWidth, height: top + plotHeight - by, colour: colour)
                if bar.hatched { canvas.hatch(x: bx, y: by, width: barWidth, height: top + plotHeight - by) }
                let v = Self.short(bar.value)
                canvas.text(v, x: bx + (barWidth - Canvas.textWidth(v)) / 2, y: by - 10)
                bx += barWidth + barGap
            }
            for (i, line) in group.label.enumerated() {
                canvas.text(line, x: gx + (gw - Canvas.textWidth(line)) / 2, y: top + plotHeight + 8 + 10 * i)
            }
            gx += gw + groupGap
        }
        return PNGImage(width: canvas.width, height: canvas.height, channels: 3, pixels: canvas.pixels)
    }

    /// 10^e as text: 0.01, 0.1, 1, 10, 100, 1K, 10K, …
    static func decade(_ e: Int) -> String {
        if e < 0 { return "0." + String(repeating: "0", count: -e - 1) + "1" }
        if e >= 6 { return "1" + String(repeating: "0", count: e - 6) + "M" }
        if e >= 3 { return "1" + String(repeating: "0", count: e - 3) + "K" }
        return "1" + String(repeating: "0", count: e)
    }

    /// A value in 2–4 characters: 0.12, 3.4, 56, 780, 12K.
    static func short(_ v: Double) -> String {
        if v >= 1e4 { return String(format: "%.0fK", v / 1e3) }
        if v >= 100 { return String(format: "%.0f", v) }
        if v >= 10 { return String(format: "%.0f", v) }
        if v >= 1 { return String(format: "%.1f", v) }
        return String(format: "%.2g", v)
    }
}

/// An RGB drawing surface with rectangles, hatching and 5×7 text.
struct Canvas {
    let width: Int, height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int) {
        self.width = width; self.height = height
        pixels = [UInt8](repeating: 255, count: width * height * 3)
    }

    mutating func set(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = c.0; pixels[i + 1] = c.1; pixels[i + 2] = c.2
    }

    mutating func fill(x: Int, y: Int, width w: Int, height h: Int, colour: (UInt8, UInt8, UInt8)) {
        for yy in y..<(y + max(h, 0)) { for xx in x..<(x + max(w, 0)) { set(xx, yy, colour) } }
    }

    /// White diagonal stripes over a rectangle.
    mutating func hatch(x: Int, y: Int, width w: Int, height h: Int) {
        for yy in y..<(y + max(h, 0)) { for xx in x..<(x + max(w, 0)) where (xx + yy) % 6 < 2 { set(xx, yy, (255, 255, 255)) } }
    }

    /// Pixel width of `s` at `scale` (6 columns per character, the last gap dropped).
    static func textWidth(_ s: String, scale: Int = 1) -> Int { max(0, s.count * 6 - 1) * scale }

    /// Draws `s` with its top-left corner at (x, y) in black.
    mutating func text(_ s: String, x: Int, y: Int, scale: Int = 1) {
        for (i, ch) in s.uppercased().enumerated() {
            let rows = Canvas.glyphs[ch] ?? Canvas.glyphs["?"]!
            for (r, bits) in rows.enumerated() {
                for c in 0..<5 where bits & (0b10000 >> c) != 0 {
                    fill(x: x + (i * 6 + c) * scale, y: y + r * scale, width: scale, height: scale, colour: (0, 0, 0))
                }
            }
        }
    }

    /// 5×7 glyphs, one 5-bit row each, top row first (bit 4 = leftmost column).
    static let glyphs: [Character: [UInt8]] = [
        " ": [0, 0, 0, 0, 0, 0, 0],
        "0": [0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110],
        "1": [0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110],
        "2": [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111],
        "3": [0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110],
        "4": [0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010],
        "5": [0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110],
        "6": [0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110],
        "7": [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000],
        "8": [0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110],
        "9": [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100],
        "A": [0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001],
        "B": [0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110],
        "C": [0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110],
        "D": [0b11100, 0b10010, 0b10001, 0b10001, 0b10001, 0b10010, 0b11100],
        "E": [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111],
        "F": [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000],
        "G": [0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111],
        "H": [0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001],
        "I": [0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110],
        "J": [0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100],
        "K": [0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001],
        "L": [0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111],
        "M": [0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001],
        "N": [0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001],
        "O": [0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110],
        "P": [0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000],
        "Q": [0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101],
        "R": [0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001],
        "S": [0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110],
        "T": [0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100],
        "U": [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110],
        "V": [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100],
        "W": [0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010],
        "X": [0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001],
        "Y": [0b10001, 0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100],
        "Z": [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111],
        ".": [0, 0, 0, 0, 0, 0b01100, 0b01100],
        ",": [0, 0, 0, 0, 0b01100, 0b00100, 0b01000],
        "-": [0, 0, 0, 0b11111, 0, 0, 0],
        "+": [0, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0],
        "=": [0, 0, 0b11111, 0, 0b11111, 0, 0],
        ":": [0, 0b01100, 0b01100, 0, 0b01100, 0b01100, 0],
        "/": [0, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0],
        "(": [0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010],
        ")": [0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000],
        "%": [0b11000, 0b11001, 0b00010, 0b00100, 0b01000, 0b10011, 0b00011],
        "×": [0, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0],
        "?": [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0, 0b00100],
    ]
}

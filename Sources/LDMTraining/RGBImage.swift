// A plain 8-bit RGB image for datasets and image analysis, independent of the tensor type, and
// the resampling used to bring any image to a square training size.
//
// Resampling (`squareResampled`): the image is centre-cropped to a square (side = min(w, h),
// offset ⌊(w − side)/2⌋, ⌊(h − side)/2⌋), then resized separably, rows then columns:
//   shrinking (n_src > n_dst): box filter / area average. Output sample i covers the source
//     interval [i·r, (i+1)·r) with r = n_src / n_dst; each source sample j contributes with
//     weight |[j, j+1) ∩ [i·r, (i+1)·r)| / r — exact coverage for fractional ratios, as OpenCV's
//     INTER_AREA; for integer ratios it is the plain mean of r×r blocks, as PIL's BOX filter and
//     PyTorch's `interpolate(mode="area")`.
//   enlarging (n_src < n_dst): bilinear with half-pixel centres (PyTorch's
//     `interpolate(mode="bilinear", align_corners=False)`): x = (i + ½)·n_src/n_dst − ½,
//     clamped to [0, n_src − 1], value = (1 − t)·s[⌊x⌋] + t·s[⌊x⌋ + 1], t = x − ⌊x⌋.
//   equal sizes: copied.

import LDMIO

/// An 8-bit sRGB colour.
public struct RGBColor: Hashable, Sendable, CustomStringConvertible {
    public var red: UInt8
    public var green: UInt8
    public var blue: UInt8

    public init(red: UInt8, green: UInt8, blue: UInt8) {
        self.red = red
        self.green = green
        self.blue = blue
    }

    /// A colour from a 24-bit hex literal, `0xRRGGBB`.
    public init(hex: UInt32) {
        self.init(red: UInt8((hex >> 16) & 0xFF), green: UInt8((hex >> 8) & 0xFF), blue: UInt8(hex & 0xFF))
    }

    /// `#RRGGBB`.
    public var description: String {
        let digits = Array("0123456789ABCDEF")
        return "#" + String([red, green, blue].flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }
}

/// An 8-bit RGB image: `pixels` holds `height * width * 3` samples, row-major, top row first,
/// channels interleaved; pixel (x, y) channel c is at `(y * width + x) * 3 + c`.
public struct RGBImage: Sendable, Equatable {
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int
    /// Interleaved RGB samples (see the type's documentation).
    public var pixels: [UInt8]

    /// An image from its samples; `pixels.count` must be `width * height * 3`.
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && pixels.count == width * height * 3,
                     "RGBImage: \(pixels.count) samples for \(width)x\(height)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// An image filled with one colour.
    public init(width: Int, height: Int, color: RGBColor) {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in stride(from: 0, to: pixels.count, by: 3) {
            pixels[i] = color.red
            pixels[i + 1] = color.green
            pixels[i + 2] = color.blue
        }
        self.init(width: width, height: height, pixels: pixels)
    }

    /// The colour of pixel (x, y); both must be in range.
    public subscript(x: Int, y: Int) -> RGBColor {
        get {
            let i = (y * width + x) * 3
            return RGBColor(red: pixels[i], green: pixels[i + 1], blue: pixels[i + 2])
        }
        set {
            let i = (y * width + x) * 3
            pixels[i] = newValue.red
            pixels[i + 1] = newValue.green
            pixels[i + 2] = newValue.blue
        }
    }

    // MARK: PNG

    /// The RGB channels of a decoded PNG (3 or 4 channels). Alpha is dropped, not composited,
    /// as PIL's `Image.convert("RGB")` does.
    public init(_ png: PNGImage) {
        let channels = max(png.channels, 1)
        let count = png.width * png.height
        var pixels = [UInt8](repeating: 0, count: count * 3)
        if channels >= 3 {
            for i in 0..<count {
                pixels[i * 3] = png.pixels[i * channels]
                pixels[i * 3 + 1] = png.pixels[i * channels + 1]
                pixels[i * 3 + 2] = png.pixels[i * channels + 2]
            }
        } else {
            for i in 0..<count {
                let v = png.pixels[i * channels]
                pixels[i * 3] = v
                pixels[i * 3 + 1] = v
                pixels[i * 3 + 2] = v
            }
        }
        self.init(width: png.width, height: png.height, pixels: pixels)
    }

    /// Reads a PNG file (any colour type and bit depth) as RGB.
    public static func read(path: String) throws -> RGBImage {
        RGBImage(try PNGImage.read(path: path))
    }

    /// This image as a 3-channel PNG carrying `texts`.
    public func png(texts: [PNGTextChunk] = []) -> PNGImage {
        PNGImage(width: width, height: height, channels: 3, pixels: pixels, texts: texts)
    }

    /// Writes the image as an 8-bit RGB PNG, atomically (see `PNGImage.write(to:)`).
    public func write(to path: String, texts: [PNGTextChunk] = []) throws {
        try png(texts: texts).write(to: path)
    }

    // MARK: Resampling

    /// The image centre-cropped to a square and resized to `size`×`size` (box filter when
    /// shrinking, bilinear when enlarging; see the file header), as interleaved RGB floats in
    /// [0, 255], `size * size * 3` values. An empty image gives zeros.
    public func squareResampled(to size: Int) -> [Float] {
        precondition(size > 0, "RGBImage.squareResampled: size must be positive")
        let side = min(width, height)
        guard side > 0 else { return [Float](repeating: 0, count: size * size * 3) }
        let x0 = (width - side) / 2
        let y0 = (height - side) / 2
        let weights = Self.resamplingWeights(from: side, to: size)

        // Rows first: side rows × size columns.
        var rows = [Float](repeating: 0, count: side * size * 3)
        for y in 0..<side {
            let sourceRow = ((y0 + y) * width + x0) * 3
            for (i, taps) in weights.enumerated() {
                var r: Float = 0, g: Float = 0, b: Float = 0
                for (j, w) in taps {
                    let s = sourceRow + j * 3
                    r += w * Float(pixels[s])
                    g += w * Float(pixels[s + 1])
                    b += w * Float(pixels[s + 2])
                }
                let d = (y * size + i) * 3
                rows[d] = r
                rows[d + 1] = g
                rows[d + 2] = b
            }
        }
        // Then columns: size × size.
        var result = [Float](repeating: 0, count: size * size * 3)
        for (i, taps) in weights.enumerated() {
            for x in 0..<size {
                var r: Float = 0, g: Float = 0, b: Float = 0
                for (j, w) in taps {
                    let s = (j * size + x) * 3
                    r += w * rows[s]
                    g += w * rows[s + 1]
                    b += w * rows[s + 2]
                }
                let d = (i * size + x) * 3
                result[d] = r
                result[d + 1] = g
                result[d + 2] = b
            }
        }
        return result
    }

    /// The image centre-cropped to a square and resized to `size`×`size`, rounded to 8 bits.
    /// A square image of that size is returned unchanged.
    public func squareResized(to size: Int) -> RGBImage {
        if width == size && height == size { return self }
        let values = squareResampled(to: size)
        return RGBImage(width: size, height: size,
                        pixels: values.map { UInt8(max(0, min(255, $0.rounded()))) })
    }

    /// For each of `destination` output samples, the source samples and weights that make it
    /// (the 1-D filter described in the file header).
    static func resamplingWeights(from source: Int, to destination: Int) -> [[(Int, Float)]] {
        if source == destination {
            return (0..<source).map { [($0, 1)] }
        }
        if source > destination {
            // Area average: output i covers [i·r, (i+1)·r).
            let ratio = Double(source) / Double(destination)
            return (0..<destination).map { i in
                let start = Double(i) * ratio
                let end = Double(i + 1) * ratio
                var taps: [(Int, Float)] = []
                var j = Int(start.rounded(.down))
                while Double(j) < end && j < source {
                    let overlap = min(end, Double(j + 1)) - max(start, Double(j))
                    if overlap > 1e-12 { taps.append((j, Float(overlap / ratio))) }
                    j += 1
                }
                return taps
            }
        }
        // Bilinear, half-pixel centres, clamped at the edges.
        let scale = Double(source) / Double(destination)
        return (0..<destination).map { i in
            let x = min(max((Double(i) + 0.5) * scale - 0.5, 0), Double(source - 1))
            let x0 = Int(x.rounded(.down))
            let t = Float(x - Double(x0))
            if x0 + 1 >= source || t == 0 { return [(x0, 1)] }
            return [(x0, 1 - t), (x0 + 1, t)]
        }
    }
}

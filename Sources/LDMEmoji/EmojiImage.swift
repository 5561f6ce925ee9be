// From a colour glyph bitmap to a training image: composite on white, pad to a centred square,
// area-average down to the training size.
//
// 1. Composite. The bitmap is premultiplied, c = α·C, so "over" a white background W is
//      out = c + (1 − α)·W,
//    and with 8-bit samples (α = a/255, W = 255) that is exactly the integer c + 255 − a: no
//    rounding, and no division by α (which un-premultiplying would need, and which is unstable
//    where α is small). Valid premultiplied data has c ≤ a, so out ≤ 255; larger values are clamped.
// 2. Pad. The image is centred on a white square of side max(w, h); the first ⌊(side − w)/2⌋
//    columns and ⌊(side − h)/2⌋ rows are padding. A 136×128 Noto glyph gets 4 white rows above
//    and below.
// 3. Resize with `RGBImage.squareResized(to:)`, the resampler FolderDataset uses: shrinking is an
//    area average (box filter; each output pixel is the mean of the source area it covers, with
//    fractional coverage at the edges — 136 → 64 is a ratio of 2.125); enlarging is bilinear.

import LDMTraining

/// A colour glyph bitmap: `width * height * 4` bytes, B, G, R, A per pixel, alpha premultiplied,
/// row-major, top row first — FreeType's FT_PIXEL_MODE_BGRA.
public struct EmojiBitmap: Sendable, Equatable {
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int
    /// BGRA samples, premultiplied (see the type's documentation).
    public var pixels: [UInt8]

    /// A bitmap from its samples; `pixels.count` must be `width * height * 4`.
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && pixels.count == width * height * 4,
                     "EmojiBitmap: \(pixels.count) samples for \(width)x\(height)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// The bitmap over a white background, out = c + (1 − α)·255 per channel (file header, step 1).
    public func compositedOnWhite() -> RGBImage {
        var rgb = [UInt8](repeating: 255, count: width * height * 3)
        for p in 0..<(width * height) {
            let b = Int(pixels[p * 4]), g = Int(pixels[p * 4 + 1]), r = Int(pixels[p * 4 + 2])
            let background = 255 - Int(pixels[p * 4 + 3])
            rgb[p * 3] = UInt8(min(255, r + background))
            rgb[p * 3 + 1] = UInt8(min(255, g + background))
            rgb[p * 3 + 2] = UInt8(min(255, b + background))
        }
        return RGBImage(width: width, height: height, pixels: rgb)
    }

    /// The training image: composited on white, padded to a centred white square and resized to
    /// `size`×`size` (file header).
    public func trainingImage(size: Int) -> RGBImage {
        compositedOnWhite().paddedToSquare(color: RGBColor(hex: 0xFFFFFF)).squareResized(to: size)
    }
}

extension RGBImage {
    /// The image centred on a square of side max(width, height) filled with `color`; the extra
    /// columns (rows) go ⌊extra/2⌋ before and the rest after. A square image is returned unchanged.
    public func paddedToSquare(color: RGBColor) -> RGBImage {
        let side = max(width, height)
        if width == height { return self }
        var square = RGBImage(width: side, height: side, color: color)
        let x0 = (side - width) / 2, y0 = (side - height) / 2
        for y in 0..<height {
            let source = y * width * 3
            let destination = ((y0 + y) * side + x0) * 3
            square.pixels.replaceSubrange(destination..<(destination + width * 3),
                                          with: pixels[source..<(source + width * 3)])
        }
        return square
    }
}

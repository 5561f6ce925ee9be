// Images in and out of the pipeline: PNG ↔ tensors, inpainting masks, outpainting canvases and the
// paste-back that keeps every unmasked pixel of the input exactly.

import Foundation
import LDMCore
import LDMIO

/// An RGB image [1, 3, H, W] in [-1, 1] from a PNG (alpha dropped, as PIL's convert("RGB")).
public func imageTensor(_ png: PNGImage) -> Tensor {
    let h = png.height, w = png.width, plane = h * w, ch = png.channels
    let t = Tensor(uninitialized: [1, 3, h, w])
    for p in 0..<plane { for c in 0..<3 {
        t.data[c * plane + p] = 2 * (Float(png.pixels[p * ch + (ch >= 3 ? c : 0)]) / 255) - 1
    } }
    return t
}

/// A mask [1, 1, H, W] of 0/1 from a PNG: grey (PIL's "L" conversion) ≥ 0.5 means regenerate
/// (the opposite with `invert`).
public func maskTensor(_ png: PNGImage, invert: Bool = false) -> Tensor {
    let plane = png.width * png.height, ch = png.channels
    let t = Tensor(uninitialized: [1, 1, png.height, png.width])
    for p in 0..<plane {
        let l: Int
        if ch >= 3 {
            let r = Int(png.pixels[p * ch]), g = Int(png.pixels[p * ch + 1]), b = Int(png.pixels[p * ch + 2])
            l = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16
        } else {
            l = Int(png.pixels[p * ch])
        }
        t.data[p] = (Float(l) / 255 >= 0.5) != invert ? 1 : 0
    }
    return t
}

/// Grows the canvas: the new border repeats the nearest edge pixel (a neutral start for the model)
/// and is marked for regeneration in the mask.
public func extendCanvas(_ x: Tensor, _ png: PNGImage, _ mask: Tensor, left: Int, top: Int, right: Int, bottom: Int) -> (Tensor, PNGImage, Tensor) {
    let h = x.shape[2], w = x.shape[3], nh = h + top + bottom, nw = w + left + right
    let y = Tensor(uninitialized: [1, 3, nh, nw]), m = Tensor(uninitialized: [1, 1, nh, nw])
    var pixels = [UInt8](repeating: 0, count: nh * nw * 3)
    for r in 0..<nh { for c in 0..<nw {
        let sr = min(max(r - top, 0), h - 1), sc = min(max(c - left, 0), w - 1)
        let inside = r >= top && r < top + h && c >= left && c < left + w
        for ch in 0..<3 {
            y.data[ch * nh * nw + r * nw + c] = x.data[ch * h * w + sr * w + sc]
            pixels[(r * nw + c) * 3 + ch] = png.pixels[(sr * w + sc) * png.channels + (png.channels >= 3 ? ch : 0)]
        }
        m.data[r * nw + c] = inside ? mask.data[sr * w + sc] : 1
    } }
    return (y, PNGImage(width: nw, height: nh, channels: 3, pixels: pixels), m)
}

/// Outside the mask the output is the input, exactly; inside, the generated pixels fade in over
/// `feather` pixels from the mask boundary (w = min(1, d / (feather + 1)), d the city-block distance
/// to the nearest kept pixel).
public func restoreUnmasked(generated: PNGImage, original: PNGImage, mask: Tensor, feather: Int) -> PNGImage {
    let w = generated.width, h = generated.height
    let big = w + h + 1
    var d = (0..<w * h).map { mask.data[$0] >= 0.5 ? big : 0 }
    // Two-pass city-block distance transform.
    for r in 0..<h { for c in 0..<w {
        let i = r * w + c
        if r > 0 { d[i] = min(d[i], d[i - w] + 1) }
        if c > 0 { d[i] = min(d[i], d[i - 1] + 1) }
    } }
    for r in stride(from: h - 1, through: 0, by: -1) { for c in stride(from: w - 1, through: 0, by: -1) {
        let i = r * w + c
        if r < h - 1 { d[i] = min(d[i], d[i + w] + 1) }
        if c < w - 1 { d[i] = min(d[i], d[i + 1] + 1) }
    } }
    var pixels = [UInt8](repeating: 0, count: w * h * 3)
    for i in 0..<w * h {
        for c in 0..<3 {
            let o = original.pixels[i * original.channels + (original.channels >= 3 ? c : 0)], g = generated.pixels[i * 3 + c]
            if d[i] == 0 { pixels[i * 3 + c] = o; continue }
            let wgt = min(1, Float(d[i]) / Float(feather + 1))
            pixels[i * 3 + c] = UInt8((Float(o) * (1 - wgt) + Float(g) * wgt).rounded())
        }
    }
    return PNGImage(width: w, height: h, channels: 3, pixels: pixels)
}

/// Image i of [B, 3, H, W] in [0, 1] as 8-bit RGB: round(255 x), ties to even (numpy's rounding).
public func pngImage(_ images: Tensor, index i: Int) -> PNGImage {
    let h = images.shape[2], w = images.shape[3], plane = h * w
    var pixels = [UInt8](repeating: 0, count: plane * 3)
    let base = images.data + i * 3 * plane
    for p in 0..<plane { for c in 0..<3 {
        pixels[p * 3 + c] = UInt8((base[c * plane + p] * 255).rounded(.toNearestOrEven))
    } }
    return PNGImage(width: w, height: h, channels: 3, pixels: pixels)
}

/// A1111's `resize_mode` for an img2img input whose size differs from the requested one.
public enum ResizeMode: Int, Sendable {
    /// Stretch to the size.
    case resize = 0
    /// Scale to cover the size, then cut the centre.
    case cropAndResize = 1
    /// Scale to fit inside the size, then fill the rest with the nearest edge pixels.
    case resizeAndFill = 2
}

/// `png` at `width`×`height` (bilinear, with an area average first when shrinking by 2× or more).
public func resizedImage(_ png: PNGImage, width: Int, height: Int, mode: ResizeMode = .resize) -> PNGImage {
    guard png.width != width || png.height != height else { return png }
    let sw = Double(png.width), sh = Double(png.height)
    // The source rectangle that maps onto the output, and the output rectangle the image covers.
    var src = (x: 0.0, y: 0.0, w: sw, h: sh), dst = (x: 0, y: 0, w: width, h: height)
    switch mode {
    case .resize: break
    case .cropAndResize:
        let scale = max(Double(width) / sw, Double(height) / sh)
        src.w = Double(width) / scale; src.h = Double(height) / scale
        src.x = (sw - src.w) / 2; src.y = (sh - src.h) / 2
    case .resizeAndFill:
        let scale = min(Double(width) / sw, Double(height) / sh)
        dst.w = max(1, Int((sw * scale).rounded())); dst.h = max(1, Int((sh * scale).rounded()))
        dst.x = (width - dst.w) / 2; dst.y = (height - dst.h) / 2
    }
    let ch = png.channels
    func sample(_ x: Double, _ y: Double, _ c: Int) -> Double {
        // Average over the source footprint of one output pixel (≥ 1 source pixel), bilinear inside.
        let fx = min(max(x, 0), sw - 1), fy = min(max(y, 0), sh - 1)
        let x0 = Int(fx), y0 = Int(fy), x1 = min(x0 + 1, png.width - 1), y1 = min(y0 + 1, png.height - 1)
        let ax = fx - Double(x0), ay = fy - Double(y0)
        func p(_ x: Int, _ y: Int) -> Double { Double(png.pixels[(y * png.width + x) * ch + (ch >= 3 ? c : 0)]) }
        return (p(x0, y0) * (1 - ax) + p(x1, y0) * ax) * (1 - ay) + (p(x0, y1) * (1 - ax) + p(x1, y1) * ax) * ay
    }
    let stepX = src.w / Double(dst.w), stepY = src.h / Double(dst.h)
    let taps = (x: max(1, Int(stepX.rounded(.down))), y: max(1, Int(stepY.rounded(.down))))
    var pixels = [UInt8](repeating: 0, count: width * height * 3)
    for oy in 0..<height { for ox in 0..<width {
        let ix = min(max(ox - dst.x, 0), dst.w - 1), iy = min(max(oy - dst.y, 0), dst.h - 1)
        for c in 0..<3 {
            var sum = 0.0
            for ty in 0..<taps.y { for tx in 0..<taps.x {
                let x = src.x + (Double(ix) + (Double(tx) + 0.5) / Double(taps.x)) * stepX - 0.5
                let y = src.y + (Double(iy) + (Double(ty) + 0.5) / Double(taps.y)) * stepY - 0.5
                sum += sample(x, y, c)
            } }
            pixels[(oy * width + ox) * 3 + c] = UInt8(min(255, max(0, (sum / Double(taps.x * taps.y)).rounded())))
        }
    } }
    return PNGImage(width: width, height: height, channels: 3, pixels: pixels)
}

/// A1111's `inpainting_fill` 0 ("fill"): the masked pixels replaced by the mean colour of the
/// kept ones, so the model starts from the surroundings' colour rather than the old content.
public func filledMaskedArea(_ png: PNGImage, mask: Tensor) -> PNGImage {
    var sum = [0.0, 0.0, 0.0], count = 0.0
    let ch = png.channels, n = png.width * png.height
    for i in 0..<n where mask.data[i] < 0.5 {
        for c in 0..<3 { sum[c] += Double(png.pixels[i * ch + (ch >= 3 ? c : 0)]) }
        count += 1
    }
    let mean = count > 0 ? sum.map { UInt8(($0 / count).rounded()) } : [127, 127, 127]
    var pixels = [UInt8](repeating: 0, count: n * 3)
    for i in 0..<n { for c in 0..<3 {
        pixels[i * 3 + c] = mask.data[i] >= 0.5 ? mean[c] : png.pixels[i * ch + (ch >= 3 ? c : 0)]
    } }
    return PNGImage(width: png.width, height: png.height, channels: 3, pixels: pixels)
}

/// A rectangle of pixels: x, y, width, height.
public struct PixelRegion: Sendable, Equatable {
    public var x: Int, y: Int, width: Int, height: Int
    public init(x: Int, y: Int, width: Int, height: Int) { self.x = x; self.y = y; self.width = width; self.height = height }
}

/// A1111's "inpaint only masked" region: the mask's bounding box grown by `padding`, then grown
/// along one side to the aspect ratio of `width`×`height` (centred, shifted to stay inside the
/// image). Nil when the mask is empty.
public func inpaintRegion(mask: Tensor, padding: Int, width: Int, height: Int) -> PixelRegion? {
    let h = mask.shape[2], w = mask.shape[3]
    var x0 = w, y0 = h, x1 = -1, y1 = -1
    for y in 0..<h { for x in 0..<w where mask.data[y * w + x] >= 0.5 {
        x0 = min(x0, x); y0 = min(y0, y); x1 = max(x1, x); y1 = max(y1, y)
    } }
    guard x1 >= 0 else { return nil }
    x0 = max(0, x0 - padding); y0 = max(0, y0 - padding)
    x1 = min(w, x1 + 1 + padding); y1 = min(h, y1 + 1 + padding)
    var rw = x1 - x0, rh = y1 - y0
    let target = Double(width) / Double(height)
    if Double(rw) / Double(rh) < target {
        rw = min(w, Int((Double(rh) * target).rounded()))
    } else {
        rh = min(h, Int((Double(rw) / target).rounded()))
    }
    var x = (x0 + x1) / 2 - rw / 2, y = (y0 + y1) / 2 - rh / 2
    x = min(max(0, x), w - rw); y = min(max(0, y), h - rh)
    return PixelRegion(x: x, y: y, width: rw, height: rh)
}

/// The pixels of `region`.
public func cropped(_ png: PNGImage, _ r: PixelRegion) -> PNGImage {
    var pixels = [UInt8](repeating: 0, count: r.width * r.height * 3)
    for y in 0..<r.height { for x in 0..<r.width { for c in 0..<3 {
        pixels[(y * r.width + x) * 3 + c] = png.pixels[((r.y + y) * png.width + r.x + x) * png.channels + (png.channels >= 3 ? c : 0)]
    } } }
    return PNGImage(width: r.width, height: r.height, channels: 3, pixels: pixels)
}

/// A mask as a black/white image (white = 1), for resizing with the image routines.
public func maskImage(_ mask: Tensor) -> PNGImage {
    let h = mask.shape[2], w = mask.shape[3]
    var pixels = [UInt8](repeating: 0, count: w * h * 3)
    for i in 0..<w * h { let v: UInt8 = mask.data[i] >= 0.5 ? 255 : 0; pixels[i * 3] = v; pixels[i * 3 + 1] = v; pixels[i * 3 + 2] = v }
    return PNGImage(width: w, height: h, channels: 3, pixels: pixels)
}

/// `original` with `region` replaced by `patch` (resized to the region).
public func pasted(_ patch: PNGImage, into original: PNGImage, at r: PixelRegion) -> PNGImage {
    let fitted = resizedImage(patch, width: r.width, height: r.height)
    var pixels = [UInt8](repeating: 0, count: original.width * original.height * 3)
    for y in 0..<original.height { for x in 0..<original.width { for c in 0..<3 {
        let inside = x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height
        pixels[(y * original.width + x) * 3 + c] = inside
            ? fitted.pixels[((y - r.y) * r.width + x - r.x) * 3 + c]
            : original.pixels[(y * original.width + x) * original.channels + (original.channels >= 3 ? c : 0)]
    } } }
    return PNGImage(width: original.width, height: original.height, channels: 3, pixels: pixels)
}

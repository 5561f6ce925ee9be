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

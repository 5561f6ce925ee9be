// `ldm txt2img`, `ldm img2img`, `ldm inpaint`: thin wrappers that read images and masks and hand a
// GenerationRequest to the pipeline.

import ArgumentParser
import Foundation
import LDMCore
import LDMDiffusion
import LDMIO
import LDMModels

struct Txt2Img: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "txt2img", abstract: "Generate images from a prompt.")
    @Argument(help: "The prompt (the same as --prompt).") var positionalPrompt: String?
    @OptionGroup var model: ModelArguments
    @OptionGroup var generate: GenerateArguments

    func run() throws {
        var g = generate
        if let positionalPrompt {
            if g.prompt != nil { throw ValidationError("give the prompt once: as an argument or with --prompt") }
            g.prompt = positionalPrompt
        }
        try runGeneration(model: model, args: g, label: "txt2img")
    }
}

/// An RGB image [1, 3, H, W] in [-1, 1] from a PNG (alpha dropped, as PIL's convert("RGB")).
func loadImageTensor(_ path: String) throws -> (Tensor, PNGImage) {
    let png = try PNGImage.read(path: path)
    let h = png.height, w = png.width, plane = h * w, ch = png.channels
    let t = Tensor(uninitialized: [1, 3, h, w])
    for p in 0..<plane { for c in 0..<3 {
        t.data[c * plane + p] = 2 * (Float(png.pixels[p * ch + c]) / 255) - 1
    } }
    return (t, png)
}

/// A mask [1, 1, H, W] of 0/1 from a PNG: grey (PIL's "L" conversion) ≥ 0.5 means regenerate.
func loadMask(_ path: String) throws -> Tensor {
    let png = try PNGImage.read(path: path)
    let plane = png.width * png.height, ch = png.channels
    let t = Tensor(uninitialized: [1, 1, png.height, png.width])
    for p in 0..<plane {
        let r = Int(png.pixels[p * ch]), g = Int(png.pixels[p * ch + 1]), b = Int(png.pixels[p * ch + 2])
        let l = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16
        t.data[p] = Float(l) / 255 >= 0.5 ? 1 : 0
    }
    return t
}

struct Img2Img: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "img2img", abstract: "Redraw an image guided by a prompt.")
    @Option(help: "The starting PNG (its size is the output size; multiples of 8).") var image: String
    @Option(help: "How much to change, in (0, 1]: 1 ignores the image's content.") var strength: Double
    @OptionGroup var model: ModelArguments
    @OptionGroup var generate: GenerateArguments

    func validate() throws {
        if !(strength > 0 && strength <= 1) { throw ValidationError("--strength must be in (0, 1] (got \(strength))") }
    }

    func run() throws {
        let (tensor, _) = try loadImageTensor(image)
        guard tensor.shape[2] % 8 == 0, tensor.shape[3] % 8 == 0 else {
            throw ValidationError("the image is \(tensor.shape[3])×\(tensor.shape[2]); width and height must be multiples of 8")
        }
        try runGeneration(model: model, args: generate, label: "img2img", prepare: { r in
            r.initImage = tensor
            r.strength = strength
        }, extraSettings: [("Denoising strength", String(format: "%g", strength))])
    }
}

struct Inpaint: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inpaint", abstract: "Regenerate the masked part of an image (white = regenerate), or extend it (outpaint).")
    @Option(help: "The PNG to edit.") var image: String
    @Option(help: "Mask PNG of the same size: white regenerates, black keeps.") var mask: String?
    @Option(help: "Outpaint: grow the canvas by left,top,right,bottom pixels (multiples of 8) and fill the new area.")
    var extend: String?
    @Option(help: "How much to change inside the mask, in (0, 1].") var strength: Double = 1
    @Option(help: "Pixels of the feathered edge inside the mask boundary.") var feather: Int = 4
    @OptionGroup var model: ModelArguments
    @OptionGroup var generate: GenerateArguments

    func validate() throws {
        if mask == nil && extend == nil { throw ValidationError("give --mask PNG, --extend L,T,R,B, or both") }
        if !(strength > 0 && strength <= 1) { throw ValidationError("--strength must be in (0, 1] (got \(strength))") }
        if feather < 0 { throw ValidationError("--feather must not be negative") }
    }

    func run() throws {
        var (tensor, png) = try loadImageTensor(image)
        var m: Tensor
        if let mask {
            m = try loadMask(mask)
            guard m.shape[2] == tensor.shape[2] && m.shape[3] == tensor.shape[3] else {
                throw ValidationError("the mask is \(m.shape[3])×\(m.shape[2]) but the image is \(tensor.shape[3])×\(tensor.shape[2])")
            }
        } else {
            m = Tensor(zeros: [1, 1, tensor.shape[2], tensor.shape[3]])
        }
        if let extend {
            let parts = extend.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 4, let l = parts[0], let t = parts[1], let r = parts[2], let b = parts[3],
                  [l, t, r, b].allSatisfy({ $0 >= 0 && $0 % 8 == 0 }), l + t + r + b > 0 else {
                throw ValidationError("--extend must be four multiples of 8, left,top,right,bottom (got \(extend))")
            }
            (tensor, png, m) = extendCanvas(tensor, png, m, left: l, top: t, right: r, bottom: b)
        }
        guard tensor.shape[2] % 8 == 0, tensor.shape[3] % 8 == 0 else {
            throw ValidationError("the image is \(tensor.shape[3])×\(tensor.shape[2]); width and height must be multiples of 8")
        }
        let original = png
        let maskTensor = m
        var extra: [(String, String)] = [("Denoising strength", String(format: "%g", strength)), ("Mask blur", "\(feather)")]
        if let extend { extra.append(("Outpaint", extend)) }
        try runGeneration(model: model, args: generate, label: "inpaint", prepare: { r in
            r.initImage = tensor
            r.mask = maskTensor
            r.strength = strength
        }, extraSettings: extra, finish: { images, i in
            restoreUnmasked(generated: pngImage(images, index: i), original: original, mask: maskTensor, feather: feather)
        })
    }
}

/// Grows the canvas: the new border repeats the nearest edge pixel (a neutral start for the model)
/// and is marked for regeneration in the mask.
func extendCanvas(_ x: Tensor, _ png: PNGImage, _ mask: Tensor, left: Int, top: Int, right: Int, bottom: Int) -> (Tensor, PNGImage, Tensor) {
    let h = x.shape[2], w = x.shape[3], nh = h + top + bottom, nw = w + left + right
    let y = Tensor(uninitialized: [1, 3, nh, nw]), m = Tensor(uninitialized: [1, 1, nh, nw])
    var pixels = [UInt8](repeating: 0, count: nh * nw * 3)
    for r in 0..<nh { for c in 0..<nw {
        let sr = min(max(r - top, 0), h - 1), sc = min(max(c - left, 0), w - 1)
        let inside = r >= top && r < top + h && c >= left && c < left + w
        for ch in 0..<3 {
            y.data[ch * nh * nw + r * nw + c] = x.data[ch * h * w + sr * w + sc]
            pixels[(r * nw + c) * 3 + ch] = png.pixels[(sr * w + sc) * png.channels + ch]
        }
        m.data[r * nw + c] = inside ? mask.data[sr * w + sc] : 1
    } }
    return (y, PNGImage(width: nw, height: nh, channels: 3, pixels: pixels), m)
}

/// Outside the mask the output is the input, exactly; inside, the generated pixels fade in over
/// `feather` pixels from the mask boundary (w = min(1, d / (feather + 1)), d the city-block distance
/// to the nearest kept pixel).
func restoreUnmasked(generated: PNGImage, original: PNGImage, mask: Tensor, feather: Int) -> PNGImage {
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
            let o = original.pixels[i * original.channels + c], g = generated.pixels[i * 3 + c]
            if d[i] == 0 { pixels[i * 3 + c] = o; continue }
            let wgt = min(1, Float(d[i]) / Float(feather + 1))
            pixels[i * 3 + c] = UInt8((Float(o) * (1 - wgt) + Float(g) * wgt).rounded())
        }
    }
    return PNGImage(width: w, height: h, channels: 3, pixels: pixels)
}

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize", abstract: "Print the token ids the text encoder receives for a text.")
    @OptionGroup var model: ModelArguments
    @Argument(help: "The text.") var text: String

    func run() throws {
        let folder = try model.folder()
        let tok = try CLIPTokenizer.load(folder: folder.appendingPathComponent("tokenizer"))
        let (ids, truncated) = tok.encode(text)
        print(ids.map(String.init).joined(separator: " "))
        if truncated {
            FileHandle.standardError.write("warning: the text is longer than \(tok.maxLength) tokens and was cut\n".data(using: .utf8)!)
        }
    }
}

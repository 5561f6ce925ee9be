// `ldm txt2img`, `ldm img2img`, `ldm inpaint`: thin wrappers that read images and masks and hand a
// GenerationRequest to the pipeline.

import ArgumentParser
import Foundation
import LDMCore
import LDMDiffusion
import LDMIO
import LDMModels
import LDMService

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

/// A PNG and its tensor [1, 3, H, W] in [-1, 1].
func loadImageTensor(_ path: String) throws -> (Tensor, PNGImage) {
    let png = try PNGImage.read(path: path)
    return (imageTensor(png), png)
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
        let png = try PNGImage.read(path: image)
        try runGeneration(model: model, args: generate, label: "img2img", prepare: { job in
            job.initImage = png
            job.strength = strength
            job.extraSettings = [("Denoising strength", String(format: "%g", strength))]
        })
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
            m = maskTensor(try PNGImage.read(path: mask))
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
        let mask = m
        var extra: [(String, String)] = [("Denoising strength", String(format: "%g", strength)), ("Mask blur", "\(feather)")]
        if let extend { extra.append(("Outpaint", extend)) }
        try runGeneration(model: model, args: generate, label: "inpaint", prepare: { job in
            job.initImage = original
            job.mask = mask
            job.strength = strength
            job.feather = feather
            job.extraSettings = extra
        })
    }
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

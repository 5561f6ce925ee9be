// `ldm bench latent-vs-pixel`: what running diffusion in a VAE's latent space saves against running
// the same U-Net family on the pixels themselves, at equal output resolution.
//
// Each row pair has one U-Net configuration twice: in latent space (the VAE's grid, H/f × W/f) and
// in pixel space (3 channels in and out at H × W; same widths, depth and attention levels). Per row:
//   unet_gflops      one U-Net call of batch 1, as FlopCounterMode counts it (FlopCounter.swift)
//   step_seconds     one denoising step with classifier-free guidance: one U-Net call of batch 2
//   image_seconds    N · step + text encoding (prompt and negative prompt) + VAE decode (latent only)
//   img2img_seconds  image_seconds + VAE encode of the init image (latent only), at strength 1
//   peak_bytes       most tensor bytes during the step (weights included)
// A call runs whole when its FLOPs are at most `wholeCallLimit`; larger calls (pixel space at
// SD widths: tens of TFLOP) are extrapolated from sampled blocks (BlockSampling.swift) without
// allocating their activations; such rows say `measured: false` and why.

import Foundation
import LDMCore
import LDMDiffusion
import LDMModels

/// One row of the latent-vs-pixel report.
public struct LatentVsPixelRow: Codable, Sendable {
    /// Family and output resolution ("sd1.x 512×512").
    public var name: String
    /// "latent" or "pixel".
    public var space: String
    /// Output image height and width in pixels.
    public var resolution: Int
    /// Height and width of the grid the U-Net works on.
    public var unetResolution: Int
    /// U-Net parameters.
    public var parameters: Int
    /// GFLOP of one U-Net call, batch 1.
    public var unetGFLOPs: Double
    /// Seconds of one guided denoising step (U-Net call of batch 2).
    public var stepSeconds: Double
    /// Seconds of encoding the prompt and the negative prompt.
    public var textSeconds: Double
    /// Seconds of one VAE decode (0 in pixel space).
    public var vaeDecodeSeconds: Double
    /// Seconds of one VAE encode (0 in pixel space).
    public var vaeEncodeSeconds: Double
    /// steps · step + text + decode.
    public var imageSeconds: Double
    /// imageSeconds + encode.
    public var img2imgSeconds: Double
    /// Most tensor bytes held during the step (estimated when not measured).
    public var peakBytes: Int
    /// Whether every time in the row was measured on whole calls.
    public var measured: Bool
    /// How the figures were obtained.
    public var note: String

    enum CodingKeys: String, CodingKey {
        case name, space, resolution, parameters, measured, note
        case unetResolution = "unet_resolution", unetGFLOPs = "unet_gflops", stepSeconds = "step_seconds"
        case textSeconds = "text_seconds", vaeDecodeSeconds = "vae_decode_seconds", vaeEncodeSeconds = "vae_encode_seconds"
        case imageSeconds = "image_seconds", img2imgSeconds = "img2img_seconds", peakBytes = "peak_bytes"
    }
}

/// The whole report: rows in (latent, pixel) pairs.
public struct LatentVsPixelReport: Codable, Sendable {
    public var rows: [LatentVsPixelRow]
    /// Denoising steps per image.
    public var steps: Int
    /// The BLAS kernel that ran.
    public var blas: String
    /// Remarks (skipped rows, how extrapolation works).
    public var notes: [String]
}

/// What to run.
public struct LatentVsPixelOptions {
    /// Denoising steps per image.
    public var steps: Int
    /// Tiny configurations, so the whole report takes seconds (for tests).
    public var quick: Bool
    /// A diffusers model folder for the model row pair, with the name shown for it; nil skips it.
    public var model: (folder: URL, name: String)?
    /// Output resolution of the model row pair.
    public var modelResolution: Int
    /// Calls with more FLOPs than this are extrapolated from sampled blocks.
    public var wholeCallLimit: Double
    public var sampler: BlockSampler
    /// Progress lines.
    public var log: (String) -> Void

    public init(steps: Int = 20, quick: Bool = false, model: (folder: URL, name: String)? = nil,
                log: @escaping (String) -> Void = { _ in }) {
        self.steps = steps; self.quick = quick; self.model = model; self.log = log
        modelResolution = 64
        if quick {
            wholeCallLimit = 4e7
            sampler = BlockSampler(tileBudget: 2e6, attentionBudget: 2e6, maxKeys: 256, minimumTile: 4, repeats: 1, log: log)
        } else {
            wholeCallLimit = 4e12
            sampler = BlockSampler(log: log)
        }
    }
}

/// Errors of the latent-vs-pixel report.
public enum LatentVsPixelError: Error, CustomStringConvertible {
    case resolution(String)
    /// The model folder cannot be compared (a pixel-space model has no latent twin).
    case model(String)
    public var description: String { switch self { case let .resolution(m), let .model(m): return m } }
}

/// One U-Net family at some resolutions.
struct Family {
    var name: String
    /// Families sharing a group share their text encoder and VAE (and their timings).
    var group: String
    var unet: UNetConfig, vae: VAEConfig, text: CLIPTextConfig
    var resolutions: [Int]
    var pipeline: StableDiffusionPipeline?
    var contextLength: Int { text.maxPositionEmbeddings }
}

/// The same configuration without attention at the top (full-resolution) level.
func withoutTopAttention(_ c: UNetConfig) -> UNetConfig {
    var c = c
    c.downBlockTypes[0] = "DownBlock2D"
    c.upBlockTypes[c.upBlockTypes.count - 1] = "UpBlock2D"
    return c
}

/// The pixel-space twin: 3 channels in and out, nothing else changed.
func pixelTwin(_ c: UNetConfig) -> UNetConfig {
    var c = c
    c.inChannels = 3; c.outChannels = 3
    return c
}

/// Runs the report.
public func runLatentVsPixel(_ o: LatentVsPixelOptions) throws -> LatentVsPixelReport {
    var families: [Family] = []
    var notes: [String] = []
    if let m = o.model {
        o.log("latent-vs-pixel: loading \(m.folder.path)")
        let p = try StableDiffusionPipeline(folder: m.folder)
        guard let vae = p.vae else {
            throw LatentVsPixelError.model("\(m.folder.path) is a pixel-space model (no vae/ folder); latent-vs-pixel needs a latent one")
        }
        families.append(Family(name: m.name, group: "model", unet: p.unet.config, vae: vae.config, text: p.textEncoder.config,
                               resolutions: [o.modelResolution], pipeline: p))
    }
    if o.quick {
        let unet = UNetConfig(sampleSize: 8, downBlockTypes: ["CrossAttnDownBlock2D", "DownBlock2D"],
                              upBlockTypes: ["UpBlock2D", "CrossAttnUpBlock2D"], blockOutChannels: [16, 32], layersPerBlock: 1,
                              normNumGroups: 8, crossAttentionDim: 32, attentionHeadDim: .one(2))
        let vae = VAEConfig(blockOutChannels: [8, 8, 16], layersPerBlock: 1, normNumGroups: 8, sampleSize: 32)
        let text = CLIPTextConfig(vocabSize: 100, hiddenSize: 32, intermediateSize: 37, numHiddenLayers: 1, numAttentionHeads: 4)
        families.append(Family(name: "tiny", group: "tiny", unet: unet, vae: vae, text: text, resolutions: [16, 32]))
        families.append(Family(name: "tiny no top attn", group: "tiny", unet: withoutTopAttention(unet), vae: vae, text: text,
                               resolutions: [16, 32]))
    } else {
        let sd = KnownArchitectures.sd15UNet, vae = KnownArchitectures.sd15VAE, text = KnownArchitectures.sd15Text
        families.append(Family(name: "sd1.x", group: "sd1.x", unet: sd, vae: vae, text: text, resolutions: [256, 512]))
        families.append(Family(name: "sd1.x no top attn", group: "sd1.x", unet: withoutTopAttention(sd), vae: vae, text: text,
                               resolutions: [256, 512]))
    }
    var runner = ReportRunner(options: o)
    var rows: [LatentVsPixelRow] = []
    for f in families { rows += try runner.rows(f) }
    notes.append("step = one U-Net call of batch 2 (classifier-free guidance); image = \(o.steps) steps + text encoding "
        + "+ VAE decode (latent rows); img2img adds the VAE encode.")
    if rows.contains(where: { !$0.measured }) {
        notes.append("measured: false = extrapolated from blocks timed alone on tiles of their input, scaled to the full size "
            + "(self-attention scaled with tokens²); peak memory then estimated as weights + skip connections + the largest "
            + "block's working set.")
    }
    return LatentVsPixelReport(rows: rows, steps: o.steps, blas: blasDescription, notes: notes)
}

/// Times the networks of one report, keeping what families of a group share.
struct ReportRunner {
    let options: LatentVsPixelOptions
    var textTimes: [String: Double] = [:]
    var vaeTimes: [String: (decode: Timed, encode: Timed)] = [:]
    var vaeModels: [String: AutoencoderKL] = [:]

    init(options: LatentVsPixelOptions) { self.options = options }

    /// Seconds, peak bytes, and whether measured whole.
    struct Timed {
        var seconds: Double
        var peakBytes: Int
        var measured: Bool
        var note: String
    }

    func log(_ s: String) { options.log(s) }

    /// Times `body` once (after one warm-up call when it is under 200 GFLOP; best of 3 under 10 GFLOP).
    func timeWhole(flops: Double, _ body: () throws -> Void) rethrows -> (Double, Int) {
        if flops < 2e11 { try body() }
        MemoryStatistics.resetPeak()
        var best = Double.infinity
        for _ in 0..<(flops < 1e10 ? 3 : 1) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return (best, MemoryStatistics.peakBytes)
    }

    mutating func rows(_ f: Family) throws -> [LatentVsPixelRow] {
        let unetFactor = 1 << (f.unet.blockOutChannels.count - 1), vaeFactor = f.vae.downsamplingFactor
        for r in f.resolutions where r % (unetFactor * vaeFactor) != 0 {
            throw LatentVsPixelError.resolution("\(f.name): resolution \(r) is not a multiple of \(unetFactor * vaeFactor) "
                + "(VAE factor \(vaeFactor) × U-Net factor \(unetFactor))")
        }
        let text = try textSeconds(f)
        var latentUNet: UNet2DConditionModel? = f.pipeline?.unet
        var pixelUNet: UNet2DConditionModel?
        var out: [LatentVsPixelRow] = []
        for r in f.resolutions {
            let vae = try vaeTimes(f, resolution: r)
            let name = "\(f.name) \(r)×\(r)"
            // Latent space.
            let latentConfig = f.unet
            let l = r / vaeFactor
            let lt = try unetStep(name + " latent", latentConfig, size: l, contextLength: f.contextLength, model: &latentUNet)
            out.append(row(name, "latent", r, l, latentConfig, f.contextLength, lt, text, vae))
            // Pixel space.
            let pixelConfig = pixelTwin(f.unet)
            let pt = try unetStep(name + " pixel", pixelConfig, size: r, contextLength: f.contextLength, model: &pixelUNet)
            out.append(row(name, "pixel", r, r, pixelConfig, f.contextLength, pt, text, nil))
        }
        return out
    }

    func row(_ name: String, _ space: String, _ r: Int, _ grid: Int, _ config: UNetConfig, _ contextLength: Int, _ step: Timed,
             _ text: Double, _ vae: (decode: Timed, encode: Timed)?) -> LatentVsPixelRow {
        let blocks = unetBlocks(config: config, batch: 1, height: grid, width: grid, contextLength: contextLength)
        let flops = blocks.reduce(0) { $0 + $1.flops }
        let decode = vae?.decode.seconds ?? 0, encode = vae?.encode.seconds ?? 0
        let image = Double(options.steps) * step.seconds + text + decode
        var notes = [step.note]
        if let vae { notes += [vae.decode.note, vae.encode.note] }
        let measured = step.measured && (vae.map { $0.decode.measured && $0.encode.measured } ?? true)
        return LatentVsPixelRow(name: name, space: space, resolution: r, unetResolution: grid, parameters: parameterCount(blocks),
                                unetGFLOPs: flops / 1e9, stepSeconds: step.seconds, textSeconds: text, vaeDecodeSeconds: decode,
                                vaeEncodeSeconds: encode, imageSeconds: image, img2imgSeconds: image + encode,
                                peakBytes: step.peakBytes, measured: measured, note: notes.joined(separator: "; "))
    }

    /// One guided step (U-Net batch 2): whole when small enough (building `model` on first use), else sampled.
    func unetStep(_ label: String, _ config: UNetConfig, size: Int, contextLength: Int,
                  model: inout UNet2DConditionModel?) throws -> Timed {
        let blocks = unetBlocks(config: config, batch: 2, height: size, width: size, contextLength: contextLength)
        let flops = blocks.reduce(0) { $0 + $1.flops }
        if flops <= options.wholeCallLimit {
            if model == nil {
                log("latent-vs-pixel: building a \(label.hasSuffix("pixel") ? "pixel-space" : "latent-space") U-Net with random weights")
                let m = try UNet2DConditionModel(config: config)
                randomize(m, seed: 0)
                model = m
            }
            let unet = model!
            log(String(format: "latent-vs-pixel: %@: U-Net step %d×%d, batch 2, %.4g GFLOP, whole", label, size, size, flops / 1e9))
            var rng = SwiftRandomSource(seed: 1)
            let c = config.inChannels
            let x = Tensor(shape: [2, c, size, size], rng.normal(count: 2 * c * size * size))
            let ctx = Tensor(shape: [2, contextLength, config.crossAttentionDim],
                             rng.normal(count: 2 * contextLength * config.crossAttentionDim))
            let (t, peak) = timeWhole(flops: flops) { _ = unet(x, timesteps: [500, 500], context: ctx) }
            return Timed(seconds: t, peakBytes: peak, measured: true, note: "step measured whole")
        }
        log(String(format: "latent-vs-pixel: %@: U-Net step %d×%d, batch 2, %.4g GFLOP, extrapolated from sampled blocks",
                   label, size, size, flops / 1e9))
        let s = options.sampler.estimate(blocks, weightBytes: parameterCount(blocks) * MemoryLayout<Float>.stride)
        return Timed(seconds: s.seconds, peakBytes: s.peakBytes, measured: false,
                     note: "step extrapolated from \(s.sampledBlocks) distinct of \(s.blocks) blocks timed on tiles, peak estimated")
    }

    /// Prompt + negative prompt through the text encoder, once per group.
    mutating func textSeconds(_ f: Family) throws -> Double {
        if let t = textTimes[f.group] { return t }
        let model: CLIPTextModel
        if let p = f.pipeline { model = p.textEncoder } else {
            model = try CLIPTextModel(config: f.text)
            randomize(model, seed: 2)
        }
        let l = f.contextLength, vocab = f.text.vocabSize
        let ids = (0..<2).map { b in (0..<l).map { Int32(($0 * 7 + b) % vocab) } }
        let flops = totalFLOPs(textEncoderFLOPs(config: f.text, batch: 2, tokens: l))
        log(String(format: "latent-vs-pixel: %@: text encoder, 2 × %d tokens, %.4g GFLOP, whole", f.group, l, flops / 1e9))
        let (t, _) = try timeWhole(flops: flops) { _ = try model(ids) }
        textTimes[f.group] = t
        return t
    }

    /// VAE decode and encode of one image at `resolution`, once per group and resolution.
    mutating func vaeTimes(_ f: Family, resolution r: Int) throws -> (decode: Timed, encode: Timed) {
        let key = "\(f.group) \(r)"
        if let v = vaeTimes[key] { return v }
        let l = r / f.vae.downsamplingFactor
        let decodeBlocks = vaeDecoderBlocks(config: f.vae, batch: 1, latentHeight: l, latentWidth: l)
        let encodeBlocks = vaeEncoderBlocks(config: f.vae, batch: 1, height: r, width: r)
        var rng = SwiftRandomSource(seed: 4)
        func run(_ what: String, _ blocks: [NetworkBlock], _ body: (AutoencoderKL) -> Void) throws -> Timed {
            let flops = blocks.reduce(0) { $0 + $1.flops }
            if flops <= options.wholeCallLimit {
                let vae = try vaeModel(f)
                log(String(format: "latent-vs-pixel: %@: VAE %@ %d×%d, %.4g GFLOP, whole", f.group, what, r, r, flops / 1e9))
                let (t, peak) = timeWhole(flops: flops) { body(vae) }
                return Timed(seconds: t, peakBytes: peak, measured: true, note: "VAE \(what) measured whole")
            }
            log(String(format: "latent-vs-pixel: %@: VAE %@ %d×%d, %.4g GFLOP, extrapolated from sampled blocks", f.group, what, r, r, flops / 1e9))
            let s = options.sampler.estimate(blocks, weightBytes: parameterCount(blocks) * MemoryLayout<Float>.stride)
            return Timed(seconds: s.seconds, peakBytes: s.peakBytes, measured: false,
                         note: "VAE \(what) extrapolated from \(s.sampledBlocks) sampled blocks")
        }
        let lc = f.vae.latentChannels
        let z = Tensor(shape: [1, lc, l, l], rng.normal(count: lc * l * l))
        let x = Tensor(shape: [1, f.vae.inChannels, r, r], rng.uniform(count: f.vae.inChannels * r * r).map { $0 * 2 - 1 })
        let decode = try run("decode", decodeBlocks) { _ = $0.decode(z) }
        let encode = try run("encode", encodeBlocks) { _ = $0.encode(x) }
        vaeTimes[key] = (decode, encode)
        return (decode, encode)
    }

    mutating func vaeModel(_ f: Family) throws -> AutoencoderKL {
        if let v = vaeModels[f.group] { return v }
        let v: AutoencoderKL
        if let p = f.pipeline, let vae = p.vae { v = vae } else {
            v = try AutoencoderKL(config: f.vae)
            randomize(v, seed: 3)
        }
        vaeModels[f.group] = v
        return v
    }
}

extension LatentVsPixelReport {
    /// The report as an aligned text table, with the notes below it.
    public var table: String {
        var cells = [["row", "space", "grid", "params", "GFLOP/call", "s/step", "s/image", "s/img2img", "peak GiB", "timing"]]
        for r in rows {
            cells.append([r.name, r.space, "\(r.unetResolution)×\(r.unetResolution)", String(format: "%.1fM", Double(r.parameters) / 1e6),
                          String(format: "%.4g", r.unetGFLOPs), String(format: "%.4g", r.stepSeconds),
                          String(format: "%.4g", r.imageSeconds), String(format: "%.4g", r.img2imgSeconds),
                          String(format: "%.3f", Double(r.peakBytes) / 1_073_741_824) + (r.measured ? "" : "*"),
                          r.measured ? "measured" : "extrapolated*"])
        }
        let widths = (0..<cells[0].count).map { j in cells.map { $0[j].count }.max() ?? 0 }
        var lines = cells.map { row in
            row.enumerated().map { j, s in
                j <= 2 || j == row.count - 1 ? s.padding(toLength: widths[j], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[j] - s.count) + s
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        for i in stride(from: 0, to: rows.count - 1, by: 2) {
            let (latent, pixel) = (rows[i], rows[i + 1])
            lines.append(String(format: "%@: pixel space costs %.1f× the FLOPs per call and %.1f× the seconds per image",
                                latent.name, pixel.unetGFLOPs / max(latent.unetGFLOPs, 1e-12),
                                pixel.imageSeconds / max(latent.imageSeconds, 1e-12)))
        }
        for r in rows where !r.measured { lines.append("* \(r.name) \(r.space): \(r.note)") }
        lines += notes
        lines.append(blas)
        return lines.joined(separator: "\n")
    }

    /// Seconds per image of each (latent, pixel) pair as bars on a log scale; extrapolated bars hatched.
    public func chart() -> BarChart {
        var groups: [BarChart.Group] = []
        var i = 0
        while i < rows.count {
            let pair = rows[i..<min(i + 2, rows.count)]
            let first = pair.first!
            let family = first.name.replacingOccurrences(of: " \(first.resolution)×\(first.resolution)", with: "")
            var label = [family]
            if family.count > 14, let cut = family.firstIndex(of: " ") {
                label = [String(family[..<cut]), String(family[family.index(after: cut)...])]
            }
            label.append("\(first.resolution)×\(first.resolution)")
            groups.append(BarChart.Group(label: label, bars: pair.map {
                BarChart.Bar(value: $0.imageSeconds, series: $0.space == "latent" ? 0 : 1, hatched: !$0.measured)
            }))
            i += 2
        }
        return BarChart(title: "SECONDS PER IMAGE, \(steps) STEPS", unit: "S", series: ["LATENT", "PIXEL"], groups: groups,
                        hatchNote: rows.contains { !$0.measured } ? "EXTRAPOLATED" : "")
    }
}

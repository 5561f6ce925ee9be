// Model files people have: single-file checkpoints (LDM layout) and LoRA files, through `ldm`.
// Fixtures: Tests/Fixtures/single-file (scripts/make_single_file_fixtures.py: diffusers'
// from_single_file reads each file back to its folder exactly, then renders the reference) and
// Tests/Fixtures/lora (scripts/make_lora_fixtures.py: W + 0.8·α/r·up·down, kohya's formula).
// Tolerance 2/255.
import XCTest
import LDMIO

final class ModelFileTests: XCTestCase {
    let prompt = "a red circle above a blue square"
    var singleFile: URL { fixtures.appendingPathComponent("single-file") }
    var loras: URL { fixtures.appendingPathComponent("lora") }

    func run(_ model: String, _ extra: [String], output: URL) throws -> RunResult {
        try ldm(["txt2img", "--model", model, "--prompt", prompt, "--negative-prompt", "green", "--steps", "5",
                 "--guidance", "7.5", "--seed", "42", "--output", output.path] + extra)
    }

    func assertImage(_ path: URL, matches reference: URL, _ label: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let d = maxDifference(try PNGImage.read(path: path.path), try PNGImage.read(path: reference.path))
        XCTAssertLessThanOrEqual(d, 2, label, file: file, line: line)
    }

    func testSingleFilesMatchDiffusers() throws {
        let dir = try temporaryFolder()
        for m in ["sd1", "sd2"] {   // sd2: OpenCLIP layout, BF16, v-prediction from its .yaml and its config
            let out = dir.appendingPathComponent("\(m).png")
            let r = try run(singleFile.appendingPathComponent("\(m)/model.safetensors").path,
                            ["--config", singleFile.appendingPathComponent("\(m)/folder").path], output: out)
            XCTAssertEqual(r.status, 0, r.stderr)
            try assertImage(out, matches: singleFile.appendingPathComponent("\(m)/txt2img-s42.png"), m)
        }
        // Without --config: architecture from shapes, SD 1.x defaults (and CLIP keys without "text_model.").
        let out = dir.appendingPathComponent("plain.png")
        let r = try run(singleFile.appendingPathComponent("sd1-plain/model.safetensors").path, ["--width", "16", "--height", "16"], output: out)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("SD 1.x defaults"), r.stderr)
        try assertImage(out, matches: singleFile.appendingPathComponent("sd1-plain/txt2img-s42.png"), "sd1-plain")
        let info = try ldm(["image", "info", out.path])
        XCTAssertTrue(info.stdout.contains("Model: model"), info.stdout)
    }

    /// SD 1.x and SD 2.x inpainting single files (9-channel U-Nets; SD 2.x in OpenCLIP layout, BF16,
    /// ε-prediction) through `ldm inpaint`, against diffusers' StableDiffusionInpaintPipeline.from_single_file: inside the mask (6 pixels in from its edge,
    /// past the feathered band; the mask is the rectangle x 18..<45, y 10..<41) within 2/255, and
    /// where the mask is black the input image exactly (ldm pastes the original back, diffusers does not).
    func testInpaintingSingleFileMatchesDiffusers() throws {
        let dir = try temporaryFolder()
        for family in ["sd1-inpaint", "sd2-inpaint"] {
        let pipelines = fixtures.appendingPathComponent("pipelines"), m = singleFile.appendingPathComponent(family)
        let out = dir.appendingPathComponent("\(family).png")
        let r = try ldm(["inpaint", "--model", m.appendingPathComponent("model.safetensors").path, "--config", m.appendingPathComponent("folder").path,
                         "--image", pipelines.appendingPathComponent("init.png").path, "--mask", pipelines.appendingPathComponent("mask.png").path,
                         "--prompt", prompt, "--negative-prompt", "green", "--steps", "5", "--guidance", "7.5", "--seed", "42", "--output", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let ours = try PNGImage.read(path: out.path), initPNG = try PNGImage.read(path: pipelines.appendingPathComponent("init.png").path)
        let reference = try PNGImage.read(path: m.appendingPathComponent("inpaint-s42.png").path)
        XCTAssertLessThanOrEqual(maxDifference(ours, reference, include: { x, y in (24..<39).contains(x) && (16..<35).contains(y) }), 2)
        let mask = try PNGImage.read(path: pipelines.appendingPathComponent("mask.png").path)
        XCTAssertEqual(maxDifference(ours, initPNG, include: { x, y in mask.pixels[(y * mask.width + x) * mask.channels] < 128 }), 0)
        XCTAssertTrue(try ldm(["inspect", m.appendingPathComponent("model.safetensors").path]).stdout.contains("inpainting (9 input channels)"))
        }
    }

    /// `ldm inspect` tells a single file, a LoRA and an embedding apart, from their tensors.
    func testInspectTellsWhatAFileIs() throws {
        let cases: [(String, [String])] = [
            (singleFile.appendingPathComponent("sd2/model.safetensors").path, ["SD 2.x single-file checkpoint", "OpenCLIP 2 layers × 32", "376 BF16"]),
            (loras.appendingPathComponent("kohya.safetensors").path, ["kohya LoRA, 9 modules", "text encoder 2, U-Net 7", "1 LoCon", "rank 2/4, alpha 1/2/4/8"]),
            (loras.appendingPathComponent("peft.safetensors").path, ["diffusers/peft LoRA, 3 modules", "rank 2, alpha 1/4"]),
            (fixtures.appendingPathComponent("prompts/shapestyle.pt").path, ["textual-inversion embedding \"shapestyle\"", "2 vectors of width 32", "step 1000"]),
        ]
        for (path, expected) in cases {
            let r = try ldm(["inspect", path])
            XCTAssertEqual(r.status, 0, r.stderr)
            for e in expected { XCTAssertTrue(r.stdout.contains(e), "\(e): \(r.stdout)") }
        }
    }

    /// `ldm convert` gives diffusers' folder key for key and value for value, in the file's own element type.
    func testConvertMatchesDiffusersKeyByKey() throws {
        let dir = try temporaryFolder()
        for m in ["sd1", "sd2"] {
            let out = dir.appendingPathComponent(m)
            let r = try ldm(["convert", singleFile.appendingPathComponent("\(m)/model.safetensors").path,
                             "--config", singleFile.appendingPathComponent("\(m)/folder").path, "--out", out.path])
            XCTAssertEqual(r.status, 0, r.stderr)
            for (part, name) in [("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"), ("text_encoder", "model")] {
                let ours = try SafeTensorsFile(path: out.appendingPathComponent("\(part)/\(name).safetensors").path)
                let theirs = try SafeTensorsFile(path: singleFile.appendingPathComponent("\(m)/folder/\(part)/\(name).safetensors").path)
                func key(_ n: String) -> String { part == "text_encoder" && !n.hasPrefix("text_model.") ? "text_model." + n : n }
                let want = Dictionary(uniqueKeysWithValues: theirs.names.filter { !$0.hasSuffix("position_ids") }.map { (key($0), $0) })
                XCTAssertEqual(Set(ours.names), Set(want.keys), "\(m)/\(part)")
                for n in ours.names {
                    guard let t = want[n] else { continue }
                    XCTAssertEqual(try ours.floats(n), try theirs.floats(t), "\(m)/\(part)/\(n)")
                    XCTAssertEqual(try ours.info(n).dtype, m == "sd1" ? .f16 : .bf16)
                }
            }
            // The converted folder draws the same image.
            let png = dir.appendingPathComponent("\(m).png")
            XCTAssertEqual(try run(out.path, [], output: png).status, 0)
            try assertImage(png, matches: singleFile.appendingPathComponent("\(m)/txt2img-s42.png"), "converted \(m)")
        }
        let again = try ldm(["convert", singleFile.appendingPathComponent("sd1/model.safetensors").path, "--out", dir.appendingPathComponent("sd1").path])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("already exists"), again.stderr)
    }

    /// Single file → folder → single file: every tensor the model uses comes back bit for bit.
    /// Not carried by a diffusers folder, so not written back: the schedule buffers, model_ema.*,
    /// OpenCLIP's logit_scale and text_projection; SD 2.x's last OpenCLIP block (dropped on reading,
    /// as diffusers does) comes back as zeros. The v-prediction SD 2.x file gets a v_pred marker.
    /// Both copies draw the reference image.
    func testConvertToSingleFileAndBack() throws {
        let dir = try temporaryFolder()
        for m in ["sd1", "sd2"] {
            let original = singleFile.appendingPathComponent("\(m)/model.safetensors")
            let folder = dir.appendingPathComponent(m), back = dir.appendingPathComponent("\(m)-back.safetensors")
            XCTAssertEqual(try ldm(["convert", original.path, "--config", singleFile.appendingPathComponent("\(m)/folder").path,
                                    "--out", folder.path]).status, 0)
            let r = try ldm(["convert", folder.path, "--to", "single-file", "--out", back.path])
            XCTAssertEqual(r.status, 0, r.stderr)
            let a = try SafeTensorsFile(path: original.path), b = try SafeTensorsFile(path: back.path)
            let lastBlock = "cond_stage_model.model.transformer.resblocks.2."
            var compared = 0
            for name in a.names {
                let carried = !(name == "alphas_cumprod" || name.hasPrefix("model_ema.") || name.hasSuffix("logit_scale")
                                || name.hasSuffix("text_projection") || name.hasSuffix("position_ids"))
                XCTAssertEqual(b.names.contains(name), carried, "\(m): \(name)")
                guard carried else { continue }
                XCTAssertEqual(try b.info(name).dtype, try a.info(name).dtype, name)
                XCTAssertEqual(try b.info(name).shape, try a.info(name).shape, name)
                if m == "sd2" && name.hasPrefix(lastBlock) {
                    XCTAssertTrue(try b.rawBytes(name).allSatisfy { $0 == 0 }, name)
                } else {
                    XCTAssertEqual(try b.rawBytes(name), try a.rawBytes(name), "\(m): \(name)")
                    compared += 1
                }
            }
            XCTAssertGreaterThan(compared, 300)
            XCTAssertEqual(Set(b.names).subtracting(a.names), m == "sd2" ? ["v_pred"] : [])
            let png = dir.appendingPathComponent("\(m)-back.png")
            let g = try run(back.path, ["--config", singleFile.appendingPathComponent("\(m)/folder").path], output: png)
            XCTAssertEqual(g.status, 0, g.stderr)
            try assertImage(png, matches: singleFile.appendingPathComponent("\(m)/txt2img-s42.png"), "\(m) round trip")
        }
        let again = try ldm(["convert", dir.appendingPathComponent("sd1").path, "--to", "single-file", "--out", dir.appendingPathComponent("sd1-back.safetensors").path])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("already exists"), again.stderr)
    }

    func testLoRAMatchesKohyaFormula() throws {
        let dir = try temporaryFolder()
        let tiny = fixtures.appendingPathComponent("models/tiny-sd").path
        for (name, args) in [("kohya-w08", ["--lora", loras.appendingPathComponent("kohya.safetensors").path + ":0.8"]),
                             ("peft-w08", ["--lora", loras.appendingPathComponent("peft.safetensors").path + ":0.8"])] {
            let out = dir.appendingPathComponent("\(name).png")
            let r = try run(tiny, ["--sampler", "ddim"] + args, output: out)
            XCTAssertEqual(r.status, 0, r.stderr)
            try assertImage(out, matches: loras.appendingPathComponent("\(name).png"), name)
        }
        // Both at once, the kohya one through a prompt tag in --lora-dir; the tag stays in the PNG's prompt.
        let out = dir.appendingPathComponent("both.png")
        let r = try ldm(["txt2img", "--model", tiny, "--sampler", "ddim", "--prompt", prompt + " <lora:kohya:0.8>",
                         "--negative-prompt", "green", "--steps", "5", "--guidance", "7.5", "--seed", "42", "--output", out.path,
                         "--lora-dir", loras.path, "--lora", loras.appendingPathComponent("peft.safetensors").path + ":0.8"])
        XCTAssertEqual(r.status, 0, r.stderr)
        try assertImage(out, matches: loras.appendingPathComponent("both-w08.png"), "both")
        XCTAssertTrue(try ldm(["image", "info", out.path]).stdout.contains("<lora:kohya:0.8>"))
        // Without a LoRA the base image comes back (the weights were restored / never touched).
        let base = dir.appendingPathComponent("base.png")
        XCTAssertEqual(try run(tiny, ["--sampler", "ddim"], output: base).status, 0)
        try assertImage(base, matches: fixtures.appendingPathComponent("pipelines/txt2img-ddim-s42.png"), "base")
    }

    func testBadModelFilesGiveOneLine() throws {
        let dir = try temporaryFolder()
        let truncated = dir.appendingPathComponent("truncated.safetensors")
        let whole = try Data(contentsOf: singleFile.appendingPathComponent("sd1/model.safetensors"))
        try whole.prefix(whole.count / 2).write(to: truncated)
        let lora = loras.appendingPathComponent("kohya.safetensors").path
        let cases: [([String], String)] = [
            (["--model", truncated.path], "truncated"),
            (["--model", lora], "LoRA"),
            // A LoRA made for another architecture (the tiny SD1 model's LoRA on the SD2 single file).
            (["--model", singleFile.appendingPathComponent("sd2/model.safetensors").path, "--config",
              singleFile.appendingPathComponent("sd2/folder").path, "--lora", lora], "another architecture"),
            (["--model", fixtures.appendingPathComponent("models/tiny-sd").path, "--lora", dir.appendingPathComponent("none.safetensors").path], "no LoRA file"),
            (["--model", fixtures.appendingPathComponent("models/tiny-sd").path, "--lora", singleFile.appendingPathComponent("sd1/model.safetensors").path], "not a LoRA"),
        ]
        for (args, label) in cases {
            let r = try ldm(["txt2img", "--prompt", "x", "--steps", "1", "--output", dir.appendingPathComponent("o.png").path] + args)
            XCTAssertNotEqual(r.status, 0, label)
            let lines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("ldm: error") || $0.contains("Fatal") }
            XCTAssertEqual(lines.count, 1, "\(label): \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("Fatal error"), label)
        }
    }
}

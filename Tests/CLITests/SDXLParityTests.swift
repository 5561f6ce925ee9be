// SDXL, few-step (Turbo, LCM) and tiny-autoencoder runs of `ldm` against diffusers' images for the
// same arguments (tiny random models, seed 42, 64×64). Fixtures: Tests/Fixtures/sdxl, made by
// scripts/make_sdxl_fixtures.py (versions in its manifest.json). Tolerance 2/255.
import XCTest
import LDMIO

final class SDXLParityTests: XCTestCase {
    let prompt = "a red circle above a blue square"
    var models: URL { fixtures.appendingPathComponent("models") }
    var references: URL { fixtures.appendingPathComponent("sdxl") }
    var pipelines: URL { fixtures.appendingPathComponent("pipelines") }

    /// Runs `ldm command --model MODEL --prompt … --seed 42 ARGS` and compares with the reference
    /// (inside `region` only, when given: x, y, width, height).
    func check(_ reference: String, _ command: String = "txt2img", model: String, _ args: [String],
               region: (Int, Int, Int, Int)? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
        let out = try temporaryFolder().appendingPathComponent("\(reference).png")
        var all = [command, "--model", models.appendingPathComponent(model).path, "--prompt", prompt, "--seed", "42",
                   "--output", out.path] + args
        if command == "txt2img" { all += ["--width", "64", "--height", "64"] }
        let r = try ldm(all)
        XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
        guard r.status == 0 else { return r }
        let ours = try PNGImage.read(path: out.path)
        let ref = try PNGImage.read(path: references.appendingPathComponent("\(reference).png").path)
        if let (x0, y0, w, h) = region {
            var worst = 0
            for y in y0..<y0 + h { for x in x0..<x0 + w { for c in 0..<3 {
                let a = Int(ours.pixels[(y * ours.width + x) * ours.channels + c])
                let b = Int(ref.pixels[(y * ref.width + x) * ref.channels + c])
                worst = max(worst, abs(a - b))
            } } }
            XCTAssertLessThanOrEqual(worst, 2, reference, file: file, line: line)
        } else {
            XCTAssertLessThanOrEqual(maxDifference(ours, ref), 2, reference, file: file, line: line)
        }
        return r
    }

    let guided = ["--steps", "5", "--guidance", "5"]

    func testSDXLTxt2ImgWithThreeSamplersMatchesDiffusers() throws {
        for sampler in ["euler", "euler-a", "dpm++2m", "ddim"] {
            _ = try check("sdxl-txt2img-\(sampler)", model: "tiny-sdxl", guided + ["--negative-prompt", "green", "--sampler", sampler])
        }
    }

    func testSDXLNegativePromptAbsentMeansZerosAndEmptyMeansEncoded() throws {
        _ = try check("sdxl-txt2img-no-negative", model: "tiny-sdxl", guided)
        _ = try check("sdxl-txt2img-empty-negative", model: "tiny-sdxl", guided + ["--negative-prompt", ""])
    }

    func testSDXLMicroConditioningMatchesDiffusers() throws {
        _ = try check("sdxl-txt2img-sizes", model: "tiny-sdxl", guided + ["--negative-prompt", "green", "--original-size", "96x128",
                                                                          "--crop", "4,8", "--target-size", "48x64"])
        let r = try ldm(["txt2img", "--model", models.appendingPathComponent("tiny-sdxl").path, "--prompt", "x", "--crop", "4"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--crop must be X,Y"), r.stderr)
    }

    func testSDXLImg2ImgAndInpaintingMatchDiffusers() throws {
        let image = pipelines.appendingPathComponent("init.png").path, mask = pipelines.appendingPathComponent("mask.png").path
        _ = try check("sdxl-img2img", "img2img", model: "tiny-sdxl", guided + ["--negative-prompt", "green", "--image", image,
                                                                               "--strength", "0.6"])
        // diffusers returns the whole generated image; ours pastes the unmasked part back: compare
        // deep inside the mask (rows 10–40, columns 18–44, minus a 6-pixel band).
        _ = try check("sdxl-inpaint9", "inpaint", model: "tiny-sdxl-inpaint", guided + ["--negative-prompt", "green", "--image", image,
                                                                                        "--mask", mask], region: (24, 16, 15, 19))
    }

    func testSDXLRefinerSwitchMatchesDiffusersDenoisingEndAndStart() throws {
        let r = try check("sdxl-refiner", model: "tiny-sdxl", ["--steps", "10", "--guidance", "5", "--negative-prompt", "green",
                                                               "--refiner", models.appendingPathComponent("tiny-sdxl-refiner").path,
                                                               "--refiner-switch", "0.8"])
        XCTAssertTrue(r.stderr.contains("10/10"), r.stderr)
    }

    func testTurboFoldersRunOneStepWithoutGuidanceAndMatchDiffusersAtOneAndFourSteps() throws {
        for family in ["sd", "sdxl"] {
            let r = try check("\(family)-turbo-1", model: "tiny-\(family)-turbo", [])
            XCTAssertTrue(r.stderr.contains("1 step at guidance 0"), r.stderr)
            _ = try check("\(family)-turbo-4", model: "tiny-\(family)-turbo", ["--steps", "4"])
        }
    }

    func testLCMUNetAndLCMSamplerMatchDiffusers() throws {
        let r = try check("lcm-unet-4", model: "tiny-lcm", [])
        XCTAssertTrue(r.stderr.contains("4 steps at guidance 8.5"), r.stderr)
        _ = try check("lcm-sampler-4", model: "tiny-sd", ["--sampler", "lcm", "--steps", "4", "--guidance", "1"])
        let n = try check("lcm-unet-4", model: "tiny-lcm", ["--negative-prompt", "green"])
        XCTAssertTrue(n.stderr.contains("negative prompt is not used"), n.stderr)
    }

    func testTinyAutoencoderAsVAEMatchesDiffusers() throws {
        let taesd = ["--vae", models.appendingPathComponent("tiny-taesd").path, "--steps", "5", "--guidance", "7.5",
                     "--negative-prompt", "green", "--sampler", "euler"]
        _ = try check("taesd-txt2img", model: "tiny-sd", taesd)
        _ = try check("taesd-img2img", "img2img", model: "tiny-sd", taesd + ["--image", pipelines.appendingPathComponent("init.png").path,
                                                                              "--strength", "0.6"])
        let bad = try ldm(["txt2img", "--model", models.appendingPathComponent("tiny-sd").path, "--prompt", "x",
                           "--vae", models.appendingPathComponent("tiny-sd").path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--vae must be an autoencoder folder"), bad.stderr)
    }

    func testPreviewsDecodeWithTheTinyAutoencoder() throws {
        let dir = try temporaryFolder()
        let out = dir.appendingPathComponent("p.png"), taesd = models.appendingPathComponent("tiny-taesd").path
        let r = try ldm(["txt2img", "--model", models.appendingPathComponent("tiny-sd").path, "--prompt", prompt, "--seed", "3",
                         "--sampler", "euler", "--steps", "4", "--vae", taesd, "--preview", "2", "--preview-vae", taesd,
                         "--output", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        // The last preview (step 4) is the final latents through the same decoder: the image itself.
        let preview = try PNGImage.read(path: dir.appendingPathComponent("p-preview.png").path)
        XCTAssertEqual(maxDifference(preview, try PNGImage.read(path: out.path)), 0)
        let bad = try ldm(["txt2img", "--model", models.appendingPathComponent("tiny-sd").path, "--prompt", "x", "--preview", "0"])
        XCTAssertTrue(bad.stderr.contains("--preview must be at least 1"), bad.stderr)
    }

    func testSDXLSingleFileMatchesDiffusersFromSingleFileAndConvertsBothWays() throws {
        let file = fixtures.appendingPathComponent("single-file/sdxl/model.safetensors").path
        let config = fixtures.appendingPathComponent("single-file/sdxl/folder").path
        let dir = try temporaryFolder()
        // diffusers' StableDiffusionXLPipeline.from_single_file(config=folder), guidance 7.5, 5 steps.
        let out = dir.appendingPathComponent("file.png")
        let r = try ldm(["txt2img", "--model", file, "--config", config, "--prompt", prompt, "--negative-prompt", "green",
                         "--steps", "5", "--guidance", "7.5", "--seed", "42", "--width", "64", "--height", "64", "--output", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let ref = try PNGImage.read(path: fixtures.appendingPathComponent("single-file/sdxl/txt2img-s42.png").path)
        XCTAssertLessThanOrEqual(maxDifference(try PNGImage.read(path: out.path), ref), 2)
        let inspect = try ldm(["inspect", file])
        XCTAssertTrue(inspect.stdout.contains("SDXL single-file checkpoint"), inspect.stdout + inspect.stderr)
        XCTAssertTrue(inspect.stdout.contains("text encoder 2: OpenCLIP 3 layers × 48, projection 16"), inspect.stdout)
        // Folder → single file → folder, each drawing tiny-sdxl's image.
        let single = dir.appendingPathComponent("x.safetensors"), back = dir.appendingPathComponent("back")
        let folder = models.appendingPathComponent("tiny-sdxl").path
        XCTAssertEqual(try ldm(["convert", folder, "--to", "single-file", "--out", single.path]).status, 0)
        XCTAssertEqual(try ldm(["convert", single.path, "--config", folder, "--out", back.path]).status, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: back.appendingPathComponent("text_encoder_2/model.safetensors").path))
        for (model, extra) in [(single.path, ["--config", folder]), (back.path, [])] {
            let png = dir.appendingPathComponent("rt.png")
            let g = try ldm(["txt2img", "--model", model, "--prompt", prompt, "--negative-prompt", "green", "--steps", "5",
                             "--guidance", "5", "--seed", "42", "--width", "64", "--height", "64", "--output", png.path] + extra)
            XCTAssertEqual(g.status, 0, g.stderr)
            XCTAssertLessThanOrEqual(maxDifference(try PNGImage.read(path: png.path),
                                                   try PNGImage.read(path: references.appendingPathComponent("sdxl-txt2img-euler.png").path)), 2)
            try? FileManager.default.removeItem(at: png)
        }
    }

    func testSDXLLoRAAndLCMLoRAMatchDiffusers() throws {
        let r = try check("sdxl-lora", model: "tiny-sdxl", guided + ["--negative-prompt", "green", "--sampler", "euler", "--lora",
                                                                     references.appendingPathComponent("sdxl-lora.safetensors").path + ":0.8"])
        XCTAssertTrue(r.stderr.contains("text_encoder_2: 1 modules"), r.stderr)
        // LCM-LoRA: an ordinary U-Net, the LoRA, the LCM sampler at guidance 1.
        _ = try check("lcm-lora-4", model: "tiny-sd", ["--sampler", "lcm", "--steps", "4", "--guidance", "1", "--lora",
                                                        references.appendingPathComponent("lcm-lora.safetensors").path])
    }
}

// `ldm train lora` end to end on the tiny model: a run with samples and checkpoints, the file it
// writes (kohya, read back by --lora), resume, and its refusals.
import XCTest
import LDMIO

final class TrainLoRACLITests: XCTestCase {
    func testTrainLoRAWritesAUsableFileAndRefusesWhatItCannotDo() throws {
        let dir = try temporaryFolder()
        let data = dir.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        for (i, caption) in ["a red circle", "a blue square"].enumerated() {
            let pixels = (0..<(40 * 48 * 3)).map { UInt8(($0 * (i + 3)) % 256) }
            try PNGImage(width: 40, height: 48, channels: 3, pixels: pixels).write(to: data.appendingPathComponent("\(i).png").path)
            try caption.write(to: data.appendingPathComponent("\(i).txt"), atomically: true, encoding: .utf8)
        }
        let tiny = fixtures.appendingPathComponent("models/tiny-sd").path
        let out = dir.appendingPathComponent("mine.safetensors"), run = dir.appendingPathComponent("run")
        let base = ["train", "lora", "--model", tiny, "--dataset", data.path, "--run", run.path, "--output", out.path,
                    "--batch", "1", "--checkpoint-every", "2", "--lr", "1e-3"]
        let first = try ldm(base + ["--steps", "2"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stderr.contains("2 pictures at 64²"), first.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent("samples/step-000002.png").path))
        let resumed = try ldm(base + ["--steps", "4", "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resumed from step 2"), resumed.stderr)
        let inspect = try ldm(["inspect", out.path])
        XCTAssertTrue(inspect.stdout.contains("kohya LoRA"), inspect.stdout)
        XCTAssertTrue(inspect.stdout.contains("ss_steps: 4") || inspect.stdout.contains("rank 4"), inspect.stdout)
        let png = dir.appendingPathComponent("x.png")
        let g = try ldm(["txt2img", "--model", tiny, "--prompt", "a red circle", "--steps", "2", "--lora", out.path, "--output", png.path])
        XCTAssertEqual(g.status, 0, g.stderr)
        XCTAssertTrue(g.stderr.contains("LoRA mine at 1: kohya LoRA, unet:"), g.stderr)
        let bad = try ldm(base + ["--format", "onnx"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--format must be kohya or peft"), bad.stderr)
        // SDXL: the U-Net trains (its file loads for generation); its text encoders are refused for now.
        let sdxlModel = fixtures.appendingPathComponent("models/tiny-sdxl").path
        let sdxlOut = dir.appendingPathComponent("sdxl.safetensors")
        let sdxl = try ldm(["train", "lora", "--model", sdxlModel, "--dataset", data.path, "--run", dir.appendingPathComponent("x").path,
                            "--output", sdxlOut.path, "--steps", "1", "--gradient-checkpointing"])
        XCTAssertEqual(sdxl.status, 0, sdxl.stderr)
        let sdxlImage = try ldm(["txt2img", "--model", sdxlModel, "--prompt", "a red circle", "--steps", "2", "--lora", sdxlOut.path,
                                 "--output", dir.appendingPathComponent("sdxl.png").path])
        XCTAssertEqual(sdxlImage.status, 0, sdxlImage.stderr)
        let sdxlText = try ldm(["train", "lora", "--model", sdxlModel, "--dataset", data.path, "--run", dir.appendingPathComponent("y").path,
                                "--output", out.path, "--steps", "1", "--targets", "unet,text"])
        XCTAssertNotEqual(sdxlText.status, 0)
        XCTAssertTrue(sdxlText.stderr.contains("SDXL's text encoders is not supported yet"), sdxlText.stderr)
    }
}

final class ShippedModelLoRATests: XCTestCase {
    /// The shipped star LoRA (Checkpoints/loras/star.safetensors: U-Net transformers and 3×3
    /// convolutions, text encoder), on the shipped model, against diffusers' image for the same seed
    /// (Tests/Fixtures/lora/star-s42.png by scripts/make_star_lora_fixture.py: U-Net modules through
    /// load_lora_weights + fuse_lora, text-encoder modules by kohya's formula).
    func testShippedStarLoRAMatchesDiffusers() throws {
        let out = try temporaryFolder().appendingPathComponent("star.png")
        let r = try ldm(["txt2img", "--model", repositoryRoot.appendingPathComponent("Checkpoints").path,
                         "--prompt", "a red star left of a blue circle", "--steps", "20", "--guidance", "7.5", "--seed", "42",
                         "--width", "64", "--height", "64", "--output", out.path,
                         "--lora", repositoryRoot.appendingPathComponent("Checkpoints/loras/star.safetensors").path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let ref = try PNGImage.read(path: fixtures.appendingPathComponent("lora/star-s42.png").path)
        XCTAssertLessThanOrEqual(maxDifference(try PNGImage.read(path: out.path), ref), 2)
    }
}

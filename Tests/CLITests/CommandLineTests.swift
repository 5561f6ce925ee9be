// The command line as a user meets it: outputs with their parameters text, and every bad input
// giving one error line, a non-zero exit and no output file.
import XCTest
import LDMIO
import LDMTraining

final class CommandLineTests: XCTestCase {
    var tiny: String { fixtures.appendingPathComponent("models/tiny-sd").path }
    var initPNG: String { fixtures.appendingPathComponent("pipelines/init.png").path }
    var maskPNG: String { fixtures.appendingPathComponent("pipelines/mask.png").path }

    func testOutputCarriesA1111ParametersShownByImageInfo() throws {
        let out = try temporaryFolder().appendingPathComponent("p.png")
        let r = try ldm(["txt2img", "--model", tiny, "--prompt", "a red circle, big", "--negative-prompt", "blur", "--steps", "2",
                         "--sampler", "dpm++2m-karras", "--seed", "42", "--output", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let text = try PNGImage.read(path: out.path).texts.text(forKeyword: "parameters")
        XCTAssertEqual(text, "a red circle, big\nNegative prompt: blur\nSteps: 2, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 42, Size: 64x64, Model: tiny-sd, RNG: torch")
        let info = try ldm(["image", "info", out.path])
        XCTAssertEqual(info.status, 0)
        XCTAssertTrue(info.stdout.contains("parameters: a red circle, big"), info.stdout)
        XCTAssertTrue(info.stdout.contains("size: 64x64"), info.stdout)
    }

    /// `ldm image compare`: PSNR by its formula on a known difference, per file and per folder.
    func testImageCompareGivesPSNRAndTheLargestDifference() throws {
        let a = try temporaryFolder(), b = try temporaryFolder()
        var pixels = [UInt8](repeating: 100, count: 8 * 8 * 3)
        try PNGImage(width: 8, height: 8, channels: 3, pixels: pixels).write(to: a.appendingPathComponent("x.png").path)
        try PNGImage(width: 8, height: 8, channels: 3, pixels: pixels).write(to: b.appendingPathComponent("x.png").path)
        try PNGImage(width: 8, height: 8, channels: 3, pixels: pixels).write(to: a.appendingPathComponent("y.png").path)
        pixels[0] = 110   // one sample off by 10: MSE = 100 / 192
        try PNGImage(width: 8, height: 8, channels: 3, pixels: pixels).write(to: b.appendingPathComponent("y.png").path)
        let expected = String(format: "%.2f", 10 * log10(255.0 * 255 / (100.0 / 192)))
        let one = try ldm(["image", "compare", a.appendingPathComponent("y.png").path, b.appendingPathComponent("y.png").path])
        XCTAssertEqual(one.status, 0, one.stderr)
        XCTAssertEqual(one.stdout, "PSNR \(expected) dB, largest difference 10 of 255\n")
        let folders = try ldm(["image", "compare", a.path, b.path])
        XCTAssertEqual(folders.status, 0, folders.stderr)
        XCTAssertTrue(folders.stdout.contains("x.png  PSNR inf dB, largest difference 0"), folders.stdout)
        XCTAssertTrue(folders.stdout.contains("2 pairs: 1 identical; mean PSNR of the others \(expected) dB"), folders.stdout)
        try PNGImage(width: 4, height: 8, channels: 3, pixels: [UInt8](repeating: 0, count: 96)).write(to: b.appendingPathComponent("y.png").path)
        let mismatched = try ldm(["image", "compare", a.path, b.path])
        XCTAssertNotEqual(mismatched.status, 0)
        XCTAssertTrue(mismatched.stderr.contains("is 8×8 but"), mismatched.stderr)
    }

    /// A1111's reading (the default) encodes a long prompt in 75-token chunks, nothing cut; the
    /// literal reading (--plain-prompt, diffusers') cuts it and says what was kept.
    func testOverlongPromptIsChunkedOrWarnsWhatWasCut() throws {
        let out = try temporaryFolder().appendingPathComponent("long.png")
        let long = Array(repeating: "red circle", count: 60).joined(separator: " ")
        let chunked = try ldm(["txt2img", "--model", tiny, "--prompt", long, "--steps", "1", "--output", out.path])
        XCTAssertEqual(chunked.status, 0, chunked.stderr)
        XCTAssertFalse(chunked.stderr.contains("cut to"), chunked.stderr)
        let r = try ldm(["txt2img", "--model", tiny, "--prompt", long, "--steps", "1", "--plain-prompt", "--output", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("longer than 75 tokens") && r.stderr.contains("cut to"), r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.path))
    }

    func testPromptFileGivesOneImagePerPrompt() throws {
        let dir = try temporaryFolder()
        let prompts = dir.appendingPathComponent("p.txt")
        try "# shapes\na red circle\n\na blue square\n".write(to: prompts, atomically: true, encoding: .utf8)
        let r = try ldm(["txt2img", "--model", tiny, "--prompts", prompts.path, "--steps", "1", "--output", dir.appendingPathComponent("o.png").path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try PNGImage.read(path: dir.appendingPathComponent("o-2.png").path).texts.text(forKeyword: "parameters")?
            .hasPrefix("a blue square\nSteps: 1"), true)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("o-3.png").path))
    }

    /// --grid tiles every image of the run, prompt after prompt, a prompt's batch to a row.
    func testGridTilesTheRunsImages() throws {
        let dir = try temporaryFolder()
        let prompts = dir.appendingPathComponent("p.txt")
        try "a red circle\na blue square\n".write(to: prompts, atomically: true, encoding: .utf8)
        let grid = dir.appendingPathComponent("grid.png").path
        let r = try ldm(["txt2img", "--model", tiny, "--prompts", prompts.path, "--batch", "2", "--steps", "1",
                         "--output", dir.appendingPathComponent("o.png").path, "--grid", grid])
        XCTAssertEqual(r.status, 0, r.stderr)
        let sheet = try PNGImage.read(path: grid)
        let tiles = try (1...4).map { try PNGImage.read(path: dir.appendingPathComponent("o-\($0).png").path) }
        let w = tiles[0].width, h = tiles[0].height
        XCTAssertEqual([sheet.width, sheet.height], [2 * w, 2 * h])
        for (k, tile) in tiles.enumerated() {
            let ox = (k % 2) * w, oy = (k / 2) * h
            for (x, y) in [(0, 0), (w - 1, h / 2), (w / 3, h - 1)] {
                for c in 0..<3 {
                    XCTAssertEqual(sheet.pixels[((oy + y) * sheet.width + ox + x) * sheet.channels + c], tile.pixels[(y * w + x) * tile.channels + c])
                }
            }
        }
        let bad = try ldm(["txt2img", "--model", tiny, "--prompt", "a red circle", "--grid", dir.appendingPathComponent("g.jpg").path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--grid must end in .png"), bad.stderr)
    }

    func testTiledVAEDecodeIsCloseToTheWholeDecode() throws {
        let dir = try temporaryFolder()
        let base = ["txt2img", "--model", tiny, "--prompt", "a red circle", "--steps", "1", "--width", "128", "--height", "96"]
        let tiledPath = dir.appendingPathComponent("tiled.png").path, wholePath = dir.appendingPathComponent("whole.png").path
        let tiled = try ldm(base + ["--tile-vae", "--vae-tile", "28", "--output", tiledPath])
        XCTAssertEqual(tiled.status, 0, tiled.stderr)
        let whole = try ldm(base + ["--output", wholePath])
        XCTAssertEqual(whole.status, 0, whole.stderr)
        let a = try PNGImage.read(path: tiledPath), b = try PNGImage.read(path: wholePath)
        XCTAssertEqual([a.width, a.height], [128, 96])
        XCTAssertNotEqual(a.pixels, b.pixels) // 2 × 3 tiles of the 24 × 32 latent
        let mean = zip(a.pixels, b.pixels).map { abs(Double($0) - Double($1)) }.reduce(0, +) / Double(a.pixels.count)
        XCTAssertLessThanOrEqual(mean, 2, "mean difference \(mean)/255")
        try expectFailure(base + ["--vae-tile", "16"], mentions: "larger than the overlap")
        let bench = try ldm(["bench", "vae", "--model", tiny, "--size", "128", "--tile", "28", "--calls", "1"])
        XCTAssertEqual(bench.status, 0, bench.stderr)
        XCTAssertTrue(bench.stdout.contains("vae tiled decode (128×128, batch 1, tiles of 28 latent px"), bench.stdout)
    }

    func testBenchImageTimesAWholeImageAndRejectsBadSizes() throws {
        let json = FileManager.default.temporaryDirectory.appendingPathComponent("bench-image-\(getpid()).json")
        defer { try? FileManager.default.removeItem(at: json) }
        let r = try ldm(["bench", "image", "--model", tiny, "--size", "64", "--steps", "2", "--json", json.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("image (64×64, 2 DPM++ 2M steps, guidance 7.5"), r.stdout)
        XCTAssertTrue(r.stderr.contains("bench image 2/2"), r.stderr)
        let figures = try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as! [String: Any]
        XCTAssertGreaterThan(figures["secondsPerCall"] as! Double, 0)
        for (args, mention) in [(["--size", "60"], "multiple of 8"), (["--steps", "0"], "--steps")] {
            let bad = try ldm(["bench", "image", "--model", tiny] + args)
            XCTAssertNotEqual(bad.status, 0)
            XCTAssertTrue(bad.stderr.contains(mention), bad.stderr)
        }
    }

    func testBenchTrainTimesTrainingSteps() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bench-train-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = DiffusionTrainingConfig.tiny
        let config = dir.appendingPathComponent("diffusion-training.json")
        try JSONEncoder().encode(c).write(to: config)
        let r = try ldm(["bench", "train", "--config", config.path, "--vae", tiny + "/vae", "--steps", "1", "--batch", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("training step (batch 2, latent"), r.stdout)
        XCTAssertTrue(r.stdout.contains("samples/s"), r.stdout)
        let bad = try ldm(["bench", "train", "--config", dir.appendingPathComponent("missing.json").path, "--vae", tiny + "/vae"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("cannot read"), bad.stderr)
    }

    func testTokenizePrintsTheEncoderIds() throws {
        let r = try ldm(["tokenize", "--model", tiny, "a red circle"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let ids = r.stdout.split(separator: " ").map { Int($0.trimmingCharacters(in: .whitespacesAndNewlines))! }
        XCTAssertEqual(ids.count, 77)
        XCTAssertEqual(ids.first, 1112) // <|startoftext|> of the tiny vocabulary
        let long = try ldm(["tokenize", "--model", tiny, String(repeating: "red ", count: 100)])
        XCTAssertTrue(long.stderr.contains("cut"), long.stderr)
    }

    /// Runs a bad command: one error line, non-zero exit, no output written.
    func expectFailure(_ args: [String], mentions: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try temporaryFolder()
        let out = dir.appendingPathComponent("out.png")
        let r = try ldm(args + ["--output", out.path])
        XCTAssertNotEqual(r.status, 0, "\(args)", file: file, line: line)
        let lines = r.stderr.split(separator: "\n").filter { !$0.hasPrefix("loading") }
        XCTAssertEqual(lines.count, 1, "stderr: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(mentions), "stderr: \(r.stderr)", file: file, line: line)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [], "left files behind", file: file, line: line)
    }

    func testBadInputsGiveOneErrorLine() throws {
        let base = ["--model", tiny, "--prompt", "a red circle", "--steps", "2"]
        try expectFailure(["txt2img"] + base + ["--width", "60"], mentions: "multiple of 8")
        try expectFailure(["txt2img"] + base + ["--sampler", "magic"], mentions: "unknown sampler")
        try expectFailure(["txt2img", "--model", tiny, "--prompt", "x", "--steps", "0"], mentions: "at least 1")
        try expectFailure(["txt2img", "--model", "/nonexistent/model", "--prompt", "x"], mentions: "/nonexistent/model")
        try expectFailure(["img2img"] + base + ["--image", "/nonexistent.png", "--strength", "0.5"], mentions: "/nonexistent.png")
        try expectFailure(["img2img"] + base + ["--image", initPNG, "--strength", "1.5"], mentions: "strength")
        try expectFailure(["img2img"] + base + ["--image", initPNG, "--strength", "0"], mentions: "strength")
        let small = try temporaryFolder().appendingPathComponent("small.png")
        try PNGImage(width: 32, height: 32, channels: 3, pixels: [UInt8](repeating: 255, count: 32 * 32 * 3)).write(to: small.path)
        try expectFailure(["inpaint"] + base + ["--image", initPNG, "--mask", small.path], mentions: "mask")
        let notPNG = try temporaryFolder().appendingPathComponent("x.png")
        try "not a png".write(to: notPNG, atomically: true, encoding: .utf8)
        try expectFailure(["img2img"] + base + ["--image", notPNG.path, "--strength", "0.5"], mentions: "PNG")
        let odd = try temporaryFolder().appendingPathComponent("odd.png")
        try PNGImage(width: 60, height: 64, channels: 3, pixels: [UInt8](repeating: 9, count: 60 * 64 * 3)).write(to: odd.path)
        try expectFailure(["img2img"] + base + ["--image", odd.path, "--strength", "0.5"], mentions: "multiples of 8")
    }

    func testOutpaintGrowsTheCanvasAndKeepsTheOriginal() throws {
        let out = try temporaryFolder().appendingPathComponent("o.png")
        let r = try ldm(["inpaint", "--model", tiny, "--prompt", "a red circle", "--steps", "2", "--image", initPNG,
                         "--extend", "8,0,8,16", "--output", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let o = try PNGImage.read(path: out.path), i = try PNGImage.read(path: initPNG)
        XCTAssertEqual(o.width, 80)
        XCTAssertEqual(o.height, 80)
        for y in 0..<i.height { for x in 0..<i.width { for c in 0..<3 {
            XCTAssertEqual(o.pixels[(y * o.width + x + 8) * 4 + c], i.pixels[(y * i.width + x) * 4 + c])
        } } }
    }
}

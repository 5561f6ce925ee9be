// `ldm txt2img | img2img | inpaint` against diffusers' images for the same arguments (tiny random
// model, 5 steps, guidance 7.5, a negative prompt). Fixtures: Tests/Fixtures/pipelines, made by
// scripts/make_pipeline_fixtures.py (diffusers version in its manifest.json). Tolerance 2/255.
import XCTest
import LDMIO

final class PipelineParityTests: XCTestCase {
    let prompt = "a red circle above a blue square"
    var tiny: String { fixtures.appendingPathComponent("models/tiny-sd").path }
    var pipelines: URL { fixtures.appendingPathComponent("pipelines") }

    func generate(_ command: String, _ extra: [String], model: String? = nil, output: URL) throws -> RunResult {
        let r = try ldm([command, "--model", model ?? tiny, "--prompt", prompt, "--negative-prompt", "green", "--steps", "5",
                         "--guidance", "7.5", "--seed", "42", "--rng", "torch", "--output", output.path] + extra)
        XCTAssertEqual(r.status, 0, r.stderr)
        return r
    }

    func testTxt2ImgMatchesDiffusersForEverySampler() throws {
        let dir = try temporaryFolder()
        for sampler in ["ddpm", "ddim", "pndm", "lms", "euler", "euler-a", "heun", "dpm++2m", "dpm++2m-karras", "unipc"] {
            let out = dir.appendingPathComponent("\(sampler).png")
            try generate("txt2img", ["--sampler", sampler, "--width", "64", "--height", "64"], output: out)
            let ours = try PNGImage.read(path: out.path)
            let ref = try PNGImage.read(path: pipelines.appendingPathComponent("txt2img-\(sampler)-s42.png").path)
            XCTAssertLessThanOrEqual(maxDifference(ours, ref), 2, sampler)
        }
    }

    func testBatchAndNonSquareMatchDiffusers() throws {
        let dir = try temporaryFolder()
        let out = dir.appendingPathComponent("b.png")
        let r = try ldm(["txt2img", "--model", tiny, "--prompt", prompt, "--negative-prompt", "green", "--steps", "5",
                         "--sampler", "ddim", "--seed", "7", "--batch", "2", "--output", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        for i in 0..<2 {
            let ours = try PNGImage.read(path: dir.appendingPathComponent("b-\(i + 1).png").path)
            let ref = try PNGImage.read(path: pipelines.appendingPathComponent("txt2img-ddim-s7-b2-\(i).png").path)
            XCTAssertLessThanOrEqual(maxDifference(ours, ref), 2)
        }
        let wh = dir.appendingPathComponent("wh.png")
        try generate("txt2img", ["--sampler", "ddim", "--width", "64", "--height", "48"], output: wh)
        let ours = try PNGImage.read(path: wh.path)
        XCTAssertEqual(ours.height, 48)
        XCTAssertLessThanOrEqual(maxDifference(ours, try PNGImage.read(path: pipelines.appendingPathComponent("txt2img-ddim-w64h48-s42.png").path)), 2)
    }

    func testImg2ImgMatchesDiffusers() throws {
        let dir = try temporaryFolder()
        for sampler in ["ddim", "euler-a"] {
            let out = dir.appendingPathComponent("\(sampler).png")
            try generate("img2img", ["--sampler", sampler, "--image", pipelines.appendingPathComponent("init.png").path,
                                     "--strength", "0.6"], output: out)
            let ref = try PNGImage.read(path: pipelines.appendingPathComponent("img2img-\(sampler)-s42.png").path)
            XCTAssertLessThanOrEqual(maxDifference(try PNGImage.read(path: out.path), ref), 2, sampler)
        }
    }

    func testInpaintMatchesDiffusersInsideTheMaskAndKeepsTheRestExactly() throws {
        let dir = try temporaryFolder()
        let initPNG = try PNGImage.read(path: pipelines.appendingPathComponent("init.png").path)
        let maskPNG = try PNGImage.read(path: pipelines.appendingPathComponent("mask.png").path)
        func masked(_ x: Int, _ y: Int) -> Bool {
            let i = (y * maskPNG.width + x) * maskPNG.channels
            let l = (Int(maskPNG.pixels[i]) * 19595 + Int(maskPNG.pixels[i + 1]) * 38470 + Int(maskPNG.pixels[i + 2]) * 7471 + 0x8000) >> 16
            return Float(l) / 255 >= 0.5
        }
        /// Inside the mask and at least 6 pixels from its edge (beyond the feathered band).
        func deepInside(_ x: Int, _ y: Int) -> Bool {
            for dy in -6...6 { for dx in -6...6 {
                let xx = x + dx, yy = y + dy
                if xx < 0 || yy < 0 || xx >= maskPNG.width || yy >= maskPNG.height || !masked(xx, yy) { return false }
            } }
            return true
        }
        let runs: [(model: String, extra: [String], ref: String)] = [
            (fixtures.appendingPathComponent("models/tiny-sd-inpaint").path, [], "inpaint9-ddim-s42.png"),
            (tiny, [], "inpaint4-ddim-s42.png"),
            (tiny, ["--strength", "0.75"], "inpaint4-ddim-str075-s42.png"),
        ]
        for run in runs {
            let out = dir.appendingPathComponent(run.ref)
            try generate("inpaint", ["--sampler", "ddim", "--image", pipelines.appendingPathComponent("init.png").path,
                                     "--mask", pipelines.appendingPathComponent("mask.png").path] + run.extra,
                         model: run.model, output: out)
            let ours = try PNGImage.read(path: out.path)
            let ref = try PNGImage.read(path: pipelines.appendingPathComponent(run.ref).path)
            XCTAssertLessThanOrEqual(maxDifference(ours, ref, include: deepInside), 2, run.ref)
            XCTAssertEqual(maxDifference(ours, initPNG, include: { !masked($0, $1) }), 0, "outside the mask \(run.ref)")
        }
    }
}

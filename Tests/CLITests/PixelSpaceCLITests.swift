// Pixel-space models at the command line: `train unet` takes exactly one of --vae and --pixel, and a
// model folder without vae/ generates, inpaints and evaluates like any other.
import Foundation
import XCTest
import LDMIO
import LDMTraining

final class PixelSpaceCLITests: XCTestCase {
    /// Runs a bad command: one error line naming the problem, and a non-zero exit.
    func expectOneErrorLine(_ args: [String], mentions: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try ldm(args)
        XCTAssertNotEqual(r.status, 0, "\(args)", file: file, line: line)
        let lines = r.stderr.split(separator: "\n").filter { !$0.hasPrefix("loading") }
        XCTAssertEqual(lines.count, 1, "stderr: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(mentions), "stderr: \(r.stderr)", file: file, line: line)
    }

    func testTrainUNetTakesEitherVAEOrPixel() throws {
        let run = try temporaryFolder().path
        try expectOneErrorLine(["train", "unet", "--run", run, "--pixel", "--vae", "some/vae"], mentions: "not both")
        try expectOneErrorLine(["train", "unet", "--run", run], mentions: "--pixel")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run), [], "left files behind")
        // A pixel-space run continues in pixel space only.
        let trainer = try tinyPixelTrainer()
        try trainer.checkpoint()
        try expectOneErrorLine(["train", "unet", "--run", trainer.runFolder.path, "--resume", "--vae", "some/vae"],
                               mentions: "was trained in pixel space: continue it with --pixel")
    }

    /// An untrained tiny pixel-space trainer on 64 × 64 Shapes.
    func tinyPixelTrainer() throws -> DiffusionTrainer {
        let root = try temporaryFolder()
        let c = DiffusionTrainingConfig.tiny
        let data = ShapesDataset(seed: 1)
        let captions = try (0..<50).map { try data.sample($0).caption }
        return try DiffusionTrainer(config: c, space: .pixels, dataset: data, captions: captions,
                                    runFolder: root.appendingPathComponent("run"))
    }

    /// That trainer's model, exported as `ldm train unet --pixel --export` writes it.
    func tinyPixelModel() throws -> URL {
        let model = try temporaryFolder().appendingPathComponent("model")
        try exportDiffusionModel(try tinyPixelTrainer(), to: model)
        return model
    }

    func testPixelModelGeneratesInpaintsAndEvaluates() throws {
        let model = try tinyPixelModel().path
        let dir = try temporaryFolder()
        let out = dir.appendingPathComponent("o.png").path
        let r = try ldm(["txt2img", "--model", model, "--prompt", "a red circle", "--steps", "2", "--output", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let png = try PNGImage.read(path: out)
        XCTAssertEqual([png.width, png.height], [64, 64])

        let initPNG = fixtures.appendingPathComponent("pipelines/init.png").path
        let maskPNG = fixtures.appendingPathComponent("pipelines/mask.png").path
        let painted = try ldm(["inpaint", "--model", model, "--prompt", "a red circle", "--steps", "2", "--image", initPNG,
                               "--mask", maskPNG, "--output", dir.appendingPathComponent("p.png").path])
        XCTAssertEqual(painted.status, 0, painted.stderr)

        let prompts = dir.appendingPathComponent("prompts.txt")
        try "a red circle\n".write(to: prompts, atomically: true, encoding: .utf8)
        let eval = try ldm(["eval", "--model", model, "--prompts", prompts.path, "--images", "1", "--steps", "2"])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        XCTAssertTrue(eval.stdout.contains("overall"), eval.stdout)

        try expectOneErrorLine(["txt2img", "--model", model, "--prompt", "x", "--steps", "1", "--tile-vae",
                                "--output", dir.appendingPathComponent("t.png").path], mentions: "pixel space")
    }

    func testFolderWithoutVAEAndALatentUNetIsOneErrorLine() throws {
        let folder = try temporaryFolder().appendingPathComponent("no-vae")
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("models/tiny-sd"), to: folder)
        try FileManager.default.removeItem(at: folder.appendingPathComponent("vae"))
        let args = ["txt2img", "--model", folder.path, "--prompt", "x", "--steps", "1",
                    "--output", folder.appendingPathComponent("o.png").path]
        try expectOneErrorLine(args, mentions: "model_index.json lists a vae")
        let index = folder.appendingPathComponent("model_index.json")
        var entries = try JSONSerialization.jsonObject(with: Data(contentsOf: index)) as! [String: Any]
        entries["vae"] = [NSNull(), NSNull()]
        try JSONSerialization.data(withJSONObject: entries).write(to: index)
        try expectOneErrorLine(args, mentions: "has no vae/ folder, so it runs in pixel space")
    }
}

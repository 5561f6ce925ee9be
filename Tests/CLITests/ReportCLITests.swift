// `ldm eval --json` and `ldm report tradeoff` as a user runs them: the eval file's figures, the
// report read back from it, and bad inputs as one error line with nothing written.
import Foundation
import XCTest
import LDMIO

final class ReportCLITests: XCTestCase {
    var tiny: String { fixtures.appendingPathComponent("models/tiny-sd").path }

    func testEvalWritesJSONThatTheReportReads() throws {
        let dir = try temporaryFolder()
        let prompts = dir.appendingPathComponent("prompts.txt"), json = dir.appendingPathComponent("eval.json")
        try "a red circle\na red circle left of a blue square\n".write(to: prompts, atomically: true, encoding: .utf8)
        let eval = try ldm(["eval", "--model", tiny, "--prompts", prompts.path, "--images", "2", "--steps", "1", "--json", json.path])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        XCTAssertTrue(eval.stdout.contains("s per image (4 images in"), eval.stdout)

        let figures = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
        XCTAssertEqual(figures["model"] as? String, tiny)
        XCTAssertEqual(figures["prompts"] as? String, prompts.path)
        XCTAssertEqual(figures["images_per_prompt"] as? Int, 2)
        XCTAssertEqual(figures["steps"] as? Int, 1)
        XCTAssertEqual(figures["guidance"] as? Double, 7.5)
        XCTAssertEqual(figures["seed"] as? Int, 1000)
        XCTAssertEqual(figures["sampler"] as? String, "PNDM") // tiny-sd's own scheduler
        XCTAssertEqual(figures["images"] as? Int, 4)
        let forms = try XCTUnwrap(figures["forms"] as? [String: [String: Any]])
        XCTAssertEqual(forms["color shape"]?["total"] as? Int, 2)
        XCTAssertEqual(forms["relation"]?["total"] as? Int, 2)
        XCTAssertEqual(forms["position"]?["total"] as? Int, 0)
        XCTAssertEqual((figures["overall"] as? [String: Any])?["total"] as? Int, 4)
        XCTAssertNotNil(figures["attributes"] as? [String: Any])
        let seconds = try XCTUnwrap(figures["generation_seconds"] as? Double), perImage = try XCTUnwrap(figures["seconds_per_image"] as? Double)
        XCTAssertGreaterThan(seconds, 0)
        XCTAssertEqual(perImage, seconds / 4, accuracy: 1e-12)

        let md = dir.appendingPathComponent("t.md"), chart = dir.appendingPathComponent("t.png")
        let report = try ldm(["report", "tradeoff", "--entry", "tiny, f = 4=0.1=\(json.path)", "--entry", "again=2=\(json.path),\(json.path)",
                              "--markdown", md.path, "--chart", chart.path])
        XCTAssertEqual(report.status, 0, report.stderr)
        XCTAssertTrue(report.stdout.hasPrefix("| model | training hours | sampling s/image | color+shape | relation | overall |"), report.stdout)
        XCTAssertTrue(report.stdout.contains("| tiny, f = 4 | 0.10 | "), report.stdout)
        XCTAssertTrue(report.stdout.contains("/4) |\n| again | 2.00 | "), report.stdout) // the same file twice: /8
        XCTAssertEqual(try String(contentsOf: md, encoding: .utf8), report.stdout)
        let png = try PNGImage.read(path: chart.path)
        XCTAssertGreaterThan(png.width, 300)
        XCTAssertGreaterThan(png.height, 200)
    }

    func testEvalScoresAFolderOfImages() throws {
        let dir = try temporaryFolder()
        let made = try ldm(["dataset", "shapes", "--count", "10", "--out", dir.path])
        XCTAssertEqual(made.status, 0, made.stderr)
        // A caption outside the Shapes grammar is skipped, not scored.
        try FileManager.default.copyItem(at: dir.appendingPathComponent(try XCTUnwrap(
            FileManager.default.contentsOfDirectory(atPath: dir.path).first { $0.hasSuffix(".png") })),
            to: dir.appendingPathComponent("zz-extra.png"))
        try "a photograph of a cat".write(to: dir.appendingPathComponent("zz-extra.txt"), atomically: true, encoding: .utf8)
        let eval = try ldm(["eval", "--folder", dir.path])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        XCTAssertTrue(eval.stdout.contains("10 images scored, 1 skipped (caption not in the Shapes grammar)"), eval.stdout)
        XCTAssertEqual(overall(eval.stdout), ["10", "10", "100.0%"], eval.stdout)
        // A caption that does not describe its image is judged wrong.
        let first = try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: dir.path).sorted().first { $0.hasSuffix(".txt") })
        let caption = try String(contentsOf: dir.appendingPathComponent(first), encoding: .utf8)
        let other = caption.contains("circle") ? caption.replacingOccurrences(of: "circle", with: "square")
            : caption.contains("square") ? caption.replacingOccurrences(of: "square", with: "triangle")
            : caption.replacingOccurrences(of: "triangle", with: "circle")
        try other.write(to: dir.appendingPathComponent(first), atomically: true, encoding: .utf8)
        let again = try ldm(["eval", "--folder", dir.path])
        XCTAssertEqual(overall(again.stdout), ["9", "10", "90.0%"], again.stdout)
    }

    /// The figures of the "overall" row of an evaluation table.
    func overall(_ table: String) -> [String] {
        let row = table.split(separator: "\n").first { $0.hasPrefix("overall ") } ?? ""
        return row.split(separator: " ").dropFirst().map(String.init)
    }

    /// A bad command: one error line, non-zero exit, nothing written into a fresh folder.
    func expectOneErrorLine(_ args: (URL) -> [String], mentions: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try temporaryFolder()
        let r = try ldm(args(dir))
        XCTAssertNotEqual(r.status, 0, "\(args(dir))", file: file, line: line)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "stderr: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("ldm: error: ") && r.stderr.contains(mentions), "stderr: \(r.stderr)", file: file, line: line)
        XCTAssertEqual(r.stdout, "", file: file, line: line)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [], "left files behind", file: file, line: line)
    }

    func testBadInputsGiveOneErrorLine() throws {
        let good = try temporaryFolder().appendingPathComponent("eval.json")
        try #"{"not": "an eval file"}"#.write(to: good, atomically: true, encoding: .utf8)
        func report(_ entries: [String], _ more: [String] = []) -> (URL) -> [String] {
            { dir in ["report", "tradeoff"] + entries.flatMap { ["--entry", $0] } + more
                + ["--markdown", dir.appendingPathComponent("t.md").path, "--chart", dir.appendingPathComponent("t.png").path] }
        }
        try expectOneErrorLine(report(["latent=1=/nonexistent/eval.json"]), mentions: "cannot read eval result /nonexistent/eval.json")
        try expectOneErrorLine(report(["latent=1=\(good.path)"]), mentions: "is not an `ldm eval --json` file: \"model\" missing")
        try expectOneErrorLine(report(["latent=\(good.path)"]), mentions: "expected LABEL=HOURS=EVAL.json")
        try expectOneErrorLine(report(["latent=an hour=\(good.path)"]), mentions: "training hours \"an hour\" is not a number")
        try expectOneErrorLine(report([]), mentions: "give at least one --entry")
        try expectOneErrorLine({ dir in ["report", "tradeoff", "--entry", "x=1=\(good.path)", "--chart", dir.appendingPathComponent("t.svg").path] },
                               mentions: "--chart must end in .png")
        try expectOneErrorLine({ _ in ["report", "tradeoff", "--entry", "x=1=\(good.path)", "--markdown", "/nonexistent/t.md"] },
                               mentions: "--markdown /nonexistent/t.md: no writable folder")
        try expectOneErrorLine({ _ in ["eval", "--model", self.tiny, "--prompts", "Prompts/shapes-single.txt", "--json", "/nonexistent/e.json"] },
                               mentions: "--json /nonexistent/e.json: no writable folder")
        try expectOneErrorLine({ _ in ["eval", "--folder", "/nonexistent/images"] }, mentions: "/nonexistent/images")
        try expectOneErrorLine({ _ in ["eval"] }, mentions: "give either --prompts FILE or --folder DIR")
        try expectOneErrorLine({ _ in ["eval", "--prompts", "Prompts/shapes-single.txt", "--folder", "/tmp"] },
                               mentions: "give either --prompts FILE or --folder DIR")
    }
}

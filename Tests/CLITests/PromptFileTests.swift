// A1111 prompt syntax, clip skip and textual-inversion embeddings, through `ldm txt2img` on the tiny
// model. Fixtures: Tests/Fixtures/prompts (scripts/make_prompt_fixtures.py): "a1111" cases are a
// Python port of A1111's algorithm feeding prompt_embeds to diffusers (or, for a prompt and
// negative prompt of different chunk counts, the same DDIM loop with the U-Net run on each);
// "diffusers" cases are diffusers' pipeline alone (clip_skip, load_textual_inversion).
// Tolerance 2/255.
import XCTest
import LDMIO

final class PromptFileTests: XCTestCase {
    var prompts: URL { fixtures.appendingPathComponent("prompts") }
    var tiny: String { fixtures.appendingPathComponent("models/tiny-sd").path }

    struct Manifest: Decodable {
        struct Case: Decodable {
            var name: String
            var prompt: String
            var negative_prompt: String
            var arguments: [String]
            var kind: String
        }
        var cases: [Case]
    }

    func render(_ c: Manifest.Case, embedding: String?, output: URL) throws -> RunResult {
        var args = ["txt2img", "--model", tiny, "--sampler", "ddim", "--prompt", c.prompt, "--negative-prompt", c.negative_prompt,
                    "--steps", "5", "--guidance", "7.5", "--seed", "42", "--output", output.path] + c.arguments
        if let embedding { args += ["--embedding", prompts.appendingPathComponent(embedding).path] }
        return try ldm(args)
    }

    func testPromptsMatchA1111PortAndDiffusers() throws {
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: prompts.appendingPathComponent("manifest.json")))
        XCTAssertEqual(manifest.cases.count, 7)
        let dir = try temporaryFolder()
        for c in manifest.cases {
            let files: [String?] = c.kind.hasSuffix("embedding") ? ["shapestyle.pt", "shapestyle.safetensors"] : [nil]
            for file in files {
                let out = dir.appendingPathComponent("\(c.name).png")
                let r = try render(c, embedding: file, output: out)
                XCTAssertEqual(r.status, 0, r.stderr)
                let d = maxDifference(try PNGImage.read(path: out.path),
                                      try PNGImage.read(path: prompts.appendingPathComponent("\(c.name).png").path))
                XCTAssertLessThanOrEqual(d, 2, "\(c.name) \(file ?? "")")
            }
        }
    }

    /// The syntax matters: the weighted prompt read literally, or without its embedding, is another image.
    func testSyntaxAndEmbeddingChangeTheImage() throws {
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: prompts.appendingPathComponent("manifest.json")))
        let dir = try temporaryFolder()
        for (name, extra, embedding) in [("weighted", ["--plain-prompt"], "shapestyle.pt"), ("embedding", [], nil as String?)] {
            var c = try XCTUnwrap(manifest.cases.first { $0.name == name })
            c.arguments += extra
            let out = dir.appendingPathComponent("\(name).png")
            let r = try render(c, embedding: embedding, output: out)
            XCTAssertEqual(r.status, 0, r.stderr)
            let d = maxDifference(try PNGImage.read(path: out.path), try PNGImage.read(path: prompts.appendingPathComponent("\(name).png").path))
            XCTAssertGreaterThan(d, 10, name)
        }
    }

    /// The PNG's parameters: clip skip, the embedding's A1111 hash, the LoRA's.
    func testParametersRecordClipSkipEmbeddingsAndLoRAs() throws {
        let dir = try temporaryFolder()
        let out = dir.appendingPathComponent("p.png")
        let loras = fixtures.appendingPathComponent("lora")
        let r = try ldm(["txt2img", "--model", tiny, "--prompt", "a shapestyle circle <lora:kohya:0.5>", "--steps", "1",
                         "--clip-skip", "2", "--embedding", prompts.appendingPathComponent("shapestyle.pt").path,
                         "--lora-dir", loras.path, "--output", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let info = try ldm(["image", "info", out.path]).stdout
        XCTAssertTrue(info.contains("a shapestyle circle <lora:kohya:0.5>"), info)
        XCTAssertTrue(info.contains("Clip skip: 2"), info)
        // A1111's short hashes: sha256 of the whole .pt; of the bytes after the header for a .safetensors LoRA.
        let pt = try SHA256.hexOfFile(prompts.appendingPathComponent("shapestyle.pt").path).prefix(12)
        XCTAssertTrue(info.contains("TI hashes: \"shapestyle: \(pt)\""), info)
        let kohya = loras.appendingPathComponent("kohya.safetensors").path
        let bytes = try Data(contentsOf: URL(fileURLWithPath: kohya))
        let header = bytes.prefix(8).reversed().reduce(0) { $0 << 8 | Int($1) }
        XCTAssertTrue(info.contains("Lora hashes: \"kohya: \(SHA256.hex(bytes.dropFirst(8 + header)).prefix(12))\""), info)
    }

    func testBadEmbeddingsGiveOneLine() throws {
        let dir = try temporaryFolder()
        let wide = dir.appendingPathComponent("wide.safetensors")
        var writer = SafeTensorsWriter()
        try writer.add("emb_params", shape: [2, 48], floats: [Float](repeating: 0.1, count: 96))
        try writer.write(to: wide.path)
        let truncated = dir.appendingPathComponent("cut.pt")
        let whole = try Data(contentsOf: prompts.appendingPathComponent("shapestyle.pt"))
        try whole.prefix(whole.count / 2).write(to: truncated)
        let cases: [(String, String)] = [
            (wide.path, "width 48"),
            (truncated.path, "not a textual-inversion embedding"),
            (fixtures.appendingPathComponent("lora/kohya.safetensors").path, "not a textual-inversion embedding"),
            (dir.appendingPathComponent("missing.pt").path, "no embedding file"),
        ]
        for (path, expected) in cases {
            let r = try ldm(["txt2img", "--model", tiny, "--prompt", "x", "--steps", "1", "--embedding", path,
                             "--output", dir.appendingPathComponent("o.png").path])
            XCTAssertNotEqual(r.status, 0, path)
            let lines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("ldm: error") }
            XCTAssertEqual(lines.count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains(expected), "\(expected): \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("Fatal error"), path)
        }
        // In --embeddings-dir, a file for another model is skipped with a notice; the run goes on.
        let folder = dir.appendingPathComponent("embeddings")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: wide, to: folder.appendingPathComponent("wide.safetensors"))
        try FileManager.default.copyItem(at: prompts.appendingPathComponent("shapestyle.safetensors"), to: folder.appendingPathComponent("shapestyle.safetensors"))
        let r = try ldm(["txt2img", "--model", tiny, "--prompt", "x", "--steps", "1", "--embeddings-dir", folder.path,
                         "--output", dir.appendingPathComponent("o.png").path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("wide.safetensors skipped"), r.stderr)
        XCTAssertTrue(r.stderr.contains("shapestyle (2 vectors)"), r.stderr)
    }
}

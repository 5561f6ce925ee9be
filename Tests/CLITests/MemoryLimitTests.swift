// Memory limits: a generation that would not fit in what the process may still allocate is refused
// in one line before anything large is allocated, instead of aborting (ulimit -v) or being killed.
import Foundation
import XCTest

final class MemoryLimitTests: XCTestCase {
    /// `ldm` under `ulimit -v` (KiB), through the shell.
    func ldmLimited(kilobytes: Int, _ arguments: [String]) throws -> RunResult {
        let command = "ulimit -v \(kilobytes) && exec \"$0\" \"$@\""
        return try runProgram(URL(fileURLWithPath: "/bin/sh"),
                              ["-c", command, productsFolder.appendingPathComponent("ldm").path] + arguments)
    }

    func testAnImageLargerThanTheAddressSpaceLimitIsRefused() throws {
        let out = try temporaryFolder()
        let model = fixtures.appendingPathComponent("models/tiny-sd").path
        let limit = 6 << 20  // 6 GiB
        // 4 images of 2048×2048 need far more than 6 GiB of working memory: one line, no file.
        let big = out.appendingPathComponent("big.png")
        let refused = try ldmLimited(kilobytes: limit, ["txt2img", "--model", model, "--width", "2048", "--height", "2048",
                                                        "--batch", "4", "--steps", "1", "--output", big.path, "--prompt", "a red circle"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("needs about") && refused.stderr.contains("ulimit -v"), refused.stderr)
        XCTAssertFalse(refused.stderr.contains("Fatal error") || refused.stderr.contains("Crash"), refused.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path), [])
        // A small image under the same limit is drawn.
        let small = out.appendingPathComponent("small.png")
        let drawn = try ldmLimited(kilobytes: limit, ["txt2img", "--model", model, "--width", "64", "--height", "64",
                                                      "--steps", "1", "--output", small.path, "--prompt", "a red circle"])
        XCTAssertEqual(drawn.status, 0, drawn.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: small.path))
    }
}

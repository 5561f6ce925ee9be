// `ldm bench latent-vs-pixel` run as a user would, on tiny sizes (--quick): the JSON rows and the chart.
import Foundation
import XCTest
import LDMIO

final class BenchTests: XCTestCase {
    func readRows(_ url: URL) throws -> [[String: Any]] {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any]
        return try XCTUnwrap(object?["rows"] as? [[String: Any]])
    }

    func testLatentVsPixelQuickWritesRowsAndChart() throws {
        let dir = try temporaryFolder()
        let json = dir.appendingPathComponent("lvp.json"), chart = dir.appendingPathComponent("lvp.png")
        let r = try ldm(["bench", "latent-vs-pixel", "--quick", "--json", json.path, "--chart", chart.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("extrapolated"), r.stdout)
        let rows = try readRows(json)
        // Two families × two resolutions × (latent, pixel).
        XCTAssertEqual(rows.count, 8)
        for row in rows {
            for key in ["name", "space", "resolution", "unet_gflops", "step_seconds", "image_seconds", "peak_bytes", "measured"] {
                XCTAssertNotNil(row[key], "row lacks \(key): \(row)")
            }
            XCTAssertGreaterThan(row["step_seconds"] as? Double ?? 0, 0)
            XCTAssertGreaterThan(row["peak_bytes"] as? Int ?? 0, 0)
        }
        XCTAssertEqual(rows.map { $0["space"] as? String }, Array(repeating: ["latent", "pixel"], count: 4).flatMap { $0 })
        // Pixel space costs more FLOPs than latent space at the same resolution, and the tiny
        // pixel-space calls are extrapolated while the latent ones run whole.
        for i in stride(from: 0, to: rows.count, by: 2) {
            XCTAssertEqual(rows[i]["resolution"] as? Int, rows[i + 1]["resolution"] as? Int)
            XCTAssertGreaterThan(rows[i + 1]["unet_gflops"] as! Double, rows[i]["unet_gflops"] as! Double)
            XCTAssertEqual(rows[i]["measured"] as? Bool, true)
            XCTAssertEqual(rows[i + 1]["measured"] as? Bool, false)
        }
        let png = try PNGImage.read(path: chart.path)
        XCTAssertGreaterThan(png.width, 300)
        XCTAssertGreaterThan(png.height, 200)
        // Both bar colours (latent blue, pixel orange) are drawn.
        let pixels = stride(from: 0, to: png.pixels.count, by: png.channels).map { (png.pixels[$0], png.pixels[$0 + 1], png.pixels[$0 + 2]) }
        XCTAssertTrue(pixels.contains { $0 == (46, 110, 190) })
        XCTAssertTrue(pixels.contains { $0 == (226, 120, 40) })
    }

    func testLatentVsPixelWithAModelFolder() throws {
        let json = try temporaryFolder().appendingPathComponent("m.json")
        let tiny = fixtures.appendingPathComponent("models/tiny-sd").path
        let r = try ldm(["bench", "latent-vs-pixel", "--quick", "--model", tiny, "--json", json.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try readRows(json)
        XCTAssertEqual(rows.count, 10)
        XCTAssertEqual(rows[0]["name"] as? String, "tiny-sd 64×64")
        XCTAssertEqual(rows[0]["unet_resolution"] as? Int, 16) // tiny-sd's VAE has f = 4
        XCTAssertEqual(rows[1]["unet_resolution"] as? Int, 64)
    }

    func testLatentVsPixelBadModelIsOneErrorLine() throws {
        let r = try ldm(["bench", "latent-vs-pixel", "--quick", "--model", "/nonexistent/model"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("model_index.json"), r.stderr)
    }
}

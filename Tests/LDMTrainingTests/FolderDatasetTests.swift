import Foundation
import XCTest
@testable import LDMTraining

final class FolderDatasetTests: XCTestCase {
    private var folder = ""

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "folder-dataset-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func write(_ name: String, _ text: String) throws {
        try text.write(toFile: folder + "/" + name, atomically: true, encoding: .utf8)
    }

    func testReadsPairsSkipsImagesWithoutCaptionsAndNormalises() throws {
        // 4×2 image: left half red-ish, right half blue-ish; centre crop keeps columns 1 and 2.
        var wide = RGBImage(width: 4, height: 2, color: RGBColor(red: 0, green: 0, blue: 0))
        for y in 0..<2 {
            wide[0, y] = RGBColor(red: 255, green: 255, blue: 255)
            wide[1, y] = RGBColor(red: 255, green: 0, blue: 0)
            wide[2, y] = RGBColor(red: 0, green: 0, blue: 255)
            wide[3, y] = RGBColor(red: 255, green: 255, blue: 255)
        }
        try wide.write(to: folder + "/b.png")
        try write("b.txt", "  a red square left of a blue square \n")
        try RGBImage(width: 8, height: 8, color: RGBColor(red: 255, green: 0, blue: 0)).write(to: folder + "/a.png")
        try write("a.txt", "a red square")
        try RGBImage(width: 8, height: 8, color: .init(hex: 0)).write(to: folder + "/orphan.png")
        try write("photo.jpg", "not really")
        try write("notes.md", "ignored")
        try RGBImage(width: 2, height: 2, color: .init(hex: 0)).write(to: folder + "/.hidden.png")

        let dataset = try FolderDataset(directory: folder, size: 2)
        XCTAssertEqual(dataset.count, 2)
        XCTAssertEqual(dataset.entries.map { ($0.imagePath as NSString).lastPathComponent }, ["a.png", "b.png"])
        XCTAssertEqual(dataset.skipped.map { ($0.path as NSString).lastPathComponent }, ["orphan.png", "photo.jpg"])
        XCTAssertTrue(dataset.skipped[0].reason.contains("orphan.txt"))

        let a = try dataset.sample(at: 0)
        XCTAssertEqual(a.caption, "a red square")
        XCTAssertEqual(a.pixels.count, 3 * 2 * 2)
        XCTAssertEqual(a.pixels, [1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1, -1])  // CHW, red plane first

        let b = try dataset.sample(at: 1)
        XCTAssertEqual(b.caption, "a red square left of a blue square")
        // Centre crop of the 4×2 image is columns 1–2: red then blue, both rows.
        XCTAssertEqual(b.pixels, [1, -1, 1, -1,  -1, -1, -1, -1,  -1, 1, -1, 1])
    }

    func testResamplingAreaDownAndBilinearUp() {
        // 1-D weights: 3 → 2 area average covers [0, 1.5) and [1.5, 3).
        let down = RGBImage.resamplingWeights(from: 3, to: 2)
        XCTAssertEqual(down[0].map(\.0), [0, 1])
        XCTAssertEqual(down[0].map(\.1), [2.0 / 3, 1.0 / 3])
        XCTAssertEqual(down[1].map(\.1), [1.0 / 3, 2.0 / 3])
        // 2 → 4 bilinear, half-pixel centres: torch.nn.functional.interpolate(
        //   torch.tensor([[[[10., 20.]]]]), size=(1, 4), mode="bilinear", align_corners=False)
        //   = [10.0, 12.5, 17.5, 20.0]   (torch 2.13.0)
        var row = RGBImage(width: 2, height: 2, color: .init(hex: 0))
        for y in 0..<2 {
            row[0, y] = RGBColor(red: 10, green: 10, blue: 10)
            row[1, y] = RGBColor(red: 20, green: 20, blue: 20)
        }
        let up = row.squareResampled(to: 4)
        XCTAssertEqual((0..<4).map { up[$0 * 3] }, [10, 12.5, 17.5, 20])
        // 4 → 2 of a 2×2-block checkerboard is exact block means.
        var blocks = RGBImage(width: 4, height: 4, color: .init(hex: 0))
        for y in 0..<4 { for x in 0..<4 where (x + y) % 2 == 0 { blocks[x, y] = RGBColor(hex: 0xFFFFFF) } }
        XCTAssertEqual(blocks.squareResampled(to: 2), [Float](repeating: 127.5, count: 12))
        XCTAssertEqual(blocks.squareResized(to: 4), blocks)
    }

    func testEmptyFolderIsAClearError() throws {
        try RGBImage(width: 2, height: 2, color: .init(hex: 0)).write(to: folder + "/x.png")
        XCTAssertThrowsError(try FolderDataset(directory: folder, size: 8)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(folder) && text.contains("no PNG images") && text.contains("1 image file"), text)
            XCTAssertFalse(text.contains("\n"))
        }
        XCTAssertThrowsError(try FolderDataset(directory: folder + "/missing", size: 8)) { error in
            XCTAssertEqual("\(error)", "no such dataset folder: \(folder)/missing")
        }
        XCTAssertThrowsError(try FolderDataset(directory: folder + "/x.png", size: 8)) { error in
            XCTAssertEqual("\(error)", "not a folder: \(folder)/x.png")
        }
        XCTAssertThrowsError(try FolderDataset(directory: folder, size: 0))
    }

    func testUnreadableImageNamesTheFile() throws {
        try write("broken.png", "this is not a PNG")
        try write("broken.txt", "a red circle")
        let dataset = try FolderDataset(directory: folder, size: 8)
        XCTAssertThrowsError(try dataset.sample(at: 0)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("cannot read dataset image \(folder)/broken.png: "), text)
            XCTAssertFalse(text.contains("\n"))
        }
    }

    func testShapesDatasetRoundTripsThroughAFolder() throws {
        let samples = ShapesGenerator(seed: 3).samples(0..<5)
        for (i, sample) in samples.enumerated() {
            try sample.image.write(to: folder + "/\(i).png")
            try write("\(i).txt", sample.caption + "\n")
        }
        let dataset = try FolderDataset(directory: folder, size: 64)
        for (i, sample) in samples.enumerated() {
            let loaded = try dataset.sample(at: i)
            XCTAssertEqual(loaded.caption, sample.caption)
            let expected = FolderDataset.chwPixels(sample.image, size: 64)
            XCTAssertEqual(loaded.pixels, expected)
            XCTAssertEqual(loaded.pixels.min()! >= -1 && loaded.pixels.max()! <= 1, true)
        }
    }
}

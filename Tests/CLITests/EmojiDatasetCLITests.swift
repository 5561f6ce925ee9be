// `ldm dataset emoji` run as a user would, on a few lines of emoji-test.txt and the installed font.
import Foundation
import XCTest
import LDMTraining

final class EmojiDatasetCLITests: XCTestCase {
    /// Lines of Unicode's emoji-test.txt 15.0 (Debian unicode-data), as they are.
    private let emojiTest = """
        # group: People & Body
        # subgroup: hand-fingers-closed
        1F44D 1F3FB                                            ; fully-qualified     # 👍🏻 E1.0 thumbs up: light skin tone
        1F44D 1F3FF                                            ; fully-qualified     # 👍🏿 E1.0 thumbs up: dark skin tone
        # group: Travel & Places
        # subgroup: time
        1F55B                                                  ; fully-qualified     # 🕛 E0.6 twelve o’clock
        # group: Flags
        # subgroup: country-flag
        1F1E9 1F1EA                                            ; fully-qualified     # 🇩🇪 E0.6 flag: Germany

        """

    private var folder: URL!

    override func setUpWithError() throws {
        folder = try temporaryFolder()
        try emojiTest.write(to: folder.appendingPathComponent("emoji-test.txt"), atomically: true, encoding: .utf8)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    private func run(_ extra: [String], exclude: String?) throws -> RunResult {
        var arguments = ["dataset", "emoji", "--out", folder.appendingPathComponent("out").path,
                         "--emoji-test", folder.appendingPathComponent("emoji-test.txt").path]
        if let exclude {
            let path = folder.appendingPathComponent("exclude.txt").path
            try exclude.write(toFile: path, atomically: true, encoding: .utf8)
            arguments += ["--exclude", path]
        }
        return try ldm(arguments + extra)
    }

    func testWritesTheFolderLayoutWithoutTheHeldOutEmoji() throws {
        let result = try run([], exclude: "# held out\nthumbs up: dark skin tone\n")
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("wrote 3 images with captions"), result.stderr)
        XCTAssertTrue(result.stderr.contains("1 excluded"), result.stderr)

        let out = folder.appendingPathComponent("out").path
        let dataset = try FolderDataset(directory: out, size: 64)
        // Files are numbered by position among all fully-qualified emoji: 000001 is held out.
        XCTAssertEqual(dataset.entries.map { URL(fileURLWithPath: $0.imagePath).lastPathComponent },
                       ["000000.png", "000002.png", "000003.png"])
        XCTAssertEqual(try (0..<3).map { try dataset.caption(at: $0) },
                       ["thumbs up: light skin tone", "twelve o’clock", "flag: Germany"])
        let image = try RGBImage.read(path: out + "/000003.png")
        XCTAssertEqual([image.width, image.height], [64, 64])

        let index = try String(contentsOfFile: out + "/emoji-index.tsv", encoding: .utf8)
        XCTAssertEqual(index, """
            file\tcodepoints\tgroup\tsubgroup\tname
            000000\t1F44D 1F3FB\tPeople & Body\thand-fingers-closed\tthumbs up: light skin tone
            000002\t1F55B\tTravel & Places\ttime\ttwelve o’clock
            000003\t1F1E9 1F1EA\tFlags\tcountry-flag\tflag: Germany

            """)
        XCTAssertFalse(index.contains("dark skin tone"))
    }

    func testExcludeNoneAndSizeWriteEveryEmoji() throws {
        let result = try run(["--exclude", "none", "--size", "32"], exclude: nil)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("wrote 4 images with captions"), result.stderr)
        XCTAssertTrue(result.stderr.contains("0 excluded"), result.stderr)
        let image = try RGBImage.read(path: folder.appendingPathComponent("out/000001.png").path)
        XCTAssertEqual([image.width, image.height], [32, 32])
    }

    func testAMisspeltExcludedNameStopsBeforeWritingAnything() throws {
        let result = try run([], exclude: "thumbs up: dark skintone\n")
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("line 1: “thumbs up: dark skintone” is not the name of a fully-qualified emoji"), result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("out").path))
    }

    /// Without --exclude the shipped Prompts/emoji-holdout.txt applies: its names are not in the
    /// four-emoji file, so the run stops on the first of them.
    func testTheShippedHoldOutListIsTheDefault() throws {
        let result = try run([], exclude: nil)
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("Prompts/emoji-holdout.txt line 4: “waving hand: light skin tone”"), result.stderr)
    }

    func testMissingInputsNameTheirPackages() throws {
        let font = try run(["--font", "/nonexistent/NotoColorEmoji.ttf"], exclude: "")
        XCTAssertEqual(font.status, 1)
        XCTAssertEqual(font.stderr, "ldm: error: no emoji font at /nonexistent/NotoColorEmoji.ttf: "
                       + "install fonts-noto-color-emoji (make setup) or pass --font FILE\n")
        let names = try ldm(["dataset", "emoji", "--out", folder.appendingPathComponent("out").path,
                             "--emoji-test", "/nonexistent/emoji-test.txt"])
        XCTAssertEqual(names.status, 1)
        XCTAssertTrue(names.stderr.contains("install unicode-data (make setup)"), names.stderr)
        let size = try run(["--size", "0"], exclude: "")
        XCTAssertNotEqual(size.status, 0)
        XCTAssertTrue(size.stderr.contains("--size must be a positive number of pixels"), size.stderr)
    }

    func testOtherImagesInTheOutputFolderAreRefused() throws {
        let out = folder.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try RGBImage(width: 2, height: 2, color: .init(hex: 0)).write(to: out.appendingPathComponent("stale.png").path)
        let result = try run([], exclude: "")
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("already holds stale.png"), result.stderr)
        // A second run into its own output is fine.
        try FileManager.default.removeItem(at: out.appendingPathComponent("stale.png"))
        XCTAssertEqual(try run([], exclude: "").status, 0)
        XCTAssertEqual(try run([], exclude: "").status, 0)
    }
}

// PNG reading and writing.
//
// Fixtures (Fixtures/png/) come from scripts/make_png_fixtures.py: pypng writes each image from
// numpy arrays, and the expected 8-bit RGBA pixels (`<name>.rgba`, raw height*width*4 bytes) are
// computed from those same arrays; manifest.json lists each file's header fields, text chunks
// and, for the corrupt files, a substring of the expected error message.

import Foundation
import XCTest
@testable import LDMIO

final class PNGTests: XCTestCase {
    struct Manifest: Decodable {
        struct Text: Decodable {
            let keyword: String
            let text: String
            let kind: String
        }
        struct Image: Decodable {
            let file: String
            let rgba: String
            let width: Int
            let height: Int
            let colourType: Int
            let bitDepth: Int
            let interlaced: Bool
            let texts: [Text]
        }
        struct Corrupt: Decodable {
            let file: String
            let error: String
        }
        let images: [Image]
        let corrupt: [Corrupt]
    }

    static let fixtures: URL = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        .appendingPathComponent("png")

    static func fixturePath(_ name: String) -> String {
        fixtures.appendingPathComponent(name).path
    }

    static let manifest: Manifest = {
        let data = try! Data(contentsOf: fixtures.appendingPathComponent("manifest.json"))
        return try! JSONDecoder().decode(Manifest.self, from: data)
    }()

    private var temporaryDirectory: URL!

    override func setUpWithError() throws {
        temporaryDirectory = FileManager.default.temporaryDirectory
            .appendingPathComponent("ldm-png-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: temporaryDirectory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: temporaryDirectory)
    }

    // MARK: Decoding

    func testManifestCoversEveryColourTypeAndBitDepth() {
        let combos = Set(Self.manifest.images.map { "\($0.colourType)/\($0.bitDepth)/\($0.interlaced)" })
        let allowed: [Int: [Int]] = [0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]]
        for (colourType, depths) in allowed {
            for depth in depths {
                for interlaced in [false, true] {
                    XCTAssertTrue(combos.contains("\(colourType)/\(depth)/\(interlaced)"),
                                  "no fixture for colour type \(colourType), \(depth) bits, interlaced \(interlaced)")
                }
            }
        }
        XCTAssertGreaterThanOrEqual(Self.manifest.images.filter { $0.file.contains("trns") }.count, 10)
    }

    func testDecodesEveryFixtureToExpectedRGBA() throws {
        XCTAssertGreaterThan(Self.manifest.images.count, 40)
        for entry in Self.manifest.images {
            let image = try PNGImage.read(path: Self.fixturePath(entry.file))
            let expected = try [UInt8](Data(contentsOf: Self.fixtures.appendingPathComponent(entry.rgba)))
            XCTAssertEqual(image.width, entry.width, entry.file)
            XCTAssertEqual(image.height, entry.height, entry.file)
            XCTAssertEqual(image.channels, 4, entry.file)
            XCTAssertEqual(image.pixels.count, expected.count, entry.file)
            if let index = image.pixels.indices.first(where: { $0 < expected.count && image.pixels[$0] != expected[$0] }) {
                let pixel = index / 4
                XCTFail("\(entry.file): pixel (\(pixel % entry.width), \(pixel / entry.width)) channel \(index % 4) "
                        + "is \(image.pixels[index]), expected \(expected[index])")
            }
        }
    }

    func testInfoReportsTheStoredFormat() throws {
        for entry in Self.manifest.images {
            let info = try PNGImage.info(path: Self.fixturePath(entry.file))
            XCTAssertEqual(info.width, entry.width, entry.file)
            XCTAssertEqual(info.height, entry.height, entry.file)
            XCTAssertEqual(info.colourType.rawValue, entry.colourType, entry.file)
            XCTAssertEqual(info.bitDepth, entry.bitDepth, entry.file)
            XCTAssertEqual(info.interlaced, entry.interlaced, entry.file)
            XCTAssertEqual(info.texts.map(\.keyword), entry.texts.map(\.keyword), entry.file)
        }
    }

    func testSixteenBitSamplesAreRoundedNotTruncated() throws {
        // g16's first row holds 0, 65535, 257*3+128, 257*3+129, 257*200+128, 257*200+129, 128:
        // round(v * 255 / 65535) gives 0, 255, 3, 4, 200, 201, 0 (taking the high byte would give
        // 0, 255, 3, 3, 201, 201, 0).
        let image = try PNGImage.read(path: Self.fixturePath("g16.png"))
        let firstRowRed = (0..<7).map { image.pixels[$0 * 4] }
        XCTAssertEqual(firstRowRed, [0, 255, 3, 4, 200, 201, 0])
    }

    func testDecodeFromMemoryMatchesFile() throws {
        let path = Self.fixturePath("p4_trns.png")
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(try PNGImage.decode(data: bytes), try PNGImage.read(path: path))
        XCTAssertEqual(try PNGImage.info(data: bytes), try PNGImage.info(path: path))
    }

    func testReadsTextChunksAsUTF8() throws {
        for entry in Self.manifest.images where !entry.texts.isEmpty {
            let image = try PNGImage.read(path: Self.fixturePath(entry.file))
            XCTAssertEqual(image.texts.map(\.keyword), entry.texts.map(\.keyword), entry.file)
            XCTAssertEqual(image.texts.map(\.text), entry.texts.map(\.text), entry.file)
            XCTAssertEqual(image.texts.map { $0.kind?.rawValue ?? "" }, entry.texts.map(\.kind), entry.file)
        }
        let image = try PNGImage.read(path: Self.fixturePath("text_chunks.png"))
        XCTAssertEqual(image.texts.map(\.kind), [.tEXt, .zTXt, .iTXt, .iTXt, .tEXt])
        XCTAssertEqual(image.texts.text(forKeyword: "parameters"), "東京の夜景、桜 🌸🚀 ünïcödé — “quotes”")
        XCTAssertEqual(image.texts.text(forKeyword: "Title"), "Café crème brûlée: ½ × ¼, ÿ ß Ø © ¡¿ «»")
        XCTAssertNil(image.texts.text(forKeyword: "missing"))
    }

    func testCorruptFilesThrowWithLibpngsMessage() throws {
        XCTAssertGreaterThan(Self.manifest.corrupt.count, 20)
        for entry in Self.manifest.corrupt {
            let path = Self.fixturePath(entry.file)
            for operation in ["read", "info", "decode"] {
                do {
                    switch operation {
                    case "read": _ = try PNGImage.read(path: path)
                    case "info": _ = try PNGImage.info(path: path)
                    default: _ = try PNGImage.decode(data: [UInt8](Data(contentsOf: URL(fileURLWithPath: path))))
                    }
                    XCTFail("\(entry.file): \(operation) did not throw")
                } catch let error as PNGError {
                    let message = error.description
                    XCTAssertTrue(message.lowercased().contains(entry.error.lowercased()),
                                  "\(entry.file): \(operation) gave \"\(message)\", expected it to mention \"\(entry.error)\"")
                    XCTAssertEqual(message.contains(path), operation != "decode", "\(entry.file): \(message)")
                    XCTAssertFalse(message.contains("\n"))
                } catch {
                    XCTFail("\(entry.file): unexpected error type \(error)")
                }
            }
        }
    }

    func testHostileSizesAreRejectedBeforeAllocating() {
        XCTAssertThrowsError(try PNGImage.read(path: Self.fixturePath("too_many_pixels.png"))) { error in
            guard case .tooLarge = error as? PNGError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("30000x30000"), "\(error)")
        }
        XCTAssertThrowsError(try PNGImage.read(path: Self.fixturePath("too_wide.png"))) { error in
            XCTAssertTrue("\(error)".contains("Image width exceeds user limit"), "\(error)")
        }
        // A 44-byte file declaring a 2 GiB tEXt chunk: libpng would allocate (and zero) the
        // declared length before reading; the shim rejects it first as truncated.
        XCTAssertThrowsError(try PNGImage.info(path: Self.fixturePath("huge_chunk_length.png"))) { error in
            XCTAssertTrue("\(error)".contains("chunk tEXt at byte 33 declares 2147483632 bytes"), "\(error)")
        }
    }

    func testFileErrorsNameThePath() {
        let missing = temporaryDirectory.appendingPathComponent("missing.png").path
        XCTAssertThrowsError(try PNGImage.read(path: missing)) { error in
            XCTAssertEqual(error as? PNGError, .fileNotFound(path: missing))
            XCTAssertEqual("\(error)", "no such file: \(missing)")
        }
        XCTAssertThrowsError(try PNGImage.info(path: temporaryDirectory.path)) { error in
            XCTAssertEqual(error as? PNGError, .fileUnreadable(path: temporaryDirectory.path, reason: "is a directory"))
        }
    }

    // MARK: Encoding

    private func pattern(width: Int, height: Int, channels: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<(width * height * channels)).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    func testRGBAndRGBARoundTrip() throws {
        for channels in [3, 4] {
            for (width, height) in [(1, 1), (7, 5), (64, 3)] {
                let pixels = pattern(width: width, height: height, channels: channels)
                let path = temporaryDirectory.appendingPathComponent("rt\(channels)_\(width).png").path
                try PNGImage(width: width, height: height, channels: channels, pixels: pixels).write(to: path)
                let read = try PNGImage.read(path: path)
                XCTAssertEqual(read.width, width)
                XCTAssertEqual(read.height, height)
                XCTAssertEqual(read.channels, 4)
                var expected: [UInt8] = []
                for pixel in 0..<(width * height) {
                    expected += pixels[(pixel * channels)..<(pixel * channels + channels)]
                    if channels == 3 { expected.append(255) }
                }
                XCTAssertEqual(read.pixels, expected)
                let info = try PNGImage.info(path: path)
                XCTAssertEqual(info.colourType, channels == 3 ? .rgb : .rgba)
                XCTAssertEqual(info.bitDepth, 8)
                XCTAssertFalse(info.interlaced)
            }
        }
    }

    /// The chunk types of a PNG byte stream, in order.
    private func chunkTypes(_ bytes: [UInt8]) -> [String] {
        var types: [String] = []
        var offset = 8
        while offset + 8 <= bytes.count {
            let length = bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | Int($1) }
            types.append(String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self))
            offset += 12 + length
        }
        return types
    }

    func testTextChunksRoundTripAsTEXtOrITXt() throws {
        let texts = [
            PNGTextChunk(keyword: "parameters", text: "a red cube\nSteps: 20, Sampler: DPM++ 2M Karras, Seed: 42"),
            PNGTextChunk(keyword: "Comment", text: "東京の夜景 🌸🚀 (CJK and emoji)"),
            PNGTextChunk(keyword: "Title", text: "Crème brûlée ½ ÿ"),
            PNGTextChunk(keyword: "Empty", text: ""),
            PNGTextChunk(keyword: "Mixed", text: "Latin-1 é plus one ∑"),
            PNGTextChunk(keyword: "Zürich ß", text: "keyword in Latin-1"),
        ]
        let image = PNGImage(width: 3, height: 2, channels: 3, pixels: pattern(width: 3, height: 2, channels: 3),
                             texts: texts)
        let bytes = try image.encode()
        XCTAssertEqual(chunkTypes(bytes), ["IHDR", "tEXt", "iTXt", "tEXt", "tEXt", "iTXt", "tEXt", "IDAT", "IEND"])
        let decoded = try PNGImage.decode(data: bytes)
        XCTAssertEqual(decoded.texts, texts)
        XCTAssertEqual(decoded.texts.map(\.kind), [.tEXt, .iTXt, .tEXt, .tEXt, .iTXt, .tEXt])
        XCTAssertEqual(texts.map(\.isLatin1), [true, false, true, true, false, true])

        // The Latin-1 chunk really holds Latin-1 bytes: "Crème" is 43 72 E8 6D 65.
        let crème: [UInt8] = [0x43, 0x72, 0xE8, 0x6D, 0x65]
        XCTAssertNotNil((0..<(bytes.count - 5)).first { Array(bytes[$0..<($0 + 5)]) == crème })
    }

    func testConvertingADecodedImageKeepsPixelsAndTexts() throws {
        let source = try PNGImage.read(path: Self.fixturePath("text_chunks.png"))
        let path = temporaryDirectory.appendingPathComponent("copy.png").path
        try source.write(to: path)
        XCTAssertEqual(try PNGImage.read(path: path), source)
    }

    func testEncodeRejectsInconsistentImages() {
        let cases: [(PNGImage, String)] = [
            (PNGImage(width: 2, height: 2, channels: 2, pixels: [UInt8](repeating: 0, count: 8)), "2 channels"),
            (PNGImage(width: 0, height: 2, channels: 3, pixels: []), "0x2"),
            (PNGImage(width: 2, height: 2, channels: 3, pixels: [UInt8](repeating: 0, count: 11)), "11 samples"),
            (PNGImage(width: Int.max, height: 2, channels: 3, pixels: []), "width and height"),
        ]
        for (image, fragment) in cases {
            XCTAssertThrowsError(try image.encode()) { error in
                guard case .invalidImage = error as? PNGError else { return XCTFail("\(error)") }
                XCTAssertTrue("\(error)".contains(fragment), "\(error)")
            }
        }
    }

    func testEncodeRejectsInvalidKeywordsAndNUL() {
        let pixels = [UInt8](repeating: 7, count: 3)
        let badKeywords = ["", String(repeating: "k", count: 80), " lead", "trail ", "two  spaces", "東京",
                           "new\nline", "tab\there", "nul\u{0}"]
        for keyword in badKeywords {
            let image = PNGImage(width: 1, height: 1, channels: 3, pixels: pixels,
                                 texts: [PNGTextChunk(keyword: keyword, text: "x")])
            XCTAssertThrowsError(try image.encode(), "keyword \(keyword.debugDescription)") { error in
                XCTAssertTrue("\(error)".contains("invalid PNG text keyword"), "\(error)")
                XCTAssertFalse("\(error)".contains("\n"))
            }
        }
        let good = PNGImage(width: 1, height: 1, channels: 3, pixels: pixels,
                            texts: [PNGTextChunk(keyword: String(repeating: "k", count: 79), text: "x")])
        XCTAssertNoThrow(try good.encode())
        let nul = PNGImage(width: 1, height: 1, channels: 3, pixels: pixels,
                           texts: [PNGTextChunk(keyword: "k", text: "a\u{0}b")])
        XCTAssertThrowsError(try nul.encode()) { error in
            XCTAssertTrue("\(error)".contains("NUL"), "\(error)")
        }
    }

    // MARK: Atomic writing

    private func directoryListing() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: temporaryDirectory.path).sorted()
    }

    func testWriteReplacesAtomicallyAndLeavesNoTemporaryFiles() throws {
        let path = temporaryDirectory.appendingPathComponent("out.png").path
        let first = PNGImage(width: 2, height: 1, channels: 3, pixels: [1, 2, 3, 4, 5, 6])
        let second = PNGImage(width: 1, height: 1, channels: 4, pixels: [9, 8, 7, 6])
        try first.write(to: path)
        try second.write(to: path)
        XCTAssertEqual(try directoryListing(), ["out.png"])
        XCTAssertEqual(try PNGImage.read(path: path).pixels, [9, 8, 7, 6])

        // A relative path writes in the current directory.
        let previous = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(temporaryDirectory.path))
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        try first.write(to: "relative.png")
        XCTAssertEqual(try directoryListing(), ["out.png", "relative.png"])
    }

    func testFailedWritesNameThePathAndLeaveNothingBehind() throws {
        let image = PNGImage(width: 1, height: 1, channels: 3, pixels: [1, 2, 3])
        let inMissingFolder = temporaryDirectory.appendingPathComponent("no/such/folder/out.png").path
        XCTAssertThrowsError(try image.write(to: inMissingFolder)) { error in
            guard case .fileUnwritable(let path, _) = error as? PNGError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, inMissingFolder)
            XCTAssertTrue("\(error)".hasPrefix("cannot write \(inMissingFolder): "), "\(error)")
        }
        // Writing over a directory fails at the rename; the directory and folder stay as they were.
        let folder = temporaryDirectory.appendingPathComponent("folder.png")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: false)
        XCTAssertThrowsError(try image.write(to: folder.path)) { error in
            guard case .fileUnwritable = error as? PNGError else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(try directoryListing(), ["folder.png"])
        // A bad image fails before any file is created.
        let bad = PNGImage(width: 1, height: 1, channels: 3, pixels: [])
        XCTAssertThrowsError(try bad.write(to: temporaryDirectory.appendingPathComponent("bad.png").path))
        XCTAssertEqual(try directoryListing(), ["folder.png"])
    }
}

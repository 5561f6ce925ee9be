// SafeTensorsValidationTests.swift — every malformed file the reader must reject, each with its
// specific error. The bytes are built here: 8-byte little-endian header length, header, data.

import Foundation
import XCTest
@testable import LDMIO

final class SafeTensorsValidationTests: XCTestCase {

    var temporaryDirectory: URL!

    override func setUpWithError() throws {
        temporaryDirectory = FileManager.default.temporaryDirectory
            .appendingPathComponent("safetensors-validation-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: temporaryDirectory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: temporaryDirectory)
    }

    /// Writes raw bytes to a fresh file and returns its path.
    func write(_ bytes: [UInt8]) throws -> String {
        let path = temporaryDirectory.appendingPathComponent("\(UUID().uuidString).safetensors").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// A file with `header` (as given, no padding), `dataBytes` zero bytes of data, and the
    /// header length field set to `length` (default: the header's real length).
    func file(_ header: String, dataBytes: Int = 0, length: UInt64? = nil) throws -> String {
        try file(Array(header.utf8), dataBytes: dataBytes, length: length)
    }

    func file(_ header: [UInt8], dataBytes: Int = 0, length: UInt64? = nil) throws -> String {
        let n = length ?? UInt64(header.count)
        return try write(withUnsafeBytes(of: n.littleEndian) { Array($0) } + header + [UInt8](repeating: 0, count: dataBytes))
    }

    /// Opens `path`, expecting failure; returns the error.
    func openError(_ path: String, line: UInt = #line) -> SafeTensorsError? {
        do {
            _ = try SafeTensorsFile(path: path)
            XCTFail("opened a malformed file", line: line)
            return nil
        } catch let error as SafeTensorsError {
            XCTAssertTrue(error.description.hasPrefix(path + ": "), "message names the file: \(error)", line: line)
            XCTAssertFalse(error.description.contains("\n"), "one line: \(error)", line: line)
            return error
        } catch {
            XCTFail("unexpected error type \(error)", line: line)
            return nil
        }
    }

    func expect(_ path: String, _ expected: SafeTensorsError, line: UInt = #line) {
        XCTAssertEqual(openError(path, line: line), expected, line: line)
    }

    let f32x1 = #"{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#

    // MARK: File and header length

    func testEmptyFile() throws {
        let p = try write([])
        expect(p, .emptyFile(path: p))
    }

    func testFileShorterThanEightBytes() throws {
        let p = try write([1, 0, 0, 0, 0])
        expect(p, .fileTooShort(path: p, size: 5))
    }

    func testHeaderLengthTooLarge() throws {
        let p = try file("{}", length: 100_000_001)
        expect(p, .headerTooLarge(path: p, length: 100_000_001))
        let huge = try file("{}", length: UInt64.max)
        expect(huge, .headerTooLarge(path: huge, length: UInt64.max))
    }

    func testHeaderBeyondFile() throws {
        let p = try file("{}", dataBytes: 4, length: 100)
        expect(p, .headerBeyondFile(path: p, length: 100, fileSize: 14))
    }

    func testMissingFileAndDirectory() throws {
        let missing = temporaryDirectory.appendingPathComponent("nope.safetensors").path
        guard case .cannotOpen(missing, let reason)? = openError(missing) else { return XCTFail() }
        XCTAssertTrue(reason.contains("No such file"), reason)
        expect(temporaryDirectory.path, .notRegularFile(path: temporaryDirectory.path))
    }

    // MARK: Header syntax

    func testHeaderNotUTF8() throws {
        let p = try file(Array(#"{"a\#u{FF}":1}"#.utf8).map { $0 == 0xC3 ? 0xFF : $0 })
        expect(p, .headerNotUTF8(path: p))
    }

    func testHeaderNotJSON() throws {
        let p = try file(#"{"a": "#)
        guard case .headerNotJSON(p, let detail)? = openError(p) else { return XCTFail() }
        XCTAssertTrue(detail.contains("unexpected end of input"), detail)

        let trailing = try file("{}  x")
        guard case .headerNotJSON(trailing, let detail2)? = openError(trailing) else { return XCTFail() }
        XCTAssertTrue(detail2.contains("after the JSON value"), detail2)
    }

    func testHeaderNotAnObject() throws {
        for header in ["[1, 2]", #""text""#, "42", "", "   ", " [{}]"] {
            let p = try file(header)
            expect(p, .headerNotObject(path: p))
        }
    }

    func testDeepNestingIsRejected() throws {
        let deep = String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)
        let p = try file(#"{"a":"# + deep + "}")
        guard case .headerNotJSON(p, let detail)? = openError(p) else { return XCTFail() }
        XCTAssertTrue(detail.contains("nesting deeper"), detail)
    }

    func testSurroundingWhitespaceIsAccepted() throws {
        // Trailing spaces are the format's padding; leading whitespace the reference reader accepts.
        let p = try file(#"{"a":"# + f32x1 + "}" + "       ", dataBytes: 4)
        XCTAssertEqual(try SafeTensorsFile(path: p).names, ["a"])
        let q = try file(" \n{}\t")
        XCTAssertEqual(try SafeTensorsFile(path: q).names, [])
    }

    func testMisalignedDataIsReadCorrectly() throws {
        // A 61-byte header puts the data section at byte 69: no element is aligned.
        let header = #"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"f":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"i":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}}"#
        var data: [UInt8] = [0x00, 0x3C, 0x00, 0xC1]                   // F16 1, -2.5
        data += withUnsafeBytes(of: Float(0.1).bitPattern.littleEndian) { Array($0) }
        data += withUnsafeBytes(of: Int64(-3).littleEndian) { Array($0) }
        let bytes = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) } + Array(header.utf8) + data
        XCTAssertNotEqual((8 + header.utf8.count) % 2, 0)
        let file = try SafeTensorsFile(path: try write(bytes))
        XCTAssertEqual(try file.floats("h"), [1, -2.5])
        XCTAssertEqual(try file.floats("f"), [0.1])
        XCTAssertEqual(try file.int64s("i"), [-3])
        XCTAssertEqual(try file.floats("i"), [-3])
    }

    func testDuplicateTensorKey() throws {
        let p = try file(#"{"a":"# + f32x1 + #","a":"# + f32x1 + "}", dataBytes: 4)
        expect(p, .duplicateKey(path: p, key: "a", location: "the header"))
        // A name with a newline is quoted in the message, which stays on one line.
        let q = try file(#"{"a\nb":"# + f32x1 + #","a\nb":"# + f32x1 + "}", dataBytes: 4)
        expect(q, .duplicateKey(path: q, key: "a\nb", location: "the header"))
        XCTAssertTrue(openError(q)!.description.hasSuffix(#"duplicate key "a\nb" in the header"#))
    }

    func testDuplicateFieldInEntry() throws {
        let p = try file(#"{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 4)
        expect(p, .duplicateKey(path: p, key: "dtype", location: #"header entry "a""#))
    }

    // MARK: Entries

    func testEntryNotObject() throws {
        let p = try file(#"{"a":[1,2]}"#)
        expect(p, .entryNotObject(path: p, tensor: "a", found: "an array"))
    }

    func testMissingKey() throws {
        let p = try file(#"{"a":{"dtype":"F32","shape":[1]}}"#, dataBytes: 4)
        expect(p, .missingField(path: p, tensor: "a", field: "data_offsets"))
        let q = try file(#"{"a":{"shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 4)
        expect(q, .missingField(path: q, tensor: "a", field: "dtype"))
    }

    func testExtraKey() throws {
        let p = try file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"offset":0}}"#, dataBytes: 4)
        expect(p, .unexpectedField(path: p, tensor: "a", field: "offset"))
    }

    func testUnknownDType() throws {
        let p = try file(#"{"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 4)
        expect(p, .unknownDType(path: p, tensor: "a", dtype: #""F33""#))
        let q = try file(#"{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 4)
        expect(q, .unknownDType(path: q, tensor: "a", dtype: #""f32""#))
        let r = try file(#"{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 4)
        guard case .unknownDType(r, "a", _)? = openError(r) else { return XCTFail() }
    }

    func testNegativeShape() throws {
        let p = try file(#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, dataBytes: 4)
        expect(p, .invalidShape(path: p, tensor: "a", detail: "dimension 0 is -1, expected a non-negative integer"))
    }

    func testNonIntegerShape() throws {
        let p = try file(#"{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}"#, dataBytes: 4)
        expect(p, .invalidShape(path: p, tensor: "a", detail: "dimension 0 is 1.0, expected an integer"))
        let q = try file(#"{"a":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}"#, dataBytes: 4)
        expect(q, .invalidShape(path: q, tensor: "a", detail: "dimension 0 is a string, expected an integer"))
        let r = try file(#"{"a":{"dtype":"F32","shape":4,"data_offsets":[0,4]}}"#, dataBytes: 4)
        expect(r, .invalidShape(path: r, tensor: "a", detail: "is a number, expected an array of integers"))
        let s = try file(#"{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}}"#, dataBytes: 4)
        expect(s, .invalidShape(path: s, tensor: "a", detail: "dimension 0 is 99999999999999999999, too large"))
    }

    func testInvalidOffsets() throws {
        let reversed = try file(#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}"#, dataBytes: 4)
        expect(reversed, .invalidOffsets(path: reversed, tensor: "a", detail: "begin 4 is after end 0"))
        let single = try file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4]}}"#, dataBytes: 4)
        expect(single, .invalidOffsets(path: single, tensor: "a", detail: "has 1 elements, expected [begin, end]"))
        let negative = try file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#, dataBytes: 4)
        expect(negative, .invalidOffsets(path: negative, tensor: "a", detail: "begin is -4, expected a non-negative integer"))
    }

    func testShapeTimesSizeDiffersFromByteRange() throws {
        let p = try file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, dataBytes: 4)
        expect(p, .byteSizeMismatch(path: p, tensor: "a", expected: 8, actual: 4))
    }

    func testOverflowInShapeProduct() throws {
        let p = try file(#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,4]}}"#, dataBytes: 4)
        expect(p, .sizeOverflow(path: p, tensor: "a"))
        // The element count fits, the byte count does not: 2^62 × 4.
        let q = try file(#"{"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]}}"#, dataBytes: 4)
        expect(q, .sizeOverflow(path: q, tensor: "a"))
    }

    // MARK: Tiling of the data section

    func testOffsetsWithGap() throws {
        let p = try file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, dataBytes: 12)
        expect(p, .offsetsGap(path: p, tensor: "b", previous: "a", previousEnd: 4, begin: 8))
    }

    func testOffsetsOverlap() throws {
        let p = try file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, dataBytes: 8)
        expect(p, .offsetsOverlap(path: p, tensor: "b", previous: "a", previousEnd: 8, begin: 4))
    }

    func testOffsetsNotStartingAtZero() throws {
        let p = try file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, dataBytes: 8)
        expect(p, .offsetsNotFromZero(path: p, tensor: "a", begin: 4))
    }

    func testOffsetsNotEndingAtFileEnd() throws {
        let p = try file(#"{"a":"# + f32x1 + "}", dataBytes: 8)
        expect(p, .dataSizeMismatch(path: p, dataEnd: 4, dataSectionSize: 8))
        let noTensors = try file("{}", dataBytes: 3)
        expect(noTensors, .dataSizeMismatch(path: noTensors, dataEnd: 0, dataSectionSize: 3))
    }

    func testTruncatedFile() throws {
        let sample = try Data(contentsOf: URL(fileURLWithPath: SafeTensorsTests.fixture("sample.safetensors")))
        let p = try write([UInt8](sample.dropLast(3)))
        guard case .dataSizeMismatch(p, let end, let size)? = openError(p) else { return XCTFail() }
        XCTAssertEqual(end - size, 3)
        XCTAssertTrue(openError(p)!.description.contains("truncated"))
    }

    func testEntriesMayBeInAnyOrderInTheHeader() throws {
        // Tiling is checked in offset order, not header order; zero-length tensors may sit anywhere.
        let p = try file(#"{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"z":{"dtype":"F16","shape":[0],"data_offsets":[4,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 8)
        XCTAssertEqual(try SafeTensorsFile(path: p).names, ["a", "z", "b"])
    }

    // MARK: Metadata

    func testMetadataNotStringMap() throws {
        let p = try file(#"{"__metadata__":{"format":"pt","n":1}}"#)
        expect(p, .invalidMetadata(path: p, detail: #"value of key "n" is a number, expected a string"#))
        let q = try file(#"{"__metadata__":["pt"]}"#)
        expect(q, .invalidMetadata(path: q, detail: "is an array, expected an object of strings"))
        let r = try file(#"{"__metadata__":{"k":"v","k":"w"}}"#)
        expect(r, .duplicateKey(path: r, key: "k", location: #"header entry "__metadata__""#))
    }
}

// SafeTensorsTests.swift — reading files written by PyPI safetensors, writing files PyPI reads,
// and the element conversions.
//
// Fixtures (Tests/LDMIOTests/Fixtures/safetensors/) come from scripts/make_safetensors_fixtures.py
// (PyPI safetensors + numpy; versions in VERSIONS.txt):
//   sample.safetensors + sample.expected.json   written by PyPI's serializer
//   metadata_only.safetensors, no_tensors.safetensors
//   writer_input.json                           the writer test's tensors and the values numpy
//                                               expects after F16/BF16 rounding
//   writer_reference.safetensors                written by OUR SafeTensorsWriter from
//                                               writer_input.json (regenerate with
//                                               LDM_WRITE_SAFETENSORS_REFERENCE=PATH swift test
//                                               --filter testWriterMatchesReference), then checked
//                                               by hand with
//     /work/venv/ref/bin/python scripts/make_safetensors_fixtures.py --verify \
//         Tests/LDMIOTests/Fixtures/safetensors/writer_reference.safetensors
//   which loads it with safetensors.deserialize, safetensors.numpy.load_file and
//   safetensors.torch.load_file (BF16), compares every value and the metadata with
//   writer_input.json, and confirmed that PyPI's serialize() gives identical bytes
//   (safetensors 0.8.0, numpy 2.4.6, torch 2.13.0).

import Foundation
import XCTest
@testable import LDMIO

final class SafeTensorsTests: XCTestCase {

    // MARK: Helpers

    static func fixture(_ name: String) -> String {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
            .appendingPathComponent("safetensors").appendingPathComponent(name).path
    }

    static func loadJSON(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixture(name)))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// JSON numbers, or "inf" / "-inf" / "nan", as Float.
    static func floats(_ values: Any?) -> [Float] {
        (values as? [Any] ?? []).map { v in
            switch v as? String {
            case "inf": return .infinity
            case "-inf": return -.infinity
            case "nan": return .nan
            default: return Float((v as! NSNumber).doubleValue)
            }
        }
    }

    static func ints(_ values: Any?) -> [Int64] {
        (values as? [String] ?? []).map { Int64($0)! }
    }

    /// Bitwise equality, except that any NaN equals any NaN.
    func assertSameFloats(_ a: [Float], _ b: [Float], _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, message, file: file, line: line)
        for (i, (x, y)) in zip(a, b).enumerated() where !(x.bitPattern == y.bitPattern || (x.isNaN && y.isNaN)) {
            XCTFail("\(message)[\(i)]: \(x) != \(y)", file: file, line: line)
            return
        }
    }

    var temporaryDirectory: URL!

    override func setUpWithError() throws {
        temporaryDirectory = FileManager.default.temporaryDirectory
            .appendingPathComponent("safetensors-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: temporaryDirectory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: temporaryDirectory)
    }

    // MARK: Reading PyPI's files

    func testReadsSampleWrittenByPyPI() throws {
        let expected = try Self.loadJSON("sample.expected.json")
        let file = try SafeTensorsFile(path: Self.fixture("sample.safetensors"))

        XCTAssertEqual(file.names, expected["order"] as? [String], "names in data order")
        XCTAssertEqual(file.metadata, expected["metadata"] as? [String: String])
        XCTAssertEqual((8 + file.headerLength) % 8, 0, "PyPI pads the header to a multiple of 8")

        let tensors = try XCTUnwrap(expected["tensors"] as? [String: [String: Any]])
        XCTAssertEqual(Set(file.names), Set(tensors.keys))
        for (name, entry) in tensors {
            let info = try file.info(name)
            XCTAssertEqual(info.dtype.rawValue, entry["dtype"] as? String, name)
            XCTAssertEqual(info.shape, entry["shape"] as? [Int], name)
            let offsets = try XCTUnwrap(entry["data_offsets"] as? [Int])
            XCTAssertEqual([info.dataOffsets.begin, info.dataOffsets.end], offsets, name)
            assertSameFloats(try file.floats(name), Self.floats(entry["floats"]), name)
            if entry["ints"] != nil {
                XCTAssertEqual(try file.int64s(name), Self.ints(entry["ints"]), name)
            }
        }
        XCTAssertEqual(try file.info("scalar").shape, [])
        XCTAssertEqual(try file.info("scalar").elementCount, 1)
        XCTAssertEqual(try file.floats("empty"), [])
        XCTAssertEqual(file.parameterCount, 6 + 4 + 8 + 6 + 2 + 4 + 3 + 3 + 2 + 1 + 0)
    }

    func testCopyFloatsFillsDestination() throws {
        let file = try SafeTensorsFile(path: Self.fixture("sample.safetensors"))
        for name in ["weight.f32", "weight.f16", "weight.bf16", "double.f64", "ids.i32"] {
            let count = try file.info(name).elementCount
            var buffer = [Float](repeating: 42, count: count)
            try buffer.withUnsafeMutableBufferPointer { try file.copyFloats(name, into: $0.baseAddress!, count: count) }
            assertSameFloats(buffer, try file.floats(name), name)
        }
        var wrong = [Float](repeating: 0, count: 5)
        XCTAssertThrowsError(try wrong.withUnsafeMutableBufferPointer { try file.copyFloats("weight.f32", into: $0) }) {
            XCTAssertEqual($0 as? SafeTensorsError,
                           .countMismatch(path: file.path, tensor: "weight.f32", expected: 6, actual: 5))
        }
    }

    func testLookupAndConversionErrors() throws {
        let file = try SafeTensorsFile(path: Self.fixture("sample.safetensors"))
        XCTAssertFalse(file.contains("missing"))
        XCTAssertNil(file["missing"])
        XCTAssertEqual(file["scalar"]?.dtype, .f32)
        XCTAssertThrowsError(try file.floats("missing")) {
            XCTAssertEqual($0 as? SafeTensorsError, .tensorNotFound(path: file.path, tensor: "missing"))
            XCTAssertTrue("\($0)".contains("sample.safetensors: no tensor named \"missing\""))
        }
        XCTAssertThrowsError(try file.int64s("weight.f16")) {
            XCTAssertEqual($0 as? SafeTensorsError,
                           .unsupportedConversion(path: file.path, tensor: "weight.f16", dtype: .f16, to: "Int64"))
        }
        XCTAssertEqual(try file.rawBytes("bytes.u8"), [0, 255])
    }

    func testFilesWithoutTensors() throws {
        let metadataOnly = try SafeTensorsFile(path: Self.fixture("metadata_only.safetensors"))
        XCTAssertEqual(metadataOnly.names, [])
        XCTAssertEqual(metadataOnly.metadata, ["format": "pt"])
        let none = try SafeTensorsFile(path: Self.fixture("no_tensors.safetensors"))
        XCTAssertEqual(none.names, [])
        XCTAssertEqual(none.metadata, [:])
        XCTAssertEqual(none.parameterCount, 0)
    }

    func testDescribe() throws {
        let file = try SafeTensorsFile(path: Self.fixture("sample.safetensors"))
        let lines = file.describe().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertTrue(lines[0].hasSuffix("sample.safetensors: 11 tensors, 925 bytes"), lines[0])
        XCTAssertEqual(lines[1], "name          dtype    shape")
        XCTAssertEqual(lines[2], "ids.i64       I64      [3]")
        XCTAssertTrue(lines.contains("scalar        F32      []"))
        XCTAssertTrue(lines.contains("weight.f32    F32      [2, 3]"))
        XCTAssertTrue(lines.contains("empty         F32      [0, 3]"))
        XCTAssertTrue(lines.contains("metadata:"))
        XCTAssertTrue(lines.contains("  format: np"))
        XCTAssertTrue(lines.contains(#"  note: café \"quoted\" \\ / tab\t newline\n"#), "control characters escaped")
        XCTAssertEqual(lines.last, "parameters: 39")
    }

    // MARK: Writing files PyPI reads

    /// Builds the writer described by writer_input.json.
    func makeReferenceWriter() throws -> (SafeTensorsWriter, [[String: Any]]) {
        let input = try Self.loadJSON("writer_input.json")
        var writer = SafeTensorsWriter(metadata: try XCTUnwrap(input["metadata"] as? [String: String]))
        let tensors = try XCTUnwrap(input["tensors"] as? [[String: Any]])
        for t in tensors {
            let name = t["name"] as! String
            let dtype = try XCTUnwrap(SafeTensorsDType(rawValue: t["dtype"] as! String))
            let shape = t["shape"] as! [Int]
            switch dtype {
            case .i32: try writer.add(name, shape: shape, int32s: Self.ints(t["ints"]).map { Int32($0) })
            case .i64: try writer.add(name, shape: shape, int64s: Self.ints(t["ints"]))
            default: try writer.add(name, dtype: dtype, shape: shape, floats: Self.floats(t["input"]))
            }
        }
        return (writer, tensors)
    }

    func testWriterMatchesReference() throws {
        let (writer, _) = try makeReferenceWriter()
        if let out = ProcessInfo.processInfo.environment["LDM_WRITE_SAFETENSORS_REFERENCE"] {
            try writer.write(to: out)
        }
        let reference = try Data(contentsOf: URL(fileURLWithPath: Self.fixture("writer_reference.safetensors")))
        XCTAssertEqual(writer.serialized(), [UInt8](reference), "writer output differs from the PyPI-verified reference")

        let path = temporaryDirectory.appendingPathComponent("out.safetensors").path
        try writer.write(to: path)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), reference)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: temporaryDirectory.path), ["out.safetensors"],
                       "no temporary file left behind")
    }

    func testWriterRoundTripStoresRoundedValues() throws {
        let (writer, tensors) = try makeReferenceWriter()
        let path = temporaryDirectory.appendingPathComponent("round.safetensors").path
        try writer.write(to: path)
        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.metadata, writer.metadata)
        XCTAssertEqual(Set(file.names), Set(writer.names))
        // Data order: dtype alignment descending (I64, F32, I32, BF16, F16), then name bytes.
        XCTAssertEqual(file.names, ["c.i64", "A.upper", "scalar", "z.f32", "ünïcode", "b.i32", "m.bf16", "a.f16", "empty"])
        for t in tensors {
            let name = t["name"] as! String
            XCTAssertEqual(try file.info(name).shape, t["shape"] as? [Int], name)
            if t["ints"] != nil {
                XCTAssertEqual(try file.int64s(name), Self.ints(t["ints"]), name)
            } else {
                assertSameFloats(try file.floats(name), Self.floats(t["stored"]), name)
            }
        }
    }

    func testWriterMatchesPyPIForEmptyAndMetadataOnlyFiles() throws {
        let none = try Data(contentsOf: URL(fileURLWithPath: Self.fixture("no_tensors.safetensors")))
        XCTAssertEqual(SafeTensorsWriter().serialized(), [UInt8](none))
        let metadataOnly = try Data(contentsOf: URL(fileURLWithPath: Self.fixture("metadata_only.safetensors")))
        XCTAssertEqual(SafeTensorsWriter(metadata: ["format": "pt"]).serialized(), [UInt8](metadataOnly))
    }

    func testWriterPadsHeaderToMultipleOfEight() throws {
        for length in 1...9 {
            var writer = SafeTensorsWriter()
            try writer.add(String(repeating: "w", count: length), shape: [1], floats: [1])
            let bytes = writer.serialized()
            let n = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            XCTAssertEqual(n % 8, 0)
            XCTAssertEqual(bytes[8 + Int(n) - 1] == 0x20 || bytes[8 + Int(n) - 1] == UInt8(ascii: "}"), true)
        }
    }

    func testWriterOverwritesAtomically() throws {
        let path = temporaryDirectory.appendingPathComponent("model.safetensors").path
        var first = SafeTensorsWriter()
        try first.add("a", shape: [2], floats: [1, 2])
        try first.write(to: path)
        let opened = try SafeTensorsFile(path: path)  // stays mapped while the file is replaced
        var second = SafeTensorsWriter()
        try second.add("b", dtype: .bf16, shape: [3], floats: [1, 2, 3])
        try second.write(to: path)
        XCTAssertEqual(try opened.floats("a"), [1, 2], "the old mapping is unaffected by the rename")
        XCTAssertEqual(try SafeTensorsFile(path: path).floats("b"), [1, 2, 3])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: temporaryDirectory.path), ["model.safetensors"])
    }

    func testWriterErrors() throws {
        var writer = SafeTensorsWriter()
        try writer.add("a", shape: [2], floats: [1, 2])
        func expectInvalid(_ body: () throws -> Void, _ tensor: String, _ phrase: String, line: UInt = #line) {
            XCTAssertThrowsError(try body(), line: line) { error in
                guard case let .invalidTensor(name, reason)? = error as? SafeTensorsError else {
                    return XCTFail("unexpected \(error)", line: line)
                }
                XCTAssertEqual(name, tensor, line: line)
                XCTAssertTrue(reason.contains(phrase), reason, line: line)
            }
        }
        expectInvalid({ try writer.add("a", shape: [1], floats: [1]) }, "a", "already added")
        expectInvalid({ try writer.add("b", shape: [3], floats: [1, 2]) }, "b", "holds 3 elements but 2")
        expectInvalid({ try writer.add("c", shape: [-1], floats: []) }, "c", "negative")
        expectInvalid({ try writer.add("d", dtype: .i32, shape: [1], floats: [1]) }, "d", "not I32")
        expectInvalid({ try writer.add("__metadata__", shape: [1], floats: [1]) }, "__metadata__", "reserved")
        expectInvalid({ try writer.add("e", dtype: .i64, shape: [2], rawBytes: [0, 1, 2]) }, "e", "needs 16 bytes")
        expectInvalid({ try writer.add("f", shape: [Int.max, 2], floats: []) }, "f", "overflows")
        XCTAssertEqual(writer.names, ["a"])

        let path = temporaryDirectory.appendingPathComponent("no/such/dir/x.safetensors").path
        XCTAssertThrowsError(try writer.write(to: path)) { error in
            guard case let .writeFailed(p, reason)? = error as? SafeTensorsError else { return XCTFail("\(error)") }
            XCTAssertEqual(p, path)
            XCTAssertTrue(reason.contains("No such file"), reason)
        }
    }

    // MARK: Element conversions

    func testHalfToFloatIsExactForEveryBitPattern() {
        for bits in 0...UInt16.max {
            let ours = ElementConversion.halfToFloat(bits)
            let reference = Float(Float16(bitPattern: bits))
            if reference.isNaN {
                XCTAssertTrue(ours.isNaN, "\(bits)")
                XCTAssertEqual(ours.sign, reference.sign, "\(bits)")
            } else if ours.bitPattern != reference.bitPattern {
                XCTFail("F16 \(String(bits, radix: 16)): \(ours) != \(reference)")
                return
            }
        }
    }

    func testBFloat16RoundsToNearestEven() {
        // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even one (1).
        XCTAssertEqual(ElementConversion.floatToBFloat16(1 + 0x1p-8), 0x3F80)
        XCTAssertEqual(ElementConversion.floatToBFloat16(1 + 3 * 0x1p-8), 0x3F82)
        XCTAssertEqual(ElementConversion.floatToBFloat16(1 + 0x1p-8 + 0x1p-20), 0x3F81, "above the tie rounds up")
        XCTAssertEqual(ElementConversion.floatToBFloat16(-2.5), 0xC020)
        XCTAssertEqual(ElementConversion.floatToBFloat16(.greatestFiniteMagnitude), 0x7F80, "rounds to +inf")
        XCTAssertEqual(ElementConversion.floatToBFloat16(-.infinity), 0xFF80)
        XCTAssertTrue(ElementConversion.bfloat16ToFloat(ElementConversion.floatToBFloat16(.nan)).isNaN)
        XCTAssertEqual(ElementConversion.bfloat16ToFloat(0x3F80), 1)
    }

    func testFloat8Decoding() {
        // F8_E4M3 (fn): 0x38 = 1, 0x7E = 448 (max), 0x01 = 2^-9 (min subnormal), 0x7F = NaN, 0xC0 = -2.
        XCTAssertEqual(ElementConversion.f8E4M3ToFloat(0x38), 1)
        XCTAssertEqual(ElementConversion.f8E4M3ToFloat(0x7E), 448)
        XCTAssertEqual(ElementConversion.f8E4M3ToFloat(0x01), 0x1p-9)
        XCTAssertEqual(ElementConversion.f8E4M3ToFloat(0x78), 256)
        XCTAssertEqual(ElementConversion.f8E4M3ToFloat(0xC0), -2)
        XCTAssertTrue(ElementConversion.f8E4M3ToFloat(0x7F).isNaN)
        XCTAssertTrue(ElementConversion.f8E4M3ToFloat(0xFF).isNaN)
        // F8_E5M2: 0x3C = 1, 0x7B = 57344 (max), 0x7C = inf, 0x01 = 2^-16.
        XCTAssertEqual(ElementConversion.f8E5M2ToFloat(0x3C), 1)
        XCTAssertEqual(ElementConversion.f8E5M2ToFloat(0x7B), 57344)
        XCTAssertEqual(ElementConversion.f8E5M2ToFloat(0x7C), .infinity)
        XCTAssertEqual(ElementConversion.f8E5M2ToFloat(0x01), 0x1p-16)
    }

    func testDTypeSizesAndLayoutOrder() {
        let sizes: [SafeTensorsDType: Int] = [.bool: 1, .u8: 1, .i8: 1, .f8E5M2: 1, .f8E4M3: 1, .i16: 2, .u16: 2,
                                              .f16: 2, .bf16: 2, .i32: 4, .u32: 4, .f32: 4, .f64: 8, .i64: 8, .u64: 8]
        for dtype in SafeTensorsDType.allCases { XCTAssertEqual(dtype.byteSize, sizes[dtype], dtype.rawValue) }
        XCTAssertEqual(SafeTensorsDType(rawValue: "F8_E4M3"), .f8E4M3)
        XCTAssertTrue(SafeTensorsDType.i64.layoutRank > SafeTensorsDType.f32.layoutRank)
        XCTAssertTrue(SafeTensorsDType.f32.layoutRank > SafeTensorsDType.i32.layoutRank)
        XCTAssertTrue(SafeTensorsDType.bf16.layoutRank > SafeTensorsDType.f16.layoutRank)
    }
}

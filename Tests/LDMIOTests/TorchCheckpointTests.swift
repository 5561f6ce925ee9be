// TorchCheckpointTests.swift — reading torch.save zip checkpoints with the restricted unpickler,
// refusing code-running pickles, and failing cleanly on damaged files.
//
// Fixtures (Tests/LDMIOTests/Fixtures/ckpt/) come from
//     /work/venv/bin/python scripts/make_ckpt_fixtures.py
// (versions in versions.json). The script writes each good checkpoint with torch.save and its
// tensors, made contiguous, with safetensors' save_file (`*.expected.safetensors`); it checks that
// torch.load(weights_only=True) reads every good file to exactly those tensors, refuses every
// malicious one, and that torch.load(weights_only=False) really runs each malicious payload (a
// `touch /tmp/ldm-pwned-<kind>`, removed again).

import Foundation
import XCTest
@testable import LDMIO

final class TorchCheckpointTests: XCTestCase {

    // MARK: Helpers

    static func fixture(_ name: String) -> String {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
            .appendingPathComponent("ckpt").appendingPathComponent(name).path
    }

    /// Bitwise equality, except that any NaN equals any NaN.
    func assertSameFloats(_ a: [Float], _ b: [Float], _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, message, file: file, line: line)
        for (i, (x, y)) in zip(a, b).enumerated() where !(x.bitPattern == y.bitPattern || (x.isNaN && y.isNaN)) {
            XCTFail("\(message)[\(i)]: \(x) != \(y)", file: file, line: line)
            return
        }
    }

    /// Every tensor of `ckpt` equals the one of the same name in `expected`: names, shapes, dtypes, values.
    func assertSameTensors(_ ckpt: TorchCheckpointFile, _ expected: SafeTensorsFile, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(ckpt.names, expected.names.sorted(), file: file, line: line)
        for name in expected.names {
            XCTAssertTrue(ckpt.contains(name), name, file: file, line: line)
            XCTAssertEqual(try ckpt.shape(of: name), try expected.shape(of: name), name, file: file, line: line)
            XCTAssertEqual(try ckpt.dtype(of: name), try expected.dtype(of: name), name, file: file, line: line)
            assertSameFloats(try ckpt.floatArray(name), try expected.floatArray(name), name, file: file, line: line)
        }
    }

    /// The error `body` throws, which must be a TorchCheckpointError with a one-line description.
    func checkpointError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> TorchCheckpointError? {
        do {
            try body()
            XCTFail("no error thrown", file: file, line: line)
        } catch let error as TorchCheckpointError {
            XCTAssertFalse(error.description.contains("\n"), error.description, file: file, line: line)
            return error
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
        return nil
    }

    // MARK: Good checkpoints

    /// float32/16, bfloat16, float64, int64, bool, float8, uint16, a Parameter, a tensor with an
    /// attribute, transposed / permuted-strided / expanded (stride 0) views, a scalar, an empty
    /// tensor and two views of one storage, against safetensors copies.
    func testPlainStateDictMatchesExpectation() throws {
        let ckpt = try TorchCheckpointFile(path: Self.fixture("plain.ckpt"))
        try assertSameTensors(ckpt, try SafeTensorsFile(path: Self.fixture("plain.expected.safetensors")))
        XCTAssertEqual(ckpt.names.count, 21)
        XCTAssertEqual(try ckpt.shape(of: "model.transposed"), [5, 3])
        XCTAssertEqual(try ckpt.shape(of: "model.scalar"), [])
        XCTAssertEqual(try ckpt.floatArray("model.scalar"), [0.25])
        XCTAssertEqual(try ckpt.shape(of: "model.empty"), [0, 3])
        XCTAssertEqual(try ckpt.dtype(of: "model.half_weight"), .f16)
        XCTAssertEqual(try ckpt.dtype(of: "model.bf16_weight"), .bf16)
        XCTAssertEqual(try ckpt.dtype(of: "model.float8_e4m3"), .f8E4M3)
        XCTAssertEqual(try ckpt.floatArray("model.uint16"), [0, 1, 40000, 65535])
        XCTAssertEqual(try ckpt.floatArray("cond_stage_model.position_ids"), [0, 1, 2, 3, 4, 5, 6])
        // The shared storage: `part` is elements 6..<18 of `whole`.
        XCTAssertEqual(try ckpt.floatArray("shared.part"), Array(try ckpt.floatArray("shared.whole")[6..<18]))
        XCTAssertEqual(ckpt.metadata, [:])
    }

    /// The same entries re-packed with zip64 extra fields and a zip64 end record.
    func testZip64MatchesExpectation() throws {
        let ckpt = try TorchCheckpointFile(path: Self.fixture("plain_zip64.ckpt"))
        try assertSameTensors(ckpt, try SafeTensorsFile(path: Self.fixture("plain.expected.safetensors")))
    }

    /// {"state_dict": {...}, "global_step": 7, ...}: the state dict's tensors only (not the
    /// optimizer's), the top level's scalars as metadata.
    func testLightningCheckpoint() throws {
        let ckpt = try TorchCheckpointFile(path: Self.fixture("lightning.ckpt"))
        try assertSameTensors(ckpt, try SafeTensorsFile(path: Self.fixture("lightning.expected.safetensors")))
        XCTAssertEqual(ckpt.metadata, ["global_step": "7", "epoch": "0", "pytorch-lightning_version": "1.4.2"])
        XCTAssertFalse(ckpt.names.contains { $0.contains("exp_avg") })
    }

    /// An AUTOMATIC1111 embedding: `string_to_param.*` is the one tensor; `string_to_token.*` is
    /// an int and is skipped.
    func testA1111Embedding() throws {
        let ckpt = try TorchCheckpointFile(path: Self.fixture("embedding.pt"))
        try assertSameTensors(ckpt, try SafeTensorsFile(path: Self.fixture("embedding.expected.safetensors")))
        XCTAssertEqual(ckpt.names, ["string_to_param.*"])
        XCTAssertEqual(try ckpt.shape(of: "string_to_param.*"), [2, 32])
        XCTAssertEqual(ckpt.metadata, ["name": "tiny", "step": "10"])
    }

    func testTensorSourceErrors() throws {
        let path = Self.fixture("embedding.pt")
        let ckpt = try TorchCheckpointFile(path: path)
        XCTAssertFalse(ckpt.contains("string_to_token.*"))
        XCTAssertEqual(checkpointError { _ = try ckpt.shape(of: "nope") }, .tensorNotFound(path: path, tensor: "nope"))
        var buffer = [Float](repeating: 0, count: 10)
        XCTAssertEqual(checkpointError { try ckpt.copyFloats("string_to_param.*", into: &buffer, count: 10) },
                       .countMismatch(path: path, tensor: "string_to_param.*", expected: 64, actual: 10))
    }

    /// A real checkpoint, when given: LDM_TORCH_CHECKPOINT=file.ckpt reads every tensor, and
    /// LDM_TORCH_CHECKPOINT_EXPECTED=file.safetensors (the same weights, e.g. from
    /// `safetensors.torch.save_file(torch.load(f, weights_only=True)["state_dict"], …)`) compares them.
    func testCheckpointFromEnvironment() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let path = environment["LDM_TORCH_CHECKPOINT"] else { throw XCTSkip("LDM_TORCH_CHECKPOINT not set") }
        let start = Date()
        let ckpt = try TorchCheckpointFile(path: path)
        var elements = 0
        if let expected = environment["LDM_TORCH_CHECKPOINT_EXPECTED"] {
            try assertSameTensors(ckpt, try SafeTensorsFile(path: expected))
        } else {
            for name in ckpt.names { elements += try ckpt.floatArray(name).count }
        }
        print("\(path): \(ckpt.names.count) tensors, \(elements) elements, metadata \(ckpt.metadata), "
              + "\(String(format: "%.2f", Date().timeIntervalSince(start))) s")
    }

    // MARK: Malicious checkpoints

    /// Each would run `touch /tmp/ldm-pwned-<kind>` under pickle / torch.load(weights_only=False):
    /// here each is refused with one line naming the global, and the file is not created.
    func testMaliciousPicklesAreRefusedWithoutRunning() throws {
        let cases = [
            ("malicious_system.ckpt", "/tmp/ldm-pwned-system", "posix.system"),   // GLOBAL, protocol 2
            ("malicious_exec.ckpt", "/tmp/ldm-pwned-exec", "builtins.exec"),      // STACK_GLOBAL, protocol 4
            ("malicious_inst.ckpt", "/tmp/ldm-pwned-inst", "os.system"),          // INST, protocol 0
        ]
        for (name, marker, global) in cases {
            try? FileManager.default.removeItem(atPath: marker)
            let path = Self.fixture(name)
            let error = checkpointError { _ = try TorchCheckpointFile(path: path) }
            XCTAssertEqual(error, .forbiddenGlobal(path: path, name: global), name)
            XCTAssertEqual(error?.description,
                           "\(path): refusing to load: the pickle calls \(global), which only a code-running loader would accept"
                           + " (only tensors and plain containers are read, as torch.load(weights_only=True) does)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "\(name) created \(marker)")
        }
    }

    // MARK: Damaged and foreign files

    func testDamagedAndForeignFiles() {
        func error(_ name: String) -> TorchCheckpointError? { checkpointError { _ = try TorchCheckpointFile(path: Self.fixture(name)) } }
        let truncated = Self.fixture("truncated.ckpt")
        XCTAssertEqual(error("truncated.ckpt"),
                       .notZip(path: truncated, detail: "no end-of-central-directory record (the file is cut short?)"))
        let text = Self.fixture("not_a_zip.ckpt")
        XCTAssertEqual(error("not_a_zip.ckpt"), .notZip(path: text, detail: "no zip end-of-central-directory record"))
        guard case let .compressedEntry(_, entry, method)? = error("compressed.ckpt") else { return XCTFail("compressed") }
        XCTAssertEqual(method, 8)
        XCTAssertTrue(entry.hasSuffix("/data.pkl"), entry)
        XCTAssertEqual(error("big_endian.ckpt"), .unsupportedByteOrder(path: Self.fixture("big_endian.ckpt"), byteOrder: "big"))
        guard case let .notZip(_, detail)? = error("legacy.pt") else { return XCTFail("legacy") }
        XCTAssertTrue(detail.contains("legacy torch.save format"), detail)
        guard case .cannotOpen? = checkpointError({ _ = try TorchCheckpointFile(path: "/nonexistent/x.ckpt") }) else { return XCTFail("missing") }
        guard case .cannotOpen? = checkpointError({ _ = try TorchCheckpointFile(path: "/tmp") }) else { return XCTFail("directory") }
        XCTAssertEqual(checkpointError { _ = try TorchCheckpointFile(bytes: [], path: "empty.ckpt") },
                       .notZip(path: "empty.ckpt", detail: "the file is empty"))
    }

    /// Every prefix of a real checkpoint, and every single-byte change of it, gives either a
    /// checkpoint whose tensors all read, or a TorchCheckpointError — never a crash.
    func testDamagedCopiesNeverCrash() throws {
        for name in ["plain.ckpt", "plain_zip64.ckpt"] {
            try assertDamagedCopiesNeverCrash(Array(try Data(contentsOf: URL(fileURLWithPath: Self.fixture(name)))))
        }
    }

    func assertDamagedCopiesNeverCrash(_ original: [UInt8]) throws {
        var opened = 0, refused = 0
        func attempt(_ bytes: [UInt8]) {
            do {
                let ckpt = try TorchCheckpointFile(bytes: bytes, path: "fuzz.ckpt")
                // A changed size of the expanded (stride 0) view may ask for billions of elements.
                for name in ckpt.names where try ckpt.shape(of: name).reduce(1, *) <= 1 << 16 { _ = try ckpt.floatArray(name) }
                opened += 1
            } catch is TorchCheckpointError {
                refused += 1
            } catch {
                XCTFail("unexpected error \(error)")
            }
        }
        for length in 0..<original.count { attempt(Array(original[..<length])) }
        for i in original.indices {
            for change: UInt8 in [0xFF, 0x01, 0x80] {
                var copy = original
                copy[i] ^= change
                attempt(copy)
            }
        }
        XCTAssertEqual(refused + opened, 4 * original.count)
        XCTAssertGreaterThan(refused, original.count)  // every truncation at least
    }

    // MARK: Hand-written pickles

    /// A torch-style zip (`archive/…`, STORED, CRCs left 0: the reader does not check them).
    static func torchZip(_ pickle: [UInt8], records: [(String, [UInt8])] = []) -> [UInt8] {
        var out: [UInt8] = [], central: [UInt8] = []
        func le(_ v: Int, _ n: Int, _ to: inout [UInt8]) { for i in 0..<n { to.append(UInt8((v >> (8 * i)) & 0xFF)) } }
        let entries = [("archive/data.pkl", pickle), ("archive/byteorder", Array("little".utf8))]
            + records.map { ("archive/data/" + $0.0, $0.1) }
        for (name, data) in entries {
            let offset = out.count
            le(0x0403_4B50, 4, &out); le(20, 2, &out); le(0, 2, &out); le(0, 2, &out); le(0, 4, &out); le(0, 4, &out)
            le(data.count, 4, &out); le(data.count, 4, &out); le(name.utf8.count, 2, &out); le(0, 2, &out)
            out += Array(name.utf8) + data
            le(0x0201_4B50, 4, &central); le(20, 2, &central); le(20, 2, &central); le(0, 2, &central); le(0, 2, &central)
            le(0, 4, &central); le(0, 4, &central); le(data.count, 4, &central); le(data.count, 4, &central)
            le(name.utf8.count, 2, &central); le(0, 2, &central); le(0, 2, &central); le(0, 2, &central); le(0, 2, &central)
            le(0, 4, &central); le(offset, 4, &central)
            central += Array(name.utf8)
        }
        let directory = out.count
        out += central
        le(0x0605_4B50, 4, &out); le(0, 2, &out); le(0, 2, &out); le(entries.count, 2, &out); le(entries.count, 2, &out)
        le(central.count, 4, &out); le(directory, 4, &out); le(0, 2, &out)
        return out
    }

    /// Pickle building blocks (opcodes as in Python's pickletools).
    enum P {
        static func str(_ s: String) -> [UInt8] {
            let b = Array(s.utf8)
            return [0x58] + [UInt8(b.count & 0xFF), UInt8(b.count >> 8 & 0xFF), 0, 0] + b
        }
        static func global(_ module: String, _ name: String) -> [UInt8] { [0x63] + Array("\(module)\n\(name)\n".utf8) }
        static func int(_ v: UInt8) -> [UInt8] { [0x4B, v] }
        static let proto: [UInt8] = [0x80, 0x02], mark: [UInt8] = [0x28], tuple: [UInt8] = [0x74], reduce: [UInt8] = [0x52]
        static let emptyDict: [UInt8] = [0x7D], emptyTuple: [UInt8] = [0x29], setItems: [UInt8] = [0x75], stop: [UInt8] = [0x2E]

        /// `{name: _rebuild_tensor_v2(FloatStorage "0" of `numel`, offset, size, stride, False, OrderedDict())}`.
        static func tensorDict(numel: UInt8, offset: UInt8, size: [UInt8], stride: [UInt8], extra: [UInt8] = []) -> [UInt8] {
            let storage = mark + str("storage") + global("torch", "FloatStorage") + str("0") + str("cpu") + int(numel) + tuple + [0x51]
            let sizes = mark + size.flatMap { int($0) } + tuple
            let strides = mark + stride.flatMap { int($0) } + tuple
            let hooks = global("collections", "OrderedDict") + emptyTuple + reduce
            let tensor = global("torch._utils", "_rebuild_tensor_v2")
                + mark + storage + int(offset) + sizes + strides + [0x89] + hooks + tuple + reduce
            return proto + emptyDict + mark + str("w") + tensor + extra + setItems + stop
        }
    }

    func testHandWrittenTensorViews() throws {
        let floats: [Float] = [0, 1, 2, 3, 4, 5]
        let record = floats.withUnsafeBytes { Array($0) }
        // A 2×2 view at offset 1 with strides (1, 2): elements 1, 3 / 2, 4.
        let good = Self.torchZip(P.tensorDict(numel: 6, offset: 1, size: [2, 2], stride: [1, 2]), records: [("0", record)])
        let ckpt = try TorchCheckpointFile(bytes: good, path: "view.ckpt")
        XCTAssertEqual(try ckpt.floatArray("w"), [1, 3, 2, 4])
        // Non-tensor values torch allows (torch.Size, torch.device, _codecs.encode, set) are read and skipped.
        let extras = P.str("size") + P.global("torch", "Size") + P.mark + P.mark + P.int(2) + P.tuple + P.tuple + P.reduce
            + P.str("device") + P.global("torch", "device") + P.mark + P.str("cuda") + P.tuple + P.reduce
            + P.str("bytes") + P.global("_codecs", "encode") + P.mark + P.str("ab") + P.str("latin1") + P.tuple + P.reduce
            + P.str("set") + P.global("builtins", "set") + P.emptyTuple + P.reduce
            + P.str("step") + P.int(3)
        let mixed = Self.torchZip(P.tensorDict(numel: 6, offset: 0, size: [6], stride: [1], extra: extras), records: [("0", record)])
        let read = try TorchCheckpointFile(bytes: mixed, path: "mixed.ckpt")
        XCTAssertEqual(read.names, ["w"])
        XCTAssertEqual(read.metadata, ["step": "3"])

        // Views that leave the storage, and storages longer than their record.
        let past = Self.torchZip(P.tensorDict(numel: 6, offset: 1, size: [2, 3], stride: [3, 1]), records: [("0", record)])
        XCTAssertEqual(checkpointError { _ = try TorchCheckpointFile(bytes: past, path: "p") },
                       .invalidTensor(path: "p", detail: "view of storage 0: reaches element 6 but the storage holds 6 F32 elements"))
        let short = Self.torchZip(P.tensorDict(numel: 7, offset: 0, size: [6], stride: [1]), records: [("0", record)])
        XCTAssertEqual(checkpointError { _ = try TorchCheckpointFile(bytes: short, path: "s") },
                       .invalidTensor(path: "s", detail: "storage 0 needs 28 bytes but its record data/0 holds 24"))
        let missing = Self.torchZip(P.tensorDict(numel: 6, offset: 0, size: [6], stride: [1]))
        XCTAssertEqual(checkpointError { _ = try TorchCheckpointFile(bytes: missing, path: "m") }, .missingEntry(path: "m", entry: "data/0"))
    }

    /// Integers of every width (LONG1 up to the edge of Int), floats, Python 2 strings, lists,
    /// bytes, DICT, NEWOBJ and BUILD on an OrderedDict: scalars of the top level become metadata.
    func testScalarValuesAndMetadata() throws {
        let long: (String, [UInt8]) -> [UInt8] = { key, bytes in P.str(key) + [0x8A, UInt8(bytes.count)] + bytes }
        let entries = long("a", [0xFF, 0x7F]) + long("b", [0xFF])
            + long("c", [0, 0, 0, 0, 0, 0, 0, 0, 1])                          // 2^64: too wide, skipped
            + long("k", [0, 0, 0, 0, 0, 0, 0, 0x80]) + long("l", [0, 0, 0, 0, 0, 0, 0, 0x80, 0xFF])
            + P.str("d") + [0x47, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0]                 // BINFLOAT 1.5, big-endian
            + P.str("e") + [0x55, 3] + Array("py2".utf8)                        // SHORT_BINSTRING
            + P.str("f") + [0x4A, 0xFB, 0xFF, 0xFF, 0xFF]                       // BININT -5
            + P.str("g") + [0x88]                                               // NEWTRUE
            + P.str("h") + [0x4D, 0x34, 0x12]                                   // BININT2 0x1234
            + P.str("i") + P.mark + P.int(1) + P.int(2) + [0x6C]                // LIST
            + P.str("j") + [0x43, 2, 0xAB, 0xCD]                                // SHORT_BINBYTES
        let dict = P.proto + P.mark + entries + [0x64] + P.stop
        let read = try TorchCheckpointFile(bytes: Self.torchZip(dict), path: "scalars.ckpt")
        XCTAssertEqual(read.names, [])
        XCTAssertEqual(read.metadata, ["a": "32767", "b": "-1", "k": "-9223372036854775808", "l": "-9223372036854775808",
                                       "d": "1.5", "e": "py2", "f": "-5", "g": "True", "h": "4660"])
        // OrderedDict made by NEWOBJ, filled by SETITEMS, then BUILD with its attribute dict (ignored).
        let ordered = P.proto + P.global("collections", "OrderedDict") + P.emptyTuple + [0x81]
            + P.mark + P.str("x") + P.int(1) + P.setItems + P.emptyDict + [0x62] + P.stop
        XCTAssertEqual(try TorchCheckpointFile(bytes: Self.torchZip(ordered), path: "o.ckpt").metadata, ["x": "1"])
    }

    func testHandWrittenPicklesAreRefused() {
        func error(_ pickle: [UInt8]) -> TorchCheckpointError? {
            checkpointError { _ = try TorchCheckpointFile(bytes: Self.torchZip(pickle), path: "h.ckpt") }
        }
        // A forbidden global anywhere, even as a dict value that is never called.
        XCTAssertEqual(error(P.proto + P.emptyDict + P.str("k") + P.global("builtins", "eval") + [0x73] + P.stop),
                       .forbiddenGlobal(path: "h.ckpt", name: "builtins.eval"))
        XCTAssertEqual(error(P.proto + [0x8C, 2] + Array("os".utf8) + [0x8C, 6] + Array("system".utf8) + [0x93] + P.stop),
                       .forbiddenGlobal(path: "h.ckpt", name: "os.system"))
        // Allowed by torch but not read here.
        guard case .unsupportedGlobal? = error(P.proto + P.global("torch._utils", "_rebuild_sparse_tensor") + P.stop) else {
            return XCTFail("sparse")
        }
        // Code-running or unknown opcodes.
        XCTAssertEqual(error([0x53] + Array("'x'\n.".utf8)), .unsupportedOpcode(path: "h.ckpt", opcode: 0x53, offset: 0))
        XCTAssertEqual(error(P.proto + [0x92] + P.stop), .unsupportedOpcode(path: "h.ckpt", opcode: 0x92, offset: 2))
        XCTAssertEqual(error(P.proto + [0xFF]), .unsupportedOpcode(path: "h.ckpt", opcode: 0xFF, offset: 2))
        // Calls on what is not an allowed callable, BUILD on plain values, missing memo, underflow.
        guard case .invalidPickle? = error(P.proto + P.str("f") + P.emptyTuple + P.reduce + P.stop) else { return XCTFail("reduce") }
        guard case .invalidPickle? = error(P.proto + P.global("torch", "Size") + P.emptyDict + [0x62] + P.stop) else { return XCTFail("build") }
        guard case .invalidPickle? = error(P.proto + [0x68, 7] + P.stop) else { return XCTFail("memo") }
        guard case .invalidPickle? = error(P.proto + P.mark + [0x85] + P.stop) else { return XCTFail("underflow below MARK") }
        guard case .invalidPickle? = error(P.proto + P.emptyDict) else { return XCTFail("no STOP") }
        // Lengths past the end; huge counts; deep or cyclic structures.
        guard case .invalidPickle? = error(P.proto + [0x8D, 0, 0, 0, 0, 0, 1, 0, 0] + P.stop) else { return XCTFail("BINUNICODE8") }
        guard case .limitExceeded? = error(P.proto + [UInt8](repeating: 0x4E, count: 1_000_001) + P.stop) else { return XCTFail("stack") }
        XCTAssertEqual(error(P.proto + P.emptyTuple + [UInt8](repeating: 0x85, count: 300_000) + P.stop),
                       .notStateDict(path: "h.ckpt", found: "a tuple"))
        let nested = P.proto + Array([P.emptyDict, P.str("d")].joined()).repeated(40) + P.emptyDict + [UInt8](repeating: 0x73, count: 40) + P.stop
        XCTAssertEqual(error(nested), .invalidStateDict(path: "h.ckpt", detail: "dicts nest deeper than 32 levels"))
        let cyclic = P.proto + P.emptyDict + [0x71, 0] + P.str("self") + [0x68, 0] + [0x73] + P.stop
        XCTAssertEqual(error(cyclic), .invalidStateDict(path: "h.ckpt", detail: "a dict contains itself (at \"self.\")"))
        XCTAssertEqual(error(P.proto + P.int(3) + P.stop), .notStateDict(path: "h.ckpt", found: "an int"))
    }
}

private extension Array {
    func repeated(_ n: Int) -> [Element] { (0..<n).flatMap { _ in self } }
}

// TorchCheckpoint.swift — PyTorch `.ckpt` / `.pt` / `.pth` files read without running code.
//
// Matches the zip layout of PyTorch's `torch/serialization.py` (`_save` / `_load`, the format
// torch.save writes since PyTorch 1.6): a STORED zip whose entries share one folder, `<archive>/`,
// holding `data.pkl` (the pickled object), `data/<key>` (the raw little-endian bytes of each
// storage), `byteorder` and `version`. The zip's central directory is read here (zip64 included);
// `data.pkl` is read by the restricted unpickler of Unpickler.swift, which accepts what
// `torch/_weights_only_unpickler.py` accepts (`torch.load(weights_only=True)`) and refuses any
// other global with one line naming it.
//
// The state dict is the top-level dict, or its "state_dict" entry when that is a dict (Lightning
// and CompVis checkpoints); nested dicts of tensors are flattened with "." joins (an AUTOMATIC1111
// embedding's `string_to_param` → `string_to_param.*`). Tensors are strided views of storages and
// are copied out in C order, converted to Float, by `copyFloats`.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A PyTorch checkpoint could not be opened or read, or was refused.
///
/// Each case's `description` is one line starting with the file path.
public enum TorchCheckpointError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// The file could not be opened, inspected or mapped (`reason` is the system's word).
    case cannotOpen(path: String, reason: String)
    /// The file is not a zip archive (`detail` says what it looks like instead).
    case notZip(path: String, detail: String)
    /// The zip structure is inconsistent or truncated.
    case invalidZip(path: String, detail: String)
    /// A zip entry is compressed or encrypted; torch.save writes every entry STORED.
    case compressedEntry(path: String, entry: String, method: Int)
    /// A required entry (`data.pkl`, a storage's `data/<key>`) is missing.
    case missingEntry(path: String, entry: String)
    /// The `byteorder` entry is not "little".
    case unsupportedByteOrder(path: String, byteOrder: String)
    /// The pickle names a global outside the allow-list: the file would run code if loaded by pickle.
    case forbiddenGlobal(path: String, name: String)
    /// The pickle names a global that torch.load(weights_only=True) allows but this reader does not read.
    case unsupportedGlobal(path: String, name: String, what: String)
    /// The pickle uses an opcode this reader does not accept.
    case unsupportedOpcode(path: String, opcode: UInt8, offset: Int)
    /// The pickle is malformed at `offset` (a byte offset in data.pkl).
    case invalidPickle(path: String, offset: Int, detail: String)
    /// The pickle builds more than a sane bound allows.
    case limitExceeded(path: String, what: String, limit: Int)
    /// A tensor or storage is inconsistent (a view past its storage, a short record, …).
    case invalidTensor(path: String, detail: String)
    /// A tensor kind this reader does not convert (complex, quantized, …).
    case unsupportedTensor(path: String, detail: String)
    /// The pickled object is not a dict of tensors.
    case notStateDict(path: String, found: String)
    /// Two entries flatten to the same name, or dicts nest too deeply.
    case invalidStateDict(path: String, detail: String)
    /// No tensor has this name.
    case tensorNotFound(path: String, tensor: String)
    /// The destination holds a different number of elements than the tensor.
    case countMismatch(path: String, tensor: String, expected: Int, actual: Int)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason):
            return "\(path): cannot open PyTorch checkpoint: \(reason)"
        case let .notZip(path, detail):
            return "\(path): not a PyTorch zip checkpoint: \(detail)"
        case let .invalidZip(path, detail):
            return "\(path): damaged zip archive: \(detail)"
        case let .compressedEntry(path, entry, method):
            let how = method == -1 ? "encrypted" : "compressed (zip method \(method))"
            return "\(path): entry \(quoted(entry)) is \(how); torch.save stores entries uncompressed, so re-save the file with torch.save"
        case let .missingEntry(path, entry):
            return "\(path): the archive has no entry \(quoted(entry))"
        case let .unsupportedByteOrder(path, byteOrder):
            return "\(path): byteorder is \(quoted(byteOrder)); only little-endian checkpoints are read"
        case let .forbiddenGlobal(path, name):
            return "\(path): refusing to load: the pickle calls \(printable(name)), which only a code-running loader would accept"
                + " (only tensors and plain containers are read, as torch.load(weights_only=True) does)"
        case let .unsupportedGlobal(path, name, what):
            return "\(path): the pickle uses \(printable(name)) (\(what)), which this reader does not support"
        case let .unsupportedOpcode(path, opcode, offset):
            let name = PickleOpcode.name(opcode).map { " (\($0))" } ?? ""
            return "\(path): pickle opcode 0x\(String(opcode, radix: 16))\(name) at byte \(offset) of data.pkl is not accepted"
                + " (only the opcodes that build tensors and plain containers are read)"
        case let .invalidPickle(path, offset, detail):
            return "\(path): damaged pickle at byte \(offset) of data.pkl: \(detail)"
        case let .limitExceeded(path, what, limit):
            return "\(path): refusing to load: the pickle exceeds the limit of \(limit) \(what)"
        case let .invalidTensor(path, detail):
            return "\(path): invalid tensor: \(detail)"
        case let .unsupportedTensor(path, detail):
            return "\(path): unsupported tensor: \(detail)"
        case let .notStateDict(path, found):
            return "\(path): the checkpoint holds \(found), not a dict of tensors"
        case let .invalidStateDict(path, detail):
            return "\(path): \(detail)"
        case let .tensorNotFound(path, tensor):
            return "\(path): no tensor named \(quoted(tensor))"
        case let .countMismatch(path, tensor, expected, actual):
            return "\(path): tensor \(quoted(tensor)): has \(expected) elements but the destination holds \(actual)"
        }
    }

    public var errorDescription: String? { description }
}

/// A name as a JSON string literal, so control characters cannot break the one-line message.
private func quoted(_ name: String) -> String { StrictJSON.quoted(name) }

/// A name from the file, cut to 200 characters and quoted only when it holds control characters.
private func printable(_ name: String) -> String {
    let short = name.count > 200 ? String(name.prefix(200)) + "…" : name
    return short.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) ? quoted(short) : short
}

/// A PyTorch zip checkpoint, memory-mapped, its pickle read by the restricted unpickler.
///
/// ```swift
/// let ckpt = try TorchCheckpointFile(path: "v1-5-pruned-emaonly.ckpt")
/// let w = try ckpt.floatArray("model.diffusion_model.input_blocks.0.0.weight")
/// print(ckpt.metadata["global_step"] ?? "-")
/// ```
/// Reading is thread-safe: the object is immutable after `init`.
public final class TorchCheckpointFile: TensorSource, @unchecked Sendable {
    /// The path the file was opened from (used in every error message).
    public let path: String
    /// The flattened tensor names, sorted.
    public let names: [String]
    /// The top-level dict's int, float, bool and string entries (`global_step`, `epoch`, an
    /// embedding's `name` and `step`), as text; empty when it has none.
    public let metadata: [String: String]

    private let file: FileBytes
    private let storages: [TorchStorage]
    private let tensors: [String: TorchTensorView]

    /// Opens, maps and reads the checkpoint at `path`; no code in it is run.
    /// - Throws: `TorchCheckpointError` naming the file and the first problem found.
    public convenience init(path: String) throws {
        try self.init(file: try FileBytes(mapping: path), path: path)
    }

    /// Reads a checkpoint held in memory (tests feed damaged copies through this).
    convenience init(bytes: [UInt8], path: String) throws {
        try self.init(file: FileBytes(copying: bytes), path: path)
    }

    private init(file: FileBytes, path: String) throws {
        let buffer = file.buffer
        let entries = try TorchZip.entries(of: buffer, path: path)
        // The archive folder is the first entry's (torch's reader does the same).
        guard let first = entries.first, let slash = first.name.firstIndex(of: "/") else {
            throw TorchCheckpointError.notZip(path: path, detail: "the zip has no <archive>/data.pkl")
        }
        let prefix = String(first.name[...slash])
        let byName = Dictionary(entries.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        guard byName.count == entries.count else {
            throw TorchCheckpointError.invalidZip(path: path, detail: "two entries have the same name")
        }
        guard let pickle = byName[prefix + "data.pkl"] else {
            throw TorchCheckpointError.missingEntry(path: path, entry: prefix + "data.pkl")
        }
        if let order = byName[prefix + "byteorder"] {
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: buffer[order.data]), as: UTF8.self)
            guard text == "little" else { throw TorchCheckpointError.unsupportedByteOrder(path: path, byteOrder: text) }
        }
        var unpickler = RestrictedUnpickler(path: path, input: UnsafeRawBufferPointer(rebasing: buffer[pickle.data]),
                                            storageRecord: { byName[prefix + "data/" + $0]?.data })
        let top = try unpickler.load()
        let contents = try StateDictWalk(path: path, arena: unpickler.arena, tensors: unpickler.tensors, top: top)
        self.path = path
        self.file = file
        self.storages = unpickler.storages
        self.tensors = contents.tensors
        self.names = contents.tensors.keys.sorted()
        self.metadata = contents.metadata
    }

    // MARK: TensorSource

    /// Whether a tensor of this name exists.
    public func contains(_ name: String) -> Bool { tensors[name] != nil }

    /// The shape of tensor `name` (outermost first; [] for a scalar).
    public func shape(of name: String) throws -> [Int] { try view(name).shape }

    /// The element type of tensor `name`.
    public func dtype(of name: String) throws -> SafeTensorsDType { try view(name).dtype }

    /// Converts the tensor's values to Float in C order straight into `destination`, which must
    /// hold exactly `count` = product(shape) elements. Any dtype converts as SafeTensorsFile's do
    /// (F64 and wide integers are rounded to the nearest Float).
    public func copyFloats(_ name: String, into destination: UnsafeMutablePointer<Float>, count: Int) throws {
        let t = try view(name)
        guard count == t.elementCount else {
            throw TorchCheckpointError.countMismatch(path: path, tensor: name, expected: t.elementCount, actual: count)
        }
        guard count > 0, let base = file.buffer.baseAddress else { return }
        let size = t.dtype.byteSize
        let first = base + storages[t.storage].bytes.lowerBound + t.offset * size
        if t.isContiguous {
            FloatConversion.convert(t.dtype, from: first, stride: 1, count: count, into: destination)
            return
        }
        // Strided: one run along the last dimension per index of the others, odometer order.
        let rank = t.shape.count
        let inner = t.shape[rank - 1], innerStride = t.strides[rank - 1]
        var index = [Int](repeating: 0, count: rank - 1)
        var offset = 0  // elements from `first`
        var out = destination
        for _ in 0..<(count / inner) {
            FloatConversion.convert(t.dtype, from: first + offset * size, stride: innerStride, count: inner, into: out)
            out += inner
            var d = rank - 2
            while d >= 0 {
                index[d] += 1
                offset += t.strides[d]
                if index[d] < t.shape[d] { break }
                offset -= t.strides[d] * t.shape[d]
                index[d] = 0
                d -= 1
            }
        }
    }

    private func view(_ name: String) throws -> TorchTensorView {
        guard let t = tensors[name] else { throw TorchCheckpointError.tensorNotFound(path: path, tensor: name) }
        return t
    }
}

// MARK: - The state dict

/// Picks the state dict out of the unpickled object and flattens it to named tensors.
private struct StateDictWalk {
    static let maxDepth = 32
    static let maxVisits = 10_000_000

    let path: String
    let arena: PickleArena
    let views: [TorchTensorView]
    private(set) var tensors: [String: TorchTensorView] = [:]
    private(set) var metadata: [String: String] = [:]
    private var visits = 0
    private var onPath: Set<Int> = []  // dicts being walked (a dict may contain itself)

    init(path: String, arena: PickleArena, tensors views: [TorchTensorView], top: PickleValue) throws {
        self.path = path
        self.arena = arena
        self.views = views
        guard case let .dict(d) = top else { throw TorchCheckpointError.notStateDict(path: path, found: top.kind) }
        let dict = arena.dicts[d]
        for (key, value) in zip(dict.keys, dict.values) {
            guard case let .string(name) = key else { continue }
            switch value {
            case let .int(i): metadata[name] = String(i)
            case let .float(x): metadata[name] = String(x)
            case let .bool(b): metadata[name] = b ? "True" : "False"
            case let .string(s): metadata[name] = s
            default: break
            }
        }
        if case let .dict(inner)? = dict[string: "state_dict"] {
            try flatten(inner, prefix: "", depth: 0)
        } else {
            try flatten(d, prefix: "", depth: 0)
        }
    }

    private mutating func flatten(_ d: Int, prefix: String, depth: Int) throws {
        guard depth < Self.maxDepth else {
            throw TorchCheckpointError.invalidStateDict(path: path, detail: "dicts nest deeper than \(Self.maxDepth) levels")
        }
        guard onPath.insert(d).inserted else {
            throw TorchCheckpointError.invalidStateDict(path: path, detail: "a dict contains itself (at \(quoted(prefix)))")
        }
        defer { onPath.remove(d) }
        let dict = arena.dicts[d]
        for (key, value) in zip(dict.keys, dict.values) {
            visits += 1
            guard visits <= Self.maxVisits else {
                throw TorchCheckpointError.limitExceeded(path: path, what: "dict entries to walk", limit: Self.maxVisits)
            }
            let name: String
            switch key {
            case let .string(s): name = prefix + s
            case let .int(i): name = prefix + String(i)
            default: continue
            }
            switch value {
            case let .tensor(t):
                guard tensors.updateValue(views[t], forKey: name) == nil else {
                    throw TorchCheckpointError.invalidStateDict(path: path, detail: "two entries are named \(quoted(name))")
                }
            case let .dict(inner):
                try flatten(inner, prefix: name + ".", depth: depth + 1)
            default:
                continue  // ints, strings, lists, …: not tensors of a state dict
            }
        }
    }
}

// MARK: - The zip container

/// One STORED zip entry: its name and where its bytes are in the file.
struct TorchZipEntry {
    let name: String
    let data: Range<Int>
}

/// Reads a zip's central directory (PKWARE APPNOTE 6.3: end record, zip64 end record and
/// locator, central headers, local headers), checking every offset against the file.
enum TorchZip {
    static func entries(of file: UnsafeRawBufferPointer, path: String) throws -> [TorchZipEntry] {
        let size = file.count
        func bad(_ detail: String) -> TorchCheckpointError { .invalidZip(path: path, detail: detail) }
        func read(_ offset: Int, _ width: Int) throws -> UInt64 {
            guard offset >= 0, width <= size, offset <= size - width else { throw bad("a field at byte \(offset) lies past the end of the file") }
            var v: UInt64 = 0
            for i in 0..<width { v |= UInt64(file[offset + i]) << (8 * UInt64(i)) }
            return v
        }
        func int(_ offset: Int, _ width: Int) throws -> Int {
            let v = try read(offset, width)
            guard v <= UInt64(Int.max) else { throw bad("a field at byte \(offset) is out of range") }
            return Int(v)
        }

        // The end-of-central-directory record: 22 bytes + a comment of up to 65535, at the end.
        var end = -1
        if size >= 22 {
            for candidate in stride(from: size - 22, through: max(0, size - 22 - 0xFFFF), by: -1)
            where file[candidate] == 0x50 && file[candidate + 1] == 0x4B && file[candidate + 2] == 5 && file[candidate + 3] == 6 {
                if try candidate + 22 + int(candidate + 20, 2) <= size {
                    end = candidate
                    break
                }
            }
        }
        guard end >= 0 else { throw TorchCheckpointError.notZip(path: path, detail: notZipDetail(file)) }
        guard try read(end + 4, 2) == 0, try read(end + 6, 2) == 0 else { throw bad("multi-disk archives are not supported") }
        var count = try int(end + 10, 2)
        var directorySize = try int(end + 12, 4)
        var directoryOffset = try int(end + 16, 4)
        var directoryLimit = end
        // Zip64: a locator just before the end record points at the zip64 end record.
        if end >= 20, try read(end - 20, 4) == 0x0706_4B50 {
            let record = try int(end - 20 + 8, 8)
            guard record <= end - 20 - 56, try read(record, 4) == 0x0606_4B50 else { throw bad("the zip64 end record is missing") }
            count = try int(record + 32, 8)
            directorySize = try int(record + 40, 8)
            directoryOffset = try int(record + 48, 8)
            directoryLimit = record
        }
        guard directoryOffset <= directoryLimit, directorySize <= directoryLimit - directoryOffset else {
            throw bad("the central directory (\(directorySize) bytes at \(directoryOffset)) lies past its end record")
        }
        guard count <= directorySize / 46 else { throw bad("\(count) entries cannot fit a \(directorySize)-byte central directory") }

        var entries: [TorchZipEntry] = []
        entries.reserveCapacity(count)
        var at = directoryOffset
        for _ in 0..<count {
            guard try read(at, 4) == 0x0201_4B50 else { throw bad("central directory entry at byte \(at) has a wrong signature") }
            let flags = try int(at + 8, 2), method = try int(at + 10, 2)
            var compressed = try int(at + 20, 4), uncompressed = try int(at + 24, 4)
            let nameLength = try int(at + 28, 2), extraLength = try int(at + 30, 2), commentLength = try int(at + 32, 2)
            var local = try int(at + 42, 4)
            let next = at + 46 + nameLength + extraLength + commentLength
            guard next <= directoryOffset + directorySize else { throw bad("central directory entry at byte \(at) runs past the directory") }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: file[at + 46..<at + 46 + nameLength]), as: UTF8.self)
            // Zip64 extra field (id 1): the 64-bit values of the fields that hold 0xFFFFFFFF, in order.
            var extra = at + 46 + nameLength
            let extraEnd = extra + extraLength
            while extra + 4 <= extraEnd {
                let id = try int(extra, 2), length = try int(extra + 2, 2)
                guard extra + 4 + length <= extraEnd else { throw bad("entry \(quoted(name)) has a damaged extra field") }
                if id == 1 {
                    var field = extra + 4
                    func wide() throws -> Int {
                        guard field + 8 <= extra + 4 + length else { throw bad("entry \(quoted(name)) has a short zip64 field") }
                        defer { field += 8 }
                        return try int(field, 8)
                    }
                    if uncompressed == 0xFFFF_FFFF { uncompressed = try wide() }
                    if compressed == 0xFFFF_FFFF { compressed = try wide() }
                    if local == 0xFFFF_FFFF { local = try wide() }
                }
                extra += 4 + length
            }
            if flags & 1 != 0 { throw TorchCheckpointError.compressedEntry(path: path, entry: name, method: -1) }
            guard method == 0 else { throw TorchCheckpointError.compressedEntry(path: path, entry: name, method: method) }
            guard compressed == uncompressed else { throw bad("stored entry \(quoted(name)) has two different sizes") }
            // The data follows the local header, whose name and extra lengths may differ from the central ones.
            guard try read(local, 4) == 0x0403_4B50 else { throw bad("entry \(quoted(name)) has no local header at byte \(local)") }
            let start = local + 30 + (try int(local + 26, 2)) + (try int(local + 28, 2))
            guard start <= directoryOffset, uncompressed <= directoryOffset - start else {
                throw bad("entry \(quoted(name)) (\(uncompressed) bytes at \(start)) runs past the end of the data")
            }
            entries.append(TorchZipEntry(name: name, data: start..<start + uncompressed))
            at = next
        }
        return entries
    }

    /// What a file without a zip end record looks like.
    private static func notZipDetail(_ file: UnsafeRawBufferPointer) -> String {
        if file.isEmpty { return "the file is empty" }
        if file.count >= 4, file[0] == 0x50, file[1] == 0x4B, file[2] == 0x03, file[3] == 0x04 {
            return "no end-of-central-directory record (the file is cut short?)"
        }
        if file.count >= 2, file[0] == 0x80, file[1] <= 5 {
            return "a bare pickle (the legacy torch.save format of PyTorch < 1.6), which is not read; re-save it with a newer torch.save"
        }
        return "no zip end-of-central-directory record"
    }
}

// MARK: - Bytes and conversion

/// The checkpoint's bytes: a read-only private mapping of the file, or a copy for tests.
final class FileBytes {
    let buffer: UnsafeRawBufferPointer
    private let mapped: Bool

    init(mapping path: String) throws {
        func fail(_ what: String) -> TorchCheckpointError {
            .cannotOpen(path: path, reason: what + String(cString: strerror(errno)))
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("") }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw fail("") }
        guard (status.st_mode & S_IFMT) == S_IFREG else { throw TorchCheckpointError.cannotOpen(path: path, reason: "not a regular file") }
        let size = Int(status.st_size)
        guard size > 0 else { throw TorchCheckpointError.notZip(path: path, detail: "the file is empty") }
        let pointer = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let pointer, pointer != UnsafeMutableRawPointer(bitPattern: -1) else { throw fail("mmap: ") }
        buffer = UnsafeRawBufferPointer(start: pointer, count: size)
        mapped = true
    }

    init(copying bytes: [UInt8]) {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        copy.copyBytes(from: bytes)
        buffer = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(copy)[0..<bytes.count])
        mapped = false
    }

    deinit {
        if mapped {
            munmap(UnsafeMutableRawPointer(mutating: buffer.baseAddress), buffer.count)
        } else {
            buffer.baseAddress.map { UnsafeMutableRawPointer(mutating: $0).deallocate() }
        }
    }
}

/// Element runs of any safetensors dtype to Float (the scalar conversions are ElementConversion's).
enum FloatConversion {
    /// Converts `count` elements, `stride` elements apart, starting at `source`.
    static func convert(_ dtype: SafeTensorsDType, from source: UnsafeRawPointer, stride: Int,
                        count: Int, into destination: UnsafeMutablePointer<Float>) {
        @inline(__always)
        func run<T: BitwiseCopyable>(_: T.Type, _ toFloat: (T) -> Float) {
            let step = stride * MemoryLayout<T>.size
            for i in 0..<count { destination[i] = toFloat(source.loadUnaligned(fromByteOffset: i * step, as: T.self)) }
        }
        switch dtype {
        case .f32:
            if stride == 1 {
                UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: count * 4)
            } else {
                run(Float.self) { $0 }
            }
        case .f16: run(UInt16.self, ElementConversion.halfToFloat)
        case .bf16: run(UInt16.self, ElementConversion.bfloat16ToFloat)
        case .f64: run(Double.self) { Float($0) }
        case .f8E4M3: run(UInt8.self, ElementConversion.f8E4M3ToFloat)
        case .f8E5M2: run(UInt8.self, ElementConversion.f8E5M2ToFloat)
        case .bool: run(UInt8.self) { $0 != 0 ? 1 : 0 }
        case .u8: run(UInt8.self) { Float($0) }
        case .i8: run(Int8.self) { Float($0) }
        case .i16: run(Int16.self) { Float($0) }
        case .u16: run(UInt16.self) { Float($0) }
        case .i32: run(Int32.self) { Float($0) }
        case .u32: run(UInt32.self) { Float($0) }
        case .i64: run(Int64.self) { Float($0) }
        case .u64: run(UInt64.self) { Float($0) }
        }
    }
}

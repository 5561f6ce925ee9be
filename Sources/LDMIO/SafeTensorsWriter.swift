// SafeTensorsWriter.swift — building a safetensors file and writing it atomically.
//
// The layout is the one PyPI safetensors' `save_file` produces, byte for byte when the metadata
// has at most one key (PyPI orders a larger metadata map by hash; we sort it by key):
//   - tensors sorted by dtype, largest alignment first (PyPI's Dtype order, descending), then by
//     name (byte-wise), so every tensor's data is aligned to its element size;
//   - the header is compact JSON: `__metadata__` first (omitted when empty), then the tensors in
//     data order, each as {"dtype":…,"shape":[…],"data_offsets":[begin,end]};
//   - the header is padded with spaces to a multiple of 8 bytes.
// Writing is atomic: a temporary file in the destination folder is written, fsync'ed and renamed
// over the destination, so a reader sees the old file or the new one, never half of one.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Collects tensors and metadata, then writes them as one safetensors file.
///
/// ```swift
/// var writer = SafeTensorsWriter(metadata: ["format": "pt"])
/// try writer.add("conv.weight", dtype: .f16, shape: [8, 4, 3, 3], floats: weights)
/// try writer.write(to: "model.safetensors")
/// ```
public struct SafeTensorsWriter: Sendable {
    /// The `__metadata__` map written to the header (left out when empty).
    public var metadata: [String: String]

    private struct Entry: Sendable {
        var name: String
        var dtype: SafeTensorsDType
        var shape: [Int]
        var bytes: [UInt8]
    }

    private var entries: [Entry] = []
    private var nameSet: Set<String> = []

    /// An empty writer with the given metadata.
    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    /// Names of the tensors added so far, in the order they were added.
    public var names: [String] { entries.map(\.name) }

    /// The element type and shape of an added tensor.
    public func info(_ name: String) throws -> (dtype: SafeTensorsDType, shape: [Int]) {
        guard let e = entries.first(where: { $0.name == name }) else {
            throw SafeTensorsError.invalidTensor(tensor: name, reason: "no tensor of this name was added")
        }
        return (e.dtype, e.shape)
    }

    /// Adds a floating-point tensor, converting `floats` (C order) to `dtype`, one of F32, F16,
    /// BF16 or F64. F16 and BF16 round to nearest, ties to even.
    public mutating func add(_ name: String, dtype: SafeTensorsDType = .f32, shape: [Int], floats: [Float]) throws {
        try floats.withUnsafeBufferPointer { try add(name, dtype: dtype, shape: shape, floats: $0) }
    }

    /// Adds a floating-point tensor from a buffer (see `add(_:dtype:shape:floats:)` for arrays).
    public mutating func add(_ name: String, dtype: SafeTensorsDType = .f32, shape: [Int],
                             floats: UnsafeBufferPointer<Float>) throws {
        guard [.f32, .f16, .bf16, .f64].contains(dtype) else {
            throw SafeTensorsError.invalidTensor(tensor: name, reason: "float data can be stored as F32, F16, BF16 or F64, not \(dtype.rawValue)")
        }
        let count = try checkNew(name, dtype: dtype, shape: shape)
        guard floats.count == count else {
            throw SafeTensorsError.invalidTensor(tensor: name, reason: "shape \(shape) holds \(count) elements but \(floats.count) values were given")
        }
        var bytes = [UInt8](repeating: 0, count: count * dtype.byteSize)
        bytes.withUnsafeMutableBytes { out in
            guard let o = out.baseAddress, let src = floats.baseAddress else { return }
            switch dtype {
            case .f32:
                o.copyMemory(from: src, byteCount: count * 4)
            case .f16:
                for i in 0..<count { o.storeBytes(of: ElementConversion.floatToHalf(src[i]), toByteOffset: 2 * i, as: UInt16.self) }
            case .bf16:
                for i in 0..<count { o.storeBytes(of: ElementConversion.floatToBFloat16(src[i]), toByteOffset: 2 * i, as: UInt16.self) }
            case .f64:
                for i in 0..<count { o.storeBytes(of: Double(src[i]), toByteOffset: 8 * i, as: Double.self) }
            default:
                break  // rejected above
            }
        }
        append(Entry(name: name, dtype: dtype, shape: shape, bytes: bytes))
    }

    /// Adds an I32 tensor.
    public mutating func add(_ name: String, shape: [Int], int32s: [Int32]) throws {
        let bytes = int32s.withUnsafeBytes { Array($0) }
        try add(name, dtype: .i32, shape: shape, rawBytes: bytes)
    }

    /// Adds an I64 tensor.
    public mutating func add(_ name: String, shape: [Int], int64s: [Int64]) throws {
        let bytes = int64s.withUnsafeBytes { Array($0) }
        try add(name, dtype: .i64, shape: shape, rawBytes: bytes)
    }

    /// Adds a tensor of any dtype from its stored bytes (little-endian, C order); the byte count
    /// must be product(shape) × dtype size.
    public mutating func add(_ name: String, dtype: SafeTensorsDType, shape: [Int], rawBytes: [UInt8]) throws {
        let count = try checkNew(name, dtype: dtype, shape: shape)
        guard rawBytes.count == count * dtype.byteSize else {
            throw SafeTensorsError.invalidTensor(tensor: name, reason: "shape \(shape) as \(dtype.rawValue) needs \(count * dtype.byteSize) bytes but \(rawBytes.count) were given")
        }
        append(Entry(name: name, dtype: dtype, shape: shape, bytes: rawBytes))
    }

    /// Validates a new tensor's name and shape; returns its element count.
    private func checkNew(_ name: String, dtype: SafeTensorsDType, shape: [Int]) throws -> Int {
        if name == "__metadata__" {
            throw SafeTensorsError.invalidTensor(tensor: name, reason: "the name is reserved for the metadata map")
        }
        if nameSet.contains(name) {
            throw SafeTensorsError.invalidTensor(tensor: name, reason: "a tensor of this name was already added")
        }
        var count = 1
        for d in shape {
            guard d >= 0 else { throw SafeTensorsError.invalidTensor(tensor: name, reason: "shape \(shape) has a negative dimension") }
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            if overflow { throw SafeTensorsError.invalidTensor(tensor: name, reason: "shape \(shape) overflows") }
            count = p
        }
        if count.multipliedReportingOverflow(by: dtype.byteSize).overflow {
            throw SafeTensorsError.invalidTensor(tensor: name, reason: "shape \(shape) overflows")
        }
        return count
    }

    private mutating func append(_ entry: Entry) {
        nameSet.insert(entry.name)
        entries.append(entry)
    }

    // MARK: Layout

    /// Entries in data order: dtype rank descending, then name by UTF-8 bytes.
    private var ordered: [Entry] {
        entries.sorted { a, b in
            if a.dtype != b.dtype { return a.dtype.layoutRank > b.dtype.layoutRank }
            return a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
        }
    }

    /// The 8-byte length and the padded header for `ordered`.
    private func headerBytes(for ordered: [Entry]) -> [UInt8] {
        var json: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        func separator() {
            if !first { json.append(UInt8(ascii: ",")) }
            first = false
        }
        if !metadata.isEmpty {
            separator()
            StrictJSON.appendQuoted("__metadata__", to: &json)
            json.append(contentsOf: Array(":{".utf8))
            let keys = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            for (i, key) in keys.enumerated() {
                if i > 0 { json.append(UInt8(ascii: ",")) }
                StrictJSON.appendQuoted(key, to: &json)
                json.append(UInt8(ascii: ":"))
                StrictJSON.appendQuoted(metadata[key]!, to: &json)
            }
            json.append(UInt8(ascii: "}"))
        }
        var offset = 0
        for e in ordered {
            separator()
            StrictJSON.appendQuoted(e.name, to: &json)
            let shape = e.shape.map(String.init).joined(separator: ",")
            let entry = ":{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + e.bytes.count)]}"
            json.append(contentsOf: Array(entry.utf8))
            offset += e.bytes.count
        }
        json.append(UInt8(ascii: "}"))
        // Pad with spaces so the data section starts at a multiple of 8.
        json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8))
        return withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) } + json
    }

    /// The complete file as bytes.
    public func serialized() -> [UInt8] {
        let ordered = self.ordered
        var out = headerBytes(for: ordered)
        out.reserveCapacity(out.count + ordered.reduce(0) { $0 + $1.bytes.count })
        for e in ordered { out.append(contentsOf: e.bytes) }
        return out
    }

    // MARK: Writing

    /// Writes the file to `path` atomically: a temporary file in the same folder is written,
    /// flushed to disk (fsync) and renamed over `path`; on failure it is removed and `path` is
    /// left as it was.
    /// - Throws: `SafeTensorsError.writeFailed`.
    public func write(to path: String) throws {
        let ordered = self.ordered
        let header = headerBytes(for: ordered)

        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]).isEmpty ? "/" : String(path[..<$0]) } ?? "."
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let temporary = "\(directory)/.\(base).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"

        func failure(_ step: String) -> SafeTensorsError {
            .writeFailed(path: path, reason: "\(step): \(String(cString: strerror(errno)))")
        }

        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw failure("cannot create a temporary file in \(directory)") }
        var closed = false
        do {
            try Self.writeAll(fd, header, failure)
            for e in ordered { try Self.writeAll(fd, e.bytes, failure) }
            guard fsync(fd) == 0 else { throw failure("fsync") }
            closed = true
            guard close(fd) == 0 else { throw failure("close") }
            guard rename(temporary, path) == 0 else { throw failure("rename") }
        } catch {
            if !closed { close(fd) }
            unlink(temporary)
            throw error
        }
        // Make the rename itself durable; a failure here does not undo a completed write.
        let dirfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirfd >= 0 {
            _ = fsync(dirfd)
            close(dirfd)
        }
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], _ failure: (String) -> SafeTensorsError) throws {
        try bytes.withUnsafeBytes { buffer in
            var done = 0
            while done < buffer.count {
                let n = systemWrite(fd, buffer.baseAddress! + done, buffer.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw failure("write")
                }
                done += n
            }
        }
    }
}

/// The C library's write(2), out of reach of the method named `write` inside the writer.
private func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, bytes, count)
}

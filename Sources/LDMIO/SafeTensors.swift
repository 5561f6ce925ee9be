// SafeTensors.swift — a memory-mapped, validated safetensors file.
//
// The file is mapped read-only (mmap, MAP_PRIVATE) and its header validated on open (see
// SafeTensorsHeader.swift for the rules). Tensor data is read straight from the mapping:
// `copyFloats` converts F16/BF16/… to Float while copying into the destination, so loading a
// checkpoint needs no intermediate buffer. The mapping lives as long as the object.
//
// Caveat of every memory-mapped reader: if another process truncates the file while it is
// mapped, reading the lost pages raises SIGBUS. Checkpoints are written atomically (new file,
// then rename), which never truncates a file someone has open.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A safetensors file opened read-only and memory-mapped, with its header validated.
///
/// ```swift
/// let file = try SafeTensorsFile(path: "unet/diffusion_pytorch_model.safetensors")
/// for name in file.names { print(try file.info(name)) }
/// let w = try file.floats("conv_in.weight")
/// ```
/// Reading is thread-safe: the object is immutable after `init`.
public final class SafeTensorsFile: @unchecked Sendable {
    /// The path the file was opened from (used in every error message).
    public let path: String
    /// Size of the file in bytes.
    public let fileSize: Int
    /// Header length N; the data section starts at byte 8 + N.
    public let headerLength: Int
    /// All tensors in file order (the order of their data, as sorted by `data_offsets`).
    public let tensors: [SafeTensorInfo]
    /// Tensor names in file order.
    public let names: [String]
    /// The header's `__metadata__` map (empty when absent).
    public let metadata: [String: String]

    private let mapping: UnsafeMutableRawPointer
    private let index: [String: Int]

    /// Opens, maps and validates the file at `path`.
    /// - Throws: `SafeTensorsError` naming the file and the first violation found.
    public init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SafeTensorsError.cannotOpen(path: path, reason: Self.systemError()) }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw SafeTensorsError.cannotOpen(path: path, reason: Self.systemError()) }
        guard (status.st_mode & S_IFMT) == S_IFREG else { throw SafeTensorsError.notRegularFile(path: path) }
        let size = Int(status.st_size)
        guard size > 0 else { throw SafeTensorsError.emptyFile(path: path) }  // mmap of 0 bytes fails
        let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let mapped, mapped != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw SafeTensorsError.cannotOpen(path: path, reason: "mmap: " + Self.systemError())
        }
        let header: SafeTensorsHeader
        do {
            header = try SafeTensorsHeader.parse(file: UnsafeRawBufferPointer(start: mapped, count: size), path: path)
        } catch {
            munmap(mapped, size)
            throw error
        }
        self.path = path
        self.fileSize = size
        self.mapping = mapped
        self.headerLength = header.headerLength
        self.tensors = header.tensors
        self.names = header.tensors.map(\.name)
        self.metadata = header.metadata
        self.index = Dictionary(header.tensors.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    deinit {
        munmap(mapping, fileSize)
    }

    private static func systemError() -> String { String(cString: strerror(errno)) }

    // MARK: Lookup

    /// Whether a tensor of this name exists.
    public func contains(_ name: String) -> Bool { index[name] != nil }

    /// The header entry of tensor `name`, or nil.
    public subscript(name: String) -> SafeTensorInfo? { index[name].map { tensors[$0] } }

    /// The header entry of tensor `name`.
    /// - Throws: `SafeTensorsError.tensorNotFound`.
    public func info(_ name: String) throws -> SafeTensorInfo {
        guard let i = index[name] else { throw SafeTensorsError.tensorNotFound(path: path, tensor: name) }
        return tensors[i]
    }

    /// Total number of elements over all tensors.
    public var parameterCount: Int { tensors.reduce(0) { $0 + $1.elementCount } }

    // MARK: Raw data

    /// Calls `body` with the tensor's stored bytes (little-endian, C order), read from the mapping.
    /// The buffer must not escape `body`.
    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let t = try info(name)
        return try body(rawBuffer(t))
    }

    /// A copy of the tensor's stored bytes.
    public func rawBytes(_ name: String) throws -> [UInt8] {
        try withRawBytes(name) { Array($0) }
    }

    private func rawBuffer(_ t: SafeTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: mapping + (8 + headerLength + t.dataOffsets.begin), count: t.byteCount)
    }

    // MARK: Floats

    /// The tensor's values as Float, in C order. Converts F32, F16, BF16, F64, F8_E4M3, F8_E5M2,
    /// the integer types and BOOL (F64 and large integers are rounded to the nearest Float).
    public func floats(_ name: String) throws -> [Float] {
        let t = try info(name)
        return try [Float](unsafeUninitializedCapacity: t.elementCount) { buffer, initialized in
            if let base = buffer.baseAddress { try convertFloats(t, into: base) }
            initialized = t.elementCount
        }
    }

    /// Converts the tensor's values to Float straight into `destination`, which must hold exactly
    /// `count` = product(shape) elements. The fast path for filling model parameters.
    public func copyFloats(_ name: String, into destination: UnsafeMutablePointer<Float>, count: Int) throws {
        let t = try info(name)
        guard count == t.elementCount else {
            throw SafeTensorsError.countMismatch(path: path, tensor: name, expected: t.elementCount, actual: count)
        }
        try convertFloats(t, into: destination)
    }

    /// Converts the tensor's values to Float into a buffer of exactly product(shape) elements.
    public func copyFloats(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        let t = try info(name)
        guard destination.count == t.elementCount else {
            throw SafeTensorsError.countMismatch(path: path, tensor: name, expected: t.elementCount, actual: destination.count)
        }
        if let base = destination.baseAddress { try convertFloats(t, into: base) }
    }

    private func convertFloats(_ t: SafeTensorInfo, into dst: UnsafeMutablePointer<Float>) throws {
        let src = rawBuffer(t)
        guard let p = src.baseAddress else { return }  // zero elements
        let n = t.elementCount
        switch t.dtype {
        case .f32:
            // Bit copy: the data is little-endian binary32, like the host.
            UnsafeMutableRawPointer(dst).copyMemory(from: p, byteCount: n * 4)
        case .f16:
            for i in 0..<n { dst[i] = ElementConversion.halfToFloat(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .bf16:
            for i in 0..<n { dst[i] = ElementConversion.bfloat16ToFloat(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .f64:
            for i in 0..<n { dst[i] = Float(p.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        case .f8E4M3:
            for i in 0..<n { dst[i] = ElementConversion.f8E4M3ToFloat(p.load(fromByteOffset: i, as: UInt8.self)) }
        case .f8E5M2:
            for i in 0..<n { dst[i] = ElementConversion.f8E5M2ToFloat(p.load(fromByteOffset: i, as: UInt8.self)) }
        case .bool:
            for i in 0..<n { dst[i] = p.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0 }
        case .u8:
            for i in 0..<n { dst[i] = Float(p.load(fromByteOffset: i, as: UInt8.self)) }
        case .i8:
            for i in 0..<n { dst[i] = Float(p.load(fromByteOffset: i, as: Int8.self)) }
        case .i16:
            for i in 0..<n { dst[i] = Float(p.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)) }
        case .u16:
            for i in 0..<n { dst[i] = Float(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .i32:
            for i in 0..<n { dst[i] = Float(p.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)) }
        case .u32:
            for i in 0..<n { dst[i] = Float(p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
        case .i64:
            for i in 0..<n { dst[i] = Float(p.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)) }
        case .u64:
            for i in 0..<n { dst[i] = Float(p.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)) }
        }
    }

    // MARK: Integers

    /// The tensor's values as Int64, in C order, from any integer dtype or BOOL.
    /// - Throws: `unsupportedConversion` for floating-point tensors; `valueOutOfRange` for a
    ///   U64 value above Int64.max.
    public func int64s(_ name: String) throws -> [Int64] {
        let t = try info(name)
        let src = rawBuffer(t)
        let n = t.elementCount
        guard let p = src.baseAddress else {
            if t.dtype.isFloatingPoint {
                throw SafeTensorsError.unsupportedConversion(path: path, tensor: name, dtype: t.dtype, to: "Int64")
            }
            return []
        }
        switch t.dtype {
        case .i64: return (0..<n).map { p.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self) }
        case .i32: return (0..<n).map { Int64(p.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }
        case .u32: return (0..<n).map { Int64(p.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) }
        case .i16: return (0..<n).map { Int64(p.loadUnaligned(fromByteOffset: 2 * $0, as: Int16.self)) }
        case .u16: return (0..<n).map { Int64(p.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) }
        case .i8: return (0..<n).map { Int64(p.load(fromByteOffset: $0, as: Int8.self)) }
        case .u8: return (0..<n).map { Int64(p.load(fromByteOffset: $0, as: UInt8.self)) }
        case .bool: return (0..<n).map { p.load(fromByteOffset: $0, as: UInt8.self) != 0 ? 1 : 0 }
        case .u64:
            var out: [Int64] = []
            out.reserveCapacity(n)
            for i in 0..<n {
                let v = p.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)
                guard let w = Int64(exactly: v) else {
                    throw SafeTensorsError.valueOutOfRange(path: path, tensor: name, index: i)
                }
                out.append(w)
            }
            return out
        case .f8E5M2, .f8E4M3, .f16, .bf16, .f32, .f64:
            throw SafeTensorsError.unsupportedConversion(path: path, tensor: name, dtype: t.dtype, to: "Int64")
        }
    }

    // MARK: Listing

    /// A listing for `ldm inspect`: one line per tensor (name, dtype, shape; aligned columns) in
    /// file order, then the metadata (sorted by key), then the total parameter count.
    public func describe() -> String {
        var lines: [String] = []
        lines.append("\(path): \(tensors.count) tensor\(tensors.count == 1 ? "" : "s"), \(fileSize) bytes")
        let rows = tensors.map { t in
            (Self.printable(t.name), t.dtype.rawValue, "[" + t.shape.map(String.init).joined(separator: ", ") + "]")
        }
        let nameWidth = rows.reduce(4) { max($0, $1.0.count) }
        let dtypeWidth = 7  // the longest code, F8_E4M3
        func pad(_ s: String, _ width: Int) -> String { s + String(repeating: " ", count: max(0, width - s.count)) }
        if !rows.isEmpty {
            lines.append(pad("name", nameWidth) + "  " + pad("dtype", dtypeWidth) + "  shape")
            for (name, dtype, shape) in rows {
                lines.append(pad(name, nameWidth) + "  " + pad(dtype, dtypeWidth) + "  " + shape)
            }
        }
        if !metadata.isEmpty {
            lines.append("metadata:")
            for key in metadata.keys.sorted() {
                lines.append("  \(Self.printable(key)): \(Self.printable(metadata[key]!))")
            }
        }
        lines.append("parameters: \(Self.grouped(parameterCount))")
        return lines.joined(separator: "\n")
    }

    /// The text with control characters escaped as in JSON, so each listing entry stays on one line.
    private static func printable(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return text }
        var bytes: [UInt8] = []
        StrictJSON.appendQuoted(text, to: &bytes)
        return String(decoding: bytes.dropFirst().dropLast(), as: UTF8.self)
    }

    /// 1234567 → "1,234,567".
    private static func grouped(_ value: Int) -> String {
        let digits = Array(String(value))
        var out = ""
        for (i, d) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(d)
        }
        return out
    }
}

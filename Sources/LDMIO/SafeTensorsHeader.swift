// SafeTensorsHeader.swift — reading and validating a safetensors header.
//
// Layout (safetensors specification):
//   bytes 0..<8        N, the header length, unsigned 64-bit little-endian
//   bytes 8..<8+N      the header: a UTF-8 JSON object, optionally padded with trailing spaces
//   bytes 8+N..<end    the data section; tensor t occupies data[begin_t..<end_t]
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}, plus an
// optional "__metadata__" string→string map. Validation follows the reference implementation
// (PyPI safetensors): N ≤ 100_000_000; per tensor, product(shape) · size(dtype) = end − begin
// (overflow checked); sorted by offsets the tensors tile the data section from 0 with no gap or
// overlap, the last ending exactly at the end of the file. We are stricter than the reference in
// rejecting duplicate keys and unknown fields, which it silently accepts.

/// Where a tensor is and what it holds, as declared in the header.
public struct SafeTensorInfo: Sendable, Equatable, CustomStringConvertible {
    /// The tensor's key in the header (for diffusers checkpoints, its module path).
    public let name: String
    /// The element type.
    public let dtype: SafeTensorsDType
    /// The shape, outermost dimension first (C order). `[]` is a scalar (one element).
    public let shape: [Int]
    /// Byte range of the tensor within the data section (which starts after the header).
    public let dataOffsets: (begin: Int, end: Int)

    public init(name: String, dtype: SafeTensorsDType, shape: [Int], dataOffsets: (begin: Int, end: Int)) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.dataOffsets = dataOffsets
    }

    /// Number of elements, product(shape) (1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }
    /// Number of data bytes, end − begin.
    public var byteCount: Int { dataOffsets.end - dataOffsets.begin }

    public static func == (a: SafeTensorInfo, b: SafeTensorInfo) -> Bool {
        a.name == b.name && a.dtype == b.dtype && a.shape == b.shape
            && a.dataOffsets.begin == b.dataOffsets.begin && a.dataOffsets.end == b.dataOffsets.end
    }

    public var description: String {
        "\(name): \(dtype.rawValue) \(shape) @ [\(dataOffsets.begin), \(dataOffsets.end))"
    }
}

/// The validated contents of a header.
struct SafeTensorsHeader {
    /// The format's limit on the header length N.
    static let maxHeaderLength: UInt64 = 100_000_000
    /// Nesting limit for the JSON parser (a valid header nests 3 deep).
    static let maxJSONDepth = 16

    /// Header length N (the data section starts at 8 + N).
    var headerLength: Int
    /// Tensors in data order (sorted by `data_offsets`; ties keep header order).
    var tensors: [SafeTensorInfo]
    /// The `__metadata__` map (empty when absent).
    var metadata: [String: String]

    /// Reads and validates the header of the whole file `file`; `path` is for messages.
    static func parse(file: UnsafeRawBufferPointer, path: String) throws(SafeTensorsError) -> SafeTensorsHeader {
        let fileSize = file.count
        if fileSize == 0 { throw .emptyFile(path: path) }
        if fileSize < 8 { throw .fileTooShort(path: path, size: fileSize) }
        let n = UInt64(littleEndian: file.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        if n > maxHeaderLength { throw .headerTooLarge(path: path, length: n) }
        if 8 + n > UInt64(fileSize) { throw .headerBeyondFile(path: path, length: n, fileSize: fileSize) }
        let headerLength = Int(n)
        let headerBytes = UnsafeRawBufferPointer(rebasing: file[8..<(8 + headerLength)])

        if String(validating: headerBytes, as: UTF8.self) == nil { throw .headerNotUTF8(path: path) }
        // The specification says the header begins with '{'; the reference reader also accepts
        // leading JSON whitespace, and so do we.
        let firstNonSpace = headerBytes.first { !(0x20 == $0 || 0x09 == $0 || 0x0A == $0 || 0x0D == $0) }
        guard firstNonSpace == UInt8(ascii: "{") else { throw .headerNotObject(path: path) }

        let root: StrictJSON.Value
        do {
            root = try StrictJSON.parse(headerBytes, maxDepth: maxJSONDepth)
        } catch let .duplicateKey(key, location) {
            let place = location == "$" ? "the header" : "header entry \(location.dropFirst(2))"
            throw .duplicateKey(path: path, key: key, location: place)
        } catch {
            throw .headerNotJSON(path: path, detail: error.description)
        }
        guard case let .object(members) = root else { throw .headerNotObject(path: path) }

        var tensors: [SafeTensorInfo] = []
        tensors.reserveCapacity(members.count)
        var metadata: [String: String] = [:]
        for member in members {
            let (key, value) = (member.key, member.value)
            if key == "__metadata__" {
                metadata = try parseMetadata(value, path: path)
            } else {
                tensors.append(try parseEntry(name: key, value, path: path))
            }
        }

        // Tile check, in data order. Sorting is stable, so zero-length tensors sharing an
        // offset keep their header order.
        let ordered = tensors.enumerated().sorted { a, b in
            let (x, y) = (a.element.dataOffsets, b.element.dataOffsets)
            if x.begin != y.begin { return x.begin < y.begin }
            if x.end != y.end { return x.end < y.end }
            return a.offset < b.offset
        }.map(\.element)
        var position = 0
        for (i, t) in ordered.enumerated() {
            let begin = t.dataOffsets.begin
            if i == 0 {
                if begin != 0 { throw .offsetsNotFromZero(path: path, tensor: t.name, begin: begin) }
            } else if begin > position {
                throw .offsetsGap(path: path, tensor: t.name, previous: ordered[i - 1].name, previousEnd: position, begin: begin)
            } else if begin < position {
                throw .offsetsOverlap(path: path, tensor: t.name, previous: ordered[i - 1].name, previousEnd: position, begin: begin)
            }
            position = t.dataOffsets.end
        }
        let dataSectionSize = fileSize - 8 - headerLength
        if position != dataSectionSize {
            throw .dataSizeMismatch(path: path, dataEnd: position, dataSectionSize: dataSectionSize)
        }
        return SafeTensorsHeader(headerLength: headerLength, tensors: ordered, metadata: metadata)
    }

    private static func parseMetadata(_ value: StrictJSON.Value, path: String) throws(SafeTensorsError) -> [String: String] {
        guard case let .object(members) = value else {
            throw .invalidMetadata(path: path, detail: "is \(value.kindName), expected an object of strings")
        }
        var map: [String: String] = [:]
        for member in members {
            let (key, entry) = (member.key, member.value)
            guard case let .string(text) = entry else {
                throw .invalidMetadata(path: path, detail: "value of key \"\(key)\" is \(entry.kindName), expected a string")
            }
            map[key] = text
        }
        return map
    }

    private static let fieldNames = ["dtype", "shape", "data_offsets"]

    private static func parseEntry(name: String, _ value: StrictJSON.Value, path: String) throws(SafeTensorsError) -> SafeTensorInfo {
        guard case let .object(members) = value else {
            throw .entryNotObject(path: path, tensor: name, found: value.kindName)
        }
        var fields: [String: StrictJSON.Value] = [:]
        for member in members {
            let (key, field) = (member.key, member.value)
            guard fieldNames.contains(key) else { throw .unexpectedField(path: path, tensor: name, field: key) }
            fields[key] = field
        }
        for key in fieldNames where fields[key] == nil {
            throw .missingField(path: path, tensor: name, field: key)
        }

        // dtype
        guard case let .string(code) = fields["dtype"]! else {
            throw .unknownDType(path: path, tensor: name, dtype: "(\(fields["dtype"]!.kindName), expected a string)")
        }
        guard let dtype = SafeTensorsDType(rawValue: code) else {
            throw .unknownDType(path: path, tensor: name, dtype: "\"\(code)\"")
        }

        // shape: array of non-negative integers
        guard case let .array(dims) = fields["shape"]! else {
            throw .invalidShape(path: path, tensor: name, detail: "is \(fields["shape"]!.kindName), expected an array of integers")
        }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        for (axis, dim) in dims.enumerated() {
            shape.append(try nonNegativeInteger(dim, what: "dimension \(axis)") { detail throws(SafeTensorsError) in
                throw .invalidShape(path: path, tensor: name, detail: detail)
            })
        }

        // data_offsets: [begin, end], 0 ≤ begin ≤ end
        guard case let .array(bounds) = fields["data_offsets"]! else {
            throw .invalidOffsets(path: path, tensor: name, detail: "is \(fields["data_offsets"]!.kindName), expected [begin, end]")
        }
        guard bounds.count == 2 else {
            throw .invalidOffsets(path: path, tensor: name, detail: "has \(bounds.count) elements, expected [begin, end]")
        }
        let fail = { (detail: String) throws(SafeTensorsError) -> Never in
            throw .invalidOffsets(path: path, tensor: name, detail: detail)
        }
        let begin = try nonNegativeInteger(bounds[0], what: "begin", fail: fail)
        let end = try nonNegativeInteger(bounds[1], what: "end", fail: fail)
        if begin > end { try fail("begin \(begin) is after end \(end)") }

        // product(shape) · size(dtype) == end − begin, overflow checked
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            if overflow { throw .sizeOverflow(path: path, tensor: name) }
            count = p
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        if overflow { throw .sizeOverflow(path: path, tensor: name) }
        if bytes != end - begin {
            throw .byteSizeMismatch(path: path, tensor: name, expected: bytes, actual: end - begin)
        }
        return SafeTensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: (begin, end))
    }

    /// Reads a JSON number that must be a non-negative integer literal; `fail` throws the caller's error.
    private static func nonNegativeInteger(
        _ value: StrictJSON.Value, what: String, fail: (String) throws(SafeTensorsError) -> Never
    ) throws(SafeTensorsError) -> Int {
        guard case let .number(lexeme) = value else { try fail("\(what) is \(value.kindName), expected an integer") }
        switch StrictJSON.integer(lexeme) {
        case let .value(v):
            if v < 0 { try fail("\(what) is \(lexeme), expected a non-negative integer") }
            return v
        case .notInteger:
            try fail("\(what) is \(lexeme), expected an integer")
        case .outOfRange:
            if lexeme.hasPrefix("-") { try fail("\(what) is \(lexeme), expected a non-negative integer") }
            try fail("\(what) is \(lexeme), too large")
        }
    }
}

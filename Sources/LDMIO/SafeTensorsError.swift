// SafeTensorsError.swift — every way reading or writing a safetensors file can fail, each with a
// one-line message that names the file and, where there is one, the tensor or field.

import Foundation

/// A safetensors file could not be opened, failed validation, or could not be written.
///
/// Each case's `description` is one line starting with the file path.
public enum SafeTensorsError: Error, Equatable, CustomStringConvertible, LocalizedError {
    // Opening.
    /// The file could not be opened, inspected or mapped (`reason` is the system's word).
    case cannotOpen(path: String, reason: String)
    /// The path is not a regular file (a directory, a device, …).
    case notRegularFile(path: String)
    /// The file has zero bytes.
    case emptyFile(path: String)
    /// The file is shorter than the 8-byte header length.
    case fileTooShort(path: String, size: Int)

    // The header length and bytes.
    /// The header length N exceeds the format's 100,000,000-byte limit.
    case headerTooLarge(path: String, length: UInt64)
    /// 8 + N is more than the file size.
    case headerBeyondFile(path: String, length: UInt64, fileSize: Int)
    /// The header bytes are not valid UTF-8.
    case headerNotUTF8(path: String)
    /// The header is not a JSON object (its first non-space byte is not `{`).
    case headerNotObject(path: String)
    /// The header is not valid JSON (`detail` says what and where).
    case headerNotJSON(path: String, detail: String)
    /// A JSON object in the header has the same key twice (`location` is `header` or the entry).
    case duplicateKey(path: String, key: String, location: String)

    // Tensor entries.
    /// A tensor entry is not a JSON object.
    case entryNotObject(path: String, tensor: String, found: String)
    /// A tensor entry lacks `dtype`, `shape` or `data_offsets`.
    case missingField(path: String, tensor: String, field: String)
    /// A tensor entry has a key other than `dtype`, `shape` and `data_offsets`.
    case unexpectedField(path: String, tensor: String, field: String)
    /// The dtype is not one of the format's names.
    case unknownDType(path: String, tensor: String, dtype: String)
    /// The shape is not an array of non-negative integers.
    case invalidShape(path: String, tensor: String, detail: String)
    /// `data_offsets` is not `[begin, end]` with integers 0 ≤ begin ≤ end.
    case invalidOffsets(path: String, tensor: String, detail: String)
    /// The element count or byte count of a tensor overflows.
    case sizeOverflow(path: String, tensor: String)
    /// product(shape) × dtype size differs from end − begin.
    case byteSizeMismatch(path: String, tensor: String, expected: Int, actual: Int)
    /// The first tensor in data order does not start at offset 0.
    case offsetsNotFromZero(path: String, tensor: String, begin: Int)
    /// Bytes between the previous tensor's end and this tensor's begin belong to no tensor.
    case offsetsGap(path: String, tensor: String, previous: String, previousEnd: Int, begin: Int)
    /// This tensor begins before the previous tensor ends.
    case offsetsOverlap(path: String, tensor: String, previous: String, previousEnd: Int, begin: Int)
    /// The last tensor does not end exactly at the end of the file.
    case dataSizeMismatch(path: String, dataEnd: Int, dataSectionSize: Int)
    /// `__metadata__` is not an object mapping strings to strings.
    case invalidMetadata(path: String, detail: String)

    // Reading values.
    /// No tensor has this name.
    case tensorNotFound(path: String, tensor: String)
    /// The stored dtype cannot be converted to the requested element type.
    case unsupportedConversion(path: String, tensor: String, dtype: SafeTensorsDType, to: String)
    /// The destination holds a different number of elements than the tensor.
    case countMismatch(path: String, tensor: String, expected: Int, actual: Int)
    /// A stored value does not fit the requested element type.
    case valueOutOfRange(path: String, tensor: String, index: Int)

    // Writing.
    /// A tensor given to the writer is inconsistent (`reason` says how).
    case invalidTensor(tensor: String, reason: String)
    /// Writing the file failed (`reason` is the system's word); nothing was left at `path`.
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason):
            return "\(path): cannot open safetensors file: \(reason)"
        case let .notRegularFile(path):
            return "\(path): not a regular file"
        case let .emptyFile(path):
            return "\(path): file is empty (a safetensors file starts with an 8-byte header length)"
        case let .fileTooShort(path, size):
            return "\(path): file is \(size) bytes, shorter than the 8-byte header length"
        case let .headerTooLarge(path, length):
            return "\(path): header length \(length) exceeds the 100000000-byte limit"
        case let .headerBeyondFile(path, length, fileSize):
            return "\(path): header length \(length) runs past the end of the \(fileSize)-byte file"
        case let .headerNotUTF8(path):
            return "\(path): header is not valid UTF-8"
        case let .headerNotObject(path):
            return "\(path): header is not a JSON object (it must begin with '{')"
        case let .headerNotJSON(path, detail):
            return "\(path): header is not valid JSON: \(detail)"
        case let .duplicateKey(path, key, location):
            return "\(path): duplicate key \(quoted(key)) in \(location)"
        case let .entryNotObject(path, tensor, found):
            return "\(path): tensor \(quoted(tensor)): entry is \(found), expected an object"
        case let .missingField(path, tensor, field):
            return "\(path): tensor \(quoted(tensor)): missing field \(quoted(field))"
        case let .unexpectedField(path, tensor, field):
            return "\(path): tensor \(quoted(tensor)): unexpected field \(quoted(field)) (allowed: dtype, shape, data_offsets)"
        case let .unknownDType(path, tensor, dtype):
            return "\(path): tensor \(quoted(tensor)): unknown dtype \(dtype)"
        case let .invalidShape(path, tensor, detail):
            return "\(path): tensor \(quoted(tensor)): invalid shape: \(detail)"
        case let .invalidOffsets(path, tensor, detail):
            return "\(path): tensor \(quoted(tensor)): invalid data_offsets: \(detail)"
        case let .sizeOverflow(path, tensor):
            return "\(path): tensor \(quoted(tensor)): element or byte count overflows"
        case let .byteSizeMismatch(path, tensor, expected, actual):
            return "\(path): tensor \(quoted(tensor)): shape and dtype need \(expected) bytes but data_offsets span \(actual)"
        case let .offsetsNotFromZero(path, tensor, begin):
            return "\(path): tensor \(quoted(tensor)): first tensor data begins at \(begin), expected 0"
        case let .offsetsGap(path, tensor, previous, previousEnd, begin):
            return "\(path): tensor \(quoted(tensor)): data begins at \(begin), leaving a gap after \(quoted(previous)) which ends at \(previousEnd)"
        case let .offsetsOverlap(path, tensor, previous, previousEnd, begin):
            return "\(path): tensor \(quoted(tensor)): data begins at \(begin), overlapping \(quoted(previous)) which ends at \(previousEnd)"
        case let .dataSizeMismatch(path, dataEnd, dataSectionSize):
            if dataEnd > dataSectionSize {
                return "\(path): tensor data ends at byte \(dataEnd) but the file holds only \(dataSectionSize) data bytes (truncated?)"
            }
            return "\(path): tensor data ends at byte \(dataEnd) but the file holds \(dataSectionSize) data bytes (trailing bytes)"
        case let .invalidMetadata(path, detail):
            return "\(path): invalid __metadata__: \(detail)"
        case let .tensorNotFound(path, tensor):
            return "\(path): no tensor named \(quoted(tensor))"
        case let .unsupportedConversion(path, tensor, dtype, to):
            return "\(path): tensor \(quoted(tensor)): cannot convert \(dtype.rawValue) to \(to)"
        case let .countMismatch(path, tensor, expected, actual):
            return "\(path): tensor \(quoted(tensor)): has \(expected) elements but the destination holds \(actual)"
        case let .valueOutOfRange(path, tensor, index):
            return "\(path): tensor \(quoted(tensor)): element \(index) does not fit the requested type"
        case let .invalidTensor(tensor, reason):
            return "safetensors writer: tensor \(quoted(tensor)): \(reason)"
        case let .writeFailed(path, reason):
            return "\(path): cannot write safetensors file: \(reason)"
        }
    }

    public var errorDescription: String? { description }
}

/// A name as a JSON string literal, so control characters in it cannot break the one-line message.
private func quoted(_ name: String) -> String { StrictJSON.quoted(name) }

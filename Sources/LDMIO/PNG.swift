// PNG reading and writing through libpng.
//
// All libpng work (and every setjmp/longjmp) happens in the C shim `CPNGShim` (ldm_png.c);
// this file moves bytes between files, Swift arrays and the shim.
//
// Decoding follows the PNG specification (3rd edition) with no gamma or colour-space change
// (gAMA, cHRM, sRGB, iCCP, bKGD, sBIT are ignored), always giving 8-bit RGBA:
//   gray, bit depth b < 8:   v8 = v * 255 / (2^b - 1)             (1 bit: ×255, 2: ×85, 4: ×17)
//   16-bit samples:          v8 = round(v16 * 255 / 65535)        (libpng's png_set_scale_16)
//   palette:                 RGB = PLTE[i], A = tRNS[i] (255 past the end of tRNS)
//   gray / RGB with tRNS:    A = 0 where the sample(s) equal the tRNS value at the file's own
//                            bit depth, else 255
//   gray:                    R = G = B = v;  no alpha chunk or channel: A = 255
// Interlaced (Adam7) files are de-interlaced. Width and height are limited to 2^20 and
// width × height to 2^28 pixels, so a hostile header cannot demand absurd memory.

import CPNGShim
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The colour type stored in a PNG's IHDR chunk.
public enum PNGColourType: Int, Sendable, CustomStringConvertible {
    case grayscale = 0
    case rgb = 2
    case palette = 3
    case grayscaleAlpha = 4
    case rgba = 6

    /// The name printed by `ldm image info`: `grayscale`, `RGB`, `palette`, `grayscale+alpha`,
    /// `RGBA`.
    public var description: String {
        switch self {
        case .grayscale: return "grayscale"
        case .rgb: return "RGB"
        case .palette: return "palette"
        case .grayscaleAlpha: return "grayscale+alpha"
        case .rgba: return "RGBA"
        }
    }
}

/// What a PNG file holds, as stored: its header fields and its text chunks.
public struct PNGInfo: Sendable, Equatable {
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int
    /// The file's colour type.
    public var colourType: PNGColourType
    /// Bits per sample (per palette index for `.palette`): 1, 2, 4, 8 or 16.
    public var bitDepth: Int
    /// Whether the file is Adam7-interlaced.
    public var interlaced: Bool
    /// The text chunks (tEXt, zTXt, iTXt) in file order, before and after the image data.
    public var texts: [PNGTextChunk]
}

/// An 8-bit image with 3 (RGB) or 4 (RGBA) interleaved channels, row-major, top row first,
/// plus the PNG text chunks that go with it.
///
/// Decoding always gives 4 channels (see the file header for the conversion rules); writing
/// accepts 3 or 4.
public struct PNGImage: Sendable, Equatable {
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int
    /// Samples per pixel: 3 (RGB) or 4 (RGBA).
    public var channels: Int
    /// `height * width * channels` samples: pixel (x, y) channel c is at
    /// `(y * width + x) * channels + c`.
    public var pixels: [UInt8]
    /// Text chunks to write, or read from the file.
    public var texts: [PNGTextChunk]

    /// An image from its samples. Nothing is checked here; `encode()` and `write(to:)` reject
    /// inconsistent values with a `PNGError`.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8], texts: [PNGTextChunk] = []) {
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
        self.texts = texts
    }

    // MARK: Reading

    /// Reads and decodes a PNG file into 8-bit RGBA.
    public static func read(path: String) throws -> PNGImage {
        try decode(bytes: readFile(path: path), path: path)
    }

    /// Decodes PNG bytes held in memory into 8-bit RGBA.
    public static func decode(data: [UInt8]) throws -> PNGImage {
        try decode(bytes: data, path: nil)
    }

    /// Reads a PNG file's header and text chunks. The whole file is still decoded (texts may
    /// follow the image data, and a damaged file is reported) but no pixels are kept.
    public static func info(path: String) throws -> PNGInfo {
        try info(bytes: readFile(path: path), path: path)
    }

    /// Reads the header and text chunks of PNG bytes held in memory.
    public static func info(data: [UInt8]) throws -> PNGInfo {
        try info(bytes: data, path: nil)
    }

    private static func decode(bytes: [UInt8], path: String?) throws -> PNGImage {
        try withDecoded(bytes, wantPixels: true, path: path) { decoded in
            let count = Int(decoded.width) * Int(decoded.height) * 4
            return PNGImage(width: Int(decoded.width), height: Int(decoded.height), channels: 4,
                            pixels: Array(UnsafeBufferPointer(start: decoded.pixels, count: count)),
                            texts: texts(of: decoded))
        }
    }

    private static func info(bytes: [UInt8], path: String?) throws -> PNGInfo {
        try withDecoded(bytes, wantPixels: false, path: path) { decoded in
            guard let colourType = PNGColourType(rawValue: Int(decoded.color_type)) else {
                // libpng rejects other colour types before this point.
                throw PNGError.invalidPNG(path: path, message: "unknown colour type \(decoded.color_type)")
            }
            return PNGInfo(width: Int(decoded.width), height: Int(decoded.height),
                           colourType: colourType, bitDepth: Int(decoded.bit_depth),
                           interlaced: decoded.interlace != 0, texts: texts(of: decoded))
        }
    }

    /// Runs the shim's decoder and hands its result to `body` before freeing it.
    private static func withDecoded<T>(_ bytes: [UInt8], wantPixels: Bool, path: String?,
                                       _ body: (ldm_png_image) throws -> T) throws -> T {
        var decoded = ldm_png_image()
        var message = [CChar](repeating: 0, count: 1024)
        let status = bytes.withUnsafeBufferPointer { data in
            message.withUnsafeMutableBufferPointer { buffer in
                ldm_png_decode(data.baseAddress, data.count, wantPixels ? 1 : 0, &decoded,
                               buffer.baseAddress, buffer.count)
            }
        }
        defer { ldm_png_image_free(&decoded) }
        let text = messageString(message)
        switch Int(status) {
        case Int(LDM_PNG_OK): return try body(decoded)
        case Int(LDM_PNG_ERROR_LIMIT): throw PNGError.tooLarge(path: path, message: text)
        case Int(LDM_PNG_ERROR_MEMORY): throw PNGError.outOfMemory(message: text)
        default: throw PNGError.invalidPNG(path: path, message: text)
        }
    }

    private static func texts(of decoded: ldm_png_image) -> [PNGTextChunk] {
        guard let chunks = decoded.texts else { return [] }
        return (0..<decoded.text_count).map { index in
            let chunk = chunks[index]
            let kind: PNGTextChunk.Kind
            switch Int(chunk.kind) {
            case Int(LDM_PNG_TEXT_TEXT): kind = .tEXt
            case Int(LDM_PNG_TEXT_ZTXT): kind = .zTXt
            default: kind = .iTXt
            }
            return PNGTextChunk(keyword: utf8String(chunk.keyword, count: chunk.keyword_length),
                                text: utf8String(chunk.text, count: chunk.text_length), kind: kind)
        }
    }

    // MARK: Writing

    /// Encodes the image as an 8-bit RGB or RGBA PNG (by `channels`), non-interlaced, with
    /// `texts` as tEXt chunks (Latin-1 texts) or uncompressed iTXt chunks (all others).
    public func encode() throws -> [UInt8] {
        guard channels == 3 || channels == 4 else {
            throw PNGError.invalidImage("\(channels) channels; PNG output needs 3 (RGB) or 4 (RGBA)")
        }
        guard width >= 1, height >= 1, width <= Int(Int32.max), height <= Int(Int32.max) else {
            throw PNGError.invalidImage("size \(width)x\(height); width and height must be 1...2^31-1")
        }
        let (rowCount, rowOverflow) = width.multipliedReportingOverflow(by: channels)
        let (sampleCount, overflow) = rowCount.multipliedReportingOverflow(by: height)
        guard !rowOverflow, !overflow, pixels.count == sampleCount else {
            throw PNGError.invalidImage("\(pixels.count) samples for a \(width)x\(height)x\(channels) image")
        }

        // All keyword and text bytes in one buffer, so one pointer covers them during the call.
        var strings: [UInt8] = []
        var ranges: [(keyword: Range<Int>, text: Range<Int>)] = []
        for chunk in texts {
            let keywordStart = strings.count
            strings.append(contentsOf: chunk.keyword.utf8)
            let textStart = strings.count
            strings.append(contentsOf: chunk.text.utf8)
            ranges.append((keywordStart..<textStart, textStart..<strings.count))
        }

        var output: UnsafeMutablePointer<UInt8>? = nil
        var outputSize = 0
        var message = [CChar](repeating: 0, count: 1024)
        let status = pixels.withUnsafeBufferPointer { samples in
            strings.withUnsafeBufferPointer { stringBytes in
                let base = UnsafeRawPointer(stringBytes.baseAddress)
                let inputs = ranges.map { range in
                    ldm_png_text_input(
                        keyword: base.map { ($0 + range.keyword.lowerBound).assumingMemoryBound(to: CChar.self) },
                        keyword_length: range.keyword.count,
                        text: base.map { ($0 + range.text.lowerBound).assumingMemoryBound(to: CChar.self) },
                        text_length: range.text.count)
                }
                return inputs.withUnsafeBufferPointer { textInputs in
                    message.withUnsafeMutableBufferPointer { buffer in
                        ldm_png_encode(samples.baseAddress, UInt32(width), UInt32(height), Int32(channels),
                                       textInputs.baseAddress, textInputs.count,
                                       &output, &outputSize, buffer.baseAddress, buffer.count)
                    }
                }
            }
        }
        defer { ldm_png_buffer_free(output) }
        let text = Self.messageString(message)
        switch Int(status) {
        case Int(LDM_PNG_OK): return Array(UnsafeBufferPointer(start: output, count: outputSize))
        case Int(LDM_PNG_ERROR_MEMORY): throw PNGError.outOfMemory(message: text)
        case Int(LDM_PNG_ERROR_ARGUMENT): throw PNGError.invalidImage(text)
        default: throw PNGError.encodingFailed(message: text)
        }
    }

    /// Encodes the image (see `encode()`) and writes it to `path` atomically: the bytes go to a
    /// temporary file in the same folder, which is flushed to disk and then renamed over `path`.
    /// Readers see either the old file or the complete new one, never a half-written PNG.
    public func write(to path: String) throws {
        try Self.writeFileAtomically(encode(), to: path)
    }

    // MARK: Files and C strings

    private static func errnoText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }

    private static func readFile(path: String) throws -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            let code = errno
            if code == ENOENT { throw PNGError.fileNotFound(path: path) }
            throw PNGError.fileUnreadable(path: path, reason: errnoText(code))
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw PNGError.fileUnreadable(path: path, reason: errnoText(errno))
        }
        if (status.st_mode & S_IFMT) == S_IFDIR {
            throw PNGError.fileUnreadable(path: path, reason: "is a directory")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(max(Int(status.st_size), 0))
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { posixRead(descriptor, $0.baseAddress!, $0.count) }
            if count == 0 { break }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                throw PNGError.fileUnreadable(path: path, reason: errnoText(code))
            }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return bytes
    }

    private static func writeFileAtomically(_ bytes: [UInt8], to path: String) throws {
        func failure(_ reason: String) -> PNGError { .fileUnwritable(path: path, reason: reason) }
        let slash = path.lastIndex(of: "/")
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        guard !name.isEmpty, name != ".", name != ".." else { throw failure("not a file name") }

        let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let temporary = (directory == "/" ? "" : directory) + "/.\(name).\(getpid()).\(suffix).tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard descriptor >= 0 else { throw failure(errnoText(errno)) }
        var closed = false
        var renamed = false
        defer {
            if !closed { close(descriptor) }
            if !renamed { unlink(temporary) }
        }

        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { buffer in
                posixWrite(descriptor, buffer.baseAddress! + written, buffer.count - written)
            }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                throw failure(errnoText(code))
            }
            written += count
        }
        guard fsync(descriptor) == 0 else { throw failure(errnoText(errno)) }
        closed = true
        guard close(descriptor) == 0 else { throw failure(errnoText(errno)) }
        guard rename(temporary, path) == 0 else { throw failure(errnoText(errno)) }
        renamed = true

        // Make the rename itself durable; a failure here leaves a complete file, so it is ignored.
        let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            _ = fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }

    private static func messageString(_ buffer: [CChar]) -> String {
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func utf8String(_ pointer: UnsafeMutablePointer<CChar>?, count: Int) -> String {
        guard let pointer else { return "" }
        return pointer.withMemoryRebound(to: UInt8.self, capacity: count) {
            String(decoding: UnsafeBufferPointer(start: $0, count: count), as: UTF8.self)
        }
    }
}

// `read` and `write` at file scope: inside PNGImage those names would find its own members.
private func posixRead(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    read(descriptor, buffer, count)
}

private func posixWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, buffer, count)
}

/// A PNG could not be read, decoded, encoded or written. The description is one line.
public enum PNGError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// The file does not exist.
    case fileNotFound(path: String)
    /// The file exists but cannot be read (permissions, a directory, an I/O error).
    case fileUnreadable(path: String, reason: String)
    /// The data is not a valid PNG; `message` is libpng's (or the shim's) reason, such as
    /// "Not a PNG file", "IHDR: CRC error", "file is truncated (unexpected end of data)".
    /// `path` is nil when decoding bytes from memory.
    case invalidPNG(path: String?, message: String)
    /// The header declares more pixels than the decoder allows (2^20 per side, 2^28 in all).
    case tooLarge(path: String?, message: String)
    /// The image cannot be encoded: bad size, channel count, sample count or text chunk.
    case invalidImage(String)
    /// libpng failed while encoding.
    case encodingFailed(message: String)
    /// The output file (or its temporary file) cannot be written.
    case fileUnwritable(path: String, reason: String)
    /// An allocation failed.
    case outOfMemory(message: String)

    public var description: String {
        let line: String
        switch self {
        case .fileNotFound(let path):
            line = "no such file: \(path)"
        case .fileUnreadable(let path, let reason):
            line = "cannot read \(path): \(reason)"
        case .invalidPNG(let path?, let message):
            line = "\(path) is not a valid PNG: \(message)"
        case .invalidPNG(nil, let message):
            line = "not a valid PNG: \(message)"
        case .tooLarge(let path?, let message):
            line = "cannot decode \(path): \(message)"
        case .tooLarge(nil, let message):
            line = "cannot decode PNG: \(message)"
        case .invalidImage(let reason):
            line = "cannot encode PNG: \(reason)"
        case .encodingFailed(let message):
            line = "cannot encode PNG: \(message)"
        case .fileUnwritable(let path, let reason):
            line = "cannot write \(path): \(reason)"
        case .outOfMemory(let message):
            line = "PNG: \(message)"
        }
        return String(line.map { $0.isNewline ? " " : $0 })
    }

    public var errorDescription: String? { description }
}

// StrictJSON.swift — a small, strict JSON parser (RFC 8259) for headers we must validate.
//
// Foundation's JSONSerialization accepts duplicate object keys (the last one wins) and reorders
// objects; a safetensors header with two entries for the same tensor name must be rejected, and
// a header's entries are wanted in file order. This recursive-descent parser keeps object members
// in order, reports duplicate keys by name, limits nesting depth, and keeps number lexemes
// verbatim so that integers are read exactly (no detour through Double).

/// Namespace for the strict JSON parser.
enum StrictJSON {

    /// A parsed JSON value. Objects keep their members in document order; numbers keep their
    /// lexeme (already checked against the JSON number grammar).
    indirect enum Value: Equatable {
        case object([Member])
        case array([Value])
        case string(String)
        case number(String)
        case bool(Bool)
        case null

        /// The value's kind with its article ("an object", "a number", …), for error messages.
        var kindName: String {
            switch self {
            case .object: return "an object"
            case .array: return "an array"
            case .string: return "a string"
            case .number: return "a number"
            case .bool: return "a boolean"
            case .null: return "null"
            }
        }
    }

    /// One `"key": value` member of an object.
    struct Member: Equatable {
        var key: String
        var value: Value
    }

    /// What a number lexeme means as an integer.
    enum IntegerReading: Equatable {
        case value(Int)
        /// The lexeme has a fraction or an exponent (`2.0`, `1e3`): not an integer literal.
        case notInteger
        /// An integer literal that does not fit in `Int`.
        case outOfRange
    }

    /// Reads a number lexeme as an exact integer. Only plain integer literals (`-?digits`) count.
    static func integer(_ lexeme: String) -> IntegerReading {
        var digits = Substring(lexeme)
        var negative = false
        if digits.first == "-" { negative = true; digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return .notInteger }
        var value = 0
        for d in digits.utf8 {
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = negative ? m.subtractingReportingOverflow(Int(d - 0x30)) : m.addingReportingOverflow(Int(d - 0x30))
            if o1 || o2 { return .outOfRange }
            value = s
        }
        return .value(value)
    }

    /// Why parsing failed.
    enum ParseError: Error, Equatable, CustomStringConvertible {
        /// The same key appears twice in one object (`path` is where the object is, e.g. `$` or
        /// `$."w"`; keys in it are JSON-quoted).
        case duplicateKey(key: String, path: String)
        /// Objects/arrays nest deeper than the limit.
        case tooDeep(limit: Int, offset: Int)
        /// Any other grammar violation, with the byte offset where it was found.
        case syntax(message: String, offset: Int)

        var description: String {
            switch self {
            case let .duplicateKey(key, path):
                return "duplicate key \"\(key)\" in object at \(path)"
            case let .tooDeep(limit, offset):
                return "nesting deeper than \(limit) levels at byte \(offset)"
            case let .syntax(message, offset):
                return "\(message) at byte \(offset)"
            }
        }
    }

    /// Parses one JSON value from `bytes`. Whitespace may surround the value; anything else
    /// after it is an error.
    static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64) throws(ParseError) -> Value {
        var parser = Parser(bytes: bytes, maxDepth: maxDepth)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0, path: "$")
        parser.skipWhitespace()
        if parser.index != bytes.count {
            throw .syntax(message: "unexpected data after the JSON value", offset: parser.index)
        }
        return value
    }

    /// Parses one JSON value from a byte array (convenience for tests and small inputs).
    static func parse(_ bytes: [UInt8], maxDepth: Int = 64) throws(ParseError) -> Value {
        do {
            return try bytes.withUnsafeBytes { buffer in try parse(buffer, maxDepth: maxDepth) }
        } catch let error as ParseError {
            throw error
        } catch {
            throw .syntax(message: "\(error)", offset: 0)
        }
    }

    /// `text` as a JSON string literal (see `appendQuoted`).
    static func quoted(_ text: String) -> String {
        var bytes: [UInt8] = []
        appendQuoted(text, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Writes `text` as a JSON string literal the way serde_json does (the serializer behind
    /// PyPI's safetensors): `"` and `\` escaped, `\b \f \n \r \t` by name, other control
    /// characters as `\u00XX`, everything else (including `/` and non-ASCII) verbatim UTF-8.
    static func appendQuoted(_ text: String, to out: inout [UInt8]) {
        out.append(0x22)
        for byte in text.utf8 {
            switch byte {
            case 0x22: out.append(contentsOf: [0x5C, 0x22])
            case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
            case 0x08: out.append(contentsOf: [0x5C, 0x62])
            case 0x0C: out.append(contentsOf: [0x5C, 0x66])
            case 0x0A: out.append(contentsOf: [0x5C, 0x6E])
            case 0x0D: out.append(contentsOf: [0x5C, 0x72])
            case 0x09: out.append(contentsOf: [0x5C, 0x74])
            case 0x00..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            default: out.append(byte)
            }
        }
        out.append(0x22)
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        let maxDepth: Int
        var index = 0

        init(bytes: UnsafeRawBufferPointer, maxDepth: Int) {
            self.bytes = bytes
            self.maxDepth = maxDepth
        }

        var atEnd: Bool { index >= bytes.count }
        var current: UInt8 { bytes[index] }

        mutating func skipWhitespace() {
            while !atEnd, current == 0x20 || current == 0x09 || current == 0x0A || current == 0x0D {
                index += 1
            }
        }

        func fail(_ message: String) -> ParseError { .syntax(message: message, offset: index) }

        mutating func expect(_ byte: UInt8, _ what: String) throws(ParseError) {
            guard !atEnd, current == byte else {
                throw fail(atEnd ? "unexpected end of input, expected \(what)" : "expected \(what)")
            }
            index += 1
        }

        mutating func parseValue(depth: Int, path: String) throws(ParseError) -> Value {
            guard !atEnd else { throw fail("unexpected end of input, expected a value") }
            switch current {
            case 0x7B: return try parseObject(depth: depth + 1, path: path)
            case 0x5B: return try parseArray(depth: depth + 1, path: path)
            case 0x22: return .string(try parseString())
            case 0x74: try parseLiteral("true"); return .bool(true)
            case 0x66: try parseLiteral("false"); return .bool(false)
            case 0x6E: try parseLiteral("null"); return .null
            case 0x2D, 0x30...0x39: return .number(try parseNumber())
            default: throw fail("unexpected character '\(Character(Unicode.Scalar(current)))'")
            }
        }

        mutating func parseLiteral(_ word: StaticString) throws(ParseError) {
            let start = index
            let text = UnsafeRawBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
            for expected in text {
                guard !atEnd, current == expected else {
                    index = start
                    throw fail("invalid literal")
                }
                index += 1
            }
        }

        mutating func parseObject(depth: Int, path: String) throws(ParseError) -> Value {
            guard depth <= maxDepth else { throw .tooDeep(limit: maxDepth, offset: index) }
            index += 1  // '{'
            var members: [Member] = []
            var seen = Set<String>()
            skipWhitespace()
            if !atEnd, current == 0x7D { index += 1; return .object(members) }
            while true {
                skipWhitespace()
                guard !atEnd, current == 0x22 else {
                    throw fail(atEnd ? "unexpected end of input, expected an object key" : "expected an object key (a string)")
                }
                let key = try parseString()
                if !seen.insert(key).inserted { throw .duplicateKey(key: key, path: path) }
                skipWhitespace()
                try expect(0x3A, "':' after an object key")
                skipWhitespace()
                let value = try parseValue(depth: depth, path: path + "." + StrictJSON.quoted(key))
                members.append(Member(key: key, value: value))
                skipWhitespace()
                guard !atEnd else { throw fail("unexpected end of input, expected ',' or '}'") }
                if current == 0x2C { index += 1; continue }
                if current == 0x7D { index += 1; return .object(members) }
                throw fail("expected ',' or '}' in an object")
            }
        }

        mutating func parseArray(depth: Int, path: String) throws(ParseError) -> Value {
            guard depth <= maxDepth else { throw .tooDeep(limit: maxDepth, offset: index) }
            index += 1  // '['
            var elements: [Value] = []
            skipWhitespace()
            if !atEnd, current == 0x5D { index += 1; return .array(elements) }
            while true {
                skipWhitespace()
                elements.append(try parseValue(depth: depth, path: "\(path)[\(elements.count)]"))
                skipWhitespace()
                guard !atEnd else { throw fail("unexpected end of input, expected ',' or ']'") }
                if current == 0x2C { index += 1; continue }
                if current == 0x5D { index += 1; return .array(elements) }
                throw fail("expected ',' or ']' in an array")
            }
        }

        /// number = [ "-" ] ( "0" / [1-9] *DIGIT ) [ "." 1*DIGIT ] [ ( "e" / "E" ) [ "+" / "-" ] 1*DIGIT ]
        mutating func parseNumber() throws(ParseError) -> String {
            let start = index
            func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
            if current == 0x2D { index += 1 }
            guard !atEnd, isDigit(current) else { throw fail("invalid number") }
            if current == 0x30 {
                index += 1
                if !atEnd, isDigit(current) { throw fail("invalid number (leading zero)") }
            } else {
                while !atEnd, isDigit(current) { index += 1 }
            }
            if !atEnd, current == 0x2E {
                index += 1
                guard !atEnd, isDigit(current) else { throw fail("invalid number (no digit after '.')") }
                while !atEnd, isDigit(current) { index += 1 }
            }
            if !atEnd, current == 0x65 || current == 0x45 {
                index += 1
                if !atEnd, current == 0x2B || current == 0x2D { index += 1 }
                guard !atEnd, isDigit(current) else { throw fail("invalid number (no digit in exponent)") }
                while !atEnd, isDigit(current) { index += 1 }
            }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        }

        mutating func parseHex4() throws(ParseError) -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<4 {
                guard !atEnd else { throw fail("unexpected end of input in a \\u escape") }
                let b = current
                let digit: UInt32
                switch b {
                case 0x30...0x39: digit = UInt32(b - 0x30)
                case 0x41...0x46: digit = UInt32(b - 0x41 + 10)
                case 0x61...0x66: digit = UInt32(b - 0x61 + 10)
                default: throw fail("invalid hex digit in a \\u escape")
                }
                value = value << 4 | digit
                index += 1
            }
            return value
        }

        mutating func parseString() throws(ParseError) -> String {
            let start = index
            index += 1  // opening quote
            var utf8: [UInt8] = []
            while true {
                guard !atEnd else {
                    index = start
                    throw fail("unterminated string")
                }
                let b = current
                if b == 0x22 { index += 1; break }
                if b < 0x20 { throw fail("control character in a string (must be escaped)") }
                if b != 0x5C { utf8.append(b); index += 1; continue }
                index += 1
                guard !atEnd else { throw fail("unexpected end of input in an escape") }
                let e = current
                index += 1
                switch e {
                case 0x22: utf8.append(0x22)
                case 0x5C: utf8.append(0x5C)
                case 0x2F: utf8.append(0x2F)
                case 0x62: utf8.append(0x08)
                case 0x66: utf8.append(0x0C)
                case 0x6E: utf8.append(0x0A)
                case 0x72: utf8.append(0x0D)
                case 0x74: utf8.append(0x09)
                case 0x75:
                    var scalar = try parseHex4()
                    if scalar >= 0xD800 && scalar <= 0xDBFF {
                        // A high surrogate must be followed by an escaped low surrogate.
                        guard index + 1 < bytes.count, bytes[index] == 0x5C, bytes[index + 1] == 0x75 else {
                            throw fail("unpaired surrogate in a \\u escape")
                        }
                        index += 2
                        let low = try parseHex4()
                        guard low >= 0xDC00 && low <= 0xDFFF else { throw fail("unpaired surrogate in a \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if scalar >= 0xDC00 && scalar <= 0xDFFF {
                        throw fail("unpaired surrogate in a \\u escape")
                    }
                    // Valid by construction: not a surrogate, at most 0x10FFFF.
                    utf8.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
                default:
                    index -= 1
                    throw fail("invalid escape character")
                }
            }
            guard let text = String(validating: utf8, as: UTF8.self) else {
                index = start
                throw fail("string is not valid UTF-8")
            }
            return text
        }
    }
}

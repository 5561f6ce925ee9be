// StrictJSONTests.swift — the strict JSON parser behind safetensors header validation.

import XCTest
@testable import LDMIO

final class StrictJSONTests: XCTestCase {

    func parse(_ text: String, maxDepth: Int = 64) throws(StrictJSON.ParseError) -> StrictJSON.Value {
        try StrictJSON.parse(Array(text.utf8), maxDepth: maxDepth)
    }

    func syntaxError(_ text: String, line: UInt = #line) -> String? {
        do {
            let value = try parse(text)
            XCTFail("parsed \(text) as \(value)", line: line)
        } catch let .syntax(message, _) {
            return message
        } catch {
            XCTFail("unexpected \(error)", line: line)
        }
        return nil
    }

    func testParsesValuesKeepingObjectOrder() throws {
        let value = try parse(#" {"z": [1, -2.5e3, true, false, null], "a": {"k": "v"}, "": "" } "#)
        XCTAssertEqual(value, .object([
            .init(key: "z", value: .array([.number("1"), .number("-2.5e3"), .bool(true), .bool(false), .null])),
            .init(key: "a", value: .object([.init(key: "k", value: .string("v"))])),
            .init(key: "", value: .string("")),
        ]))
    }

    func testStringEscapes() throws {
        XCTAssertEqual(try parse(#""a\"b\\c\/d\b\f\n\r\t\u00e9\u20AC\ud83d\ude00""#),
                       .string("a\"b\\c/d\u{8}\u{C}\n\r\té€😀"))
        XCTAssertEqual(try parse("\"café 😀\""), .string("café 😀"))
        XCTAssertEqual(syntaxError(#""\ud83d""#), "unpaired surrogate in a \\u escape")
        XCTAssertEqual(syntaxError(#""\ude00""#), "unpaired surrogate in a \\u escape")
        XCTAssertEqual(syntaxError(#""\x""#), "invalid escape character")
        XCTAssertEqual(syntaxError(#""\u12G4""#), "invalid hex digit in a \\u escape")
        XCTAssertEqual(syntaxError("\"a\nb\""), "control character in a string (must be escaped)")
        XCTAssertEqual(syntaxError(#""abc"#), "unterminated string")
    }

    func testInvalidUTF8InString() {
        XCTAssertThrowsError(try StrictJSON.parse([0x22, 0xFF, 0x22])) { error in
            guard case let .syntax(message, _) = error as! StrictJSON.ParseError else { return XCTFail() }
            XCTAssertEqual(message, "string is not valid UTF-8")
        }
    }

    func testNumberGrammar() throws {
        for good in ["0", "-0", "12", "-12", "1.5", "1e9", "1E+9", "1.25e-3"] {
            XCTAssertEqual(try parse(good), .number(good))
        }
        XCTAssertEqual(syntaxError("01"), "invalid number (leading zero)")
        XCTAssertEqual(syntaxError("1."), "invalid number (no digit after '.')")
        XCTAssertEqual(syntaxError("1e"), "invalid number (no digit in exponent)")
        XCTAssertEqual(syntaxError("-"), "invalid number")
        XCTAssertEqual(syntaxError("+1"), "unexpected character '+'")
        XCTAssertEqual(syntaxError(".5"), "unexpected character '.'")
        XCTAssertEqual(syntaxError("NaN"), "unexpected character 'N'")
    }

    func testIntegerReading() {
        XCTAssertEqual(StrictJSON.integer("0"), .value(0))
        XCTAssertEqual(StrictJSON.integer("-7"), .value(-7))
        XCTAssertEqual(StrictJSON.integer("9223372036854775807"), .value(Int.max))
        XCTAssertEqual(StrictJSON.integer("-9223372036854775808"), .value(Int.min))
        XCTAssertEqual(StrictJSON.integer("9223372036854775808"), .outOfRange)
        XCTAssertEqual(StrictJSON.integer("2.0"), .notInteger)
        XCTAssertEqual(StrictJSON.integer("1e3"), .notInteger)
    }

    func testDuplicateKeysAreReported() {
        XCTAssertThrowsError(try parse(#"{"a": 1, "b": {"x": 1, "x": 2}}"#)) {
            XCTAssertEqual($0 as? StrictJSON.ParseError, .duplicateKey(key: "x", path: #"$."b""#))
        }
        XCTAssertThrowsError(try parse(#"{"a": 1, "a": 1}"#)) {
            XCTAssertEqual($0 as? StrictJSON.ParseError, .duplicateKey(key: "a", path: "$"))
        }
        // Keys equal after unescaping are duplicates too.
        XCTAssertThrowsError(try parse(#"{"a": 1, "\u0061": 1}"#)) {
            XCTAssertEqual($0 as? StrictJSON.ParseError, .duplicateKey(key: "a", path: "$"))
        }
    }

    func testDepthLimit() throws {
        XCTAssertNoThrow(try parse("[[[1]]]", maxDepth: 3))
        XCTAssertThrowsError(try parse("[[[[1]]]]", maxDepth: 3)) {
            guard case .tooDeep(3, _)? = $0 as? StrictJSON.ParseError else { return XCTFail("\($0)") }
        }
        // Far deeper than the stack could take without the limit.
        let deep = String(repeating: "[", count: 100_000)
        XCTAssertThrowsError(try parse(deep))
    }

    func testStructuralErrors() {
        XCTAssertEqual(syntaxError("{} {}"), "unexpected data after the JSON value")
        XCTAssertEqual(syntaxError("{\"a\" 1}"), "expected ':' after an object key")
        XCTAssertEqual(syntaxError("{\"a\":1,}"), "expected an object key (a string)")
        XCTAssertEqual(syntaxError("[1,]"), "unexpected character ']'")
        XCTAssertEqual(syntaxError("[1 2]"), "expected ',' or ']' in an array")
        XCTAssertEqual(syntaxError("{\"a\":1"), "unexpected end of input, expected ',' or '}'")
        XCTAssertEqual(syntaxError("tru"), "invalid literal")
        XCTAssertEqual(syntaxError(""), "unexpected end of input, expected a value")
    }

    func testQuotingMatchesSerdeJSON() {
        var out: [UInt8] = []
        StrictJSON.appendQuoted("é \"q\" \\ / \t\n\u{1}\u{7F}", to: &out)
        XCTAssertEqual(String(decoding: out, as: UTF8.self), #""é \"q\" \\ / \t\n\u0001\#u{7F}""#)
    }
}

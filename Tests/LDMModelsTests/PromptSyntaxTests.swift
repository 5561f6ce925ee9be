// Golden tests for PromptSyntax against a stand-alone port of AUTOMATIC1111's
// parse_prompt_attention and tokenize_line: Fixtures/prompt-syntax-cases.json, written by
//   /work/venv/bin/python scripts/a1111_prompt_reference.py
// with transformers' CLIPTokenizer on the tiny test model's tokenizer (Tests/Fixtures/models/tiny-sd).
import Foundation
import XCTest
@testable import LDMModels

final class PromptSyntaxTests: XCTestCase {
    private static let tokenizer: CLIPTokenizer = try! CLIPTokenizer.load(folder: URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/models/tiny-sd/tokenizer"))

    private struct Fixture: Decodable {
        struct Segment: Decodable {
            let text: String
            let weight: Double
            let is_break: Bool
        }
        struct Chunk: Decodable {
            let ids: [Int32]
            let weights: [Double]
            /// [index, name, vector]
            let embeddings: [[Slot]]
        }
        enum Slot: Decodable {
            case int(Int), string(String)
            init(from decoder: Decoder) throws {
                let c = try decoder.singleValueContainer()
                if let i = try? c.decode(Int.self) { self = .int(i) } else { self = .string(try c.decode(String.self)) }
            }
        }
        struct Embedding: Decodable {
            let name: String
            let token_ids: [Int32]
            let vectors: Int
        }
        struct Case: Decodable {
            let prompt: String
            let pad_id: Int32
            let comma_padding_backtrack: Int
            let segments: [Segment]
            let chunks: [Chunk]
            let token_count: Int
        }
        struct ParseCase: Decodable {
            let prompt: String
            let segments: [Segment]?
        }
        let bos_id: Int32
        let eos_id: Int32
        let comma_id: Int32
        let embeddings: [Embedding]
        let raising: [String]
        let cases: [Case]
        let random_parse_cases: [ParseCase]
    }

    private static let fixture: Fixture = {
        let url = Bundle.module.url(forResource: "Fixtures/prompt-syntax-cases", withExtension: "json")!
        return try! JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }()

    private func segments(_ expected: [Fixture.Segment]) -> [PromptSegment] {
        expected.map { PromptSegment(text: $0.text, weight: Float($0.weight), isBreak: $0.is_break) }
    }

    private func chunk(_ expected: Fixture.Chunk) -> PromptChunk {
        var tokens = expected.ids.map { PromptToken.id($0) }
        for slot in expected.embeddings {
            guard case let .int(index) = slot[0], case let .string(name) = slot[1], case let .int(vector) = slot[2] else {
                XCTFail("bad embedding slot")
                continue
            }
            tokens[index] = .embedding(name: name, vector: vector)
        }
        return PromptChunk(tokens: tokens, weights: expected.weights.map { Float($0) })
    }

    func testTokenizerAndTriggersMatchTheFixture() {
        let f = Self.fixture, t = Self.tokenizer
        XCTAssertEqual([t.bosTokenID, t.eosTokenID, t.padTokenID], [f.bos_id, f.eos_id, f.eos_id])
        XCTAssertEqual(t.tokenIDs(","), [f.comma_id])
        for e in f.embeddings {
            XCTAssertEqual(EmbeddingTrigger(name: e.name, vectorCount: e.vectors, tokenizer: t).tokenIDs, e.token_ids, e.name)
        }
    }

    // Weights are compared exactly as Float: both sides round the same Python/Swift double once.
    func testParseAttentionMatchesA1111() {
        for c in Self.fixture.cases {
            XCTAssertEqual(PromptSyntax.parseAttention(c.prompt), segments(c.segments), c.prompt.debugDescription)
        }
    }

    func testParseAttentionMatchesA1111OnRandomStrings() {
        let cases = Self.fixture.random_parse_cases
        XCTAssertEqual(cases.count, 400)
        var failures = 0
        for c in cases {
            guard let expected = c.segments else { continue }
            let got = PromptSyntax.parseAttention(c.prompt)
            if got != segments(expected) {
                failures += 1
                if failures <= 10 { XCTFail("\(c.prompt.debugDescription): \(got) != \(segments(expected))") }
            }
        }
        XCTAssertEqual(failures, 0)
    }

    func testChunksMatchA1111() {
        let f = Self.fixture
        let triggers = f.embeddings.map { EmbeddingTrigger(name: $0.name, tokenIDs: $0.token_ids, vectorCount: $0.vectors) }
        XCTAssertGreaterThanOrEqual(f.cases.count, 40)
        for c in f.cases {
            let got = PromptSyntax.chunk(prompt: c.prompt, tokenizer: Self.tokenizer, embeddings: triggers,
                                         padTokenID: c.pad_id, commaPaddingBacktrack: c.comma_padding_backtrack)
            let name = "\(c.prompt.debugDescription) pad \(c.pad_id) backtrack \(c.comma_padding_backtrack)"
            XCTAssertEqual(got.tokenCount, c.token_count, name)
            XCTAssertEqual(got.chunks.count, c.chunks.count, name)
            for (k, (g, e)) in zip(got.chunks, c.chunks).enumerated() {
                XCTAssertEqual(g.tokens.count, 77, name)
                XCTAssertEqual(g.weights.count, 77, name)
                let expected = chunk(e)
                XCTAssertEqual(g.tokens, expected.tokens, "\(name) chunk \(k)")
                for (i, (a, b)) in zip(g.weights, e.weights).enumerated() where abs(Double(a) - b) > 1e-6 * max(1, abs(b)) {
                    XCTFail("\(name) chunk \(k) weight \(i): \(a) != \(b)")
                }
                XCTAssertEqual(g.weights, expected.weights, "\(name) chunk \(k)")
            }
        }
    }

    /// A1111 raises ValueError on these (float() rejects the weight); we keep the text instead.
    func testWeightsFloatRejectsStayText() {
        XCTAssertEqual(Self.fixture.raising, ["(a:1.2.3)", "(a:.)"])
        XCTAssertEqual(PromptSyntax.parseAttention("(a:1.2.3)"), [PromptSegment(text: "a:1.2.3)", weight: Float(1.1))])
        XCTAssertEqual(PromptSyntax.parseAttention("(a:.)"), [PromptSegment(text: "a:.)", weight: Float(1.1))])
    }

    func testLiteralCases() {
        // python -c "from modules.prompt_parser import parse_prompt_attention as p; print(p('a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).'))"
        // (the function's own doctest)
        let expected: [(String, Double)] = [("a ", 1.0), ("house", 1.5730000000000004), (" ", 1.1), ("on", 1.0), (" a ", 1.1),
                                            ("hill", 0.55), (", sun, ", 1.1), ("sky", 1.4641000000000006), (".", 1.1)]
        XCTAssertEqual(PromptSyntax.parseAttention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."),
                       expected.map { PromptSegment(text: $0.0, weight: Float($0.1)) })
        XCTAssertEqual(PromptSyntax.parseAttention(""), [PromptSegment(text: "", weight: 1)])
        XCTAssertEqual(PromptSyntax.parseAttention("(a:\u{0661}.\u{0665})"), [PromptSegment(text: "a", weight: 1.5)])
        XCTAssertEqual(PromptSyntax.parseAttention("a BREAK b").map(\.isBreak), [false, true, false])
    }

    func testEmptyPromptIsOneEmptyChunk() {
        let t = Self.tokenizer
        let sd1 = PromptSyntax.chunk(prompt: "", tokenizer: t)
        XCTAssertEqual(sd1.chunks, [PromptSyntax.emptyChunk(tokenizer: t)])
        XCTAssertEqual(sd1.tokenCount, 0)
        let sd2 = PromptSyntax.chunk(prompt: "", tokenizer: t, padTokenID: 0)
        XCTAssertEqual(sd2.chunks, [PromptSyntax.emptyChunk(tokenizer: t, padTokenID: 0)])
        XCTAssertEqual(sd2.chunks[0].tokens.prefix(3), [.id(t.bosTokenID), .id(t.eosTokenID), .id(0)])
    }

    func testMatchChunkCountsAppendsEmptyChunks() {
        let t = Self.tokenizer
        let long = PromptSyntax.chunk(prompt: Array(repeating: "a", count: 100).joined(separator: " "), tokenizer: t).chunks
        let short = PromptSyntax.chunk(prompt: "b", tokenizer: t).chunks
        XCTAssertEqual(long.count, 2)
        let matched = PromptSyntax.matchChunkCounts([long, short], tokenizer: t)
        XCTAssertEqual(matched[0], long)
        XCTAssertEqual(matched[1], short + [PromptSyntax.emptyChunk(tokenizer: t)])
    }

    func testTriggersLongestFirstAndOversizedIgnored() {
        let t = Self.tokenizer
        let cat = EmbeddingTrigger(name: "cat", vectorCount: 1, tokenizer: t)
        let catGirl = EmbeddingTrigger(name: "cat girl", vectorCount: 2, tokenizer: t)
        let huge = EmbeddingTrigger(name: "girl", vectorCount: 76, tokenizer: t)
        let chunk = PromptSyntax.chunk(prompt: "cat girl", tokenizer: t, embeddings: [cat, catGirl, huge]).chunks[0]
        XCTAssertEqual(Array(chunk.tokens[1...3]), [.embedding(name: "cat girl", vector: 0), .embedding(name: "cat girl", vector: 1), .id(t.eosTokenID)])
        let alone = PromptSyntax.chunk(prompt: "girl", tokenizer: t, embeddings: [huge]).chunks[0]
        XCTAssertEqual(Array(alone.tokens[1..<(1 + t.tokenIDs("girl").count)]), t.tokenIDs("girl").map { .id($0) })
    }
}

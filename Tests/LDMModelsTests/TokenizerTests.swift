// Golden tests for CLIPTokenizer against transformers 5's CLIPTokenizer (tokenizers-backed).
// Fixtures: Fixtures/clip-tokenizer (CLIP's vocabulary converted by scripts/convert_clip_vocab.py,
// SD 1.x form), Fixtures/tiny-tokenizer-json (the tiny test model's tokenizer as transformers 5's
// save_pretrained writes it: tokenizer.json only) and Fixtures/clip-tokenizer-cases.json
// (scripts/make_tokenizer_fixtures.py; versions recorded in it).
import Foundation
import XCTest
@testable import LDMModels

final class TokenizerTests: XCTestCase {
    private static let folder = Bundle.module.url(forResource: "Fixtures/clip-tokenizer", withExtension: nil)!
    private static let sd1: CLIPTokenizer = try! CLIPTokenizer.load(folder: folder)
    // SD 2.x: pad "!" as a plain string, so not normalized; <|endoftext|> keeps the config's
    // `normalized: true` (what transformers 5 makes of SD 2.x's tokenizer folder).
    private static let sd2: CLIPTokenizer = try! CLIPTokenizer(
        vocabURL: folder.appendingPathComponent("vocab.json"),
        mergesURL: folder.appendingPathComponent("merges.txt"), padToken: "!",
        normalizedTokens: ["<|startoftext|>", "<|endoftext|>"])
    private static let tinyJSON = try! CLIPTokenizer.load(folder: Bundle.module.url(forResource: "Fixtures/tiny-tokenizer-json", withExtension: nil)!)
    private static let tinyVocab = try! CLIPTokenizer.load(folder: modelFixtures.appendingPathComponent("tiny-sd/tokenizer"))

    private struct Fixture: Decodable {
        struct Case: Decodable {
            let text: String
            let tokens: [String]
            let sd1: [Int32]
            let sd2: [Int32]
            let sd1_truncated: Bool
            let sd2_truncated: Bool
            let tiny: [Int32]
        }
        let transformers: String
        let cases: [Case]
    }

    func testLoadsSD1Folder() throws {
        let t = Self.sd1
        XCTAssertEqual(t.vocabularySize, 49408)
        XCTAssertEqual(t.maxLength, 77)
        XCTAssertEqual([t.bosTokenID, t.eosTokenID, t.padTokenID, t.unkTokenID], [49406, 49407, 49407, 49407])
        XCTAssertEqual(Self.sd2.padTokenID, 0)
    }

    func testLiteralIDs() {
        // python -c "from transformers import CLIPTokenizer as T; t = T.from_pretrained('Tests/LDMModelsTests/Fixtures/clip-tokenizer');
        //   print(t('a photograph of an astronaut riding a horse').input_ids)"   (transformers 4.57.6, no ftfy)
        // [49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407]
        let (ids, truncated) = Self.sd1.encode("a photograph of an astronaut riding a horse")
        XCTAssertEqual(Array(ids.prefix(10)), [49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407])
        XCTAssertEqual(Array(ids.suffix(67)), Array(repeating: 49407, count: 67))
        XCTAssertFalse(truncated)
        XCTAssertEqual(Self.sd1.tokenize("it's a cat!"), ["it</w>", "'s</w>", "a</w>", "cat</w>", "!</w>"])
        // SD 2.x: the pad token "!" is kept whole (id 0) and pads the sequence.
        XCTAssertEqual(Array(Self.sd2.encode("hello!").ids.prefix(5)), [49406, 3306, 0, 49407, 0])
    }

    func testMatchesTransformersOnEveryFixtureString() throws {
        let url = Bundle.module.url(forResource: "Fixtures/clip-tokenizer-cases", withExtension: "json")!
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
        XCTAssertGreaterThan(fixture.cases.count, 300)
        var failures = 0
        for c in fixture.cases {
            let (ids1, truncated1) = Self.sd1.encode(c.text)
            let (ids2, truncated2) = Self.sd2.encode(c.text)
            let tokens = Self.sd1.tokenize(c.text)
            let tiny1 = Self.tinyJSON.encode(c.text).ids, tiny2 = Self.tinyVocab.encode(c.text).ids
            if ids1 != c.sd1 || ids2 != c.sd2 || truncated1 != c.sd1_truncated || truncated2 != c.sd2_truncated
                || tiny1 != c.tiny || tiny2 != c.tiny {
                failures += 1
                XCTFail("""
                    \(c.text.debugDescription) (transformers \(fixture.transformers))
                      tokens ours   \(tokens.prefix(20))
                      tokens theirs \(c.tokens.prefix(20))
                      sd1 ours \(ids1.prefix(20)) theirs \(c.sd1.prefix(20)); sd2 equal: \(ids2 == c.sd2)
                      tiny (tokenizer.json) equal: \(tiny1 == c.tiny), tiny (vocab.json) equal: \(tiny2 == c.tiny)
                    """)
            }
            if failures > 10 { break }
        }
    }

    func testTruncationKeepsEOS() {
        let (ids, truncated) = Self.sd1.encode(Array(repeating: "word", count: 100).joined(separator: " "))
        XCTAssertTrue(truncated)
        XCTAssertEqual(ids.count, 77)
        XCTAssertEqual(ids.first, 49406)
        XCTAssertEqual(ids.last, 49407)
        XCTAssertEqual(Self.sd1.tokenIDs(String(repeating: "word ", count: 100)).count, 100)
    }

    func testDecodeRoundTrip() {
        let text = "a photograph of an astronaut riding a horse, 4k"
        XCTAssertEqual(Self.sd1.decode(Self.sd1.encode(text).ids), "a photograph of an astronaut riding a horse , 4 k")
        XCTAssertEqual(Self.sd1.decode(Self.sd1.encode("café 猫").ids), "café 猫")
        XCTAssertEqual(Self.sd1.decode(Self.sd1.encode("一只猫").ids), "一只猫")
    }

    func testSmallVocabularyAndErrors() throws {
        // A hand-made vocabulary: merges apply lowest rank first, every occurrence left to right.
        var vocabulary: [String: Int] = ["<|startoftext|>": 0, "<|endoftext|>": 1]
        for (i, t) in ["a", "b", "a</w>", "b</w>", "ab", "ab</w>", "abab</w>", "aa", "aa</w>"].enumerated() { vocabulary[t] = i + 2 }
        let t = try CLIPTokenizer(vocabulary: vocabulary, merges: [("a", "b</w>"), ("a", "b"), ("ab", "ab</w>"), ("a", "a")],
                                  maxLength: 6, padToken: "<|endoftext|>")
        XCTAssertEqual(t.tokenize("abab"), ["abab</w>"])
        XCTAssertEqual(t.tokenize("aaa"), ["aa", "a</w>"])
        XCTAssertEqual(t.tokenize("c"), ["c</w>"])                       // not in the vocabulary →
        XCTAssertEqual(t.tokenIDs("c"), [t.unkTokenID])                  // the unknown token
        XCTAssertEqual(t.encode("ab ab ab ab").ids, [0, 7, 7, 7, 7, 1])
        XCTAssertEqual(t.encode("ab ab ab ab").truncated, false)
        XCTAssertEqual(t.encode("ab ab ab ab ab").truncated, true)

        XCTAssertThrowsError(try CLIPTokenizer(vocabulary: vocabulary, merges: [], padToken: "!")) { error in
            XCTAssertEqual("\(error)", "tokenizer: pad token \"!\" is not in the vocabulary")
        }
        XCTAssertThrowsError(try CLIPTokenizer(vocabulary: vocabulary, merges: [], maxLength: 1, padToken: "<|endoftext|>"))
        let missing = URL(fileURLWithPath: "/nonexistent/tokenizer")
        XCTAssertThrowsError(try CLIPTokenizer.load(folder: missing)) { error in
            XCTAssertEqual(error as? TokenizerError, .missingFile("/nonexistent/tokenizer/vocab.json"))
        }
    }

    func testLoadsSD2FormAndAddedTokensDecoder() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clip-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in ["vocab.json", "merges.txt"] {
            try FileManager.default.copyItem(at: Self.folder.appendingPathComponent(name), to: dir.appendingPathComponent(name))
        }
        // SD 2.x: pad "!" in special_tokens_map.json overrides the config (no added_tokens_decoder).
        try #"{"model_max_length": 77, "pad_token": "<|endoftext|>"}"#.write(to: dir.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
        try #"{"pad_token": "!", "bos_token": {"content": "<|startoftext|>", "lstrip": false}}"#.write(to: dir.appendingPathComponent("special_tokens_map.json"), atomically: true, encoding: .utf8)
        XCTAssertEqual(try CLIPTokenizer.load(folder: dir).padToken, "!")
        // Newer form: with added_tokens_decoder the config wins.
        try #"{"model_max_length": 64, "pad_token": "<|endoftext|>", "added_tokens_decoder": {"49407": {"content": "<|endoftext|>"}}}"#.write(to: dir.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
        let t = try CLIPTokenizer.load(folder: dir)
        XCTAssertEqual(t.padToken, "<|endoftext|>")
        XCTAssertEqual(t.encode("cat").ids.count, 64)
        // An added token beyond the vocabulary (textual inversion) is kept whole with its listed id.
        try #"{"added_tokens_decoder": {"49407": {"content": "<|endoftext|>"}, "49408": {"content": "<my-style>"}}}"#.write(to: dir.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
        let ti = try CLIPTokenizer.load(folder: dir)
        XCTAssertEqual(ti.tokenIDs("a <my-style> cat"), [320, 49408, 2368])
        XCTAssertEqual(ti.tokenize("a <my-style>cat"), ["a</w>", "<my-style>", "cat</w>"])
        // A bad value is a clear error.
        try #"{"model_max_length": "many"}"#.write(to: dir.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CLIPTokenizer.load(folder: dir)) { error in
            XCTAssertTrue("\(error)".contains("model_max_length is not an integer"), "\(error)")
        }
        try #"{"model_max_length": 1000000000000000019884624838656}"#.write(to: dir.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CLIPTokenizer.load(folder: dir)) { error in
            XCTAssertTrue("\(error)".contains("is not a usable sequence length"), "\(error)")
        }
    }
}

// The CLIP byte-pair-encoding tokenizer: the ids CLIPTextModel receives for a prompt.
//
// Reproduces transformers' slow `CLIPTokenizer` (models/clip/tokenization_clip.py, without ftfy)
// as diffusers calls it: `tokenizer(prompt, padding="max_length",
// max_length=tokenizer.model_max_length, truncation=True)`:
//   ids = [BOS] + bpe(prompt)[..<(maxLength − 2)] + [EOS] + [PAD] × (maxLength − count).
// The text steps before BPE are in TokenizerText.swift.
//
// Byte-pair encoding (Sennrich et al. 2016, byte-level as in GPT-2): a piece starts as one symbol
// per UTF-8 byte, the last one carrying the end-of-word mark "</w>"; then, repeatedly, the
// adjacent pair with the lowest merge rank (its line in merges.txt) is merged everywhere, left
// to right, until no adjacent pair has a rank.

import Foundation

/// Errors while loading a tokenizer.
public enum TokenizerError: Error, CustomStringConvertible, LocalizedError, Equatable {
    case missingFile(String)
    case invalidFile(path: String, reason: String)
    case invalidConfiguration(String)

    public var description: String {
        switch self {
        case let .missingFile(path): return "tokenizer: missing file \(path)"
        case let .invalidFile(path, reason): return "tokenizer: \(path): \(reason)"
        case let .invalidConfiguration(reason): return "tokenizer: \(reason)"
        }
    }

    public var errorDescription: String? { description }
}

/// CLIP's BPE tokenizer, as transformers' `CLIPTokenizer` loaded from a model's `tokenizer/` folder.
///
/// Text inside the prompt that equals a special token (`<|startoftext|>`, `<|endoftext|>`, the pad
/// token, or an added token) is kept whole and mapped to its id, as transformers does; with the
/// SD 2.x pad token `!` this means every `!` in a prompt becomes id 0 rather than `!</w>`.
public struct CLIPTokenizer: Sendable {
    /// The length of every encoded sequence (`model_max_length`; 77 for CLIP).
    public let maxLength: Int
    /// The first id of every sequence (`<|startoftext|>`).
    public let bosToken: String
    /// The id after the last text token (`<|endoftext|>`).
    public let eosToken: String
    /// Fills the sequence up to `maxLength`: `<|endoftext|>` in SD 1.x, `!` in SD 2.x.
    public let padToken: String
    /// Stands for any token missing from the vocabulary.
    public let unkToken: String
    public let bosTokenID: Int32
    public let eosTokenID: Int32
    public let padTokenID: Int32
    public let unkTokenID: Int32

    /// Token string → id (vocab.json).
    private let encoder: [String: Int32]
    /// Id → token string.
    private let decoder: [Int32: String]
    /// Strings kept whole when found in the text (special and added tokens), longest first.
    private let addedTokens: [[Unicode.Scalar]]
    private let bpe: BytePairEncoder

    /// The number of tokens in the vocabulary.
    public var vocabularySize: Int { encoder.count }

    /// Loads vocab.json and merges.txt.
    /// - Parameters:
    ///   - maxLength: `model_max_length`, at least 2.
    ///   - padToken: `<|endoftext|>` (SD 1.x) or `!` (SD 2.x); must be in the vocabulary.
    ///   - addedTokens: further strings kept whole (transformers' added tokens); each must be in the vocabulary.
    public init(vocabURL: URL, mergesURL: URL, maxLength: Int = 77, padToken: String,
                bosToken: String = "<|startoftext|>", eosToken: String = "<|endoftext|>",
                unkToken: String = "<|endoftext|>", addedTokens: [String] = []) throws {
        let vocabulary = try Self.readVocabulary(vocabURL)
        let merges = try Self.readMerges(mergesURL)
        try self.init(vocabulary: vocabulary, merges: merges, maxLength: maxLength, padToken: padToken,
                      bosToken: bosToken, eosToken: eosToken, unkToken: unkToken, addedTokens: addedTokens)
    }

    /// A tokenizer from an in-memory vocabulary and merge list (merges in rank order; a repeated
    /// pair takes its last rank, as transformers' dictionary does).
    public init(vocabulary: [String: Int], merges: [(String, String)], maxLength: Int = 77, padToken: String,
                bosToken: String = "<|startoftext|>", eosToken: String = "<|endoftext|>",
                unkToken: String = "<|endoftext|>", addedTokens: [String] = []) throws {
        guard maxLength >= 2 else {
            throw TokenizerError.invalidConfiguration("model_max_length must be at least 2, got \(maxLength)")
        }
        var encoder: [String: Int32] = [:]
        encoder.reserveCapacity(vocabulary.count)
        for (token, id) in vocabulary {
            guard let id32 = Int32(exactly: id), id32 >= 0 else {
                throw TokenizerError.invalidConfiguration("token id \(id) of \(token.debugDescription) is out of range")
            }
            encoder[token] = id32
        }
        func id(_ token: String, _ role: String) throws -> Int32 {
            guard let id = encoder[token] else {
                throw TokenizerError.invalidConfiguration("\(role) token \(token.debugDescription) is not in the vocabulary")
            }
            return id
        }
        self.maxLength = maxLength
        self.bosToken = bosToken
        self.eosToken = eosToken
        self.padToken = padToken
        self.unkToken = unkToken
        bosTokenID = try id(bosToken, "bos")
        eosTokenID = try id(eosToken, "eos")
        padTokenID = try id(padToken, "pad")
        unkTokenID = try id(unkToken, "unk")
        for token in addedTokens { _ = try id(token, "added") }
        var decoder: [Int32: String] = [:]
        for (token, id) in encoder where decoder[id] == nil || token < decoder[id]! { decoder[id] = token }
        self.encoder = encoder
        self.decoder = decoder
        let whole = Set([bosToken, eosToken, unkToken, padToken] + addedTokens).filter { !$0.isEmpty }
        self.addedTokens = whole.map { Array($0.unicodeScalars) }.sorted { $0.count > $1.count }
        bpe = BytePairEncoder(merges: merges, encoder: encoder, unknownID: unkTokenID)
    }

    /// Loads a transformers tokenizer folder: vocab.json, merges.txt, tokenizer_config.json
    /// (`model_max_length`, `bos_token`, `eos_token`, `unk_token`, `pad_token`,
    /// `added_tokens_decoder`) and special_tokens_map.json, which overrides the config's special
    /// tokens unless the config lists `added_tokens_decoder` (transformers' rule). Missing values
    /// take CLIP's defaults (77, `<|startoftext|>`, `<|endoftext|>`).
    public static func load(folder: URL) throws -> CLIPTokenizer {
        let vocabURL = folder.appendingPathComponent("vocab.json")
        let mergesURL = folder.appendingPathComponent("merges.txt")
        var config: [String: Any] = [:]
        let configURL = folder.appendingPathComponent("tokenizer_config.json")
        if FileManager.default.fileExists(atPath: configURL.path) {
            config = try readJSONObject(configURL)
        }
        var special: [String: Any] = [:]
        let specialURL = folder.appendingPathComponent("special_tokens_map.json")
        if FileManager.default.fileExists(atPath: specialURL.path) {
            special = try readJSONObject(specialURL)
        }
        let mapOverrides = config["added_tokens_decoder"] == nil
        func token(_ key: String, _ fallback: String) throws -> String {
            let fromMap = try tokenContent(special[key], key: key, file: specialURL)
            let fromConfig = try tokenContent(config[key], key: key, file: configURL)
            return (mapOverrides ? (fromMap ?? fromConfig) : (fromConfig ?? fromMap)) ?? fallback
        }
        var maxLength = 77
        if let value = config["model_max_length"] {
            guard let n = value as? NSNumber, n.doubleValue.rounded() == n.doubleValue else {
                throw TokenizerError.invalidFile(path: configURL.path, reason: "model_max_length is not an integer")
            }
            guard n.doubleValue >= 2, n.doubleValue <= 1_000_000 else {
                throw TokenizerError.invalidFile(path: configURL.path, reason: "model_max_length \(n) is not a usable sequence length")
            }
            maxLength = n.intValue
        }
        // Added tokens (e.g. textual-inversion words) join the vocabulary with the id they are listed under.
        var vocabulary = try readVocabulary(vocabURL)
        var added: [String] = []
        if let entries = config["added_tokens_decoder"] as? [String: Any] {
            for (key, entry) in entries {
                guard let id = Int(key), id >= 0,
                      let content = try tokenContent(entry, key: "added_tokens_decoder", file: configURL) else {
                    throw TokenizerError.invalidFile(path: configURL.path, reason: "added_tokens_decoder entry \(key.debugDescription) is not an id with a token")
                }
                if vocabulary[content] == nil { vocabulary[content] = id }
                added.append(content)
            }
        }
        return try CLIPTokenizer(vocabulary: vocabulary, merges: readMerges(mergesURL), maxLength: maxLength,
                                 padToken: token("pad_token", "<|endoftext|>"),
                                 bosToken: token("bos_token", "<|startoftext|>"),
                                 eosToken: token("eos_token", "<|endoftext|>"),
                                 unkToken: token("unk_token", "<|endoftext|>"),
                                 addedTokens: added)
    }

    // MARK: Tokenizing

    /// The BPE tokens of `text` (e.g. `["a</w>", "photo</w>"]`), without BOS/EOS and untruncated.
    public func tokenize(_ text: String) -> [String] {
        var tokens: [String] = []
        forEachToken(text) { token in
            switch token {
            case let .whole(string): tokens.append(string)
            case let .symbol(symbol): tokens.append(bpe.symbol(symbol))
            }
        }
        return tokens
    }

    /// The token ids of `text`, without BOS/EOS and untruncated.
    public func tokenIDs(_ text: String) -> [Int32] {
        var ids: [Int32] = []
        forEachToken(text) { token in
            switch token {
            case let .whole(string): ids.append(encoder[string] ?? unkTokenID)
            case let .symbol(symbol): ids.append(bpe.vocabularyID(symbol))
            }
        }
        return ids
    }

    /// What the text encoder receives: `[BOS] + ids + [EOS]`, truncated to `maxLength` (keeping EOS
    /// last) and padded with the pad token to exactly `maxLength`. `truncated` tells whether text
    /// tokens were cut off.
    public func encode(_ text: String) -> (ids: [Int32], truncated: Bool) {
        let body = tokenIDs(text)
        let room = maxLength - 2
        var ids = [bosTokenID]
        ids.append(contentsOf: body.prefix(room))
        ids.append(eosTokenID)
        ids.append(contentsOf: repeatElement(padTokenID, count: maxLength - ids.count))
        return (ids, body.count > room)
    }

    /// The text of `ids`: tokens concatenated, bytes decoded as UTF-8 (invalid sequences become
    /// U+FFFD), each `</w>` turned into a space, and the ends trimmed.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = true) -> String {
        let specials: Set<Int32> = [bosTokenID, eosTokenID, padTokenID, unkTokenID]
        var bytes: [UInt8] = []
        for id in ids {
            if skipSpecialTokens && specials.contains(id) { continue }
            guard let token = decoder[id] else { continue }
            for s in token.replacingOccurrences(of: "</w>", with: " ").unicodeScalars {
                if let b = CLIPText.characterBytes[s] { bytes.append(b) } else { bytes.append(contentsOf: Array(String(s).utf8)) }
            }
        }
        return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// One output token: a string kept whole (a special or added token, or a `<|startoftext|>` /
    /// `<|endoftext|>` piece, which transformers' BPE cache returns unchanged) or a BPE symbol.
    private enum Token {
        case whole(String)
        case symbol(Int32)
    }

    /// Splits `text` at special/added tokens, and runs each chunk between them through the text
    /// steps and BPE separately, as transformers does.
    private func forEachToken(_ text: String, _ body: (Token) -> Void) {
        let scalars = Array(text.unicodeScalars)
        var chunkStart = 0
        func flush(_ end: Int) {
            guard end > chunkStart else { return }
            for word in CLIPText.basicWords(scalars[chunkStart..<end]) {
                for piece in CLIPText.pieces(word) {
                    var view = String.UnicodeScalarView()
                    view.append(contentsOf: piece)
                    let pieceText = String(view)
                    if pieceText == "<|startoftext|>" || pieceText == "<|endoftext|>" {
                        body(.whole(pieceText))
                    } else {
                        for symbol in bpe.encode(pieceText) { body(.symbol(symbol)) }
                    }
                }
            }
        }
        var i = 0
        while i < scalars.count {
            if let token = addedTokens.first(where: { matchesAt(scalars, i, $0) }) {
                flush(i)
                var view = String.UnicodeScalarView()
                view.append(contentsOf: token)
                body(.whole(String(view)))
                i += token.count
                chunkStart = i
            } else {
                i += 1
            }
        }
        flush(scalars.count)
    }

    private func matchesAt(_ scalars: [Unicode.Scalar], _ i: Int, _ token: [Unicode.Scalar]) -> Bool {
        guard i + token.count <= scalars.count, scalars[i] == token[0] else { return false }
        for k in 1..<token.count where scalars[i + k] != token[k] { return false }
        return true
    }

    // MARK: Files

    private static func readJSONObject(_ url: URL) throws -> [String: Any] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw TokenizerError.missingFile(url.path) }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TokenizerError.invalidFile(path: url.path, reason: "not a JSON object")
        }
        return object
    }

    /// A token given as a string or as an AddedToken object (`{"content": ...}`).
    private static func tokenContent(_ value: Any?, key: String, file: URL) throws -> String? {
        switch value {
        case nil, is NSNull: return nil
        case let s as String: return s
        case let object as [String: Any]:
            guard let content = object["content"] as? String else {
                throw TokenizerError.invalidFile(path: file.path, reason: "\(key) has no string \"content\"")
            }
            return content
        default:
            throw TokenizerError.invalidFile(path: file.path, reason: "\(key) is neither a string nor a token object")
        }
    }

    static func readVocabulary(_ url: URL) throws -> [String: Int] {
        let object = try readJSONObject(url)
        var vocabulary: [String: Int] = [:]
        vocabulary.reserveCapacity(object.count)
        for (token, value) in object {
            guard let n = value as? NSNumber, let id = Int(exactly: n.doubleValue) else {
                throw TokenizerError.invalidFile(path: url.path, reason: "the id of \(token.debugDescription) is not an integer")
            }
            vocabulary[token] = id
        }
        return vocabulary
    }

    /// merges.txt as transformers reads it: the file trimmed, split into lines, the first line (the
    /// `#version` header) skipped, at most 49152 − 256 − 2 = 48894 lines kept, each split on
    /// whitespace. Lines that are not exactly two symbols keep their rank but never match.
    static func readMerges(_ url: URL) throws -> [(String, String)] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw TokenizerError.missingFile(url.path) }
        guard let text = String(data: data, encoding: .utf8) else {
            throw TokenizerError.invalidFile(path: url.path, reason: "not UTF-8 text")
        }
        let lines = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n", omittingEmptySubsequences: false)
        var merges: [(String, String)] = []
        for line in lines.dropFirst().prefix(49152 - 256 - 2) {
            let parts = line.split(whereSeparator: { $0.isWhitespace })
            merges.append(parts.count == 2 ? (String(parts[0]), String(parts[1])) : ("", ""))
        }
        return merges
    }
}

/// Pieces of CLIP's vocabulary format that tools building their own vocabularies need.
public enum CLIPVocabulary {
    /// The 256 printable characters standing for bytes 0…255 (`bytes_to_unicode`), in id order.
    public static var byteCharacters: [Character] { CLIPText.byteCharacters }
}

// The CLIP byte-pair-encoding tokenizer: the ids CLIPTextModel receives for a prompt.
//
// Reproduces transformers 5's `CLIPTokenizer` (the tokenizers-backed class) as diffusers calls it:
// `tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True)`:
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
/// SD 2.x pad token `!` this means every `!` in a prompt becomes id 0 rather than `!</w>`. A token
/// marked `normalized` is found in the lower-cased text (so `<|StartOfText|>` is BOS too), the
/// others only as written.
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
    /// Strings kept whole when found in the raw text (`normalized: false`), longest first.
    private let rawTokens: [([Unicode.Scalar], String)]
    /// Strings kept whole when found in the normalized text (`normalized: true`; the contents
    /// normalized too), longest first, with the token each stands for.
    private let normalizedTokens: [([Unicode.Scalar], String)]
    private let bpe: BytePairEncoder

    /// The number of tokens in the vocabulary.
    public var vocabularySize: Int { encoder.count }

    /// Loads vocab.json and merges.txt.
    /// - Parameters:
    ///   - maxLength: `model_max_length`, at least 2.
    ///   - padToken: `<|endoftext|>` (SD 1.x) or `!` (SD 2.x); must be in the vocabulary.
    ///   - addedTokens: further strings kept whole (transformers' added tokens); each must be in the vocabulary.
    ///   - normalizedTokens: the special and added tokens matched in the normalized text; the
    ///     others are matched as written. The default is what transformers 5 makes of an SD 1.x
    ///     folder (only `<|startoftext|>`).
    public init(vocabURL: URL, mergesURL: URL, maxLength: Int = 77, padToken: String,
                bosToken: String = "<|startoftext|>", eosToken: String = "<|endoftext|>",
                unkToken: String = "<|endoftext|>", addedTokens: [String] = [],
                normalizedTokens: Set<String> = ["<|startoftext|>"]) throws {
        let vocabulary = try Self.readVocabulary(vocabURL)
        let merges = try Self.readMerges(mergesURL)
        try self.init(vocabulary: vocabulary, merges: merges, maxLength: maxLength, padToken: padToken,
                      bosToken: bosToken, eosToken: eosToken, unkToken: unkToken, addedTokens: addedTokens,
                      normalizedTokens: normalizedTokens)
    }

    /// A tokenizer from an in-memory vocabulary and merge list (merges in rank order; a repeated
    /// pair takes its last rank, as transformers' dictionary does).
    public init(vocabulary: [String: Int], merges: [(String, String)], maxLength: Int = 77, padToken: String,
                bosToken: String = "<|startoftext|>", eosToken: String = "<|endoftext|>",
                unkToken: String = "<|endoftext|>", addedTokens: [String] = [],
                normalizedTokens: Set<String> = ["<|startoftext|>"]) throws {
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
        rawTokens = whole.filter { !normalizedTokens.contains($0) }.map { (Array($0.unicodeScalars), $0) }.sorted { $0.0.count > $1.0.count }
        self.normalizedTokens = whole.filter { normalizedTokens.contains($0) }.map { (CLIPText.normalize($0.unicodeScalars), $0) }
            .filter { !$0.0.isEmpty }.sorted { $0.0.count > $1.0.count }
        bpe = BytePairEncoder(merges: merges, encoder: encoder, unknownID: unkTokenID)
    }

    /// Loads a transformers tokenizer folder: vocab.json + merges.txt, or tokenizer.json alone (what
    /// transformers 5's `save_pretrained` writes); tokenizer_config.json (`model_max_length`,
    /// `bos_token`, `eos_token`, `unk_token`, `pad_token`, `added_tokens_decoder`) and
    /// special_tokens_map.json, which overrides the config's special tokens unless the config lists
    /// `added_tokens_decoder` (transformers' rule). Missing values take CLIP's defaults (77,
    /// `<|startoftext|>`, `<|endoftext|>`).
    ///
    /// Whether a special token is matched in the normalized text follows transformers 5: a token
    /// given as an object carries its `normalized` flag, one given as a plain string is not
    /// normalized, and of two roles with the same text the later (bos, eos, unk, pad) decides; the
    /// flags of `added_tokens_decoder`, then of tokenizer.json's `added_tokens`, override those.
    public static func load(folder: URL) throws -> CLIPTokenizer {
        let vocabURL = folder.appendingPathComponent("vocab.json")
        let mergesURL = folder.appendingPathComponent("merges.txt")
        let jsonURL = folder.appendingPathComponent("tokenizer.json")
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
        var normalizedFlags: [String: Bool] = [:]
        func token(_ key: String, _ fallback: String) throws -> String {
            let fromMap = try tokenContent(special[key], key: key, file: specialURL)
            let fromConfig = try tokenContent(config[key], key: key, file: configURL)
            let useMap = mapOverrides ? fromMap != nil : fromConfig == nil && fromMap != nil
            let content = (useMap ? fromMap : fromConfig) ?? fallback
            let value = useMap ? special[key] : config[key]
            normalizedFlags[content] = ((value as? [String: Any])?["normalized"] as? Bool) ?? false
            return content
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
        let bos = try token("bos_token", "<|startoftext|>"), eos = try token("eos_token", "<|endoftext|>")
        let unk = try token("unk_token", "<|endoftext|>"), pad = try token("pad_token", "<|endoftext|>")
        var vocabulary: [String: Int]
        var merges: [(String, String)]
        var added: [String] = []
        var addedEntries: [(Int, Any)] = []
        if FileManager.default.fileExists(atPath: vocabURL.path) || !FileManager.default.fileExists(atPath: jsonURL.path) {
            vocabulary = try readVocabulary(vocabURL)
            merges = try readMerges(mergesURL)
        } else {
            let json = try readJSONObject(jsonURL)
            (vocabulary, merges) = try readTokenizerJSONModel(json, url: jsonURL)
            for entry in json["added_tokens"] as? [Any] ?? [] {
                guard let object = entry as? [String: Any], let id = (object["id"] as? NSNumber)?.intValue else {
                    throw TokenizerError.invalidFile(path: jsonURL.path, reason: "an added_tokens entry has no id")
                }
                addedEntries.append((id, object))
            }
        }
        // Added tokens (e.g. textual-inversion words) join the vocabulary with the id they are listed under.
        if let entries = config["added_tokens_decoder"] as? [String: Any] {
            for (key, entry) in entries.sorted(by: { $0.key < $1.key }) {
                guard let id = Int(key) else {
                    throw TokenizerError.invalidFile(path: configURL.path, reason: "added_tokens_decoder entry \(key.debugDescription) is not an id with a token")
                }
                addedEntries.insert((id, entry), at: 0)
            }
        }
        for (id, entry) in addedEntries {
            guard id >= 0, let content = try tokenContent(entry, key: "added tokens", file: configURL) else {
                throw TokenizerError.invalidFile(path: configURL.path, reason: "added token \(id) is not an id with a token")
            }
            if vocabulary[content] == nil { vocabulary[content] = id }
            added.append(content)
            normalizedFlags[content] = ((entry as? [String: Any])?["normalized"] as? Bool) ?? false
        }
        return try CLIPTokenizer(vocabulary: vocabulary, merges: merges, maxLength: maxLength,
                                 padToken: pad, bosToken: bos, eosToken: eos, unkToken: unk, addedTokens: added,
                                 normalizedTokens: Set(normalizedFlags.filter(\.value).keys))
    }

    /// The vocabulary and merges of tokenizer.json's BPE model (merges as "a b" strings or [a, b] pairs).
    static func readTokenizerJSONModel(_ json: [String: Any], url: URL) throws -> ([String: Int], [(String, String)]) {
        guard let model = json["model"] as? [String: Any], model["type"] as? String == "BPE",
              let vocab = model["vocab"] as? [String: Any], let list = model["merges"] as? [Any] else {
            throw TokenizerError.invalidFile(path: url.path, reason: "no BPE model with vocab and merges")
        }
        guard (model["end_of_word_suffix"] as? String) == "</w>" else {
            throw TokenizerError.invalidFile(path: url.path, reason: "not a CLIP tokenizer (its BPE has no \"</w>\" end-of-word suffix)")
        }
        let vocabulary = try vocabularyIDs(vocab, url: url)
        var merges: [(String, String)] = []
        merges.reserveCapacity(list.count)
        for item in list {
            if let pair = item as? [String], pair.count == 2 {
                merges.append((pair[0], pair[1]))
            } else if let line = item as? String {
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                merges.append(parts.count == 2 ? (String(parts[0]), String(parts[1])) : ("", ""))
            } else {
                throw TokenizerError.invalidFile(path: url.path, reason: "a merge is neither \"a b\" nor a pair of strings")
            }
        }
        return (vocabulary, merges)
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

    /// The words BPE sees in `text` (normalized and split as in `tokenize`, before the byte
    /// mapping), special and added tokens left out: what a vocabulary is learned from.
    public static func words(_ text: String) -> [String] {
        CLIPText.pieces(CLIPText.normalize(text.unicodeScalars)[...]).flatMap(CLIPText.byteLevelWords)
            .map { String(String.UnicodeScalarView($0)) }
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

    /// The steps of TokenizerText.swift: raw added tokens, normalization, normalized added
    /// tokens, CLIP's pattern, the byte-level pattern, BPE.
    private func forEachToken(_ text: String, _ body: (Token) -> Void) {
        let raw = Array(text.unicodeScalars)
        Self.split(raw[...], at: rawTokens, token: { body(.whole($0)) }) { segment in
            let normalized = CLIPText.normalize(segment)
            Self.split(normalized[...], at: normalizedTokens, token: { body(.whole($0)) }) { rest in
                for piece in CLIPText.pieces(rest) {
                    for word in CLIPText.byteLevelWords(piece) {
                        for symbol in bpe.encode(String(String.UnicodeScalarView(word))) { body(.symbol(symbol)) }
                    }
                }
            }
        }
    }

    /// Cuts `text` at the leftmost, then longest, occurrence of any of `tokens` (longest first),
    /// calling `token` for each found and `between` for each non-empty stretch between them.
    private static func split(_ text: ArraySlice<Unicode.Scalar>, at tokens: [([Unicode.Scalar], String)],
                              token: (String) -> Void, between: (ArraySlice<Unicode.Scalar>) -> Void) {
        var start = text.startIndex, i = text.startIndex
        while i < text.endIndex {
            if let (scalars, name) = tokens.first(where: { matchesAt(text, i, $0.0) }) {
                if i > start { between(text[start..<i]) }
                token(name)
                i += scalars.count
                start = i
            } else {
                i += 1
            }
        }
        if text.endIndex > start { between(text[start..<text.endIndex]) }
    }

    private static func matchesAt(_ scalars: ArraySlice<Unicode.Scalar>, _ i: Int, _ token: [Unicode.Scalar]) -> Bool {
        guard i + token.count <= scalars.endIndex, scalars[i] == token[0] else { return false }
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
        try vocabularyIDs(try readJSONObject(url), url: url)
    }

    /// A token → id object (vocab.json, or tokenizer.json's model.vocab), every id an integer.
    static func vocabularyIDs(_ object: [String: Any], url: URL) throws -> [String: Int] {
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

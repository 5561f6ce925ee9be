// A byte-level BPE vocabulary learned from captions, in CLIPTokenizer's file format
// (vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json), so the trained model's
// tokenizer folder loads in transformers as well as here.
//
// Learning (Sennrich et al., 2016): start from each word's characters with "</w>" on the last,
// repeatedly merge the most frequent adjacent pair (ties: the pair that sorts first) until every
// word is one symbol or `maxMerges` merges were made.

import Foundation
import LDMModels

/// A learned vocabulary.
public struct LearnedVocabulary {
    /// Merges in rank order.
    public var merges: [(String, String)]

    /// Learns merges from words with their frequencies (`CLIPTokenizer.words` of the captions).
    public init(wordCounts: [String: Int], maxMerges: Int = 10_000) {
        let byteChars = CLIPVocabulary.byteCharacters
        var words: [([String], Int)] = wordCounts.keys.sorted().map { w in
            let bytes = Array(w.utf8)
            var symbols = bytes.map { String(byteChars[Int($0)]) }
            if !symbols.isEmpty { symbols[symbols.count - 1] += "</w>" }
            return (symbols, wordCounts[w]!)
        }
        merges = []
        while merges.count < maxMerges {
            var counts: [String: (Int, String, String)] = [:]
            for (symbols, n) in words where symbols.count > 1 {
                for i in 0..<(symbols.count - 1) {
                    let key = symbols[i] + " " + symbols[i + 1]
                    counts[key, default: (0, symbols[i], symbols[i + 1])].0 += n
                }
            }
            guard let best = counts.max(by: { a, b in a.value.0 != b.value.0 ? a.value.0 < b.value.0 : a.key > b.key }) else { break }
            let (l, r) = (best.value.1, best.value.2)
            merges.append((l, r))
            words = words.map { symbols, n in
                var out: [String] = []
                var i = 0
                while i < symbols.count {
                    if i + 1 < symbols.count && symbols[i] == l && symbols[i + 1] == r { out.append(l + r); i += 2 } else { out.append(symbols[i]); i += 1 }
                }
                return (out, n)
            }
        }
    }

    /// Token → id, laid out as CLIP's: bytes, bytes + "</w>", one entry per merge, then the two specials.
    public var vocabulary: [String: Int] {
        var v: [String: Int] = [:]
        let chars = CLIPVocabulary.byteCharacters.map(String.init)
        for c in chars { v[c] = v.count }
        for c in chars { v[c + "</w>"] = v.count }
        for (l, r) in merges where v[l + r] == nil { v[l + r] = v.count }
        v["<|startoftext|>"] = v.count
        v["<|endoftext|>"] = v.count
        return v
    }

    /// Writes the four tokenizer files into `folder`.
    public func save(to folder: URL, maxLength: Int) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let vocabData = try JSONSerialization.data(withJSONObject: vocabulary, options: [.sortedKeys, .withoutEscapingSlashes])
        try vocabData.write(to: folder.appendingPathComponent("vocab.json"), options: .atomic)
        let mergesText = "#version: 0.2\n" + merges.map { "\($0.0) \($0.1)\n" }.joined()
        try mergesText.write(to: folder.appendingPathComponent("merges.txt"), atomically: true, encoding: .utf8)
        let config: [String: Any] = [
            "tokenizer_class": "CLIPTokenizer", "model_max_length": maxLength, "do_lower_case": true,
            "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>", "errors": "replace", "add_prefix_space": false,
            "clean_up_tokenization_spaces": true,
        ]
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
            .write(to: folder.appendingPathComponent("tokenizer_config.json"), options: .atomic)
        let special: [String: Any] = ["bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
                                      "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"]
        try JSONSerialization.data(withJSONObject: special, options: [.prettyPrinted, .sortedKeys])
            .write(to: folder.appendingPathComponent("special_tokens_map.json"), options: .atomic)
    }
}

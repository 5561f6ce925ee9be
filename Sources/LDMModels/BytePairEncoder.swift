// Byte-pair encoding of one pre-tokenizer piece, for CLIPTokenizer (Tokenizer.swift).
//
// Symbols are interned as integers: the 256 byte characters, the same with "</w>", and both
// sides and the result of every merge. A merge table keyed on the pair (a, b) gives its rank and
// the merged symbol, so each step is integer work; results are cached per piece.

import Foundation

/// transformers' `CLIPTokenizer.bpe` over interned symbols, with a per-piece cache.
final class BytePairEncoder: @unchecked Sendable {
    private struct Merge {
        let rank: Int32
        let result: Int32
    }

    /// Symbol id → its string.
    private let symbols: [String]
    /// Symbol id → vocabulary id (the unknown token's id when the string is not in the vocabulary).
    private let vocabularyIDs: [Int32]
    /// (first << 32 | second) → rank and merged symbol.
    private let merges: [UInt64: Merge]
    /// Byte b → symbol of its character; `wordEnd` → the same followed by "</w>".
    private let byteSymbols: [Int32]
    private let wordEndSymbols: [Int32]

    private let lock = NSLock()
    private var cache: [String: [Int32]] = [:]
    private static let cacheLimit = 100_000

    init(merges list: [(String, String)], encoder: [String: Int32], unknownID: Int32) {
        var table: [String: Int32] = [:]
        var strings: [String] = []
        func intern(_ s: String) -> Int32 {
            if let id = table[s] { return id }
            let id = Int32(strings.count)
            strings.append(s)
            table[s] = id
            return id
        }
        byteSymbols = CLIPText.byteCharacters.map { intern(String($0)) }
        wordEndSymbols = CLIPText.byteCharacters.map { intern(String($0) + "</w>") }
        var merges: [UInt64: Merge] = [:]
        merges.reserveCapacity(list.count)
        for (rank, (a, b)) in list.enumerated() where !a.isEmpty && !b.isEmpty {
            let first = intern(a), second = intern(b)
            // A repeated pair keeps its last rank, as a Python dict built from the list does.
            merges[UInt64(UInt32(first)) << 32 | UInt64(UInt32(second))] = Merge(rank: Int32(rank), result: intern(a + b))
        }
        self.merges = merges
        symbols = strings
        vocabularyIDs = strings.map { encoder[$0] ?? unknownID }
    }

    func symbol(_ id: Int32) -> String { symbols[Int(id)] }
    func vocabularyID(_ id: Int32) -> Int32 { vocabularyIDs[Int(id)] }

    /// The symbols of `piece`: one per UTF-8 byte (the last with "</w>"), then merges applied
    /// lowest rank first, each merging every occurrence of its pair from left to right.
    func encode(_ piece: String) -> [Int32] {
        lock.lock()
        if let hit = cache[piece] { lock.unlock(); return hit }
        lock.unlock()

        let bytes = Array(piece.utf8)
        guard !bytes.isEmpty else { return [] }
        var word = bytes.dropLast().map { byteSymbols[Int($0)] }
        word.append(wordEndSymbols[Int(bytes.last!)])

        while word.count > 1 {
            // The adjacent pair of lowest rank.
            var best: Merge? = nil
            var bestFirst: Int32 = 0, bestSecond: Int32 = 0
            for k in 0..<(word.count - 1) {
                if let m = merges[key(word[k], word[k + 1])], best == nil || m.rank < best!.rank {
                    best = m; bestFirst = word[k]; bestSecond = word[k + 1]
                }
            }
            guard let merge = best else { break }
            // Merge every occurrence, scanning left to right without overlaps.
            var merged: [Int32] = []
            merged.reserveCapacity(word.count)
            var k = 0
            while k < word.count {
                if k < word.count - 1 && word[k] == bestFirst && word[k + 1] == bestSecond {
                    merged.append(merge.result)
                    k += 2
                } else {
                    merged.append(word[k])
                    k += 1
                }
            }
            word = merged
        }

        lock.lock()
        if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[piece] = word
        lock.unlock()
        return word
    }

    @inline(__always) private func key(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(a)) << 32 | UInt64(UInt32(b))
    }
}

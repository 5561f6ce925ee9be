// What the trainers read: images with captions, addressed by index so that a step's batch is a
// pure function of (step, batch size) — which makes resumed runs see exactly the data order an
// uninterrupted run would.

import Foundation
import LDMCore

/// A source of (image, caption) pairs.
public protocol ImageCaptionDataset {
    /// Image width and height.
    var imageSize: Int { get }
    /// Number of distinct samples; nil for a generator that makes a new sample for every index.
    var count: Int? { get }
    /// Sample `index`: the image as [3, size, size] floats in [-1, 1] (CHW), and its caption.
    func sample(_ index: Int) throws -> (image: [Float], caption: String)
}

extension ImageCaptionDataset {
    /// A batch [n, 3, size, size] of consecutive indices starting at `first` (wrapping for finite sets),
    /// and the captions.
    public func batch(from first: Int, count n: Int) throws -> (Tensor, [String]) {
        try batch(indices: (first..<first + n).map { i in count.map { i % $0 } ?? i })
    }

    /// A training batch: positions `first ..< first + n` of a stream that visits a finite set in a
    /// fresh order each epoch (a permutation drawn from `seed` and the epoch), so every batch mixes
    /// the whole set whatever order its files are in (a folder sorted by name groups like with
    /// like), and the batch stays a pure function of (first, n, seed) for exact resumption. A
    /// generator (count nil) is read in index order: each index is already a new sample.
    public func trainingBatch(from first: Int, count n: Int, seed: UInt64) throws -> (Tensor, [String]) {
        guard let c = count else { return try batch(from: first, count: n) }
        var orders: [Int: [Int]] = [:]
        let indices = (first..<first + n).map { position -> Int in
            let epoch = position / c
            if orders[epoch] == nil { orders[epoch] = epochOrder(count: c, seed: seed, epoch: epoch) }
            return orders[epoch]![position % c]
        }
        return try batch(indices: indices)
    }

    /// The samples `indices` as a batch [n, 3, size, size], and their captions.
    public func batch(indices: [Int]) throws -> (Tensor, [String]) {
        let s = imageSize, n = indices.count
        let out = Tensor(uninitialized: [n, 3, s, s])
        var captions: [String] = []
        for (i, index) in indices.enumerated() {
            let (img, caption) = try sample(index)
            precondition(img.count == 3 * s * s, "dataset sample of \(img.count) values for size \(s)")
            img.withUnsafeBufferPointer { (out.data + i * 3 * s * s).update(from: $0.baseAddress!, count: 3 * s * s) }
            captions.append(caption)
        }
        return (out, captions)
    }
}

/// A deterministic per-step random source: the same (seed, step, stream) always gives the same stream.
public func stepRandom(seed: UInt64, step: Int, stream: UInt64) -> SwiftRandomSource {
    SwiftRandomSource(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(step) &* 0xD1B5_4A32_D192_ED03 &+ stream)
}

/// The order in which epoch `epoch` visits a set of `count` samples: a Fisher–Yates shuffle driven
/// by (seed, epoch).
public func epochOrder(count: Int, seed: UInt64, epoch: Int) -> [Int] {
    var order = Array(0..<count)
    var rng = stepRandom(seed: seed, step: epoch, stream: 0x5348_5546)
    for i in stride(from: count - 1, to: 0, by: -1) {
        order.swapAt(i, Int(rng.next() % UInt64(i + 1)))
    }
    return order
}

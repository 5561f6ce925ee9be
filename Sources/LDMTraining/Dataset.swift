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
        let s = imageSize
        let out = Tensor(uninitialized: [n, 3, s, s])
        var captions: [String] = []
        for i in 0..<n {
            var index = first + i
            if let c = count { index %= c }
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

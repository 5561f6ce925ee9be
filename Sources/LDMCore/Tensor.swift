// The tensor core: a contiguous float32 buffer with a shape, in PyTorch's row-major (NCHW) layout.
//
// Tensors are values that share storage: `reshaped` and `slice(batch:)` return views of the same memory,
// ops return new tensors, and functions that write into an existing tensor say so in their name
// (`addInPlace`, `copy(from:)`). This keeps the numeric code as plain loops over pointers.

import Foundation

/// An owned block of `Float`s. Freed (large blocks: kept in `BlockCache` for reuse) when the last tensor using it goes away.
public final class TensorStorage: @unchecked Sendable {
    /// First element.
    public let base: UnsafeMutablePointer<Float>
    /// Number of elements.
    public let count: Int

    /// Allocates `count` floats, zero-filled when `zeroed` (the default).
    public init(count: Int, zeroed: Bool = true) {
        precondition(count >= 0, "negative tensor size")
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        if let reused = BlockCache.take(bytes) {
            raw = reused
            if zeroed { reused.initializeMemory(as: UInt8.self, repeating: 0, count: bytes) }
        } else if zeroed && bytes < hugePageBytes {
            // calloc hands out zeroed memory, leaving pages it maps afresh untouched until written;
            // huge-page blocks are cleared below.
            raw = calloc(max(count, 1), MemoryLayout<Float>.stride)
        } else {
            raw = allocateBlock(bytes)
            if zeroed { raw?.initializeMemory(as: UInt8.self, repeating: 0, count: bytes) }
        }
        guard let raw else { fatalError("out of memory allocating \(bytes) bytes") }
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
        MemoryStatistics.allocated(bytes)
    }

    deinit {
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        MemoryStatistics.freed(bytes)
        BlockCache.give(UnsafeMutableRawPointer(base), bytes)
    }
}

/// A float32 tensor: a shape and a contiguous view into a `TensorStorage`.
public struct Tensor: @unchecked Sendable, CustomStringConvertible {
    /// Dimensions, outermost first (NCHW for images, [batch, tokens, channels] for sequences).
    public let shape: [Int]
    /// The memory this tensor views.
    public let storage: TensorStorage
    /// Index of this tensor's first element in `storage`.
    public let offset: Int
    /// Number of elements, the product of `shape`.
    public let count: Int

    /// A new zero-filled tensor.
    public init(zeros shape: [Int]) {
        let n = Tensor.elementCount(shape)
        self.init(shape: shape, storage: TensorStorage(count: n), offset: 0)
    }

    /// A new tensor whose contents are undefined; use when every element will be written.
    public init(uninitialized shape: [Int]) {
        let n = Tensor.elementCount(shape)
        self.init(shape: shape, storage: TensorStorage(count: n, zeroed: false), offset: 0)
    }

    /// A new tensor filled with `value`.
    public init(shape: [Int], repeating value: Float) {
        self.init(uninitialized: shape)
        data.update(repeating: value, count: count)
    }

    /// A new tensor holding `values` (row-major); `values.count` must equal the shape's element count.
    public init(shape: [Int], _ values: [Float]) {
        precondition(values.count == Tensor.elementCount(shape),
                     "\(values.count) values for shape \(shape)")
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    /// A view of `storage` starting at `offset`.
    public init(shape: [Int], storage: TensorStorage, offset: Int) {
        let n = Tensor.elementCount(shape)
        precondition(offset >= 0 && offset + n <= storage.count, "view out of range")
        self.shape = shape
        self.storage = storage
        self.offset = offset
        self.count = n
    }

    /// Product of the dimensions; traps on negative dimensions.
    public static func elementCount(_ shape: [Int]) -> Int {
        shape.reduce(1) { acc, d in
            precondition(d >= 0, "negative dimension in \(shape)")
            return acc * d
        }
    }

    /// Pointer to the first element.
    @inline(__always) public var data: UnsafeMutablePointer<Float> { storage.base + offset }

    /// Number of dimensions.
    public var rank: Int { shape.count }

    /// The same elements seen with another shape (shares memory). One dimension may be -1.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            let rest = s.enumerated().filter { $0.offset != i }.reduce(1) { $0 * $1.element }
            s[i] = rest == 0 ? 0 : count / rest
        }
        precondition(Tensor.elementCount(s) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(shape: s, storage: storage, offset: offset)
    }

    /// Items `range` along the first dimension (shares memory).
    public func slice(_ range: Range<Int>) -> Tensor {
        precondition(rank >= 1 && range.lowerBound >= 0 && range.upperBound <= shape[0], "slice out of range")
        let inner = shape[0] == 0 ? 0 : count / shape[0]
        var s = shape
        s[0] = range.count
        return Tensor(shape: s, storage: storage, offset: offset + range.lowerBound * inner)
    }

    /// A copy with its own storage.
    public func copy() -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.data.update(from: data, count: count)
        return t
    }

    /// Overwrites this tensor's elements with `other`'s (same element count).
    public func copy(from other: Tensor) {
        precondition(other.count == count, "copy of \(other.shape) into \(shape)")
        data.update(from: other.data, count: count)
    }

    /// The elements as an array.
    public var array: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// Element at a multi-index (slow; for tests and small work).
    public subscript(_ index: Int...) -> Float {
        get { data[flatIndex(index)] }
        nonmutating set { data[flatIndex(index)] = newValue }
    }

    private func flatIndex(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "index rank \(index.count) for shape \(shape)")
        var flat = 0
        for (i, d) in zip(index, shape) {
            precondition(i >= 0 && i < d, "index \(index) out of range for \(shape)")
            flat = flat * d + i
        }
        return flat
    }

    public var description: String { "Tensor\(shape)" }
}

/// Counts the bytes held by live tensors, to report peak memory of a piece of work.
public enum MemoryStatistics {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var current = 0
    nonisolated(unsafe) private static var peak = 0

    static func allocated(_ bytes: Int) {
        lock.lock(); current += bytes; if current > peak { peak = current }; lock.unlock()
    }
    static func freed(_ bytes: Int) { lock.lock(); current -= bytes; lock.unlock() }

    /// Bytes held by tensors now.
    public static var currentBytes: Int { lock.lock(); defer { lock.unlock() }; return current }
    /// Most bytes held at once since the last `resetPeak()`.
    public static var peakBytes: Int { lock.lock(); defer { lock.unlock() }; return peak }
    /// Starts a new peak measurement from the current level.
    public static func resetPeak() { lock.lock(); peak = current; lock.unlock() }

    /// Peak resident set size of the process (VmHWM), in bytes; 0 where unknown.
    public static var peakResidentBytes: Int { procStatus("VmHWM:") }
    /// Current resident set size of the process (VmRSS), in bytes; 0 where unknown.
    public static var residentBytes: Int { procStatus("VmRSS:") }

    private static func procStatus(_ key: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(key) {
            // "VmHWM:\t  123456 kB": a tab, then spaces only below 8 digits (≥ 9.5 GiB has none).
            let digits = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap { Int($0) } ?? 0
            return digits * 1024
        }
        return 0
    }
}

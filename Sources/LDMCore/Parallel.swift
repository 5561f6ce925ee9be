// Splitting work over the cores. This is the program's one pool of worker threads: matrix products
// are split over it too (`BLAS.gemm`), and run single-threaded inside work it already shares out.

import Foundation
import Synchronization

/// Parallel regions running now (any thread).
private let activeRegions = Atomic<Int>(0)

/// Work-splitting helpers.
public enum Parallel {
    /// Number of worker threads used for elementwise work (the machine's active cores).
    nonisolated(unsafe) public static var threadCount = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Below this many elements, work runs on the calling thread.
    public static let minimumParallelWork = 1 << 15

    /// Whether some work is split over the cores right now; nested work then runs where it is called.
    public static var isInsideParallelWork: Bool { activeRegions.load(ordering: .relaxed) > 0 }

    /// Calls `body` on disjoint chunks covering 0..<count, in parallel when `count · cost` is large.
    /// `cost` is a rough per-item weight in elements.
    @inline(__always)
    public static func forEachChunk(_ count: Int, cost: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let workers = threadCount
        if workers <= 1 || count < 2 || count * max(cost, 1) < minimumParallelWork || isInsideParallelWork {
            body(0..<count)
            return
        }
        let chunks = min(count, workers)
        let per = (count + chunks - 1) / chunks
        activeRegions.add(1, ordering: .relaxed)
        defer { activeRegions.subtract(1, ordering: .relaxed) }
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = c * per
            let hi = min(count, lo + per)
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Calls `body(i)` for each i in 0..<count, in parallel across items.
    @inline(__always)
    public static func forEach(_ count: Int, cost: Int = 1, _ body: (Int) -> Void) {
        forEachChunk(count, cost: cost) { range in for i in range { body(i) } }
    }
}

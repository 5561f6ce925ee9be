// Splitting large elementwise work over the cores. OpenBLAS has its own threads; these helpers are
// only used around (never inside) BLAS calls, so the two pools do not fight.

import Foundation

/// Work-splitting helpers.
public enum Parallel {
    /// Number of worker threads used for elementwise work (the machine's active cores).
    nonisolated(unsafe) public static var threadCount = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Below this many elements, work runs on the calling thread.
    public static let minimumParallelWork = 1 << 15

    /// Calls `body` on disjoint chunks covering 0..<count, in parallel when `count · cost` is large.
    /// `cost` is a rough per-item weight in elements.
    @inline(__always)
    public static func forEachChunk(_ count: Int, cost: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let workers = threadCount
        if workers <= 1 || count < 2 || count * max(cost, 1) < minimumParallelWork {
            body(0..<count)
            return
        }
        let chunks = min(count, workers)
        let per = (count + chunks - 1) / chunks
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

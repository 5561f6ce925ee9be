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

    /// Chunks `forEachChunk` makes per worker thread.
    nonisolated(unsafe) public static var chunksPerWorker = 4
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
        // A few chunks per worker, claimed one at a time: on a shared machine one core can run
        // slower than the other for a while, and it then simply takes fewer chunks.
        let per = (count + workers * chunksPerWorker - 1) / (workers * chunksPerWorker)
        let chunks = (count + per - 1) / per
        let next = Atomic<Int>(0)
        activeRegions.add(1, ordering: .relaxed)
        defer { activeRegions.subtract(1, ordering: .relaxed) }
        DispatchQueue.concurrentPerform(iterations: min(workers, chunks)) { _ in
            while true {
                let c = next.wrappingAdd(1, ordering: .relaxed).oldValue
                if c >= chunks { return }
                body(c * per..<min(count, c * per + per))
            }
        }
    }

    /// Calls `body(i)` for each i in 0..<count, in parallel across items.
    @inline(__always)
    public static func forEach(_ count: Int, cost: Int = 1, _ body: (Int) -> Void) {
        forEachChunk(count, cost: cost) { range in for i in range { body(i) } }
    }
}

// Data-parallel training: N processes ("ranks", started by mpirun, srun or any MPI launcher) train
// one model. Every step's global batch of B samples is split into N contiguous parts, rank r
// computing positions [r·B/N, (r+1)·B/N). Each sample's randomness (its VAE draw, caption dropout,
// timestep, noise) comes from a stream keyed by its global index, step·B + position — never by rank
// — so a sample is the same sample whichever rank draws it and however many ranks there are. Each
// rank's loss is normalised by the global batch, so the sum of the ranks' gradients (the
// allreduce) is the gradient of the whole batch; every rank then takes the same AdamW and EMA step
// on the same summed gradient and the replicas stay identical. Rank 0 alone writes checkpoints,
// logs and samples; a checkpoint holds nothing that depends on N, so a run may be resumed with
// another number of ranks.
//
// The library sees ranks through `Communicator`: one process (`SingleProcess`), threads of one
// process (`ThreadGroup`, which the tests use to check the split without MPI) or MPI itself
// (`MPICommunicator`, in builds with the MPI trait).

import Foundation
import LDMCore
import LDMModels

/// What data-parallel training needs from the processes it runs in.
public protocol Communicator: AnyObject {
    /// This process's rank, 0 ..< size.
    var rank: Int { get }
    /// The number of ranks.
    var size: Int { get }
    /// Sums `count` floats over all ranks, in place; every rank ends with the same values.
    func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws
    /// Returns once every rank has called it.
    func barrier() throws
}

/// The communicator of an ordinary, single-process run.
public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {}
    public func barrier() throws {}
}

/// Errors of data-parallel runs.
public enum ParallelError: Error, CustomStringConvertible {
    /// A collective operation failed (a rank ended, the network broke).
    case communication(String)
    /// The launch cannot work as asked (too few samples for the ranks, a launcher MPI does not see).
    case launch(String)

    public var description: String {
        switch self {
        case let .communication(m): return "data-parallel communication failed: \(m)"
        case let .launch(m): return m
        }
    }
}

/// Ranks as threads of one process, summing in rank order: for tests of the batch split and the
/// gradient sum without MPI, and to show which numbers a multi-process run must reproduce.
public final class ThreadGroup: @unchecked Sendable {
    public let size: Int
    private let condition = NSCondition()
    private var arrived = 0
    private var generation = 0
    private var buffers: [UnsafeMutablePointer<Float>?]
    private var counts: [Int]
    private var failure: String?

    public init(size: Int) {
        precondition(size >= 1)
        self.size = size
        buffers = Array(repeating: nil, count: size)
        counts = Array(repeating: 0, count: size)
    }

    /// The communicator of rank `rank`.
    public func communicator(rank: Int) -> Communicator { Member(group: self, rank: rank) }

    /// Makes every rank waiting (now or later) in a collective throw `reason`, as a dead MPI rank does.
    public func fail(_ reason: String) {
        condition.lock()
        failure = reason
        condition.broadcast()
        condition.unlock()
    }

    fileprivate func collective(rank: Int, buffer: UnsafeMutablePointer<Float>?, count: Int) throws {
        condition.lock()
        defer { condition.unlock() }
        if let failure { throw ParallelError.communication(failure) }
        buffers[rank] = buffer
        counts[rank] = count
        arrived += 1
        let mine = generation
        if arrived == size {
            if Set(counts).count != 1 {
                failure = "ranks passed different element counts (\(counts)) to one collective"
            } else if count > 0 {
                // ((b₀ + b₁) + b₂) + …: a fixed order, so every rank gets the same bits.
                let sum = [Float](unsafeUninitializedCapacity: count) { out, n in
                    out.baseAddress!.update(from: buffers[0]!, count: count)
                    for r in 1..<size { for i in 0..<count { out[i] += buffers[r]![i] } }
                    n = count
                }
                for r in 0..<size { sum.withUnsafeBufferPointer { buffers[r]!.update(from: $0.baseAddress!, count: count) } }
            }
            arrived = 0
            generation += 1
            condition.broadcast()
        } else {
            while generation == mine && failure == nil { condition.wait() }
        }
        if let failure { throw ParallelError.communication(failure) }
    }

    private final class Member: Communicator {
        let group: ThreadGroup
        let rank: Int
        init(group: ThreadGroup, rank: Int) { self.group = group; self.rank = rank }
        var size: Int { group.size }
        func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
            try group.collective(rank: rank, buffer: buffer, count: count)
        }
        func barrier() throws { try group.collective(rank: rank, buffer: nil, count: 0) }
    }
}

/// A trainer's view of its ranks: which batch positions it computes, and the gradient sum.
public struct DataParallel {
    public let communicator: Communicator
    /// Floats per allreduce call (16 MiB): large enough to run at the network's bandwidth, small
    /// enough that the staging buffer stays a small share of the run's memory.
    public var bucketFloats = 4 << 20

    public init(_ communicator: Communicator = SingleProcess()) { self.communicator = communicator }

    public var rank: Int { communicator.rank }
    public var size: Int { communicator.size }
    /// Rank 0 writes the run's files.
    public var isRoot: Bool { communicator.rank == 0 }

    /// The positions of a global batch of `batch` samples this rank computes: contiguous, the
    /// ranks' shares differing by at most one.
    public func localRange(batch: Int) -> Range<Int> {
        (rank * batch / size)..<((rank + 1) * batch / size)
    }

    /// Refuses a global batch smaller than the number of ranks (a rank with nothing to compute).
    public func check(batch: Int) throws {
        if batch < size {
            throw ParallelError.launch("--batch \(batch) is smaller than the \(size) ranks: give every rank at least one sample (--batch is the global batch)")
        }
    }

    /// Sums the parameters' gradients over the ranks, in buckets of `bucketFloats`, with `scalars`
    /// riding in the last bucket; returns the summed scalars. One rank: nothing to do.
    public func sumGradients(_ params: [(String, Parameter)], scalars: [Float]) throws -> [Float] {
        guard size > 1 else { return scalars }
        let grads = params.compactMap { $0.1.grad }
        let total = grads.reduce(0) { $0 + $1.count } + scalars.count
        var staging = [Float](repeating: 0, count: min(total, bucketFloats + scalars.count))
        var result = scalars
        try staging.withUnsafeMutableBufferPointer { stage in
            let base = stage.baseAddress!
            var pending: [(Tensor, Int, Int)] = []   // (gradient, offset in it, floats) packed in this bucket
            var used = 0
            func flush(withScalars: Bool) throws {
                if withScalars {
                    for (i, s) in scalars.enumerated() { base[used + i] = s }
                    used += scalars.count
                }
                guard used > 0 else { return }
                try communicator.allreduceSum(base, count: used)
                var at = 0
                for (g, offset, n) in pending { (g.data + offset).update(from: base + at, count: n); at += n }
                if withScalars { for i in 0..<scalars.count { result[i] = base[at + i] } }
                pending.removeAll(keepingCapacity: true)
                used = 0
            }
            for g in grads {
                var offset = 0
                while offset < g.count {
                    if used == bucketFloats { try flush(withScalars: false) }
                    let n = min(g.count - offset, bucketFloats - used)
                    (base + used).update(from: g.data + offset, count: n)
                    pending.append((g, offset, n))
                    used += n
                    offset += n
                }
            }
            try flush(withScalars: true)
        }
        return result
    }
}

extension DataParallel {
    /// Checks that every rank holds the same weights (the replicas cannot drift apart unless a
    /// reduction gave ranks different bits): two 24-bit digests of rank 0's weights travel by
    /// allreduce (the other ranks add zeros, so the sums are exact), then the ranks that differ are
    /// counted. Called at checkpoints.
    public func verifyReplicas(_ params: [(String, Parameter)]) throws {
        guard size > 1 else { return }
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for (_, p) in params {
            for i in 0..<p.value.count { hash = (hash ^ UInt64(p.value.data[i].bitPattern)) &* 0x100_0000_01B3 }
        }
        let digest = [Float(hash >> 40), Float((hash >> 16) & 0xFF_FFFF)]
        var root = isRoot ? digest : [0, 0]
        try communicator.allreduceSum(&root, count: 2)
        var differing: [Float] = [root == digest ? 0 : 1]
        try communicator.allreduceSum(&differing, count: 1)
        if differing[0] > 0 {
            throw ParallelError.communication("the weights of \(Int(differing[0])) rank(s) differ from rank 0's: the replicas drifted apart")
        }
    }
}

/// Random draws for a batch whose samples each have their own stream: a request for `count`
/// values takes `count / samples` from each sample's stream in turn (sample 0's share first), so
/// what a sample gets does not depend on which other samples share its batch.
public struct PerSampleRandom: RandomSource {
    private var streams: [SwiftRandomSource]

    /// The streams of global sample indices `indices` (stream `stream` of the run's `seed`).
    public init(seed: UInt64, sampleIndices indices: Range<Int>, stream: UInt64) {
        streams = indices.map { sampleRandom(seed: seed, index: $0, stream: stream) }
    }

    public mutating func normal(count: Int) -> [Float] { draw(count) { $0.normal(count: $1) } }
    public mutating func uniform(count: Int) -> [Float] { draw(count) { $0.uniform(count: $1) } }

    private mutating func draw(_ count: Int, _ f: (inout SwiftRandomSource, Int) -> [Float]) -> [Float] {
        guard !streams.isEmpty else { return [] }
        precondition(count % streams.count == 0, "\(count) draws do not split over \(streams.count) samples")
        let per = count / streams.count
        var out: [Float] = []
        out.reserveCapacity(count)
        for i in streams.indices { out += f(&streams[i], per) }
        return out
    }
}

/// The random stream of global training sample `index` (step · batch + position in the batch).
public func sampleRandom(seed: UInt64, index: Int, stream: UInt64) -> SwiftRandomSource {
    SwiftRandomSource(seed: (seed &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(index) &* 0xBF58_476D_1CE4_E5B9) &+ stream &* 0x94D0_49BB_1331_11EB)
}

// Batch work split over independent tasks that a cluster's own scheduler starts: shard I of N
// takes the items k with k mod N = I. Which shard a task is comes from a flag or from the
// environment the scheduler gives its tasks — a Slurm job array, a Kubernetes Indexed Job, MPI
// ranks — so the same command line serves every task. Items are numbered over the whole list, so
// a shard's outputs are exactly the unsharded run's outputs for its items.

import Foundation

/// This task's share of the items.
public struct Shard: Equatable, Sendable, CustomStringConvertible {
    /// 0 ..< count.
    public var index: Int
    public var count: Int
    /// Where the share came from ("--shard", "Slurm job array", …).
    public var source: String

    public init(index: Int, count: Int, source: String = "--shard") {
        self.index = index
        self.count = count
        self.source = source
    }

    /// Whether item `k` (0-based over the whole list) is this shard's.
    public func contains(_ k: Int) -> Bool { k % count == index }

    public var description: String { "shard \(index + 1) of \(count) (\(source))" }

    /// Parses "I/N" (0 ≤ I < N).
    public static func parse(_ text: String) throws -> Shard {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0].trimmingCharacters(in: .whitespaces)),
              let n = Int(parts[1].trimmingCharacters(in: .whitespaces)) else {
            throw ShardError("--shard takes I/N (shard I of N, counted from 0), such as 0/3; got \(text)")
        }
        guard n >= 1, i >= 0, i < n else { throw ShardError("--shard \(text): need 0 ≤ I < N") }
        return Shard(index: i, count: n)
    }

    /// This task's shard: `flag` ("I/N") when given; otherwise from the environment — a Slurm job
    /// array (SLURM_ARRAY_TASK_ID, _MIN, _COUNT, _STEP), a Kubernetes Indexed Job
    /// (JOB_COMPLETION_INDEX, with `shardCount` or LDM_SHARD_COUNT giving N), MPI ranks
    /// (OMPI_COMM_WORLD_RANK/_SIZE, PMI_RANK/PMI_SIZE), in that order; nil when none applies.
    public static func resolve(flag: String?, shardCount: Int?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Shard? {
        if let flag {
            let s = try parse(flag)
            if let shardCount, shardCount != s.count { throw ShardError("--shard \(flag) and --shard-count \(shardCount) disagree") }
            return s
        }
        func int(_ name: String) throws -> Int? {
            guard let text = environment[name], !text.isEmpty else { return nil }
            guard let v = Int(text.trimmingCharacters(in: .whitespaces)) else { throw ShardError("\(name)=\(text) is not a whole number") }
            return v
        }
        if let id = try int("SLURM_ARRAY_TASK_ID") {
            let low = try int("SLURM_ARRAY_TASK_MIN") ?? 0
            let step = max(try int("SLURM_ARRAY_TASK_STEP") ?? 1, 1)
            var count = try int("SLURM_ARRAY_TASK_COUNT")
            if count == nil, let high = try int("SLURM_ARRAY_TASK_MAX") { count = (high - low) / step + 1 }
            guard let count, count >= 1 else { throw ShardError("SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT (or _MAX): cannot tell how many shards") }
            guard (id - low) % step == 0, (id - low) / step < count, id >= low else {
                throw ShardError("Slurm array task \(id) is not one of \(count) tasks from \(low) in steps of \(step) (an irregular --array list?): give --shard I/N")
            }
            return Shard(index: (id - low) / step, count: count, source: "Slurm job array")
        }
        if let index = try int("JOB_COMPLETION_INDEX") {
            guard let count = try shardCount ?? int("LDM_SHARD_COUNT") else {
                throw ShardError("JOB_COMPLETION_INDEX=\(index) (a Kubernetes Indexed Job) but no shard count: pass --shard-count N or set LDM_SHARD_COUNT to the Job's completions")
            }
            guard count >= 1, index >= 0, index < count else { throw ShardError("JOB_COMPLETION_INDEX=\(index) is outside 0..<\(count)") }
            return Shard(index: index, count: count, source: "Kubernetes Indexed Job")
        }
        for (rank, size, name) in [("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "Open MPI rank"), ("PMI_RANK", "PMI_SIZE", "PMI rank")] {
            if let r = try int(rank), let n = try int(size) {
                guard n >= 1, r >= 0, r < n else { throw ShardError("\(rank)=\(r) is outside 0..<\(n)") }
                return Shard(index: r, count: n, source: name)
            }
        }
        if shardCount != nil { throw ShardError("--shard-count needs JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) or --shard I/N") }
        return nil
    }
}

/// A shard that cannot be worked out.
public struct ShardError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

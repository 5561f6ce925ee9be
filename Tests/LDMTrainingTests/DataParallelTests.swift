// Data-parallel training without MPI: ranks as threads of this process (ThreadGroup). The batch
// split, each sample's own random stream, the bucketed gradient sum and rank-0-only writing; a
// 2-rank run ends with exactly the weights of a 1-process run whose micro-batches are the ranks'
// shares, and close to those of a 1-process run of the whole batch at once.
import Foundation
import XCTest
import LDMCore
import LDMModels
@testable import LDMTraining

/// Runs `body(rank)` on `count` threads of their own at once and waits for all (ranks block in
/// collectives, so they must not wait for a shared pool's free worker as concurrentPerform's may).
func onThreads(_ count: Int, _ body: @escaping (Int) -> Void) {
    let done = DispatchSemaphore(value: 0)
    for r in 0..<count {
        let t = Thread { body(r); done.signal() }
        t.stackSize = 16 << 20
        t.start()
    }
    for _ in 0..<count { done.wait() }
}

final class DataParallelTests: XCTestCase {
    func temporary() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ldm-dp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    func testBatchSplitCoversTheBatchOnce() {
        for size in 1...5 {
            let group = ThreadGroup(size: size)
            for batch in size...13 {
                let ranges = (0..<size).map { DataParallel(group.communicator(rank: $0)).localRange(batch: batch) }
                XCTAssertEqual(ranges.first?.lowerBound, 0)
                XCTAssertEqual(ranges.last?.upperBound, batch)
                for (a, b) in zip(ranges, ranges.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound) }
                let counts = ranges.map(\.count)
                XCTAssertLessThanOrEqual(counts.max()! - counts.min()!, 1, "batch \(batch) over \(size)")
            }
        }
        XCTAssertThrowsError(try DataParallel(ThreadGroup(size: 4).communicator(rank: 0)).check(batch: 3))
    }

    func testSampleDrawsDoNotDependOnTheSplit() {
        // Samples 8…11 drawn as one batch, or as 8…9 and 10…11 (10 normals and 1 uniform each).
        var whole = PerSampleRandom(seed: 7, sampleIndices: 8..<12, stream: 2)
        var left = PerSampleRandom(seed: 7, sampleIndices: 8..<10, stream: 2)
        var right = PerSampleRandom(seed: 7, sampleIndices: 10..<12, stream: 2)
        let w = whole.normal(count: 40), u = whole.uniform(count: 4)
        XCTAssertEqual(w, left.normal(count: 20) + right.normal(count: 20))
        XCTAssertEqual(u, left.uniform(count: 2) + right.uniform(count: 2))
        var alone = SwiftRandomSource(seed: 0), ten = sampleRandom(seed: 7, index: 10, stream: 2)
        XCTAssertEqual(Array(w[20..<30]), ten.normal(count: 10), "sample 10's stream")
        XCTAssertNotEqual(Array(w[0..<10]), alone.normal(count: 10))
        var other = PerSampleRandom(seed: 7, sampleIndices: 8..<12, stream: 3)
        XCTAssertNotEqual(w, other.normal(count: 40), "streams differ")
    }

    func testThreadGroupSumsInRankOrderAndFailsWaitingRanks() throws {
        let group = ThreadGroup(size: 3)
        var results = [[Float]](repeating: [], count: 3)
        let lock = NSLock()
        onThreads(3) { r in
            var buffer: [Float] = [Float(r + 1), 0.1 * Float(r)]
            try! group.communicator(rank: r).allreduceSum(&buffer, count: 2)
            lock.lock(); results[r] = buffer; lock.unlock()
        }
        for r in 0..<3 { XCTAssertEqual(results[r], [6, (0 + 0.1) + 0.2]) }

        let broken = ThreadGroup(size: 2)
        broken.fail("rank 1 ended")
        var buffer: [Float] = [1]
        XCTAssertThrowsError(try broken.communicator(rank: 0).allreduceSum(&buffer, count: 1)) { error in
            XCTAssertTrue("\(error)".contains("rank 1 ended"), "\(error)")
        }
    }

    func testBucketedGradientSumEqualsOneBucket() throws {
        func params(_ r: Int) -> [(String, Parameter)] {
            (0..<3).map { k in
                let p = Parameter(zeros: [k + 2, 3])
                p.grad = Tensor(shape: [k + 2, 3], (0..<((k + 2) * 3)).map { Float($0 * (r + 1)) + 0.25 * Float(k) })
                return ("p\(k)", p)
            }
        }
        for bucket in [1, 4, 7, 1000] {
            let group = ThreadGroup(size: 2)
            var got = [[[Float]]](repeating: [], count: 2), scalars = [[Float]](repeating: [], count: 2)
            let lock = NSLock()
            onThreads(2) { r in
                var dp = DataParallel(group.communicator(rank: r))
                dp.bucketFloats = bucket
                let ps = params(r)
                let s = try! dp.sumGradients(ps, scalars: [Float(r), 2])
                lock.lock(); got[r] = ps.map { $0.1.grad!.array }; scalars[r] = s; lock.unlock()
            }
            let expected = zip(params(0), params(1)).map { zip($0.1.grad!.array, $1.1.grad!.array).map { $0 + $1 } }
            XCTAssertEqual(got[0], expected, "bucket \(bucket)")
            XCTAssertEqual(got[1], expected, "bucket \(bucket)")
            XCTAssertEqual(scalars[0], [1, 4])
            XCTAssertEqual(scalars[1], [1, 4])
        }
    }

    /// Trains `ranks` thread-ranks for `steps` steps; rank r's run folder is `folders[r]`.
    func trainVAE(ranks: Int, microBatch: Int?, folders: [URL], steps: Int) throws -> [VAETrainer] {
        var config = tinyVAETrainingConfig(steps: steps)
        config.batchSize = 4
        config.microBatch = microBatch
        let group = ThreadGroup(size: ranks)
        let trainers = try (0..<ranks).map { r in
            let t = try VAETrainer(config: config, dataset: ShapesDataset(seed: 1), heldOut: FixedShapes(n: 2), runFolder: folders[r])
            t.state.parallel = DataParallel(group.communicator(rank: r))
            return t
        }
        var failures: [String] = []
        let lock = NSLock()
        onThreads(ranks) { r in
            do {
                for _ in 0..<steps { _ = try trainers[r].trainStep() }
                try trainers[r].checkpoint()
            } catch {
                lock.lock(); failures.append("rank \(r): \(error)"); lock.unlock()
                group.fail("rank \(r) failed")
            }
        }
        XCTAssertEqual(failures, [])
        return trainers
    }

    func testTwoRanksMatchOneProcess() throws {
        let root = try temporary()
        let folders = (0..<3).map { root.appendingPathComponent("run\($0)") }
        let two = try trainVAE(ranks: 2, microBatch: nil, folders: Array(folders[0..<2]), steps: 6)
        let sliced = try trainVAE(ranks: 1, microBatch: 2, folders: [folders[2]], steps: 6)
        let whole = try trainVAE(ranks: 1, microBatch: nil, folders: [root.appendingPathComponent("whole")], steps: 6)
        // Thread ranks share the process's worker pool and OpenBLAS, which then split some products
        // differently than one caller alone, so here "the same" is to rounding; separate MPI
        // processes are bit-identical (CLITests/ScaleOutTests).
        func relative(_ a: Parameter, _ b: Parameter) -> Float {
            let scale = max(b.value.array.map(abs).max()!, 1e-3)
            return zip(a.value.array, b.value.array).map { abs($0 - $1) }.max()! / scale
        }
        var worstSliced: Float = 0, worst: Float = 0
        for (((name, a), (_, b)), ((_, c), (_, w))) in zip(zip(two[0].vae.namedParameters(), two[1].vae.namedParameters()),
                                                            zip(sliced[0].vae.namedParameters(), whole[0].vae.namedParameters())) {
            XCTAssertEqual(a.value.array, b.value.array, "ranks hold the same weights: \(name)")
            worstSliced = max(worstSliced, relative(a, c))
            worst = max(worst, relative(a, w))
        }
        XCTAssertLessThan(worstSliced, 1e-3, "2 ranks against 1 process in 2 micro-batches (a wrong split or normalisation gives O(1))")
        let start = try VAETrainer(config: two[0].config, dataset: FixedShapes(n: 2), heldOut: FixedShapes(n: 2), runFolder: root)
        XCTAssertNotEqual(two[0].vae.namedParameters()[0].1.value.array, start.vae.namedParameters()[0].1.value.array,
                          "training moved the weights")
        XCTAssertLessThan(worst, 2e-3, "2 ranks against the whole batch at once (rounding, amplified by Adam where gradients nearly cancel)")
        print("2 thread ranks vs 1 process: \(worstSliced) (micro-batches), \(worst) (whole batch)")

        // Rank 0 alone wrote its checkpoint; rank 1's folder stays empty.
        XCTAssertEqual(CheckpointStore(folder: folders[0]).complete().map(\.step), [6])
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: folders[1].path)) ?? [], [])

        // A 2-rank checkpoint continues in one process (and vice versa: nothing in it depends on N).
        let resumed = try VAETrainer(config: two[0].config, dataset: ShapesDataset(seed: 1), heldOut: FixedShapes(n: 2), runFolder: folders[0])
        XCTAssertEqual(try resumed.resume(), 6)
        for ((name, a), (_, b)) in zip(resumed.vae.namedParameters(), two[0].vae.namedParameters()) {
            XCTAssertEqual(a.value.array, b.value.array, name)
        }
    }

    func testDiffusionTwoRanksMatchMicroBatches() throws {
        let root = try temporary()
        var c = tinyDiffusionConfig(steps: 3)
        c.batchSize = 4
        let data = FixedShapes(n: 4)
        let captions = try (0..<4).map { try data.sample($0).caption }
        let group = ThreadGroup(size: 2)
        // Rank 0 makes the tokenizer first (as the CLI does), then rank 1 reads it.
        let t0 = try DiffusionTrainer(config: c, space: .pixels, dataset: data, captions: captions, runFolder: root.appendingPathComponent("a"))
        let t1 = try DiffusionTrainer(config: c, space: .pixels, dataset: data, captions: captions, runFolder: root.appendingPathComponent("a"))
        t0.state.parallel = DataParallel(group.communicator(rank: 0))
        t1.state.parallel = DataParallel(group.communicator(rank: 1))
        var losses = [[Float]](repeating: [], count: 2)
        let lock = NSLock()
        onThreads(2) { r in
            let t = r == 0 ? t0 : t1
            let l = (0..<3).map { _ in try! t.trainStep() }
            lock.lock(); losses[r] = l; lock.unlock()
        }
        c.microBatch = 2
        let one = try DiffusionTrainer(config: c, space: .pixels, dataset: data, captions: captions, runFolder: root.appendingPathComponent("b"))
        let oneLosses = try (0..<3).map { _ in try one.trainStep() }
        // Thread ranks share this process's worker pool and OpenBLAS, which then split some products
        // differently than one caller alone: equal to rounding here (separate MPI processes are
        // bit-identical: CLITests/ScaleOutTests).
        XCTAssertEqual(losses[0], losses[1])
        for (a, b) in zip(losses[0], oneLosses) { XCTAssertEqual(a, b, accuracy: 1e-5 * abs(b)) }
        for ((_, r0), ((name, a), (_, b))) in zip(t0.params, zip(t1.params, one.params)) {
            XCTAssertEqual(r0.value.array, a.value.array, "ranks hold the same weights: \(name)")
            let scale = max(b.value.array.map(abs).max()!, 1e-3)
            XCTAssertLessThanOrEqual(zip(a.value.array, b.value.array).map { abs($0 - $1) }.max()! / scale, 1e-4, name)
        }
    }
}

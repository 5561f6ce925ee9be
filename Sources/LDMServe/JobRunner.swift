// Jobs run one at a time, first come first served, on one thread of their own (the CPU is the
// limit); the HTTP side only waits. The shared state — queue length, the running job's step,
// interrupt and skip — is what `/sdapi/v1/progress`, `/interrupt` and `/skip` read and set.

import Foundation
import LDMCore
import LDMService

/// Progress of the running job, and the queue.
struct JobStatus {
    var queued = 0
    var running = false
    var jobNumber = 0
    var jobCount = 0
    var step = 0
    var steps = 0
    var imagesDone = 0
    var imagesTotal = 0
    var started: Date?
    var interrupted = false
    var skipped = false
    var text: String?
    /// The running image's latest latents and the map that previews them.
    var preview: (map: LatentPreview, latents: Tensor)?
}

final class JobRunner: @unchecked Sendable {
    private let queue = DispatchQueue(label: "ldm.serve.jobs")
    private let lock = NSLock()
    private var state = JobStatus()
    let generator: Generator

    init(generator: Generator) { self.generator = generator }

    var status: JobStatus { lock.withLock { state } }

    /// Runs `work` after every job queued before it; `work` gets the generator and a reporter.
    func run<T: Sendable>(_ work: @escaping @Sendable (Generator, JobReporter) throws -> T) async throws -> T {
        lock.withLock { state.queued += 1 }
        return try await withCheckedThrowingContinuation { continuation in
            queue.async {
                self.lock.withLock {
                    self.state.queued -= 1
                    let queued = self.state.queued
                    self.state = JobStatus(queued: queued, running: true, started: Date())
                }
                let reporter = JobReporter(runner: self)
                let result = Result { try work(self.generator, reporter) }
                self.lock.withLock {
                    let queued = self.state.queued
                    self.state = JobStatus(queued: queued)
                }
                continuation.resume(with: result)
            }
        }
    }

    fileprivate func update(_ change: (inout JobStatus) -> Void) { lock.withLock { change(&state) } }

    /// A1111's interrupt: the running job stops after its current step and returns what it has.
    func interrupt() { update { if $0.running { $0.interrupted = true } } }
    /// A1111's skip: the running image stops after its current step; the job goes on with the next.
    func skip() { update { if $0.running { $0.skipped = true } } }
}

/// What a running job tells the runner, and asks it.
final class JobReporter: @unchecked Sendable {
    private let runner: JobRunner
    fileprivate init(runner: JobRunner) { self.runner = runner }

    func begin(images: Int) { runner.update { $0.imagesTotal = images; $0.jobCount = images } }
    func beginImage(_ index: Int) { runner.update { $0.jobNumber = index; $0.step = 0; $0.skipped = false } }
    func step(_ step: Int, of steps: Int) { runner.update { $0.step = step; $0.steps = steps } }
    func endImage() { runner.update { $0.imagesDone += 1; $0.preview = nil } }
    /// Keeps a copy of the running image's latents for `/progress`'s preview.
    func latents(_ latents: Tensor, map: LatentPreview) {
        let copy = latents.copy()
        runner.update { $0.preview = (map, copy) }
    }
    /// Whether the current image should stop now (interrupt or skip).
    var shouldStop: Bool { let s = runner.status; return s.interrupted || s.skipped }
    /// Whether the whole job should stop (interrupt).
    var interrupted: Bool { runner.status.interrupted }
}

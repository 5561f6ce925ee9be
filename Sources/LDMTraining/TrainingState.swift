// What every trainer shares: the parameters with their EMA and AdamW moments, how they are
// checkpointed and restored, the optimiser update of one step, and the run loop with progress,
// periodic checkpoints, samples and Ctrl-C handling.

import Foundation
import LDMCore
import LDMModels

/// The trainable state of a run and its checkpoints.
public final class TrainingState {
    /// Parameters by checkpoint key (prefixed per network where a run trains several).
    public let params: [(String, Parameter)]
    public let optimizer: AdamW
    public let ema: EMA
    public let store: CheckpointStore
    /// The ranks this run is split over (one process unless a launcher started several).
    public var parallel = DataParallel()
    /// The ranks' agreed answer to "stop after this step?" (Ctrl-C on any rank), as of the last
    /// gradient sum: every rank stops after the same step.
    public private(set) var stopRequested = false

    public init(params: [(String, Parameter)], weightDecay: Float, emaDecay: Float, runFolder: URL) {
        self.params = params
        optimizer = AdamW(params, weightDecay: weightDecay)
        ema = EMA(params, decay: emaDecay)
        store = CheckpointStore(folder: runFolder)
    }

    /// Writes a checkpoint at `step`: weights, EMA, moments, and the run's settings as `settingsFile`.
    /// Only rank 0 writes; the others return the folder rank 0 writes.
    public func save<C: Encodable>(step: Int, settings: C, settingsFile: String) throws -> URL {
        try parallel.verifyReplicas(params)
        guard parallel.isRoot else { return store.folder.appendingPathComponent(String(format: "checkpoint-%07d", step)) }
        return try store.save(step: step) { dir in
            try saveTensors(params.map { ($0.0, $0.1.value) }, to: dir.appendingPathComponent("model.safetensors"))
            try saveTensors(ema.shadows, to: dir.appendingPathComponent("ema.safetensors"))
            try saveTensors(optimizer.namedState, to: dir.appendingPathComponent("optimizer.safetensors"))
            try writeDurably(try JSONEncoder().encode(settings), to: dir.appendingPathComponent(settingsFile))
        }
    }

    /// Loads weights, EMA and (when present) optimiser moments from a checkpoint folder. A folder
    /// without `optimizer.safetensors` (a compact, committed checkpoint) restarts the moments at zero.
    public func load(checkpoint url: URL, step: Int) throws {
        let weights = try loadTensors(url.appendingPathComponent("model.safetensors"))
        let emaWeights = try loadTensors(url.appendingPathComponent("ema.safetensors"))
        for ((name, p), (_, shadow)) in zip(params, ema.shadows) {
            guard let w = weights[name], w.count == p.value.count, let e = emaWeights[name], e.count == w.count else {
                throw TrainingError.badCheckpoint("\(url.path) lacks \(name) or has it in another shape")
            }
            p.value.copy(from: w)
            shadow.copy(from: e)
        }
        let moments = url.appendingPathComponent("optimizer.safetensors")
        if FileManager.default.fileExists(atPath: moments.path) {
            try optimizer.restore(step: step, moments: loadTensors(moments))
        } else {
            optimizer.step = 0   // fresh moments: bias corrections start again
        }
    }

    /// Loads the newest complete checkpoint; returns its step, or nil when there is none.
    public func resume() throws -> Int? {
        guard let (s, url) = store.latest() else { return nil }
        try load(checkpoint: url, step: s)
        return s
    }

    /// Sums the gradients and `scalars` (the step's partial loss sums) over the ranks and agrees on
    /// stopping; returns the summed scalars. Call between the backward pass and `update`.
    public func sumOverRanks(_ scalars: [Float]) throws -> [Float] {
        let summed = try parallel.sumGradients(params, scalars: scalars + [InterruptFlag.isSet ? 1 : 0])
        stopRequested = summed.last! > 0
        return Array(summed.dropLast())
    }

    /// Runs `slice` (forward and backward from fresh gradients, returning its partial loss sums) on
    /// consecutive pieces of `positions` of at most `microBatch` samples, adding the pieces'
    /// gradients in order; returns the loss sums added up. With one piece the gradients stay as
    /// its backward pass left them, so a 2-rank run and a 1-process run with `microBatch` = half
    /// the batch compute the same pieces and add them the same way (bit-identical weights).
    func accumulate(_ positions: Range<Int>, microBatch: Int?, _ slice: (Range<Int>) throws -> [Double]) throws -> [Double] {
        let m = max(microBatch ?? positions.count, 1)
        var sums: [Double] = []
        var total: [Tensor]?
        for lo in stride(from: positions.lowerBound, to: positions.upperBound, by: m) {
            let part = try slice(lo..<min(lo + m, positions.upperBound))
            sums = sums.isEmpty ? part : zip(sums, part).map { $0 + $1 }
            guard positions.count > m else { continue }
            let grads = params.map { $0.1.grad! }
            if let total {
                for (t, g) in zip(total, grads) { for i in 0..<t.count { t.data[i] += g.data[i] } }
            } else {
                total = grads.map { $0.copy() }
            }
        }
        if let total { for ((_, p), t) in zip(params, total) { p.grad!.copy(from: t) } }
        return sums
    }

    /// The update after a backward pass: clip the global gradient norm, AdamW at the scheduled rate, EMA.
    public func update(step: Int, schedule: LearningRateSchedule, maxGradNorm: Float) {
        let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "optimiser: clip, AdamW, EMA") }
        optimizer.clipGradients(maxNorm: maxGradNorm)
        optimizer.update(lr: schedule(step))
        ema.update(params, step: step)
    }

    /// Copies the EMA weights into `modules`' parameters (same order as `params`).
    public func copyEMA(into parameters: [(String, Parameter)]) {
        for ((_, p), (_, s)) in zip(parameters, ema.shadows) { p.value.copy(from: s) }
    }
}

/// Progress of a training run, reported to the caller.
public struct TrainingProgress {
    public var step: Int
    public var totalSteps: Int
    /// Step the current process started from (after a resume).
    public var firstStep: Int
    public var loss: Float
    public var samplesPerSecond: Double
    public var elapsed: Double
    public var message: String?
}

/// The loop every trainer runs until `totalSteps` or Ctrl-C: a step, then checkpoints every
/// `checkpointEvery` steps and at the end, `periodic` (samples, held-out scores) every `sampleEvery` (0: never),
/// and a progress report at least every 10 s.
func runTrainingLoop(step: () -> Int, totalSteps: Int, batchSize: Int, checkpointEvery: Int, sampleEvery: Int,
                     stopRequested: () -> Bool = { InterruptFlag.isSet },
                     trainStep: () throws -> Float, checkpoint: () throws -> URL,
                     periodic: ((Int) throws -> String?)?, report: (TrainingProgress) -> Void) throws {
    let start = Date()
    // The rate counts the training steps' own time: samples and checkpoints drawn in between
    // would otherwise show as a slow step.
    var lastReport = Date(), samplesSince = 0, trainingSince = 0.0
    let first = step()
    var smoothed: Float?
    while step() < totalSteps {
        let stepStart = Date()
        let loss = try trainStep()
        trainingSince += Date().timeIntervalSince(stepStart)
        smoothed = smoothed.map { 0.98 * $0 + 0.02 * loss } ?? loss
        samplesSince += batchSize
        let s = step()
        var messages: [String] = []
        if let periodic, sampleEvery > 0, s % sampleEvery == 0 || s == totalSteps, let m = try periodic(s) { messages.append(m) }
        let stop = stopRequested()
        if s % checkpointEvery == 0 || s == totalSteps || stop {
            messages.append("checkpoint \(try checkpoint().lastPathComponent)")
        }
        let now = Date()
        if now.timeIntervalSince(lastReport) > 10 || !messages.isEmpty || s == first + 1 {
            let rate = Double(samplesSince) / max(trainingSince, 1e-9)
            report(TrainingProgress(step: s, totalSteps: totalSteps, firstStep: first, loss: smoothed ?? loss,
                                    samplesPerSecond: rate, elapsed: now.timeIntervalSince(start),
                                    message: messages.isEmpty ? nil : messages.joined(separator: "; ")))
            lastReport = now
            samplesSince = 0
            trainingSince = 0
        }
        if stop { return }
    }
}

// Scheduler.swift — the one protocol every sampler implements, and the vocabulary they share.
//
// Matches the contract of diffusers' `SchedulerMixin` (schedulers/scheduling_utils.py) as the
// Stable Diffusion pipelines use it. A scheduler never calls a model: the pipeline owns the loop,
//
//     try scheduler.setTimesteps(steps)
//     var x = initialNoise * scheduler.initNoiseSigma
//     for t in scheduler.timesteps {
//         let xIn = scheduler.scaleModelInput(x, timestep: t)
//         let eps = model(xIn, t)                                  // (with guidance, etc.)
//         x = scheduler.step(output: eps, timestep: t, sample: x, random: &random)
//     }
//
// and for img2img it starts part-way: `tStart = steps - Int(Double(steps) * strength)`,
// `setBeginIndex(tStart * order)`, `x = addNoise(original:noise:timestep: timesteps[tStart * order])`,
// then the loop over `timesteps[(tStart * order)...]`.

import Foundation
import LDMCore

/// A diffusion sampler: the noise schedule, the timesteps of a run, and the update that takes the
/// model's output at one timestep to the sample of the next.
///
/// Conforming types are value types that keep the state of one run (step index, past model
/// outputs); `setTimesteps` starts a new run.
public protocol Scheduler {
    /// The timesteps of the run, in the order the pipeline visits them (descending), after
    /// `setTimesteps`. They are the values passed to the model as its time input. Float because
    /// Karras / interpolated schedules have fractional timesteps; integer schedules hold whole
    /// numbers exactly.
    var timesteps: [Float] { get }

    /// Standard deviation of the initial noise: the pipeline multiplies N(0, I) noise by it
    /// (1 for the DDPM-family schedulers, about σ_max for the σ-parameterised ones).
    var initNoiseSigma: Float { get }

    /// Model evaluations per timestep of the underlying solver (2 for Heun, else 1). img2img skips
    /// `tStart * order` entries of `timesteps`.
    var order: Int { get }

    /// What the model predicts: noise ε, the clean sample x₀, or the velocity v.
    var predictionType: PredictionType { get }

    /// Length of the training noise schedule (diffusers' `num_train_timesteps`).
    var numTrainTimesteps: Int { get }

    /// Sets up a run of `count` denoising steps (count ≥ 1) and resets all per-run state.
    /// Throws when `count` is below 1 or above what the schedule allows.
    mutating func setTimesteps(_ count: Int) throws

    /// Starts the run at `index` into `timesteps` (img2img / inpaint with strength < 1), as
    /// diffusers' `set_begin_index`. A no-op for schedulers that find their position from the
    /// timestep value alone.
    mutating func setBeginIndex(_ index: Int)

    /// The model input for `sample` at `timestep` (σ schedulers divide by √(σ² + 1); others
    /// return the sample unchanged).
    func scaleModelInput(_ sample: Tensor, timestep: Float) -> Tensor

    /// One update: from the model's `output` at `timestep` and the current `sample`, the sample at
    /// the next timestep (x_{t-1}). `random` is used only by stochastic samplers (DDPM, Euler
    /// ancestral, SDE DPM-Solver), drawn exactly as diffusers draws `randn_tensor(shape, generator)`,
    /// so a `TorchRandomSource` reproduces a diffusers run with the same generator seed.
    mutating func step(output: Tensor, timestep: Float, sample: Tensor, random: inout any RandomSource) -> Tensor

    /// The forward process q(x_t | x_0): `original` noised to the level of `timestep`, using `noise`.
    /// For σ schedulers the level is taken as diffusers does: from the step index once the run has
    /// begun (inpainting), else from the begin index (img2img), else from the timestep's position
    /// in `timesteps`.
    func addNoise(original: Tensor, noise: Tensor, timestep: Float) -> Tensor
}

/// A scheduler that walks a σ schedule (σ = √((1 − ᾱ)/ᾱ)), as the k-diffusion style samplers do.
public protocol SigmaScheduler: Scheduler {
    /// σ for each entry of `timesteps`, plus the final σ (0, or σ_min) at the end.
    var sigmas: [Float] { get }
}

/// What the model's output means (diffusers' `prediction_type`).
public enum PredictionType: String, Codable, Sendable, CaseIterable {
    /// The noise ε that was added.
    case epsilon
    /// The clean sample x₀ ("sample").
    case sample
    /// The velocity v = √ᾱ ε − √(1 − ᾱ) x₀ (Salimans & Ho, 2022).
    case vPrediction = "v_prediction"
}

/// How the inference timesteps are spread over the training schedule
/// (Table 2 of Lin et al., 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed").
public enum TimestepSpacing: String, Codable, Sendable, CaseIterable {
    /// Evenly spaced from 0 to T − 1, both included.
    case linspace
    /// Multiples of T / N from 0, plus `steps_offset`.
    case leading
    /// Multiples of T / N counted down from T, minus 1 (always includes T − 1).
    case trailing
}

/// The σ that ends a σ schedule (diffusers' `final_sigmas_type`).
public enum FinalSigmasType: String, Codable, Sendable, CaseIterable {
    /// σ = 0: the last step lands on the clean sample.
    case zero
    /// σ = σ_min of the training schedule.
    case sigmaMin = "sigma_min"
}

/// Errors from building or running a scheduler.
public enum SchedulerError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// `setTimesteps` was given a step count below 1 or above `limit` (when the scheduler has one).
    case invalidStepCount(Int, limit: Int?, scheduler: String)
    /// A config key has a value this scheduler does not support.
    case unsupportedValue(key: String, value: String, scheduler: String, supported: String)
    /// A config key has a value of the wrong JSON type.
    case invalidValue(key: String, detail: String)
    /// Two config keys contradict each other.
    case conflictingKeys(String)
    /// The scheduler config file could not be read or is not a JSON object.
    case unreadableConfig(path: String, detail: String)
    /// `_class_name` names a scheduler this package does not implement.
    case unknownClass(String)
    /// The schedule cannot make `count` steps (for example PNDM's Runge–Kutta warm-up needs more).
    case scheduleTooShort(count: Int, scheduler: String, detail: String)

    public var description: String {
        switch self {
        case let .invalidStepCount(n, limit?, s):
            return "\(s): number of inference steps must be between 1 and \(limit), got \(n)"
        case let .invalidStepCount(n, nil, s):
            return "\(s): number of inference steps must be at least 1, got \(n)"
        case let .unsupportedValue(key, value, s, supported):
            return "scheduler config: \(key) = \(value) is not supported by \(s) (supported: \(supported))"
        case let .invalidValue(key, detail):
            return "scheduler config: \(key): \(detail)"
        case let .conflictingKeys(detail):
            return "scheduler config: \(detail)"
        case let .unreadableConfig(path, detail):
            return "cannot read scheduler config \(path): \(detail)"
        case let .unknownClass(name):
            let known = SchedulerClass.allCases.map(\.rawValue).joined(separator: ", ")
            return "scheduler config: _class_name \"\(name)\" is not a supported scheduler (supported: \(known))"
        case let .scheduleTooShort(n, s, detail):
            return "\(s): cannot make a schedule of \(n) steps: \(detail)"
        }
    }

    public var errorDescription: String? { description }
}

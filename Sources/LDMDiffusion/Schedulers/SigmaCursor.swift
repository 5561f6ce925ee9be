// SigmaCursor.swift — the σ schedule of a run and the position in it, shared by the σ schedulers
// (LMS, Euler, Euler ancestral, Heun, DPM-Solver, UniPC): diffusers' `_step_index` /
// `_begin_index` bookkeeping, `index_for_timestep`, `scale_model_input` and `add_noise`, plus the
// k-diffusion conversions between σ and the model's input and output.

import Foundation
import LDMCore

/// The timesteps and σ of one run of a σ scheduler, and where the run is (diffusers' `_step_index`
/// and `_begin_index`).
struct SigmaCursor: Sendable {
    /// Where a timestep that is not in the schedule is placed (diffusers raises for the Euler-type
    /// schedulers; DPM-Solver and UniPC take the last index).
    enum OffSchedule: Sendable {
        /// At the nearest entry of `timesteps`.
        case nearest
        /// At the last entry of `timesteps`.
        case last
    }

    /// The timesteps of the run, descending.
    private(set) var timesteps: [Float] = []
    /// σ for each entry of `timesteps`, plus the final σ.
    private(set) var sigmas: [Float] = []
    /// Index into `timesteps`/`sigmas` of the next `step`; nil before the first step of a run.
    private(set) var stepIndex: Int?
    /// Index the run starts at (img2img), set by `setBeginIndex`; nil: found from the first timestep.
    var beginIndex: Int?
    /// Where an unknown timestep is placed.
    let offSchedule: OffSchedule

    init(offSchedule: OffSchedule) { self.offSchedule = offSchedule }

    /// Starts a run over `timesteps` and `sigmas`, forgetting the step and begin index.
    mutating func start(timesteps: [Float], sigmas: [Float]) {
        self.timesteps = timesteps
        self.sigmas = sigmas
        stepIndex = nil
        beginIndex = nil
    }

    /// The position of `timestep` in the schedule (diffusers' `index_for_timestep`).
    func index(of timestep: Float) -> Int {
        indexForTimestep(timestep, in: timesteps) { t in
            switch offSchedule {
            case .nearest: return nearestIndex(t, in: timesteps)
            case .last: return timesteps.count - 1
            }
        }
    }

    /// The index the next `step` (and `scaleModelInput`) works at: the running index, else the
    /// begin index, else the position of `timestep` (diffusers' `_init_step_index`).
    func current(_ timestep: Float) -> Int {
        stepIndex ?? beginIndex ?? index(of: timestep)
    }

    /// Records that the step at index `i` is done: the next works at i + 1.
    mutating func advance(past i: Int) { stepIndex = i + 1 }

    /// The index `add_noise` takes its noise level from: the timestep's position when no begin
    /// index was set, else the running index after the first step (inpainting), else the begin index.
    func noiseLevel(_ timestep: Float) -> Int {
        guard let beginIndex else { return index(of: timestep) }
        return stepIndex ?? beginIndex
    }

    /// σ at `index`, clamped into the schedule.
    func sigma(at index: Int) -> Float {
        sigmas[min(max(index, 0), sigmas.count - 1)]
    }

    /// σ_max for "linspace"/"trailing" spacing, else √(σ_max² + 1) (diffusers' `init_noise_sigma`
    /// of LMS, Euler, Euler ancestral and Heun).
    func initNoiseSigma(spacing: TimestepSpacing) -> Float {
        let maxSigma = sigmas.max() ?? 1
        return spacing == .leading ? (maxSigma * maxSigma + 1).squareRoot() : maxSigma
    }

    /// x / √(σ² + 1) at the σ of the current index: the model sees inputs of unit variance.
    func scaleModelInput(_ sample: Tensor, timestep: Float) -> Tensor {
        scaleBySigma(sample, sigma(at: current(timestep)))
    }

    /// x_σ = x₀ + σ ε at the σ of `noiseLevel(timestep)` (the variance-exploding form the
    /// k-diffusion samplers work in).
    func addNoise(original: Tensor, noise: Tensor, timestep: Float) -> Tensor {
        let sigma = sigma(at: noiseLevel(timestep))
        return zipMap(original, noise) { (x, e) in x + e * sigma }
    }

    /// α_t = 1/√(σ² + 1), σ_t = σ α_t, λ_t = log α_t − log σ_t at `index` (clamped): the
    /// variance-preserving view of σ that DPM-Solver and UniPC work in.
    func alphaSigmaLambda(_ index: Int) -> (alpha: Float, sigma: Float, lambda: Float) {
        let s = sigma(at: index)
        let alpha = 1 / (s * s + 1).squareRoot()
        let sigma = s * alpha
        return (alpha, sigma, logf(alpha) - logf(sigma))
    }

    /// x_t = α_t x₀ + σ_t ε at the level of `noiseLevel(timestep)` (DPM-Solver, UniPC).
    func addNoiseAlphaSigma(original: Tensor, noise: Tensor, timestep: Float) -> Tensor {
        let (a, s, _) = alphaSigmaLambda(noiseLevel(timestep))
        return zipMap(original, noise) { (x, e) in a * x + s * e }
    }
}

/// x / √(σ² + 1).
func scaleBySigma(_ sample: Tensor, _ sigma: Float) -> Tensor {
    let d = (sigma * sigma + 1).squareRoot()
    return map(sample) { $0 / d }
}

/// x̂₀ from a model output at noise level σ (x = x₀ + σ ε, model input x/√(σ² + 1)):
/// ε → x − σ ε; v → v · (−σ/√(σ² + 1)) + x/(σ² + 1); sample → the output itself.
func sigmaPredictedOriginal(output: Tensor, sample: Tensor, sigma: Float, type: PredictionType) -> Tensor {
    switch type {
    case .epsilon:
        return zipMap(sample, output) { (x, e) in x - sigma * e }
    case .vPrediction:
        let c = -sigma / (sigma * sigma + 1).squareRoot(), d = sigma * sigma + 1
        return zipMap(output, sample) { (v, x) in v * c + x / d }
    case .sample:
        return output
    }
}

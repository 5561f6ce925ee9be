// NoiseSchedule.swift — the training noise schedule (β_t, ᾱ_t, σ_t) and the array arithmetic the
// schedulers share, written to give the same numbers as diffusers.
//
// diffusers builds these arrays with torch in float32 and numpy in float64; each helper says which
// one it follows, so schedules match element for element (timesteps exactly, σ to float rounding):
//   - β: `torch.linspace(start, end, T, dtype=float32)` — the CPU kernel computes
//     step = (end − start)/(T − 1) in float and start + step·i (first half) or end − step·(T−1−i)
//     (second half) with one rounding (fused multiply–add);
//   - ᾱ_t = Π_{s≤t} (1 − β_s): `torch.cumprod` accumulates in double and stores floats;
//   - timesteps and interpolation: numpy float64 (`np.linspace`, `np.arange`, `np.interp`,
//     `np.round`, which rounds half to even).

import Foundation
import LDMCore

/// diffusers' `beta_schedule`: how β_t grows over the T training steps.
public enum BetaSchedule: String, Codable, Sendable, CaseIterable {
    /// β linear from `beta_start` to `beta_end`.
    case linear
    /// √β linear from √`beta_start` to √`beta_end` (Stable Diffusion's schedule).
    case scaledLinear = "scaled_linear"
    /// The cosine schedule of Nichol & Dhariwal (2021): ᾱ(t) = cos²((t + 0.008)/1.008 · π/2),
    /// β capped at 0.999.
    case squaredcosCapV2 = "squaredcos_cap_v2"
    /// GeoDiff's sigmoid: β = sigmoid(linspace(−6, 6)) · (end − start) + start (DDPM only).
    case sigmoid
    /// ᾱ from a Laplace-distributed log-SNR (DDPM only).
    case laplace
    /// ᾱ(t) = exp(−12 t) (Heun only).
    case exp
}

/// β_t and ᾱ_t of the training process, in float32 as diffusers holds them.
struct NoiseSchedule: Sendable {
    /// β_t, t = 0..<T.
    let betas: [Float]
    /// ᾱ_t = Π_{s≤t} (1 − β_s).
    var alphasCumprod: [Float]

    /// Builds the schedule as diffusers' scheduler constructors do. `trainedBetas`, when given,
    /// replaces the schedule (it must hold at least 2 values). `rescaleZeroSNR` applies
    /// Lin et al. (2023) Algorithm 1 to β.
    init(trainSteps: Int, betaStart: Double, betaEnd: Double, schedule: BetaSchedule,
         trainedBetas: [Double]?, rescaleZeroSNR: Bool = false) throws {
        var betas: [Float]
        if let trainedBetas {
            guard trainedBetas.count >= 2 else {
                throw SchedulerError.invalidValue(key: "trained_betas", detail: "needs at least 2 values, got \(trainedBetas.count)")
            }
            betas = trainedBetas.map { Float($0) }
        } else {
            switch schedule {
            case .linear:
                betas = torchLinspace(betaStart, betaEnd, trainSteps)
            case .scaledLinear:
                betas = torchLinspace(betaStart.squareRoot(), betaEnd.squareRoot(), trainSteps).map { $0 * $0 }
            case .squaredcosCapV2:
                betas = betasForAlphaBar(trainSteps) { t in
                    let c = Foundation.cos((t + 0.008) / 1.008 * Double.pi / 2)
                    return c * c
                }
            case .laplace:
                betas = betasForAlphaBar(trainSteps) { t in
                    let sign: Double = (0.5 - t) < 0 ? -1 : 1
                    let lmb = -0.5 * sign * Foundation.log(1 - 2 * Swift.abs(0.5 - t) + 1e-6)
                    let snr = Foundation.exp(lmb)
                    return (snr / (1 + snr)).squareRoot()
                }
            case .exp:
                betas = betasForAlphaBar(trainSteps) { t in Foundation.exp(t * -12.0) }
            case .sigmoid:
                let range = Float(betaEnd - betaStart), start = Float(betaStart)
                betas = torchLinspace(-6, 6, trainSteps).map { x in (1 / (1 + expf(-x))) * range + start }
            }
        }
        if rescaleZeroSNR { betas = rescaleZeroTerminalSNR(betas) }
        self.betas = betas
        self.alphasCumprod = cumulativeProduct(betas.map { 1 - $0 })
    }

    /// The schedule a scheduler's `config` describes. With `sigmaScheduler`, a zero terminal ᾱ
    /// (from `rescaleZeroSNR`) becomes 2⁻²⁴, as diffusers' σ schedulers set it, so σ_{T−1} stays finite.
    init<C: CommonSchedulerConfig>(_ config: C, rescaleZeroSNR: Bool = false, sigmaScheduler: Bool = false) throws {
        try self.init(trainSteps: config.numTrainTimesteps, betaStart: config.betaStart, betaEnd: config.betaEnd,
                      schedule: config.betaSchedule, trainedBetas: config.trainedBetas, rescaleZeroSNR: rescaleZeroSNR)
        if rescaleZeroSNR && sigmaScheduler { alphasCumprod[alphasCumprod.count - 1] = 0x1p-24 }
    }

    /// ᾱ at integer timestep `t`, clamped into the schedule (diffusers would raise outside it).
    @inline(__always) func alphaProd(_ t: Int) -> Float {
        alphasCumprod[min(max(t, 0), alphasCumprod.count - 1)]
    }

    /// σ_t = √((1 − ᾱ_t)/ᾱ_t), t = 0..<T (ascending), in float32.
    var sigmas: [Float] { alphasCumprod.map { ((1 - $0) / $0).squareRoot() } }

    /// σ of the least noisy training step, √((1 − ᾱ₀)/ᾱ₀) (diffusers' `final_sigmas_type = "sigma_min"`).
    var sigmaMin: Float { ((1 - alphasCumprod[0]) / alphasCumprod[0]).squareRoot() }
}

/// ᾱ_t, t = 0..<T, of the scaled-linear schedule (optionally rescaled to zero terminal SNR) in
/// exactly the float32 values a scheduler config with these settings gives — for trainers, so the
/// schedule a model learns is the one its exported scheduler samples with.
public func trainingAlphasCumprod(trainSteps: Int, betaStart: Double, betaEnd: Double, rescaleZeroSNR: Bool) -> [Float] {
    // Cannot throw: scaled-linear needs no trained betas.
    try! NoiseSchedule(trainSteps: trainSteps, betaStart: betaStart, betaEnd: betaEnd, schedule: .scaledLinear,
                       trainedBetas: nil, rescaleZeroSNR: rescaleZeroSNR).alphasCumprod
}

// MARK: - β schedules

/// `torch.linspace(start, end, count, dtype=torch.float32)` on the CPU (see the file header).
func torchLinspace(_ start: Double, _ end: Double, _ count: Int) -> [Float] {
    guard count > 1 else { return count == 1 ? [Float(start)] : [] }
    let s = Float(start), e = Float(end)
    let step = (e - s) / Float(count - 1)
    let half = count / 2
    return (0..<count).map { i in
        i < half ? s.addingProduct(step, Float(i)) : e.addingProduct(-step, Float(count - 1 - i))
    }
}

/// β_i = min(1 − ᾱ((i+1)/T) / ᾱ(i/T), 0.999), in double, stored as float (diffusers' `betas_for_alpha_bar`).
private func betasForAlphaBar(_ count: Int, _ alphaBar: (Double) -> Double) -> [Float] {
    (0..<count).map { i in
        let t1 = Double(i) / Double(count), t2 = Double(i + 1) / Double(count)
        return Float(Swift.min(1 - alphaBar(t2) / alphaBar(t1), 0.999))
    }
}

/// Π of `values` up to each index, accumulated in double and rounded per element (torch.cumprod).
func cumulativeProduct(_ values: [Float]) -> [Float] {
    var acc = 1.0
    return values.map { acc *= Double($0); return Float(acc) }
}

/// Rescales β so the final ᾱ is 0 (zero terminal SNR) while ᾱ₀ is kept: Lin et al. (2023),
/// "Common Diffusion Noise Schedules and Sample Steps are Flawed", Algorithm 1, in float32.
func rescaleZeroTerminalSNR(_ betas: [Float]) -> [Float] {
    let alphaBarSqrt = cumulativeProduct(betas.map { 1 - $0 }).map { $0.squareRoot() }
    let first = alphaBarSqrt[0], last = alphaBarSqrt[alphaBarSqrt.count - 1]
    // Shift so the last is 0, scale so the first is back to its value.
    let scale = first / (first - last)
    let alphaBar = alphaBarSqrt.map { v -> Float in let s = (v - last) * scale; return s * s }
    var out = [Float](repeating: 0, count: betas.count)
    out[0] = 1 - alphaBar[0]
    for i in 1..<alphaBar.count { out[i] = 1 - alphaBar[i] / alphaBar[i - 1] }
    return out
}

// MARK: - numpy arithmetic (float64)

enum NumPy {
    /// `np.linspace(start, stop, num)`: start + i·((stop − start)/(num − 1)), the last exactly `stop`.
    static func linspace(_ start: Double, _ stop: Double, _ num: Int) -> [Double] {
        guard num > 0 else { return [] }
        guard num > 1 else { return [start] }
        let step = (stop - start) / Double(num - 1)
        var y = (0..<num).map { Double($0) * step + start }
        y[num - 1] = stop
        return y
    }

    /// `np.arange(start, stop, step)` for floats: length ⌈(stop − start)/step⌉, element i equal to
    /// start + i·((start + step) − start), as numpy fills it.
    static func arange(_ start: Double, _ stop: Double, _ step: Double) -> [Double] {
        let length = Int(((stop - start) / step).rounded(.up))
        guard length > 0 else { return [] }
        let delta = (start + step) - start
        return (0..<length).map { $0 == 0 ? start : start + Double($0) * delta }
    }

    /// `np.round`: to the nearest integer, halves to even.
    @inline(__always) static func round(_ x: Double) -> Double { x.rounded(.toNearestOrEven) }

    /// `np.interp(x, arange(len(fp)), fp)`: piecewise-linear interpolation on the grid 0, 1, 2, …,
    /// clamped to the end values.
    static func interp(_ x: Double, _ fp: [Double]) -> Double {
        let n = fp.count
        if x.isNaN { return x }
        if x <= 0 { return fp[0] }
        if x >= Double(n - 1) { return fp[n - 1] }
        let j = Int(x.rounded(.down))
        if Double(j) == x { return fp[j] }
        let slope = (fp[j + 1] - fp[j]) / 1.0
        return slope * (x - Double(j)) + fp[j]
    }
}

/// diffusers' spacing of `count` timesteps over `trainSteps` training steps, descending
/// (`set_timesteps` of DDPM, DDIM, LMS, Euler, Heun). `integer` rounds the linspace values as the
/// integer schedulers do (`.round().astype(np.int64)`); otherwise they are cast to float32.
func spacedTimesteps(_ spacing: TimestepSpacing, count: Int, trainSteps: Int, stepsOffset: Int,
                     integer: Bool) -> [Double] {
    switch spacing {
    case .linspace:
        let values = NumPy.linspace(0, Double(trainSteps - 1), count).reversed()
        return values.map { integer ? NumPy.round($0) : Double(Float($0)) }
    case .leading:
        // Multiples of T // N (integer division), plus the offset.
        let ratio = trainSteps / count
        return (0..<count).reversed().map { Double($0 * ratio + stepsOffset) }
    case .trailing:
        // np.round(np.arange(T, 0, -T/N)) - 1
        let ratio = Double(trainSteps) / Double(count)
        return NumPy.arange(Double(trainSteps), 0, -ratio).map { NumPy.round($0) - 1 }
    }
}

/// diffusers' spacing of `count` timesteps for the multistep solvers (`set_timesteps` of
/// DPM-Solver and UniPC), descending: `count + 1` points over [0, `lastTimestep`) with the last
/// one (t = 0) dropped. `lastTimestep` is T, or less when DPM-Solver clips λ; "trailing" keeps the
/// step T/N of the full schedule.
func multistepTimesteps(_ spacing: TimestepSpacing, count: Int, lastTimestep: Int, trainSteps: Int,
                        stepsOffset: Int) -> [Double] {
    switch spacing {
    case .linspace:
        return Array(NumPy.linspace(0, Double(lastTimestep - 1), count + 1).map(NumPy.round).reversed().dropLast())
    case .leading:
        let ratio = lastTimestep / (count + 1)
        return (1...count).reversed().map { Double($0 * ratio + stepsOffset) }
    case .trailing:
        return NumPy.arange(Double(lastTimestep), 0, -Double(trainSteps) / Double(count)).map { NumPy.round($0) - 1 }
    }
}

// MARK: - σ schedules

/// The (fractional) training timestep whose log σ matches `sigma`, by linear interpolation of
/// log σ between neighbouring training steps (diffusers' `_sigma_to_t`). `logSigmas` is
/// log σ_t in float32, ascending in t.
func sigmaToT(_ sigma: Double, logSigmas: [Float]) -> Double {
    let logSigma = Foundation.log(Swift.max(sigma, 1e-10))
    // low = the last index whose log σ is ≤ log σ (0 when none), at most T − 2.
    var low = 0
    for i in 0..<logSigmas.count where logSigma - Double(logSigmas[i]) >= 0 { low = i }
    low = Swift.min(low, logSigmas.count - 2)
    let lo = logSigmas[low], hi = logSigmas[low + 1]
    var w = (Double(lo) - logSigma) / Double(lo - hi)
    w = Swift.min(Swift.max(w, 0), 1)
    return (1 - w) * Double(low) + w * Double(low + 1)
}

/// σ of Karras et al. (2022), eq. (5), ρ = 7: (σ_max^{1/ρ} + i/(n−1) · (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ.
func karrasSigmas(sigmaMin: Double, sigmaMax: Double, count: Int) -> [Double] {
    let rho = 7.0
    let minInvRho = Foundation.pow(sigmaMin, 1 / rho), maxInvRho = Foundation.pow(sigmaMax, 1 / rho)
    return NumPy.linspace(0, 1, count).map { Foundation.pow(maxInvRho + $0 * (minInvRho - maxInvRho), rho) }
}

/// σ evenly spaced in log σ from σ_max down to σ_min.
func exponentialSigmas(sigmaMin: Double, sigmaMax: Double, count: Int) -> [Double] {
    NumPy.linspace(Foundation.log(sigmaMax), Foundation.log(sigmaMin), count).map { Foundation.exp($0) }
}

/// How σ is spread over a run (diffusers' `use_karras_sigmas` / `use_exponential_sigmas`).
enum SigmaSpacing: Sendable {
    /// σ of the training schedule, interpolated at the inference timesteps.
    case interpolated
    /// Karras et al. (2022), ρ = 7.
    case karras
    /// Evenly in log σ.
    case exponential

    init(karras: Bool, exponential: Bool) {
        self = karras ? .karras : exponential ? .exponential : .interpolated
    }
}

extension NoiseSchedule {
    /// σ at the inference `timesteps` of a k-diffusion style scheduler (LMS, Euler, Euler
    /// ancestral, Heun): the training σ interpolated at each timestep (`np.interp`); with Karras or
    /// exponential spacing, `count` σ from `sigmaMax` down to `sigmaMin` (by default the ends of the
    /// interpolated σ) and the timesteps read back from them (`_sigma_to_t`).
    func kDiffusionSigmas(at timesteps: [Double], count: Int, spacing: SigmaSpacing,
                          sigmaMin: Double? = nil, sigmaMax: Double? = nil) -> (timesteps: [Double], sigmas: [Double]) {
        let trainSigmas = sigmas
        let fp = trainSigmas.map { Double($0) }
        let interpolated = timesteps.map { NumPy.interp($0, fp) }
        guard spacing != .interpolated else { return (timesteps, interpolated) }
        let lo = sigmaMin ?? interpolated[interpolated.count - 1], hi = sigmaMax ?? interpolated[0]
        let s = spacing == .karras ? karrasSigmas(sigmaMin: lo, sigmaMax: hi, count: count)
                                   : exponentialSigmas(sigmaMin: lo, sigmaMax: hi, count: count)
        let logSigmas = trainSigmas.map { logf($0) }
        return (s.map { sigmaToT($0, logSigmas: logSigmas) }, s)
    }
}

/// The σ-schedule index of `timestep` as diffusers' `index_for_timestep` finds it: the second
/// match when the timestep occurs twice (so img2img starting on a repeated value does not skip a
/// σ), else the first. A value that is not in the schedule gets `notFound` (diffusers raises for
/// Euler-type schedulers; DPM-Solver and UniPC take the last index).
func indexForTimestep(_ timestep: Float, in timesteps: [Float], notFound: (Float) -> Int) -> Int {
    var first: Int?
    for (i, t) in timesteps.enumerated() where t == timestep {
        if first != nil { return i }
        first = i
    }
    return first ?? notFound(timestep)
}

/// The index of the entry of `timesteps` nearest to `timestep` (first on ties).
func nearestIndex(_ timestep: Float, in timesteps: [Float]) -> Int {
    var best = 0
    for i in timesteps.indices where Swift.abs(timesteps[i] - timestep) < Swift.abs(timesteps[best] - timestep) {
        best = i
    }
    return best
}

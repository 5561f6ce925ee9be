// Golden tests of the schedulers against diffusers.
//
// Fixtures: Tests/Fixtures/schedulers/{manifest.json, schedulers.safetensors}, made by
// `/work/venv/ref/bin/python scripts/make_scheduler_fixtures.py` (its header says exactly what each
// case runs; manifest.json records the library versions). For every case — a scheduler_config.json
// plus an optional sampler name, loaded as `makeScheduler(folderConfig:sampler:)` loads it — they hold
//   - timesteps / σ / init_noise_sigma after setTimesteps(N), N = 1, 5, 20, 50 (or diffusers' error);
//   - a txt2img loop (N = 10 unless stated) with the fake model below: mid-loop and final samples;
//   - an img2img run at strength 0.6: the noised start, the inpaint-style re-noising after the first
//     step, and the final sample.
// Fake model (same in the script): eps = a · x_in + b, a = Float(0.3 cos(t/300)), b = Float(0.1 sin(t/100)).

import Foundation
import XCTest
import LDMCore
import LDMIO
@testable import LDMDiffusion

/// Any JSON value, to carry a case's config from the manifest back into a scheduler_config.json.
enum JSONValue: Codable, Equatable {
    case null, bool(Bool), int(Int), double(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: Decoder) throws {
        if var a = try? decoder.unkeyedContainer() {
            var items: [JSONValue] = []
            while !a.isAtEnd { items.append(try a.decode(JSONValue.self)) }
            self = .array(items)
            return
        }
        if let o = try? decoder.container(keyedBy: AnyKey.self) {
            var dict: [String: JSONValue] = [:]
            for k in o.allKeys { dict[k.stringValue] = try o.decode(JSONValue.self, forKey: k) }
            self = .object(dict)
            return
        }
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else { self = .string(try c.decode(String.self)) }
    }

    func encode(to encoder: Encoder) throws {
        switch self {
        case .null: var c = encoder.singleValueContainer(); try c.encodeNil()
        case .bool(let b): var c = encoder.singleValueContainer(); try c.encode(b)
        case .int(let i): var c = encoder.singleValueContainer(); try c.encode(i)
        case .double(let d): var c = encoder.singleValueContainer(); try c.encode(d)
        case .string(let s): var c = encoder.singleValueContainer(); try c.encode(s)
        case .array(let a): var c = encoder.unkeyedContainer(); for v in a { try c.encode(v) }
        case .object(let o):
            var c = encoder.container(keyedBy: AnyKey.self)
            for (k, v) in o { try c.encode(v, forKey: AnyKey(stringValue: k)!) }
        }
    }

    var number: Double? {
        switch self { case .int(let i): return Double(i); case .double(let d): return d; default: return nil }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { return nil }
    }
}

struct FixtureManifest: Decodable {
    struct Schedule: Decodable {
        var steps: Int
        var error: String?
        var count: Int?
        var timesteps_dtype: String?
        var sigmas: Bool?
        var init_noise_sigma: Double?
    }
    struct Loop: Decodable { var steps: Int; var mid_after: Int; var model_calls: Int }
    struct Img2Img: Decodable { var strength: Double; var t_start: Int; var begin_index: Int; var model_calls: Int }
    struct Case: Decodable {
        var name: String
        var sampler: String?
        var config: JSONValue
        var `class`: String
        var resolved: [String: JSONValue]
        var order: Int
        var schedules: [Schedule]
        var loop: Loop?
        var img2img: Img2Img?
        var loop_error: String?
        var step_arguments: [String: Double]?
    }
    var versions: [String: String]
    var shape: [Int]
    var cases: [Case]
}

final class SchedulerTests: XCTestCase {
    /// Tests/Fixtures/schedulers, found from this file's location (a folder shared by test targets).
    static let fixtureDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent("schedulers")

    static let manifest: FixtureManifest = {
        let data = try! Data(contentsOf: fixtureDir.appendingPathComponent("manifest.json"))
        return try! JSONDecoder().decode(FixtureManifest.self, from: data)
    }()
    static let tensors: SafeTensorsFile = try! SafeTensorsFile(path: fixtureDir.appendingPathComponent("schedulers.safetensors").path)

    /// The SD 1.5 scheduler_config.json of the fixtures (no timestep_spacing / prediction_type keys).
    static let sd15Config = """
        {"_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
         "num_train_timesteps": 1000, "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1,
         "trained_betas": null, "clip_sample": false}
        """

    func tensor(_ name: String) throws -> Tensor {
        let info = try Self.tensors.info(name)
        return Tensor(shape: info.shape, try Self.tensors.floats(name))
    }

    func makeCase(_ c: FixtureManifest.Case) throws -> any Scheduler {
        let json = try JSONEncoder().encode(c.config)
        let s = try makeScheduler(configJSON: json, sampler: c.sampler.map { SamplerName(rawValue: $0)! })
        // Arguments the pipeline passes to step(): DDIM's η.
        if let eta = c.step_arguments?["eta"], var ddim = s as? DDIMScheduler {
            ddim.eta = Float(eta)
            return ddim
        }
        return s
    }

    /// ‖a − b‖ / ‖b‖.
    func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count)
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) { num += Double(x - y) * Double(x - y); den += Double(y) * Double(y) }
        return den == 0 ? num.squareRoot() : (num / den).squareRoot()
    }

    /// max_i |a_i − b_i| / max(|b_i|, floor).
    func maxElementRelativeError(_ a: [Float], _ b: [Float], floor: Double = 1e-6) -> Double {
        zip(a, b).map { Double(Swift.abs($0 - $1)) / Swift.max(Double(Swift.abs($1)), floor) }.max() ?? 0
    }

    /// The fake model of the fixtures.
    func fakeModel(_ x: Tensor, _ t: Float) -> Tensor {
        let a = Float(0.3 * cos(Double(t) / 300)), b = Float(0.1 * sin(Double(t) / 100))
        return map(x) { a * $0 + b }
    }

    // MARK: - Random source used by the stochastic samplers

    func testTorchRandomSourceMatchesFixtureInputs() throws {
        // inputs/noise0 = torch.randn((1,4,8,8), generator=torch.manual_seed(0))
        var r0 = TorchRandomSource(seed: 0)
        XCTAssertEqual(r0.normal(count: 256), try tensor("inputs/noise0").array)
        // inputs/seed1_draws = torch.randn((2,1,4,8,8), generator=torch.manual_seed(1)): the two draws
        // Euler ancestral takes in its first two steps.
        var r1 = TorchRandomSource(seed: 1)
        let draws = r1.normal(count: 256) + r1.normal(count: 256)
        XCTAssertLessThan(maxElementRelativeError(draws, try tensor("inputs/seed1_draws").array), 1e-6)
    }

    // MARK: - Schedules

    func testSchedulesMatchDiffusers() throws {
        var worst: [String: Double] = [:]
        for c in Self.manifest.cases {
            for s in c.schedules {
                var scheduler = try makeCase(c)
                if let error = s.error {
                    XCTAssertThrowsError(try scheduler.setTimesteps(s.steps), "\(c.name) N=\(s.steps): diffusers raised \(error)")
                    continue
                }
                try scheduler.setTimesteps(s.steps)
                let key = "\(c.name)/N\(s.steps)"
                let refT = try tensor("\(key)/timesteps").array
                XCTAssertEqual(scheduler.timesteps.count, refT.count, "\(key) timestep count")
                guard scheduler.timesteps.count == refT.count else { continue }
                // Exact, except fractional timesteps derived from σ (Karras / exponential / continuous).
                let derived = ["use_karras_sigmas", "use_exponential_sigmas", "use_lu_lambdas"].contains { c.resolved[$0] == .bool(true) }
                    || c.resolved["timestep_type"] == .string("continuous")
                if s.timesteps_dtype == "torch.int64" || !derived {
                    XCTAssertEqual(scheduler.timesteps, refT, "\(key) timesteps")
                } else {
                    let err = maxElementRelativeError(scheduler.timesteps, refT, floor: 1)
                    XCTAssertLessThan(err, 1e-5, "\(key) timesteps")
                }
                if s.sigmas == true {
                    guard let sigmaScheduler = scheduler as? any SigmaScheduler else {
                        XCTFail("\(key): expected a σ scheduler"); continue
                    }
                    let refS = try tensor("\(key)/sigmas").array
                    XCTAssertEqual(sigmaScheduler.sigmas.count, refS.count, "\(key) sigma count")
                    if sigmaScheduler.sigmas.count == refS.count {
                        let err = maxElementRelativeError(sigmaScheduler.sigmas, refS)
                        XCTAssertLessThan(err, 1e-5, "\(key) sigmas")
                        worst[c.name, default: 0] = Swift.max(worst[c.name, default: 0], err)
                    }
                }
                if let ref = s.init_noise_sigma {
                    XCTAssertEqual(Double(scheduler.initNoiseSigma), ref, accuracy: 1e-5 * Swift.max(1, ref), "\(key) init_noise_sigma")
                }
            }
        }
        print("schedule σ max element relative error:", worst.values.max() ?? 0)
    }

    // MARK: - Whole loops

    func testLoopsMatchDiffusers() throws {
        let noise0 = try tensor("inputs/noise0")
        let original = try tensor("inputs/original"), imgNoise = try tensor("inputs/img2img_noise")
        var report: [String: Double] = [:]
        for c in Self.manifest.cases {
            guard let loop = c.loop, let img = c.img2img, c.loop_error == nil else {
                // diffusers itself fails on this case; ours must still run without crashing.
                var s = try makeCase(c)
                try s.setTimesteps(10)
                var random: any RandomSource = TorchRandomSource(seed: 1)
                var x = scale(noise0, s.initNoiseSigma)
                for t in s.timesteps { x = s.step(output: fakeModel(s.scaleModelInput(x, timestep: t), t), timestep: t, sample: x, random: &random) }
                continue
            }
            // txt2img
            var s = try makeCase(c)
            XCTAssertEqual(s.order, c.order, c.name)
            try s.setTimesteps(loop.steps)
            XCTAssertEqual(s.timesteps.count, loop.model_calls, "\(c.name) model calls")
            var random: any RandomSource = TorchRandomSource(seed: 1)
            var x = scale(noise0, s.initNoiseSigma)
            var errors: [Double] = []
            for (i, t) in s.timesteps.enumerated() {
                let eps = fakeModel(s.scaleModelInput(x, timestep: t), t)
                x = s.step(output: eps, timestep: t, sample: x, random: &random)
                if i + 1 == loop.mid_after { errors.append(relativeError(x.array, try tensor("\(c.name)/mid").array)) }
            }
            errors.append(relativeError(x.array, try tensor("\(c.name)/final").array))

            // img2img (as StableDiffusionImg2ImgPipeline), with the inpaint re-noising after step 1
            var s2 = try makeCase(c)
            try s2.setTimesteps(loop.steps)
            let tStart = loop.steps - Int(Double(loop.steps) * img.strength)
            XCTAssertEqual(tStart, img.t_start, c.name)
            let begin = tStart * s2.order
            let timesteps = Array(s2.timesteps[begin...])
            s2.setBeginIndex(begin)
            var y = s2.addNoise(original: original, noise: imgNoise, timestep: timesteps[0])
            errors.append(relativeError(y.array, try tensor("\(c.name)/img2img_noised").array))
            random = TorchRandomSource(seed: 1)
            for (i, t) in timesteps.enumerated() {
                let eps = fakeModel(s2.scaleModelInput(y, timestep: t), t)
                y = s2.step(output: eps, timestep: t, sample: y, random: &random)
                if i == 0 && timesteps.count > 1 {
                    let renoised = s2.addNoise(original: original, noise: imgNoise, timestep: timesteps[1])
                    errors.append(relativeError(renoised.array, try tensor("\(c.name)/inpaint_noised").array))
                }
            }
            errors.append(relativeError(y.array, try tensor("\(c.name)/img2img_final").array))
            let worst = errors.max() ?? 0
            report[c.name] = worst
            XCTAssertLessThan(worst, 1e-5, "\(c.name): relative errors \(errors)")
        }
        // Worst relative error per sampler name (the five SD-style variants) and per class (all cases).
        var byGroup: [String: Double] = [:]
        for (name, err) in report {
            let c = Self.manifest.cases.first { $0.name == name }!
            if let sampler = c.sampler { byGroup["sampler " + sampler] = Swift.max(byGroup["sampler " + sampler] ?? 0, err) }
            byGroup["class " + c.class] = Swift.max(byGroup["class " + c.class] ?? 0, err)
        }
        for (k, v) in byGroup.sorted(by: { $0.key < $1.key }) { print(String(format: "loop max relative error, %@: %.3g", k, v)) }
        print("loop cases compared: \(report.count) of \(Self.manifest.cases.count)")
    }

    // MARK: - Configuration

    /// Our decoded config, encoded back with diffusers' keys.
    func encodedConfig(_ s: any Scheduler) throws -> [String: JSONValue] {
        let data: Data
        switch s {
        case let s as DDPMScheduler: data = try JSONEncoder().encode(s.config)
        case let s as DDIMScheduler: data = try JSONEncoder().encode(s.config)
        case let s as PNDMScheduler: data = try JSONEncoder().encode(s.config)
        case let s as LMSDiscreteScheduler: data = try JSONEncoder().encode(s.config)
        case let s as EulerDiscreteScheduler: data = try JSONEncoder().encode(s.config)
        case let s as EulerAncestralDiscreteScheduler: data = try JSONEncoder().encode(s.config)
        case let s as HeunDiscreteScheduler: data = try JSONEncoder().encode(s.config)
        case let s as DPMSolverMultistepScheduler: data = try JSONEncoder().encode(s.config)
        case let s as UniPCMultistepScheduler: data = try JSONEncoder().encode(s.config)
        case let s as LCMScheduler: data = try JSONEncoder().encode(s.config)
        default: XCTFail("unknown scheduler \(type(of: s))"); return [:]
        }
        guard case .object(let o) = try JSONDecoder().decode(JSONValue.self, from: data) else { return [:] }
        return o
    }

    func testResolvedConfigsMatchDiffusers() throws {
        for c in Self.manifest.cases {
            let s = try makeCase(c)
            let ours = try encodedConfig(s)
            XCTAssertEqual(ours["_class_name"], .string(c.class), c.name)
            for (key, value) in ours where !key.hasPrefix("_") {
                guard let ref = c.resolved[key] else { XCTFail("\(c.name): diffusers has no key \(key)"); continue }
                if let a = value.number, let b = ref.number {
                    XCTAssertEqual(a, b, accuracy: 1e-12 * Swift.max(1, Swift.abs(b)), "\(c.name): \(key)")
                } else {
                    XCTAssertEqual(value, ref, "\(c.name): \(key)")
                }
            }
            // Keys diffusers has for this class that we do not model (beyond the file's extra keys).
            let missing = c.resolved.keys.filter { ours[$0] == nil && !(c.config.objectKeys.contains($0)) }
            XCTAssert(missing.allSatisfy { ["lambda_min_clipped", "solver_p", "shift_terminal"].contains($0) },
                      "\(c.name): keys not modelled: \(missing)")
        }
    }

    func testMissingKeysTakeEachClassOwnDefaults() throws {
        let file = Data(Self.sd15Config.utf8)
        // The SD 1.5 file has no timestep_spacing: each class falls back to its own default
        // (diffusers 0.42.1: linspace for LMS / Euler / Euler a / Heun / DPM-Solver / UniPC,
        // leading for DDPM / DDIM / PNDM).
        func spacing(_ sampler: SamplerName?) throws -> String? {
            try encodedConfig(try makeScheduler(configJSON: file, sampler: sampler))["timestep_spacing"].flatMap {
                if case .string(let s) = $0 { return s } else { return nil }
            }
        }
        XCTAssertEqual(try spacing(nil), "leading")  // PNDMScheduler, from _class_name
        for s: SamplerName in [.ddpm, .ddim, .pndm] { XCTAssertEqual(try spacing(s), "leading", s.rawValue) }
        for s: SamplerName in [.lms, .euler, .eulerA, .heun, .dpmpp2m, .dpmpp2mKarras, .unipc] {
            XCTAssertEqual(try spacing(s), "linspace", s.rawValue)
        }
        // Keys present are taken; absent ones are the class's own defaults.
        let euler = try XCTUnwrap(try makeScheduler(configJSON: file, sampler: .euler) as? EulerDiscreteScheduler)
        XCTAssertEqual(euler.config.stepsOffset, 1)
        XCTAssertEqual(euler.config.betaStart, 0.00085)
        XCTAssertEqual(euler.config.predictionType, .epsilon)
        let ddim = try XCTUnwrap(try makeScheduler(configJSON: file, sampler: .ddim) as? DDIMScheduler)
        XCTAssertFalse(ddim.config.setAlphaToOne)   // from the file (DDIM's default is true)
        XCTAssertFalse(ddim.config.clipSample)      // from the file (DDIM's default is true)
        let ddpm = try XCTUnwrap(try makeScheduler(configJSON: file, sampler: .ddpm) as? DDPMScheduler)
        XCTAssertEqual(ddpm.config.varianceType, .fixedSmall)
        // A file without beta_start: Heun's default is 0.00085, DDIM's 0.0001.
        let bare = Data(#"{"_class_name": "DDIMScheduler"}"#.utf8)
        XCTAssertEqual(try XCTUnwrap(try makeScheduler(configJSON: bare, sampler: .heun) as? HeunDiscreteScheduler).config.betaStart, 0.00085)
        XCTAssertEqual(try XCTUnwrap(try makeScheduler(configJSON: bare, sampler: nil) as? DDIMScheduler).config.betaStart, 0.0001)
        // dpm++2m-karras pins Karras σ; dpm++2m pins them off even when the file turns them on.
        let karrasFile = Data(#"{"_class_name": "DPMSolverMultistepScheduler", "use_karras_sigmas": true, "solver_order": 3}"#.utf8)
        let plain = try XCTUnwrap(try makeScheduler(configJSON: karrasFile, sampler: .dpmpp2m) as? DPMSolverMultistepScheduler)
        XCTAssertFalse(plain.config.useKarrasSigmas)
        XCTAssertEqual(plain.config.solverOrder, 2)
        let fromFile = try XCTUnwrap(try makeScheduler(configJSON: karrasFile, sampler: nil) as? DPMSolverMultistepScheduler)
        XCTAssertTrue(fromFile.config.useKarrasSigmas)
        XCTAssertEqual(fromFile.config.solverOrder, 3)
        // Keys listed in _use_default_values are treated as absent; unknown keys are ignored.
        let marked = Data(#"{"_class_name": "EulerDiscreteScheduler", "timestep_spacing": "leading", "_use_default_values": ["timestep_spacing"], "no_such_key": 3}"#.utf8)
        XCTAssertEqual(try XCTUnwrap(try makeScheduler(configJSON: marked, sampler: nil) as? EulerDiscreteScheduler).config.timestepSpacing, .linspace)
    }

    func testFolderLoadingAndConfigRoundTrip() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sched-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(Self.sd15Config.utf8).write(to: dir.appendingPathComponent("scheduler_config.json"))
        XCTAssert(try makeScheduler(folderConfig: dir, sampler: nil) is PNDMScheduler)
        XCTAssert(try makeScheduler(folderConfig: dir.appendingPathComponent("scheduler_config.json"), sampler: .unipc) is UniPCMultistepScheduler)
        for sampler in SamplerName.allCases {
            let s = try makeScheduler(folderConfig: dir, sampler: sampler)
            // Encoding then decoding a config gives the same config (and the same class back).
            let encoded = try JSONEncoder().encode(try encodedConfig(s))
            let again = try makeScheduler(configJSON: encoded, sampler: nil)
            XCTAssertEqual(try encodedConfig(again), try encodedConfig(s), sampler.rawValue)
        }
    }

    func testErrorsNameTheProblem() throws {
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "" } catch { return "\(error)" }
        }
        let unknown = Data(#"{"_class_name": "FlowMatchEulerDiscreteScheduler"}"#.utf8)
        XCTAssertThrowsError(try makeScheduler(configJSON: unknown, sampler: nil)) { error in
            XCTAssertEqual(error as? SchedulerError, .unknownClass("FlowMatchEulerDiscreteScheduler"))
        }
        XCTAssert(message { _ = try makeScheduler(configJSON: unknown, sampler: nil) }.contains("FlowMatchEulerDiscreteScheduler"))
        // An unsupported value names the key.
        let sigmoid = Data(#"{"beta_schedule": "sigmoid"}"#.utf8)
        XCTAssert(message { _ = try makeScheduler(configJSON: sigmoid, sampler: .euler) }.contains("beta_schedule"))
        XCTAssertNoThrow(try makeScheduler(configJSON: sigmoid, sampler: .ddpm))
        let spacing = Data(#"{"timestep_spacing": "sometimes"}"#.utf8)
        XCTAssert(message { _ = try makeScheduler(configJSON: spacing, sampler: .ddim) }.contains("timestep_spacing"))
        let wrongType = Data(#"{"num_train_timesteps": "many"}"#.utf8)
        XCTAssert(message { _ = try makeScheduler(configJSON: wrongType, sampler: .lms) }.contains("num_train_timesteps"))
        let beta = Data(#"{"use_beta_sigmas": true}"#.utf8)
        XCTAssert(message { _ = try makeScheduler(configJSON: beta, sampler: .heun) }.contains("use_beta_sigmas"))
        let sample = Data(#"{"prediction_type": "sample"}"#.utf8)
        XCTAssert(message { _ = try makeScheduler(configJSON: sample, sampler: .eulerA) }.contains("prediction_type"))
        let oneBeta = Data(#"{"trained_betas": [0.5]}"#.utf8)
        XCTAssert(message { _ = try makeScheduler(configJSON: oneBeta, sampler: .unipc) }.contains("trained_betas"))
        XCTAssertThrowsError(try makeScheduler(configJSON: Data("[1, 2]".utf8), sampler: nil))
        XCTAssertThrowsError(try makeScheduler(configJSON: Data("not json".utf8), sampler: .ddim))
        XCTAssertThrowsError(try makeScheduler(configJSON: Data("{}".utf8), sampler: nil))
        XCTAssertThrowsError(try makeScheduler(folderConfig: URL(fileURLWithPath: "/nonexistent/scheduler"), sampler: nil))
        // Step counts.
        for sampler in SamplerName.allCases {
            var s = try makeScheduler(configJSON: Data(Self.sd15Config.utf8), sampler: sampler)
            XCTAssertThrowsError(try s.setTimesteps(0), sampler.rawValue)
            XCTAssertThrowsError(try s.setTimesteps(-3), sampler.rawValue)
        }
        var euler = try EulerDiscreteScheduler()
        XCTAssertEqual(message { try euler.setTimesteps(0) },
                       "EulerDiscreteScheduler: number of inference steps must be at least 1, got 0")
        var ddim = try DDIMScheduler()
        XCTAssertEqual(message { try ddim.setTimesteps(1001) },
                       "DDIMScheduler: number of inference steps must be between 1 and 1000, got 1001")
        XCTAssertThrowsError(try ddim.setTimesteps(1001))
        var prk = try PNDMScheduler()
        XCTAssertThrowsError(try prk.setTimesteps(3))
        XCTAssertNoThrow(try prk.setTimesteps(4))
    }

    func testSamplerNames() {
        XCTAssertEqual(SamplerName.allCases.map(\.rawValue),
                       ["ddpm", "ddim", "pndm", "lms", "euler", "euler-a", "heun", "dpm++2m", "dpm++2m-karras", "unipc", "lcm"])
        XCTAssertEqual(SamplerName.allCases.map(\.displayName),
                       ["DDPM", "DDIM", "PNDM", "LMS", "Euler", "Euler a", "Heun", "DPM++ 2M", "DPM++ 2M Karras", "UniPC", "LCM"])
        XCTAssertEqual(SamplerName.eulerA.schedulerClass.rawValue, "EulerAncestralDiscreteScheduler")
    }

    func testTimestepsOffTheScheduleDoNotCrash() throws {
        // diffusers raises for a timestep that is not in an Euler-type schedule; ours takes the nearest.
        for sampler in SamplerName.allCases {
            var s = try makeScheduler(configJSON: Data(Self.sd15Config.utf8), sampler: sampler)
            try s.setTimesteps(4)
            var random: any RandomSource = TorchRandomSource(seed: 0)
            let x = Tensor(shape: [1, 1, 2, 2], [0.1, -0.2, 0.3, 0.4])
            var y = s.step(output: x, timestep: 12345.5, sample: x, random: &random)
            for _ in 0..<8 { y = s.step(output: x, timestep: -7, sample: y, random: &random) }
            _ = s.addNoise(original: x, noise: x, timestep: 5000)
            _ = s.scaleModelInput(x, timestep: 0.25)
        }
    }
}

extension JSONValue {
    var objectKeys: Set<String> {
        if case .object(let o) = self { return Set(o.keys) }
        return []
    }
}

// SchedulerFactory.swift — from a model folder's scheduler/scheduler_config.json and an optional
// sampler name to a configured scheduler, as diffusers' `from_pretrained(model, subfolder="scheduler")`
// builds one.

import Foundation
import LDMCore

/// The scheduler classes of diffusers that this package implements, by `_class_name`.
public enum SchedulerClass: String, CaseIterable, Sendable {
    case ddpm = "DDPMScheduler"
    case ddim = "DDIMScheduler"
    case pndm = "PNDMScheduler"
    case lms = "LMSDiscreteScheduler"
    case euler = "EulerDiscreteScheduler"
    case eulerAncestral = "EulerAncestralDiscreteScheduler"
    case heun = "HeunDiscreteScheduler"
    case dpmSolverMultistep = "DPMSolverMultistepScheduler"
    case uniPCMultistep = "UniPCMultistepScheduler"
    case lcm = "LCMScheduler"

    /// Decodes `json` as this class's configuration (keys present in it, this class's defaults
    /// for the rest) and builds the scheduler.
    public func makeScheduler(configJSON json: Data) throws -> any Scheduler {
        func decode<C: Decodable>(_ type: C.Type) throws -> C { try decodeSchedulerConfig(type, from: json) }
        switch self {
        case .ddpm: return try DDPMScheduler(config: decode(DDPMSchedulerConfig.self))
        case .ddim: return try DDIMScheduler(config: decode(DDIMSchedulerConfig.self))
        case .pndm: return try PNDMScheduler(config: decode(PNDMSchedulerConfig.self))
        case .lms: return try LMSDiscreteScheduler(config: decode(LMSDiscreteSchedulerConfig.self))
        case .euler: return try EulerDiscreteScheduler(config: decode(EulerDiscreteSchedulerConfig.self))
        case .eulerAncestral: return try EulerAncestralDiscreteScheduler(config: decode(EulerAncestralDiscreteSchedulerConfig.self))
        case .heun: return try HeunDiscreteScheduler(config: decode(HeunDiscreteSchedulerConfig.self))
        case .dpmSolverMultistep: return try DPMSolverMultistepScheduler(config: decode(DPMSolverMultistepSchedulerConfig.self))
        case .uniPCMultistep: return try UniPCMultistepScheduler(config: decode(UniPCMultistepSchedulerConfig.self))
        case .lcm: return try LCMScheduler(config: decode(LCMSchedulerConfig.self))
        }
    }
}

/// The sampler names of the command line (`--sampler`), each a diffusers scheduler class.
public enum SamplerName: String, CaseIterable, Sendable {
    case ddpm, ddim, pndm, lms, euler
    case eulerA = "euler-a"
    case heun
    case dpmpp2m = "dpm++2m"
    case dpmpp2mKarras = "dpm++2m-karras"
    case unipc
    /// Latent consistency models' sampler: for LCM U-Nets and LCM-LoRA (4–8 steps, guidance 1–2).
    case lcm

    /// The name AUTOMATIC1111's web UI gives this sampler (the `Sampler:` of a PNG's `parameters`).
    public var displayName: String {
        switch self {
        case .ddpm: return "DDPM"
        case .ddim: return "DDIM"
        case .pndm: return "PNDM"
        case .lms: return "LMS"
        case .euler: return "Euler"
        case .eulerA: return "Euler a"
        case .heun: return "Heun"
        case .dpmpp2m: return "DPM++ 2M"
        case .dpmpp2mKarras: return "DPM++ 2M Karras"
        case .unipc: return "UniPC"
        case .lcm: return "LCM"
        }
    }

    /// The diffusers class that implements this sampler.
    public var schedulerClass: SchedulerClass {
        switch self {
        case .ddpm: return .ddpm
        case .ddim: return .ddim
        case .pndm: return .pndm
        case .lms: return .lms
        case .euler: return .euler
        case .eulerA: return .eulerAncestral
        case .heun: return .heun
        case .dpmpp2m, .dpmpp2mKarras: return .dpmSolverMultistep
        case .unipc: return .uniPCMultistep
        case .lcm: return .lcm
        }
    }

    /// What the name pins over the model's file: "DPM++ 2M" is DPM-Solver++ of order 2 on the
    /// model's interpolated σ, "DPM++ 2M Karras" the same on Karras σ (diffusers keys
    /// algorithm_type "dpmsolver++", solver_order 2, use_karras_sigmas false / true, and no other
    /// σ spacing). Other names pin nothing.
    func pin(_ config: inout DPMSolverMultistepSchedulerConfig) {
        config.algorithmType = .dpmsolverPlusPlus
        config.solverOrder = 2
        config.useKarrasSigmas = self == .dpmpp2mKarras
        config.useExponentialSigmas = false
        config.useLuLambdas = false
        config.useBetaSigmas = false
    }
}

/// The scheduler of a model: `folderConfig` is the model's `scheduler` folder (or its
/// `scheduler_config.json`).
///
/// - Without `sampler`: the class named by the file's `_class_name`, configured by the file.
/// - With `sampler`: that sampler's class configured from the keys PRESENT in the file plus the
///   class's own defaults for the rest (what diffusers' `Class.from_pretrained(model,
///   subfolder="scheduler")` gives, not `from_config` of another loaded scheduler's full config),
///   plus what the sampler name pins: dpm++2m / dpm++2m-karras are DPM-Solver++ of order 2 with
///   use_karras_sigmas false / true.
///
/// Throws `SchedulerError` for an unreadable file, an unknown `_class_name`, or a value the
/// scheduler does not support (naming the key).
public func makeScheduler(folderConfig: URL, sampler: SamplerName?) throws -> any Scheduler {
    var isDirectory: ObjCBool = false
    var url = folderConfig
    if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue {
        url = url.appendingPathComponent("scheduler_config.json")
    }
    let data: Data
    do { data = try Data(contentsOf: url) } catch {
        throw SchedulerError.unreadableConfig(path: url.path, detail: "cannot read the file")
    }
    do {
        return try makeScheduler(configJSON: data, sampler: sampler)
    } catch SchedulerError.unreadableConfig(_, let detail) {
        throw SchedulerError.unreadableConfig(path: url.path, detail: detail)
    }
}

/// `makeScheduler(folderConfig:sampler:)` for the contents of a scheduler_config.json.
public func makeScheduler(configJSON data: Data, sampler: SamplerName?) throws -> any Scheduler {
    struct ClassName: Decodable {
        var name: String?
        enum CodingKeys: String, CodingKey { case name = "_class_name" }
    }
    let className: ClassName
    do { className = try JSONDecoder().decode(ClassName.self, from: data) } catch {
        throw SchedulerError.unreadableConfig(path: "(data)", detail: "not a JSON object with a string _class_name")
    }
    guard let sampler else {
        guard let name = className.name else {
            throw SchedulerError.invalidValue(key: "_class_name", detail: "missing; name a scheduler class or choose a sampler")
        }
        guard let cls = SchedulerClass(rawValue: name) else { throw SchedulerError.unknownClass(name) }
        return try cls.makeScheduler(configJSON: data)
    }
    switch sampler {
    case .dpmpp2m, .dpmpp2mKarras:
        var config = try decodeSchedulerConfig(DPMSolverMultistepSchedulerConfig.self, from: data)
        sampler.pin(&config)
        return try DPMSolverMultistepScheduler(config: config)
    default:
        return try sampler.schedulerClass.makeScheduler(configJSON: data)
    }
}

/// Decodes a scheduler config, reporting every failure as a `SchedulerError`.
func decodeSchedulerConfig<C: Decodable>(_ type: C.Type, from data: Data) throws -> C {
    do { return try JSONDecoder().decode(type, from: data) } catch let error as SchedulerError { throw error } catch {
        throw SchedulerError.unreadableConfig(path: "(data)", detail: "not a JSON object")
    }
}

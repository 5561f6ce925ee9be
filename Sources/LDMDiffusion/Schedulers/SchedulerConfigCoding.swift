// SchedulerConfigCoding.swift — reading and writing diffusers' scheduler_config.json.
//
// Each scheduler's configuration is a Codable struct whose coding keys are diffusers' keys. It
// decodes the way `SchedulerClass.from_pretrained(model, subfolder="scheduler")` builds a
// scheduler (diffusers' `ConfigMixin.extract_init_dict`): a key present in the file sets the
// field, a missing (or null) key takes THAT class's own default, keys the class does not have are
// ignored, and keys listed in `_use_default_values` are treated as missing. A value of the wrong
// JSON type, or a string the class does not know, is an error naming the key.

import Foundation

/// A coding key for any string.
struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

/// Reads one scheduler's fields from a decoder, with that scheduler's defaults.
struct ConfigReader<Key: CodingKey> {
    private let container: KeyedDecodingContainer<Key>
    private let useDefaults: Set<String>
    /// The diffusers class name, for error messages.
    let scheduler: String

    init(_ decoder: Decoder, _ keys: Key.Type, scheduler: String) throws {
        self.scheduler = scheduler
        do {
            container = try decoder.container(keyedBy: Key.self)
            let all = try decoder.container(keyedBy: AnyCodingKey.self)
            useDefaults = Set((try? all.decodeIfPresent([String].self, forKey: AnyCodingKey("_use_default_values"))) ?? [])
        } catch let error as SchedulerError {
            throw error
        } catch {
            throw SchedulerError.invalidValue(key: "(top level)", detail: "the config must be a JSON object")
        }
    }

    /// The value at `key`, or `fallback` when the key is missing, null, or listed in `_use_default_values`.
    func callAsFunction<T: Decodable>(_ key: Key, _ fallback: T) throws -> T {
        try optional(key) ?? fallback
    }

    /// The value at `key`, or nil when missing or null.
    func optional<T: Decodable>(_ key: Key) throws -> T? {
        if useDefaults.contains(key.stringValue) { return nil }
        do {
            return try container.decodeIfPresent(T.self, forKey: key)
        } catch {
            throw SchedulerError.invalidValue(key: key.stringValue, detail: "expected \(ConfigReader.jsonType(T.self))")
        }
    }

    /// True when `key` is present with a non-null value (for options that must stay null).
    func isSet(_ key: Key) -> Bool {
        guard !useDefaults.contains(key.stringValue), container.contains(key) else { return false }
        return !((try? container.decodeNil(forKey: key)) ?? true)
    }

    /// A string option at `key` decoded into `E`, or `fallback`; an unknown string is an error
    /// listing the values `E` has.
    func choice<E: RawRepresentable & CaseIterable>(_ key: Key, _ fallback: E) throws -> E where E.RawValue == String {
        guard let raw: String = try optional(key) else { return fallback }
        guard let value = E(rawValue: raw) else {
            throw SchedulerError.unsupportedValue(key: key.stringValue, value: "\"\(raw)\"", scheduler: scheduler,
                                                  supported: E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))
        }
        return value
    }

    private static func jsonType<T>(_ type: T.Type) -> String {
        switch type {
        case is Bool.Type, is Bool?.Type: return "a boolean"
        case is Int.Type, is Int?.Type: return "an integer"
        case is Double.Type, is Double?.Type, is Float.Type: return "a number"
        case is String.Type: return "a string"
        case is [Double].Type, is [Int].Type: return "an array of numbers"
        default: return "a value of type \(T.self)"
        }
    }
}

// MARK: - The keys every scheduler config has

/// The coding keys every scheduler config has: `_class_name` and the training noise schedule.
/// (Each config's `CodingKeys` enum has these cases.)
protocol CommonSchedulerCodingKey: CodingKey {
    static var className: Self { get }
    static var numTrainTimesteps: Self { get }
    static var betaStart: Self { get }
    static var betaEnd: Self { get }
    static var betaSchedule: Self { get }
    static var trainedBetas: Self { get }
}

/// What every diffusers scheduler config has: the training noise schedule (`num_train_timesteps`,
/// `beta_start`, `beta_end`, `beta_schedule`, `trained_betas`), what the model predicts, and how
/// the inference timesteps are spaced.
protocol CommonSchedulerConfig {
    associatedtype CodingKeys: CommonSchedulerCodingKey
    var numTrainTimesteps: Int { get set }
    var betaStart: Double { get set }
    var betaEnd: Double { get set }
    var betaSchedule: BetaSchedule { get set }
    var trainedBetas: [Double]? { get set }
    var predictionType: PredictionType { get }
    var timestepSpacing: TimestepSpacing { get }
    var stepsOffset: Int { get }
}

extension CommonSchedulerConfig {
    /// Reads the training noise schedule keys, taking `defaults`' values for the missing ones.
    mutating func readNoiseSchedule(_ r: ConfigReader<CodingKeys>, defaults d: Self) throws {
        numTrainTimesteps = try r(.numTrainTimesteps, d.numTrainTimesteps)
        betaStart = try r(.betaStart, d.betaStart)
        betaEnd = try r(.betaEnd, d.betaEnd)
        betaSchedule = try r.choice(.betaSchedule, d.betaSchedule)
        trainedBetas = try r.optional(.trainedBetas)
    }

    /// Writes `_class_name` and the training noise schedule keys (`trained_betas` as null when unset).
    func writeNoiseSchedule(_ c: inout KeyedEncodingContainer<CodingKeys>, className: String) throws {
        try c.encode(className, forKey: .className)
        try c.encode(numTrainTimesteps, forKey: .numTrainTimesteps)
        try c.encode(betaStart, forKey: .betaStart)
        try c.encode(betaEnd, forKey: .betaEnd)
        try c.encode(betaSchedule, forKey: .betaSchedule)
        try c.encodeOrNull(trainedBetas, forKey: .trainedBetas)
    }

    /// Checks `num_train_timesteps` (at least `minTrainSteps`) and that `beta_schedule` is one of
    /// `betaSchedules`.
    func requireNoiseSchedule(_ betaSchedules: [BetaSchedule], minTrainSteps: Int, scheduler: String) throws {
        try requireRange(numTrainTimesteps, minTrainSteps...1_000_000, key: "num_train_timesteps", scheduler: scheduler)
        try require(betaSchedule, in: betaSchedules, key: "beta_schedule", scheduler: scheduler)
    }

    /// The `count` inference timesteps of this config's `timestep_spacing` and `steps_offset`,
    /// descending (`spacedTimesteps`; `integer` rounds them as the integer schedulers do).
    func inferenceTimesteps(_ count: Int, integer: Bool) -> [Double] {
        spacedTimesteps(timestepSpacing, count: count, trainSteps: numTrainTimesteps, stepsOffset: stepsOffset,
                        integer: integer)
    }
}

// MARK: - Checks

/// Checks that a decoded option is one this scheduler implements.
func require<E: RawRepresentable>(_ value: E, in allowed: [E], key: String, scheduler: String) throws
    where E: Equatable, E.RawValue == String {
    guard allowed.contains(value) else {
        throw SchedulerError.unsupportedValue(key: key, value: "\"\(value.rawValue)\"", scheduler: scheduler,
                                              supported: allowed.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))
    }
}

/// Checks that a boolean feature this package does not implement is off.
func requireOff(_ flag: Bool, key: String, scheduler: String) throws {
    if flag {
        throw SchedulerError.unsupportedValue(key: key, value: "true", scheduler: scheduler, supported: "false")
    }
}

/// Checks that at most one of the named boolean options is on.
func requireAtMostOne(_ options: KeyValuePairs<String, Bool>) throws {
    if options.filter(\.value).count > 1 {
        throw SchedulerError.conflictingKeys("only one of \(options.map(\.key).joined(separator: ", ")) can be true")
    }
}

/// Checks the step count given to `setTimesteps`: at least 1, and at most `limit` when there is one.
func requireStepCount(_ count: Int, limit: Int?, scheduler: String) throws {
    guard count >= 1, count <= limit ?? Int.max else {
        throw SchedulerError.invalidStepCount(count, limit: limit, scheduler: scheduler)
    }
}

/// Checks a numeric option.
func requireRange<T: Comparable>(_ value: T, _ range: ClosedRange<T>, key: String, scheduler: String) throws {
    guard range.contains(value) else {
        throw SchedulerError.unsupportedValue(key: key, value: "\(value)", scheduler: scheduler,
                                              supported: "\(range.lowerBound)...\(range.upperBound)")
    }
}

extension KeyedEncodingContainer {
    /// Encodes `value`, or JSON null when it is nil (diffusers writes `"trained_betas": null`).
    mutating func encodeOrNull<T: Encodable>(_ value: T?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }
}

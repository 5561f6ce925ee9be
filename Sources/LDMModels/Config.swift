// Shared pieces of the model configurations: errors, int-or-list values, and JSON loading.
// Each model's config is a Codable struct whose coding keys are diffusers' / transformers'
// `config.json` keys; unknown keys are ignored, unsupported values are an error naming the key.

import Foundation

/// Errors while building or loading a model.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case unsupported(component: String, key: String, value: String)
    case invalidConfig(path: String, reason: String)
    case missingFile(String)
    case missingTensor(component: String, name: String, shape: [Int])
    case unexpectedTensor(component: String, name: String, shape: [Int])
    case shapeMismatch(component: String, name: String, expected: [Int], found: [Int])
    case invalidInput(String)

    public var description: String {
        switch self {
        case let .unsupported(c, k, v): return "\(c): unsupported value \(v) for config key \"\(k)\""
        case let .invalidConfig(p, r): return "\(p): \(r)"
        case let .missingFile(p): return "missing file \(p)"
        case let .missingTensor(c, n, s): return "\(c): checkpoint lacks tensor \(n) (expected shape \(s))"
        case let .unexpectedTensor(c, n, s): return "\(c): checkpoint has unexpected tensor \(n) of shape \(s)"
        case let .shapeMismatch(c, n, e, f): return "\(c): tensor \(n) has shape \(f), the model expects \(e)"
        case let .invalidInput(m): return m
        }
    }
}

/// A config value that diffusers allows either as one integer or as one integer per block.
public enum IntOrList: Codable, Equatable, Sendable {
    case one(Int)
    case list([Int])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Int.self) { self = .one(v) } else { self = .list(try c.decode([Int].self)) }
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self { case let .one(v): try c.encode(v); case let .list(v): try c.encode(v) }
    }
    /// The value for each of `count` blocks.
    public func perBlock(_ count: Int) -> [Int] {
        switch self { case let .one(v): return Array(repeating: v, count: count); case let .list(v): return v }
    }
}

/// Decodes a config file, with errors that name the file.
public func loadConfig<T: Decodable>(_ type: T.Type, from url: URL) throws -> T {
    guard let data = try? Data(contentsOf: url) else { throw ModelError.missingFile(url.path) }
    do {
        return try JSONDecoder().decode(T.self, from: data)
    } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx) {
        let key = ctx.codingPath.map(\.stringValue).joined(separator: ".")
        throw ModelError.invalidConfig(path: url.path, reason: "bad value for \"\(key)\": \(ctx.debugDescription)")
    } catch let DecodingError.dataCorrupted(ctx) {
        throw ModelError.invalidConfig(path: url.path, reason: "not valid JSON (\(ctx.debugDescription))")
    } catch {
        throw ModelError.invalidConfig(path: url.path, reason: "\(error)")
    }
}

/// Writes a config as pretty, key-sorted JSON (atomically).
public func saveConfig<T: Encodable>(_ value: T, to url: URL) throws {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    try e.encode(value).write(to: url, options: .atomic)
}

extension KeyedDecodingContainer {
    /// The value for `key`, or `fallback` when absent or null.
    func value<T: Decodable>(_ key: Key, _ fallback: T) throws -> T {
        try decodeIfPresent(T.self, forKey: key) ?? fallback
    }
}

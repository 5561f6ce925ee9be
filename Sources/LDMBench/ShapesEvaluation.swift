// Prompt-adherence accounting for the Shapes world: how many images the analyser judged to match
// their caption, per caption form and overall; and one `ldm eval` run's settings and figures as the
// JSON file `ldm eval --json` writes.

import Foundation
import LDMModels
import LDMTraining

/// Counts correct judgements per caption form and prints them as a table.
public struct ShapesEvaluation: Sendable, CustomStringConvertible {
    /// Correct and total judgements of one caption form. In JSON `{"correct", "total", "accuracy"}`,
    /// accuracy null when nothing was recorded (it is recomputed, not read, when decoding).
    public struct Tally: Sendable, Hashable, Codable {
        public var correct = 0
        public var total = 0

        public init(correct: Int = 0, total: Int = 0) { self.correct = correct; self.total = total }

        /// correct / total, or nil when nothing was recorded.
        public var accuracy: Double? { total == 0 ? nil : Double(correct) / Double(total) }

        /// Both tallies together.
        public static func + (a: Tally, b: Tally) -> Tally { Tally(correct: a.correct + b.correct, total: a.total + b.total) }

        enum CodingKeys: String, CodingKey { case correct, total, accuracy }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(correct: try c.decode(Int.self, forKey: .correct), total: try c.decode(Int.self, forKey: .total))
            if correct < 0 || correct > total {
                throw DecodingError.dataCorruptedError(forKey: .correct, in: c, debugDescription: "correct \(correct) of total \(total)")
            }
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(correct, forKey: .correct)
            try c.encode(total, forKey: .total)
            try c.encode(accuracy, forKey: .accuracy) // null when total is 0
        }
    }

    /// The tallies by caption form.
    public private(set) var tallies: [CaptionForm: Tally] = [:]

    public init() {}

    /// Records one judgement of an image whose caption has `form`.
    public mutating func record(form: CaptionForm, correct: Bool) {
        tallies[form, default: Tally()].total += 1
        if correct { tallies[form, default: Tally()].correct += 1 }
    }

    /// How often each attribute held, over the verdicts recorded with `record(_:)`.
    public private(set) var attributeTallies: [ShapesAttribute: Tally] = [:]

    /// Records an analyser verdict: correct when the image matches its caption. Each judged
    /// attribute is tallied too.
    public mutating func record(_ verdict: ShapesVerdict) {
        record(form: verdict.caption.form, correct: verdict.matches)
        strictTallies[verdict.caption.form, default: Tally()].total += 1
        if verdict.matchesStrictly { strictTallies[verdict.caption.form, default: Tally()].correct += 1 }
        for (attribute, holds) in verdict.attributes {
            attributeTallies[attribute, default: Tally()].total += 1
            if holds { attributeTallies[attribute, default: Tally()].correct += 1 }
        }
    }

    /// The strict reading by caption form: the image matches and every judged shape is well formed
    /// (`ShapesVerdict.matchesStrictly`), over the verdicts recorded with `record(_:)`.
    public private(set) var strictTallies: [CaptionForm: Tally] = [:]

    /// The strict reading in the layout of `table` (forms recorded with `record(_:)` only).
    public var strictTable: String {
        var lines = [Self.pad("caption form", 17, left: true) + Self.pad("correct", 9) + Self.pad("total", 8)
            + Self.pad("accuracy", 10)]
        for form in CaptionForm.allCases {
            if let tally = strictTallies[form] { lines.append(Self.row(form.description, tally)) }
        }
        lines.append(Self.row("overall", strictTallies.values.reduce(Tally(), +)))
        return lines.joined(separator: "\n")
    }

    /// All forms together.
    public var overall: Tally {
        tallies.values.reduce(into: Tally()) { sum, tally in
            sum.correct += tally.correct
            sum.total += tally.total
        }
    }

    /// Accuracy of one caption form, or nil when none was recorded.
    public func accuracy(for form: CaptionForm) -> Double? { tallies[form]?.accuracy }

    /// Accuracy over all forms, or nil when nothing was recorded.
    public var overallAccuracy: Double? { overall.accuracy }

    /// The table: one row per caption form, then the overall row.
    /// ```
    /// caption form       correct   total  accuracy
    /// color shape             98     100     98.0%
    /// ...
    /// overall                490     500     98.0%
    /// ```
    public var table: String {
        var lines = [Self.pad("caption form", 17, left: true) + Self.pad("correct", 9) + Self.pad("total", 8)
            + Self.pad("accuracy", 10)]
        for form in CaptionForm.allCases {
            lines.append(Self.row(form.description, tallies[form] ?? Tally()))
        }
        lines.append(Self.row("overall", overall))
        return lines.joined(separator: "\n")
    }

    /// How often each judged attribute held (only attributes seen in recorded verdicts), in
    /// the same layout as `table`.
    public var attributeTable: String {
        var lines = [Self.pad("attribute", 17, left: true) + Self.pad("correct", 9) + Self.pad("total", 8)
            + Self.pad("accuracy", 10)]
        for attribute in ShapesAttribute.allCases {
            if let tally = attributeTallies[attribute] { lines.append(Self.row(attribute.rawValue, tally)) }
        }
        return lines.joined(separator: "\n")
    }

    public var description: String { table }

    /// Writes `table` to standard output.
    public func printTable() {
        print(table)
    }

    private static func row(_ name: String, _ tally: Tally) -> String {
        let accuracy = tally.accuracy.map(percent) ?? "-"
        return pad(name, 17, left: true) + pad(String(tally.correct), 9) + pad(String(tally.total), 8)
            + pad(accuracy, 10)
    }

    private static func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - text.count))
        return left ? text + fill : fill + text
    }

    /// 0.8181… → "81.8%".
    private static func percent(_ value: Double) -> String {
        let tenths = Int((value * 1000).rounded())
        return "\(tenths / 10).\(tenths % 10)%"
    }
}

/// One `ldm eval` run as `ldm eval --json` writes it: the settings, the figures its tables print,
/// and how long sampling took. Keys are snake_case (`images_per_prompt`, `seconds_per_image`).
public struct ShapesEvaluationResult: Codable, Sendable, Equatable {
    /// The model folder evaluated.
    public var model: String
    /// The prompt file, as given.
    public var prompts: String
    /// Images generated per prompt (one batch per prompt).
    public var imagesPerPrompt: Int
    /// Denoising steps.
    public var steps: Int
    /// Classifier-free guidance scale.
    public var guidance: Float
    /// The sampler that ran, as the PNG `parameters` name it ("DPM++ 2M").
    public var sampler: String
    /// Seed of the first prompt (prompt i used seed + i).
    public var seed: UInt64
    /// Judgements per caption form, keyed by the form's name in the table (`CaptionForm.description`,
    /// "color shape"); every form the table lists, with total 0 for forms the prompts lacked.
    public var forms: [String: ShapesEvaluation.Tally]
    /// All forms together.
    public var overall: ShapesEvaluation.Tally
    /// How often each judged attribute held, keyed by `ShapesAttribute.rawValue`; nil when not computed.
    public var attributes: [String: ShapesEvaluation.Tally]?
    /// Images generated and judged.
    public var images: Int
    /// Wall-clock seconds spent in generation (text encoding, denoising, decoding), without
    /// loading the model, judging or writing images.
    public var generationSeconds: Double
    /// `generationSeconds / images`.
    public var secondsPerImage: Double
    /// For one shard of a sharded evaluation: which (0-based) of how many, and the prompt file's
    /// prompt count; nil for a whole evaluation (and for `merged`'s result).
    public var shardIndex: Int?
    public var shardCount: Int?
    public var promptCount: Int?

    enum CodingKeys: String, CodingKey {
        case model, prompts, steps, guidance, sampler, seed, forms, overall, attributes, images
        case imagesPerPrompt = "images_per_prompt", generationSeconds = "generation_seconds", secondsPerImage = "seconds_per_image"
        case shardIndex = "shard_index", shardCount = "shard_count", promptCount = "prompt_count"
    }

    /// The evaluation of all shards together: every shard 0 ..< N exactly once, run with the same
    /// settings on the same prompt file; judgements and generation time are added up.
    public static func merged(_ parts: [ShapesEvaluationResult], names: [String]) throws -> ShapesEvaluationResult {
        guard let first = parts.first else { throw EvaluationFileError.merge("no files to merge") }
        guard let n = first.shardCount else { throw EvaluationFileError.merge("\(names[0]) is not a shard (written without --shard)") }
        var seen = Set<Int>()
        for (r, name) in zip(parts, names) {
            guard let i = r.shardIndex, r.shardCount == n else {
                throw EvaluationFileError.merge("\(name) is not one of \(n) shards (\(r.shardCount.map { "shard of \($0)" } ?? "not a shard"))")
            }
            guard r.model == first.model, r.prompts == first.prompts, r.imagesPerPrompt == first.imagesPerPrompt, r.steps == first.steps,
                  r.guidance == first.guidance, r.sampler == first.sampler, r.seed == first.seed, r.promptCount == first.promptCount else {
                throw EvaluationFileError.merge("\(name) was run with other settings than \(names[0]) (model, prompts, images, steps, guidance, sampler or seed)")
            }
            guard seen.insert(i).inserted else { throw EvaluationFileError.merge("shard \(i) of \(n) is given twice (\(name))") }
        }
        let missing = (0..<n).filter { !seen.contains($0) }
        if !missing.isEmpty { throw EvaluationFileError.merge("shards \(missing.map(String.init).joined(separator: ", ")) of \(n) are missing") }
        func add(_ a: [String: ShapesEvaluation.Tally]?, _ b: [String: ShapesEvaluation.Tally]?) -> [String: ShapesEvaluation.Tally]? {
            guard let a else { return b }
            guard let b else { return a }
            return a.merging(b, uniquingKeysWith: +)
        }
        var forms = first.forms, attributes = first.attributes, overall = first.overall
        var images = first.images, seconds = first.generationSeconds
        for r in parts.dropFirst() {
            forms = add(forms, r.forms)!
            attributes = add(attributes, r.attributes)
            overall = overall + r.overall
            images += r.images
            seconds += r.generationSeconds
        }
        return ShapesEvaluationResult(model: first.model, prompts: first.prompts, imagesPerPrompt: first.imagesPerPrompt, steps: first.steps,
                                      guidance: first.guidance, sampler: first.sampler, seed: first.seed, forms: forms, overall: overall,
                                      attributes: attributes, images: images, generationSeconds: seconds)
    }

    public init(model: String, prompts: String, imagesPerPrompt: Int, steps: Int, guidance: Float, sampler: String, seed: UInt64,
                forms: [String: ShapesEvaluation.Tally], overall: ShapesEvaluation.Tally,
                attributes: [String: ShapesEvaluation.Tally]?, images: Int, generationSeconds: Double) {
        self.model = model; self.prompts = prompts; self.imagesPerPrompt = imagesPerPrompt; self.steps = steps
        self.guidance = guidance; self.sampler = sampler; self.seed = seed
        self.forms = forms; self.overall = overall; self.attributes = attributes
        self.images = images; self.generationSeconds = generationSeconds
        secondsPerImage = images > 0 ? generationSeconds / Double(images) : 0
    }

    /// The figures of `evaluation` (every caption form, and the attributes when any were judged),
    /// with the run's settings and its generation time over `evaluation.overall.total` images.
    public init(_ evaluation: ShapesEvaluation, model: String, prompts: String, imagesPerPrompt: Int, steps: Int,
                guidance: Float, sampler: String, seed: UInt64, generationSeconds: Double) {
        var forms: [String: ShapesEvaluation.Tally] = [:]
        for form in CaptionForm.allCases { forms[form.description] = evaluation.tallies[form] ?? .init() }
        let attributes = Dictionary(uniqueKeysWithValues: evaluation.attributeTallies.map { ($0.key.rawValue, $0.value) })
        self.init(model: model, prompts: prompts, imagesPerPrompt: imagesPerPrompt, steps: steps, guidance: guidance,
                  sampler: sampler, seed: seed, forms: forms, overall: evaluation.overall,
                  attributes: attributes.isEmpty ? nil : attributes, images: evaluation.overall.total,
                  generationSeconds: generationSeconds)
    }

    /// Writes the result as pretty, key-sorted JSON, atomically (a temporary file beside `path`, then a rename).
    public func write(to path: String) throws {
        do {
            try saveConfig(self, to: URL(fileURLWithPath: path))
        } catch {
            throw EvaluationFileError.unwritable(path: path, reason: Self.reason(error))
        }
    }

    /// Reads a file written by `write(to:)`.
    public static func read(path: String) throws -> ShapesEvaluationResult {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw EvaluationFileError.unreadable(path: path, reason: reason(error))
        }
        do {
            return try JSONDecoder().decode(ShapesEvaluationResult.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw EvaluationFileError.invalid(path: path, reason: "\"\(key.stringValue)\" missing")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context),
                let DecodingError.dataCorrupted(context) {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw EvaluationFileError.invalid(path: path, reason: key.isEmpty ? "not valid JSON" : "bad value for \"\(key)\"")
        } catch {
            throw EvaluationFileError.invalid(path: path, reason: "\(error)")
        }
    }

    /// A Foundation file error as the C library words it ("No such file or directory"), as PNG errors are.
    static func reason(_ error: Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if ns.domain == NSCocoaErrorDomain {
            switch CocoaError.Code(rawValue: ns.code) {
            case .fileReadNoSuchFile, .fileNoSuchFile: return String(cString: strerror(ENOENT))
            case .fileReadNoPermission, .fileWriteNoPermission: return String(cString: strerror(EACCES))
            default: break
            }
        }
        return ns.localizedDescription
    }
}

/// Errors reading or writing an `ldm eval --json` file.
public enum EvaluationFileError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case invalid(path: String, reason: String)
    case unwritable(path: String, reason: String)
    case merge(String)

    public var description: String {
        switch self {
        case let .merge(reason): return "cannot merge: \(reason)"
        case let .unreadable(path, reason): return "cannot read eval result \(path): \(reason)"
        case let .invalid(path, reason): return "\(path) is not an `ldm eval --json` file: \(reason)"
        case let .unwritable(path, reason): return "cannot write \(path): \(reason)"
        }
    }
}

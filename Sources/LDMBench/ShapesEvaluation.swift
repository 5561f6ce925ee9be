// Prompt-adherence accounting for the Shapes world: how many images the analyser judged to match
// their caption, per caption form and overall.

import LDMTraining

/// Counts correct judgements per caption form and prints them as a table.
public struct ShapesEvaluation: Sendable, CustomStringConvertible {
    /// Correct and total judgements of one caption form.
    public struct Tally: Sendable, Hashable {
        public var correct = 0
        public var total = 0

        /// correct / total, or nil when nothing was recorded.
        public var accuracy: Double? { total == 0 ? nil : Double(correct) / Double(total) }
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
        for (attribute, holds) in verdict.attributes {
            attributeTallies[attribute, default: Tally()].total += 1
            if holds { attributeTallies[attribute, default: Tally()].correct += 1 }
        }
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

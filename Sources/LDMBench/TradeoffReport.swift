// The trade-off in miniature (issue 6): Shapes models compared by prompt adherence (`ldm eval`
// accuracy per caption form) against training time and sampling time, as a markdown table and a
// grouped bar chart. Each model is one entry: a label, its training hours, and one or more
// `ldm eval --json` files whose judgements are added together (single-shape prompts + relation
// prompts, say).

import Foundation
import LDMIO
import LDMTraining

/// Models side by side: accuracy per caption form, training hours, sampling seconds per image.
public struct TradeoffReport: Sendable {
    /// One model: its eval results merged.
    public struct Entry: Sendable {
        /// The name shown in the table and the chart's legend.
        public var label: String
        /// Hours the model trained (as the user gives them: wall clock on their machine).
        public var trainingHours: Double
        /// The eval results, with the files they came from.
        public var results: [(path: String, result: ShapesEvaluationResult)]

        public init(label: String, trainingHours: Double, results: [(path: String, result: ShapesEvaluationResult)]) {
            self.label = label; self.trainingHours = trainingHours; self.results = results
        }

        /// Judgements per caption form name, added over the results.
        public var forms: [String: ShapesEvaluation.Tally] {
            results.reduce(into: [:]) { sum, r in
                for (form, tally) in r.result.forms { sum[form, default: .init()] = sum[form, default: .init()] + tally }
            }
        }

        /// All judgements, added over the results.
        public var overall: ShapesEvaluation.Tally { results.reduce(.init()) { $0 + $1.result.overall } }

        /// Generation seconds over images generated, all results together; nil when none were.
        public var secondsPerImage: Double? {
            let images = results.reduce(0) { $0 + $1.result.images }
            return images == 0 ? nil : results.reduce(0) { $0 + $1.result.generationSeconds } / Double(images)
        }
    }

    public var entries: [Entry]

    public init(entries: [Entry]) { self.entries = entries }

    /// Reads the entries given as `LABEL=HOURS=EVAL.json[,EVAL.json…]` (see `parseEntry`).
    public init(entryArguments: [String]) throws {
        guard !entryArguments.isEmpty else { throw TradeoffReportError.noEntries }
        entries = try entryArguments.map { argument in
            let (label, hours, paths) = try Self.parseEntry(argument)
            return Entry(label: label, trainingHours: hours,
                         results: try paths.map { ($0, try ShapesEvaluationResult.read(path: $0)) })
        }
    }

    /// `LABEL=HOURS=EVAL.json[,EVAL.json…]` split into its parts from the right: comma-separated
    /// file paths after the last `=`, the hours (a number ≥ 0) before it, and the label — which may
    /// itself contain `=` ("latent, f = 4") — before that.
    public static func parseEntry(_ argument: String) throws -> (label: String, hours: Double, paths: [String]) {
        var parts = argument.split(separator: "=", omittingEmptySubsequences: false).map(String.init)
        func bad(_ problem: String) -> TradeoffReportError { .badEntry(argument, problem) }
        guard parts.count >= 3 else { throw bad("expected LABEL=HOURS=EVAL.json[,EVAL.json…]") }
        parts = [parts.dropLast(2).joined(separator: "="), parts[parts.count - 2], parts[parts.count - 1]]
        let label = parts[0].trimmingCharacters(in: .whitespaces)
        guard !label.isEmpty else { throw bad("the label is empty") }
        guard let hours = Double(parts[1].trimmingCharacters(in: .whitespaces)), hours.isFinite, hours >= 0 else {
            throw bad("training hours \"\(parts[1])\" is not a number ≥ 0")
        }
        let paths = parts[2].split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !paths.contains(where: \.isEmpty) else { throw bad("an empty eval file name") }
        return (label, hours, paths)
    }

    /// The caption forms with judgements in any entry, in the grammar's order (then any unknown
    /// names, sorted).
    public var formNames: [String] {
        let present = Set(entries.flatMap { $0.forms.filter { $0.value.total > 0 }.keys })
        let known = CaptionForm.allCases.map(\.description)
        return known.filter(present.contains) + present.subtracting(known).sorted()
    }

    /// The column title of a caption form ("color shape" → "color+shape", "size color shape" → "size").
    public static func columnTitle(_ form: String) -> String {
        switch form {
        case CaptionForm.colorShape.description: return "color+shape"
        case CaptionForm.sizeColorShape.description: return "size"
        default: return form
        }
    }

    /// The markdown table, then one line per entry saying what was measured, then notes.
    /// ```
    /// | model | training hours | sampling s/image | color+shape | … | overall |
    /// |---|--:|--:|--:|…|--:|
    /// | latent | 3.50 | 0.84 | 71.9% (230/320) | … | 40.2% (289/720) |
    /// ```
    public var markdown: String {
        let forms = formNames
        var lines = ["| model | training hours | sampling s/image | " + forms.map(Self.columnTitle).joined(separator: " | ") + " | overall |",
                     "|---|--:|--:|" + String(repeating: "--:|", count: forms.count + 1)]
        for e in entries {
            let tallies = e.forms
            let cells = [Self.escape(e.label), String(format: "%.2f", e.trainingHours), e.secondsPerImage.map(Self.seconds) ?? "–"]
                + forms.map { Self.cell(tallies[$0]) } + [Self.cell(e.overall)]
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        lines.append("")
        for e in entries {
            let settings = e.results.map { "\(Self.settings($0.result)) on \($0.result.prompts)" }
            let images = e.results.reduce(0) { $0 + $1.result.images }
            let seconds = e.results.reduce(0) { $0 + $1.result.generationSeconds }
            var models: [String] = []
            for r in e.results where !models.contains(r.result.model) { models.append(r.result.model) }
            lines.append("- \(Self.escape(e.label)): \(models.joined(separator: ", ")) — "
                         + settings.joined(separator: "; ") + "; \(Self.count(images, "image")) in " + String(format: "%.1f s of sampling", seconds))
        }
        let distinct = Set(entries.flatMap { $0.results.map { Self.settings($0.result) } })
        if distinct.count > 1 {
            lines.append("")
            lines.append("Note: the eval settings differ between files (\(distinct.sorted().joined(separator: " / "))), "
                         + "so compare with care.")
        }
        return lines.joined(separator: "\n")
    }

    /// Accuracy per caption form (and overall) as grouped bars on a linear 0–100% axis, one
    /// colour per entry.
    public func chart(title: String = "Accuracy per caption form") -> BarChart {
        let groups = (formNames.map(Optional.some) + [nil]).map { form -> BarChart.Group in
            let bars = entries.enumerated().compactMap { i, e -> BarChart.Bar? in
                let tally: ShapesEvaluation.Tally? = if let form { e.forms[form] } else { e.overall }
                return tally?.accuracy.map { BarChart.Bar(value: 100 * $0, series: i) }
            }
            return BarChart.Group(label: [form.map(Self.columnTitle) ?? "overall"], bars: bars)
        }
        return BarChart(title: title, unit: "%", series: entries.map(\.label), groups: groups,
                        axis: .linear(0...100, tick: 25))
    }

    /// Writes `markdown` (with a final newline) atomically: a temporary file beside `path`, then a rename.
    public func writeMarkdown(to path: String) throws {
        do {
            try Data((markdown + "\n").utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw EvaluationFileError.unwritable(path: path, reason: ShapesEvaluationResult.reason(error))
        }
    }

    /// "71.9% (230/320)", or "–" when nothing was judged.
    static func cell(_ tally: ShapesEvaluation.Tally?) -> String {
        guard let tally, let accuracy = tally.accuracy else { return "–" }
        return String(format: "%.1f%% (%d/%d)", 100 * accuracy, tally.correct, tally.total)
    }

    /// Seconds with three significant figures or so: 0.0123, 0.84, 17.7, 123.
    static func seconds(_ s: Double) -> String {
        String(format: s < 0.1 ? "%.4f" : s < 10 ? "%.2f" : s < 100 ? "%.1f" : "%.0f", s)
    }

    /// "4 images per prompt, 20 steps, guidance 7.5, DPM++ 2M".
    static func settings(_ r: ShapesEvaluationResult) -> String {
        "\(count(r.imagesPerPrompt, "image")) per prompt, \(count(r.steps, "step")), guidance \(String(format: "%g", r.guidance)), \(r.sampler)"
    }

    /// "1 image", "4 images".
    static func count(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }

    /// A label safe inside a table cell.
    static func escape(_ text: String) -> String { text.replacingOccurrences(of: "|", with: "\\|") }
}

/// Errors of the trade-off report's arguments.
public enum TradeoffReportError: Error, CustomStringConvertible, Equatable {
    case noEntries
    /// An `--entry` argument and what is wrong with it.
    case badEntry(String, String)

    public var description: String {
        switch self {
        case .noEntries: return "give at least one --entry LABEL=HOURS=EVAL.json[,EVAL.json…]"
        case let .badEntry(argument, problem): return "--entry \"\(argument)\": \(problem)"
        }
    }
}

// `ldm report tradeoff`: models compared by `ldm eval` accuracy against training and sampling time,
// as a markdown table and a bar chart.

import ArgumentParser
import Foundation
import LDMBench

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Reports drawn from earlier measurements.", subcommands: [Tradeoff.self, Merge.self])

    struct Tradeoff: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "tradeoff",
            abstract: "Accuracy per caption form against training hours and sampling seconds per image, for several models.",
            discussion: """
                Each --entry is one model: a label, its training hours and the `ldm eval --json` files measured \
                on it, comma-separated; the judgements of several files are added together (single-shape prompts \
                + relation prompts, say). Prints the markdown table.
                """)
        @Option(name: .customLong("entry"), help: ArgumentHelp("A model: LABEL=HOURS=EVAL.json[,EVAL.json…] (repeat for each model; the label may contain '=').",
                                                                valueName: "label=hours=files"))
        var entries: [String] = []
        @Option(help: "Also write the markdown table to this path.") var markdown: String?
        @Option(help: "Also draw accuracy per caption form as grouped bars (PNG).") var chart: String?
        @Option(help: "The chart's title.") var title = "Accuracy per caption form"

        func validate() throws {
            if entries.isEmpty { throw ValidationError(TradeoffReportError.noEntries.description) }
            for entry in entries {
                do { _ = try TradeoffReport.parseEntry(entry) } catch { throw ValidationError("\(error)") }
            }
            if let chart, !chart.lowercased().hasSuffix(".png") { throw ValidationError("--chart must end in .png") }
            if let chart { try requireWritableFolder(for: chart, option: "--chart") }
            if let markdown { try requireWritableFolder(for: markdown, option: "--markdown") }
        }

        func run() throws {
            let report = try TradeoffReport(entryArguments: entries)
            print(report.markdown)
            if let markdown { try report.writeMarkdown(to: markdown) }
            if let chart { try report.chart(title: title).render().write(to: chart) }
        }
    }

    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "merge",
            abstract: "Merge the --json files of a sharded `ldm eval` (one per shard) into the evaluation of all prompts.")
        @Argument(help: "The shards' `ldm eval --shard I/N --json` files, every shard once.") var files: [String] = []
        @Option(help: "Write the merged JSON here (as `ldm eval --json` writes it).") var json: String?

        func validate() throws {
            if files.isEmpty { throw ValidationError("give the shards' JSON files") }
            if let json { try requireWritableFolder(for: json, option: "--json") }
        }

        func run() throws {
            let merged: ShapesEvaluationResult
            do { merged = try ShapesEvaluationResult.merged(try files.map(ShapesEvaluationResult.read), names: files) } catch {
                throw ValidationError("\(error)")
            }
            print("merged \(files.count) shards: \(merged.images) images")
            for (form, t) in merged.forms.sorted(by: { $0.key < $1.key }) where t.total > 0 {
                print(String(format: "%@: %d/%d (%.1f%%)", form, t.correct, t.total, 100 * (t.accuracy ?? 0)))
            }
            print(String(format: "overall: %d/%d (%.1f%%)", merged.overall.correct, merged.overall.total, 100 * (merged.overall.accuracy ?? 0)))
            if let json { try merged.write(to: json) }
        }
    }
}

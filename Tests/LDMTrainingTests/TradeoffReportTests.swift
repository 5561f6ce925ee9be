// The trade-off report: `ldm eval --json` results, merged per model into a markdown table and a
// grouped bar chart on a linear percentage axis; and the bar chart's log axis, unchanged.
import Foundation
import XCTest
import LDMIO
@testable import LDMBench
@testable import LDMTraining

final class TradeoffReportTests: XCTestCase {
    private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The log axis is still the default and draws exactly what it drew before the linear axis came:
    /// the committed `docs/latent-vs-pixel.png`, re-rendered from the committed JSON beside it.
    func testLogChartStillDrawsTheCommittedDocsChart() throws {
        let docs = repositoryRoot.appendingPathComponent("docs")
        let report = try JSONDecoder().decode(LatentVsPixelReport.self, from: Data(contentsOf: docs.appendingPathComponent("latent-vs-pixel.json")))
        let drawn = report.chart().render()
        let committed = try PNGImage.read(path: docs.appendingPathComponent("latent-vs-pixel.png").path)
        XCTAssertEqual([drawn.width, drawn.height], [committed.width, committed.height])
        // The reader gives RGBA; the chart is RGB.
        let committedRGB = (0..<committed.width * committed.height).flatMap { p in
            committed.pixels[p * committed.channels..<p * committed.channels + 3]
        }
        XCTAssertTrue(drawn.pixels == committedRGB, "the log chart's pixels changed")
    }
}

// MARK: Eval results, the table and the chart

extension TradeoffReportTests {
    /// An eval result with the given (correct, total) per caption form and `seconds` of generation.
    func result(_ forms: [CaptionForm: (Int, Int)], seconds: Double, prompts: String = "p.txt") -> ShapesEvaluationResult {
        var evaluation = ShapesEvaluation()
        for (form, (correct, total)) in forms {
            for i in 0..<total { evaluation.record(form: form, correct: i < correct) }
        }
        return ShapesEvaluationResult(evaluation, model: "runs/model", prompts: prompts, imagesPerPrompt: 4, steps: 20,
                                      guidance: 7.5, sampler: "DPM++ 2M", seed: 1000, generationSeconds: seconds)
    }

    func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ldm-tradeoff-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    func testEvalResultRoundTripsThroughItsJSONFile() throws {
        var r = result([.colorShape: (3, 4), .relation: (1, 8)], seconds: 6)
        r.attributes = ["color": .init(correct: 10, total: 12), "object color": .init(correct: 2, total: 8)]
        XCTAssertEqual(r.images, 12)
        XCTAssertEqual(r.secondsPerImage, 0.5)
        XCTAssertEqual(r.overall, .init(correct: 4, total: 12))
        XCTAssertEqual(r.forms.count, CaptionForm.allCases.count) // every form the table lists, as it lists them
        XCTAssertEqual(r.forms["color shape"], .init(correct: 3, total: 4))
        XCTAssertEqual(r.forms["position"], .init(correct: 0, total: 0))

        let path = try temporaryFolder().appendingPathComponent("eval.json").path
        try r.write(to: path)
        XCTAssertEqual(try ShapesEvaluationResult.read(path: path), r)

        // The file as other tools see it: snake_case keys, each form as {correct, total, accuracy}.
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        XCTAssertEqual(Set(json.keys), ["model", "prompts", "images_per_prompt", "steps", "guidance", "sampler", "seed", "forms",
                                        "overall", "attributes", "images", "generation_seconds", "seconds_per_image"])
        XCTAssertEqual(json["images_per_prompt"] as? Int, 4)
        XCTAssertEqual(json["seed"] as? Int, 1000)
        XCTAssertEqual(json["sampler"] as? String, "DPM++ 2M")
        XCTAssertEqual(json["seconds_per_image"] as? Double, 0.5)
        let forms = try XCTUnwrap(json["forms"] as? [String: [String: Any]])
        XCTAssertEqual(forms["color shape"]?["correct"] as? Int, 3)
        XCTAssertEqual(forms["color shape"]?["total"] as? Int, 4)
        XCTAssertEqual(forms["color shape"]?["accuracy"] as? Double, 0.75)
        XCTAssertTrue(forms["position"]?["accuracy"] is NSNull, "no accuracy without judgements: \(forms)")
        let overall = try XCTUnwrap(json["overall"] as? [String: Any])
        XCTAssertEqual(overall["accuracy"] as? Double ?? 0, 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual((json["attributes"] as? [String: [String: Any]])?["object color"]?["total"] as? Int, 8)

        // Without attributes the key is left out, and still reads back.
        r.attributes = nil
        try r.write(to: path)
        XCTAssertEqual(try ShapesEvaluationResult.read(path: path), r)
    }

    func testBadEvalFilesAreOneClearError() throws {
        let dir = try temporaryFolder()
        XCTAssertThrowsError(try ShapesEvaluationResult.read(path: dir.appendingPathComponent("none.json").path)) {
            XCTAssertEqual("\($0)", "cannot read eval result \(dir.path)/none.json: No such file or directory")
        }
        let partial = dir.appendingPathComponent("partial.json")
        try #"{"model": "m", "prompts": "p"}"#.write(to: partial, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ShapesEvaluationResult.read(path: partial.path)) {
            XCTAssertTrue("\($0)".hasPrefix("\(partial.path) is not an `ldm eval --json` file: \""), "\($0)")
        }
    }

    func testEntryArgumentsSplitFromTheRight() throws {
        let e = try TradeoffReport.parseEntry("latent, f = 4=3.5=a.json,dir/b.json")
        XCTAssertEqual(e.label, "latent, f = 4")
        XCTAssertEqual(e.hours, 3.5)
        XCTAssertEqual(e.paths, ["a.json", "dir/b.json"])
        for (bad, problem) in [("latent=a.json", "expected LABEL=HOURS=EVAL.json"), ("=1=a.json", "label is empty"),
                               ("x=soon=a.json", "not a number"), ("x=-1=a.json", "not a number"), ("x=1=a.json,", "empty eval file")] {
            XCTAssertThrowsError(try TradeoffReport.parseEntry(bad), bad) {
                XCTAssertTrue("\($0)".hasPrefix("--entry \"\(bad)\": ") && "\($0)".contains(problem), "\($0)")
            }
        }
    }

    /// Two models; the first measured with two files (single-shape prompts, relation prompts),
    /// whose judgements and times add up.
    func testMarkdownTableMergesTheFilesOfAnEntry() throws {
        let dir = try temporaryFolder()
        func file(_ name: String, _ r: ShapesEvaluationResult) throws -> String {
            let path = dir.appendingPathComponent(name).path
            try r.write(to: path)
            return path
        }
        let single = try file("latent-single.json", result([.colorShape: (3, 4), .position: (1, 4)], seconds: 8, prompts: "single.txt"))
        let relations = try file("latent-relations.json", result([.relation: (1, 4)], seconds: 6, prompts: "relations.txt"))
        let pixel = try file("pixel.json", result([.colorShape: (4, 4), .position: (2, 4)], seconds: 40, prompts: "single.txt"))
        let report = try TradeoffReport(entryArguments: ["latent, f = 4=3.5=\(single),\(relations)", "pixel=20=\(pixel)"])

        XCTAssertEqual(report.formNames, ["color shape", "position", "relation"])
        let rows = report.markdown.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(Array(rows.prefix(4)), [
            "| model | training hours | sampling s/image | color+shape | position | relation | overall |",
            "|---|--:|--:|--:|--:|--:|--:|",
            // (3 + 1 + 1) of 12 correct; 14 s over 12 images.
            "| latent, f = 4 | 3.50 | 1.17 | 75.0% (3/4) | 25.0% (1/4) | 25.0% (1/4) | 41.7% (5/12) |",
            "| pixel | 20.00 | 5.00 | 100.0% (4/4) | 50.0% (2/4) | – | 75.0% (6/8) |",
        ])
        XCTAssertTrue(report.markdown.contains(
            "- latent, f = 4: runs/model — 4 images per prompt, 20 steps, guidance 7.5, DPM++ 2M on single.txt; "
            + "4 images per prompt, 20 steps, guidance 7.5, DPM++ 2M on relations.txt; 12 images in 14.0 s of sampling"), report.markdown)
        XCTAssertFalse(report.markdown.contains("compare with care"), "same settings everywhere")

        let md = dir.appendingPathComponent("tradeoff.md").path
        try report.writeMarkdown(to: md)
        XCTAssertEqual(try String(contentsOfFile: md, encoding: .utf8), report.markdown + "\n")

        // The chart: one group per form, then overall; one series per entry, missing bars left out.
        let chart = report.chart()
        XCTAssertEqual(chart.axis, .linear(0...100, tick: 25))
        XCTAssertEqual(chart.series, ["latent, f = 4", "pixel"])
        XCTAssertEqual(chart.groups.map(\.label), [["color+shape"], ["position"], ["relation"], ["overall"]])
        XCTAssertEqual(chart.groups.map { $0.bars.map(\.value) }, [[75, 100], [25, 50], [25], [100 * (5.0 / 12), 75]])
        XCTAssertEqual(chart.groups[2].bars.map(\.series), [0])
        let png = dir.appendingPathComponent("tradeoff.png").path
        try chart.render().write(to: png)
        let drawn = try PNGImage.read(path: png)
        XCTAssertGreaterThan(drawn.width, 300)
        XCTAssertGreaterThan(drawn.height, 200)
        XCTAssertLessThan(drawn.width * drawn.height, 2_000_000)
    }

    /// Height in pixels of the tallest unbroken vertical run of `colour`, and the row below its end.
    func tallestRun(of colour: (UInt8, UInt8, UInt8), in image: PNGImage) -> (height: Int, bottom: Int) {
        var best = (height: 0, bottom: 0)
        for x in 0..<image.width {
            var run = 0
            for y in 0..<image.height {
                let i = (y * image.width + x) * image.channels
                if (image.pixels[i], image.pixels[i + 1], image.pixels[i + 2]) == colour {
                    run += 1
                    if run > best.height { best = (run, y + 1) }
                } else {
                    run = 0
                }
            }
        }
        return best
    }

    func testLinearAxisMakesBarHeightsProportionalToValues() throws {
        func chart(_ axis: BarChart.Axis) -> PNGImage {
            BarChart(title: "linear", unit: "%", series: ["a", "b"],
                     groups: [.init(label: ["form"], bars: [.init(value: 25, series: 0), .init(value: 75, series: 1)])],
                     axis: axis).render()
        }
        let linear = chart(.linear(0...100, tick: 25))
        let quarter = tallestRun(of: BarChart.palette[0], in: linear), threeQuarters = tallestRun(of: BarChart.palette[1], in: linear)
        XCTAssertEqual(quarter.bottom, threeQuarters.bottom, "bars stand on one baseline")
        XCTAssertGreaterThan(quarter.height, 20)
        XCTAssertEqual(threeQuarters.height, 3 * quarter.height) // 195 and 65 of the 260-pixel plot
        // On the default log axis the same values are not in proportion (25 and 75 sit within one decade).
        let log = chart(.log10)
        XCTAssertNotEqual(tallestRun(of: BarChart.palette[1], in: log).height, 3 * tallestRun(of: BarChart.palette[0], in: log).height)
    }
}

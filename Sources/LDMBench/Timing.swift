// Timing and reporting helpers shared by the benchmarks.

import Foundation
import LDMCore

/// Seconds taken by `body`, best of `repeats` runs after `warmup` untimed runs.
public func bestTime(repeats: Int = 3, warmup: Int = 1, _ body: () throws -> Void) rethrows -> Double {
    for _ in 0..<warmup { try body() }
    var best = Double.infinity
    for _ in 0..<max(repeats, 1) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }
    return best
}

/// A row of a benchmark table: a name and named figures.
public struct BenchRow: Codable, Sendable {
    public var name: String
    public var figures: [String: Double]
    public var notes: String?
    public init(name: String, figures: [String: Double], notes: String? = nil) {
        self.name = name; self.figures = figures; self.notes = notes
    }
}

/// Formats rows as an aligned text table with the given columns (figure keys) and formats.
public func formatTable(_ rows: [BenchRow], columns: [(key: String, title: String, format: String)]) -> String {
    var cells = [["name"] + columns.map(\.title)]
    for r in rows {
        cells.append([r.name] + columns.map { c in r.figures[c.key].map { String(format: c.format, $0) } ?? "—" })
    }
    let widths = (0..<cells[0].count).map { j in cells.map { $0[j].count }.max() ?? 0 }
    return cells.map { row in
        row.enumerated().map { j, s in j == 0 ? s.padding(toLength: widths[j], withPad: " ", startingAt: 0)
            : String(repeating: " ", count: widths[j] - s.count) + s }.joined(separator: "  ")
    }.joined(separator: "\n")
}

/// What runs the networks' products at the current precision: OpenBLAS' kernel for fp32, oneDNN's
/// instruction set (and, once a product has run, its implementation) for bf16.
public var productsDescription: String {
    switch ComputePrecision.current {
    case .fp32: return "fp32 products: " + blasDescription
    case .bf16: return "bf16 products: oneDNN \(OneDNN.version) \(OneDNN.isaName), \(BLAS.threadCount) threads"
            + (OneDNN.lastImplementation == "none" ? "" : " (matmul \(OneDNN.lastImplementation))")
    }
}

/// Where the machine's OpenBLAS kernel and thread count are described for reports.
public var blasDescription: String {
    "OpenBLAS kernel \(BLAS.coreName), \(BLAS.threadCount) threads (OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "unset"))"
}

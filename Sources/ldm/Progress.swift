// Progress lines on stderr: rewritten in place on a terminal, one plain line per report otherwise.

import Foundation

/// Reports progress of long work on standard error.
struct ProgressReporter {
    let isTerminal = isatty(STDERR_FILENO) != 0
    let label: String
    /// Prints nothing (the ranks other than 0 of a data-parallel run).
    var silent = false

    /// "label step 12/100  … elapsed 0:31, ETA 4:02".
    /// `startedAt`: the step this process began from (a resumed run), so the ETA uses this run's pace.
    func report(step: Int, total: Int, elapsed: Double, detail: String = "", final: Bool = false, startedAt: Int = 0) {
        if silent { return }
        let done = step - startedAt
        let eta = done > 0 ? elapsed / Double(done) * Double(total - step) : 0
        let line = "\(label) \(step)/\(total)\(detail.isEmpty ? "" : "  " + detail)  elapsed \(clock(elapsed)), ETA \(clock(eta))"
        if isTerminal {
            FileHandle.standardError.write(("\r\u{1B}[K" + line + (final ? "\n" : "")).data(using: .utf8)!)
        } else {
            FileHandle.standardError.write((line + "\n").data(using: .utf8)!)
        }
    }

    /// A plain message on its own line.
    func note(_ message: String) {
        if silent { return }
        FileHandle.standardError.write(((isTerminal ? "\r\u{1B}[K" : "") + message + "\n").data(using: .utf8)!)
    }
}

/// 75.2 → "1:15"; 3725 → "1:02:05".
func clock(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "?" }
    let s = Int(seconds.rounded())
    return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
}

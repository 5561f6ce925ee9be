// Time spent per kind of op, for finding where a model's seconds go: set LDM_PROFILE=1 and the
// bench commands print the table after their runs. Ops called from inside parallel work are not
// timed (their caller is), and ops nested in a timed op are listed under it (indented) and not
// counted again in the total.

import Foundation

public enum OpProfile {
    /// On when the environment has LDM_PROFILE set (to anything).
    public static let enabled = ProcessInfo.processInfo.environment["LDM_PROFILE"] != nil

    nonisolated(unsafe) private static var totals: [String: (seconds: Double, calls: Int, depth: Int)] = [:]
    nonisolated(unsafe) private static var depth = 0
    private static let lock = NSLock()

    /// A token for `stop`: the start time in nanoseconds, or 0 when not timing.
    @inline(__always)
    public static func start() -> UInt64 {
        guard enabled, !Parallel.isInsideParallelWork else { return 0 }
        lock.lock(); depth += 1; lock.unlock()
        return DispatchTime.now().uptimeNanoseconds
    }

    /// Adds the time since `token` to `name`'s total.
    @inline(__always)
    public static func stop(_ token: UInt64, _ name: @autoclosure () -> String) {
        guard token != 0 else { return }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - token) / 1e9
        let key = name()
        lock.lock()
        depth -= 1
        var entry = totals[key] ?? (0, 0, depth)
        entry.seconds += seconds
        entry.calls += 1
        entry.depth = min(entry.depth, depth)
        totals[key] = entry
        lock.unlock()
    }

    /// Clears the totals.
    public static func reset() {
        lock.lock(); totals = [:]; lock.unlock()
    }

    /// The totals as a table, largest first; nested entries are indented.
    public static func report(title: String) -> String {
        lock.lock(); let rows = totals; lock.unlock()
        let top = rows.values.filter { $0.depth == 0 }.reduce(0) { $0 + $1.seconds }
        var lines = ["\(title): \(String(format: "%.3f", top)) s in timed ops",
                     "op                                      seconds  share  calls"]
        for (name, e) in rows.sorted(by: { $0.value.seconds > $1.value.seconds }) {
            let label = String(repeating: "  ", count: e.depth) + name
            lines.append(label.padding(toLength: 38, withPad: " ", startingAt: 0)
                         + String(format: " %8.3f %5.1f%% %6d", e.seconds, 100 * e.seconds / max(top, 1e-9), e.calls))
        }
        return lines.joined(separator: "\n")
    }
}

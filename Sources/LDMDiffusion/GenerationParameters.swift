// The `parameters` text every generated PNG carries, in the AUTOMATIC1111 layout:
//
//   <prompt>
//   Negative prompt: <negative prompt>          (left out when empty)
//   Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 42, Size: 512x512, Model: <name>, RNG: torch
//
// Values containing `,` `:` or a newline are JSON-quoted.

import Foundation

/// The settings line of a generated image.
public struct GenerationParameters: Sendable {
    public var prompt: String
    public var negativePrompt: String
    /// Settings in order, e.g. ("Steps", "20").
    public var settings: [(String, String)]

    public init(prompt: String, negativePrompt: String, settings: [(String, String)]) {
        self.prompt = prompt; self.negativePrompt = negativePrompt; self.settings = settings
    }

    /// The text of the `parameters` chunk.
    public var text: String {
        var lines = [prompt]
        if !negativePrompt.isEmpty { lines.append("Negative prompt: " + negativePrompt) }
        lines.append(settings.map { "\($0.0): \(GenerationParameters.quote($0.1))" }.joined(separator: ", "))
        return lines.joined(separator: "\n")
    }

    /// A value as A1111 writes it: JSON-quoted when it contains `,`, `:` or a newline.
    public static func quote(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == ":" || $0.isNewline }) else { return value }
        let data = try? JSONSerialization.data(withJSONObject: [value], options: [.withoutEscapingSlashes])
        let s = data.flatMap { String(data: $0, encoding: .utf8) } ?? "[\"\"]"
        return String(s.dropFirst().dropLast())
    }
}

// `ldm image info FILE` and `ldm image convert IN OUT`: look inside a PNG, or re-save it as
// 8-bit RGBA keeping its text chunks.

import ArgumentParser
import LDMIO

/// `ldm image`: PNG inspection and conversion.
struct ImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Inspect or convert PNG images.",
        subcommands: [Info.self, Convert.self])

    /// `ldm image info FILE`: size, format, interlace and text chunks.
    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a PNG's size, colour type, bit depth, interlace and text chunks.")

        @Argument(help: "The PNG file to inspect.")
        var file: String

        func run() throws {
            let info = try PNGImage.info(path: file)
            print("size: \(info.width)x\(info.height)")
            print("colour type: \(info.colourType), \(info.bitDepth)-bit")
            print("interlace: \(info.interlaced ? "Adam7" : "none")")
            print("text chunks: \(info.texts.count)")
            for chunk in info.texts {
                print("\(chunk.keyword): \(chunk.text)")
            }
        }
    }

    /// `ldm image convert IN OUT`: decode any PNG, write it as 8-bit RGBA with its text chunks.
    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decode a PNG and write it as 8-bit RGBA, keeping its text chunks.")

        @Argument(help: "The PNG file to read.")
        var input: String

        @Argument(help: "The PNG file to write (replaced atomically).")
        var output: String

        func run() throws {
            try PNGImage.read(path: input).write(to: output)
        }
    }
}

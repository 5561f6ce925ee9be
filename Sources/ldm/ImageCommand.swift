// `ldm image info FILE`, `ldm image convert IN OUT` and `ldm image compare A B`: look inside a
// PNG, re-save it as 8-bit RGBA keeping its text chunks, or measure how far two images (or two
// folders of same-named images) are apart.

import ArgumentParser
import Foundation
import LDMIO

/// `ldm image`: PNG inspection and conversion.
struct ImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Inspect or convert PNG images.",
        subcommands: [Info.self, Convert.self, Compare.self])

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

    /// `ldm image compare A B`: PSNR and the largest difference of two images' RGB, or of every
    /// same-named pair in two folders (with the mean PSNR, identical pairs left out of the mean).
    struct Compare: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "PSNR (dB, RGB, 8-bit) and the largest difference between two PNGs, or between the same-named PNGs of two folders.")

        @Argument(help: "A PNG file or a folder of them.")
        var first: String

        @Argument(help: "A PNG file, or a folder with PNGs of the same names.")
        var second: String

        func run() throws {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: first, isDirectory: &isFolder) else { fail("no file or folder at \(first)") }
            guard isFolder.boolValue else {
                let d = try difference(first, second)
                print(String(format: "PSNR %@ dB, largest difference %d of 255", psnrText(d.psnr), d.largest))
                return
            }
            let names = try FileManager.default.contentsOfDirectory(atPath: first).filter { $0.lowercased().hasSuffix(".png") }.sorted()
            guard !names.isEmpty else { fail("no PNG files in \(first)") }
            var finite: [Double] = [], identical = 0, largest = 0
            for name in names {
                let other = (second as NSString).appendingPathComponent(name)
                guard FileManager.default.fileExists(atPath: other) else { fail("\(name) is in \(first) but not in \(second)") }
                let d = try difference((first as NSString).appendingPathComponent(name), other)
                print(String(format: "%@  PSNR %@ dB, largest difference %d", name, psnrText(d.psnr), d.largest))
                if d.psnr.isFinite { finite.append(d.psnr) } else { identical += 1 }
                largest = max(largest, d.largest)
            }
            let mean = finite.isEmpty ? Double.infinity : finite.reduce(0, +) / Double(finite.count)
            print(String(format: "%d pairs: %d identical; mean PSNR of the others %@ dB (lowest %@); largest difference %d of 255",
                         names.count, identical, psnrText(mean), psnrText(finite.min() ?? .infinity), largest))
        }

        func psnrText(_ v: Double) -> String { v.isFinite ? String(format: "%.2f", v) : "inf" }

        /// PSNR over the RGB samples (grey counts as three equal ones; alpha is left out) and the largest difference.
        func difference(_ a: String, _ b: String) throws -> (psnr: Double, largest: Int) {
            let x = try PNGImage.read(path: a), y = try PNGImage.read(path: b)
            guard x.width == y.width, x.height == y.height else {
                fail("\(a) is \(x.width)×\(x.height) but \(b) is \(y.width)×\(y.height)")
            }
            func rgb(_ p: PNGImage, _ i: Int, _ c: Int) -> Int { Int(p.pixels[i * p.channels + (p.channels >= 3 ? c : 0)]) }
            var squares = 0.0, largest = 0
            for i in 0..<(x.width * x.height) { for c in 0..<3 {
                let d = rgb(x, i, c) - rgb(y, i, c)
                squares += Double(d * d)
                largest = max(largest, abs(d))
            } }
            let mse = squares / Double(x.width * x.height * 3)
            return (mse == 0 ? .infinity : 10 * log10(255 * 255 / mse), largest)
        }
    }
}

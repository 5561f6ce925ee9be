// Shaping and drawing real emoji with Debian's Noto Color Emoji (fonts-noto-color-emoji, see `make setup`).
import Foundation
import XCTest
import LDMTraining
@testable import LDMEmoji

final class EmojiFontTests: XCTestCase {
    private func font() throws -> EmojiFont {
        guard FileManager.default.fileExists(atPath: EmojiFont.debianPath) else {
            XCTFail("no \(EmojiFont.debianPath): install fonts-noto-color-emoji (make setup)")
            throw XCTSkip()
        }
        return try EmojiFont(path: EmojiFont.debianPath)
    }

    private func image(_ name: String, font: EmojiFont) throws -> RGBImage {
        try font.bitmap(for: fixtureEmoji(name)).trainingImage(size: 64)
    }

    func testTheFontHasOneColourStrikeOf136By128() throws {
        let font = try font()
        XCTAssertEqual(font.strikeWidth, 136)
        XCTAssertEqual(font.strikeHeight, 128)
    }

    /// Skin tone, flag, keycap and ZWJ family each shape to one glyph and draw a white-cornered
    /// 64×64 image with the emoji in the middle.
    func testSequencesShapeToOneGlyphAndDrawTheEmoji() throws {
        let font = try font()
        for name in ["thumbs up: dark skin tone", "flag: Germany", "keycap: 1", "family: man, woman, girl, boy"] {
            let entry = try fixtureEmoji(name)
            XCTAssertNoThrow(try font.glyph(for: entry), name)
            let bitmap = try font.bitmap(for: entry)
            XCTAssertEqual([bitmap.width, bitmap.height], [136, 128], name)
            let image = try self.image(name, font: font)
            XCTAssertEqual([image.width, image.height], [64, 64], name)
            for (x, y) in [(0, 0), (63, 0), (0, 63), (63, 63)] {
                let corner = image[x, y]
                XCTAssertGreaterThanOrEqual(min(corner.red, corner.green, corner.blue), 250, "\(name) corner (\(x), \(y))")
            }
            // At least half of the central 32×32 is drawn (not near-white).
            var drawn = 0
            for y in 16..<48 { for x in 16..<48 {
                let p = image[x, y]
                if min(p.red, p.green, p.blue) < 235 { drawn += 1 }
            } }
            XCTAssertGreaterThan(drawn, 32 * 32 / 2, name)
        }
        // The flag's centre is coloured: the red band, far from grey.
        let centre = try image("flag: Germany", font: font)[32, 32]
        XCTAssertGreaterThan(Int(centre.red) - Int(centre.blue), 120, "\(centre)")
    }

    func testTwoSkinTonesGiveDifferentImages() throws {
        let font = try font()
        let light = try fixtureEmoji("thumbs up: light skin tone"), dark = try fixtureEmoji("thumbs up: dark skin tone")
        XCTAssertNotEqual(try font.glyph(for: light), try font.glyph(for: dark))
        let a = try image(light.name, font: font), b = try image(dark.name, font: font)
        let meanDifference = zip(a.pixels, b.pixels).map { abs(Int($0) - Int($1)) }.reduce(0, +) / a.pixels.count
        XCTAssertGreaterThan(meanDifference, 20)
    }

    func testSequencesTheFontDoesNotDrawAsOneEmojiAreErrors() throws {
        let font = try font()
        let two = EmojiEntry(codepoints: ["\u{1F44D}", "\u{1F600}"], status: .fullyQualified, name: "two emoji",
                             group: "", subgroup: "", line: 1)
        XCTAssertThrowsError(try font.glyph(for: two)) { error in
            XCTAssertEqual(error as? EmojiDatasetError, .notOneGlyph(name: "two emoji", codepoints: "1F44D 1F600", glyphs: 2))
        }
        let letter = EmojiEntry(codepoints: ["\u{5D0}"], status: .fullyQualified, name: "alef", group: "", subgroup: "", line: 1)
        XCTAssertThrowsError(try font.glyph(for: letter)) { error in
            XCTAssertEqual("\(error)", "emoji “alef” (05D0) has no glyph in the font")
        }
    }

    func testAFileThatIsNotAColourFontIsAClearError() throws {
        XCTAssertThrowsError(try EmojiFont(path: "/nonexistent/emoji.ttf")) { error in
            XCTAssertTrue("\(error)".hasPrefix("emoji font /nonexistent/emoji.ttf: "), "\(error)")
        }
        let notAFont = FileManager.default.temporaryDirectory.appendingPathComponent("ldm-emoji-\(UUID().uuidString).ttf")
        try Data("not a font".utf8).write(to: notAFont)
        defer { try? FileManager.default.removeItem(at: notAFont) }
        XCTAssertThrowsError(try EmojiFont(path: notAFont.path)) { error in
            XCTAssertTrue("\(error)".contains("emoji font \(notAFont.path): "), "\(error)")
        }
    }
}

// The emoji evaluation: names split into base and skin tones; the judge names the emoji and tone
// of the font's own drawings, and catches a drawing in the wrong tone.
import Foundation
import XCTest
import LDMTraining
@testable import LDMEmoji

final class EmojiEvaluationTests: XCTestCase {
    func testNamesSplitIntoBaseAndTones() {
        let cases: [(String, String, [String])] = [
            ("thumbs up: medium-dark skin tone", "thumbs up", ["medium-dark"]),
            ("thumbs up", "thumbs up", []),
            ("kiss: woman, man, light skin tone, dark skin tone", "kiss: woman, man", ["light", "dark"]),
            ("person: light skin tone, beard", "person: beard", ["light"]),
            ("flag: Germany", "flag: Germany", []),
            ("handshake: medium skin tone", "handshake", ["medium"]),
        ]
        for (name, base, tones) in cases {
            let p = EmojiNameParts(name)
            XCTAssertEqual(p.base, base, name)
            XCTAssertEqual(p.tones, tones, name)
        }
    }

    func testJudgeNamesTheFontsDrawingsAndCatchesAWrongTone() throws {
        guard FileManager.default.fileExists(atPath: EmojiFont.debianPath),
              FileManager.default.fileExists(atPath: EmojiCatalogue.debianPath) else { throw XCTSkip("no emoji font or emoji-test.txt") }
        let font = try EmojiFont(path: EmojiFont.debianPath)
        let all = try EmojiCatalogue.read(path: EmojiCatalogue.debianPath).fullyQualified
        let wanted = ["waving hand", "thumbs up", "red heart", "grinning face"]
        let entries = all.filter { wanted.contains(EmojiNameParts($0.name).base) }
        XCTAssertEqual(entries.count, 14)   // 2 × (toneless + 5 tones) + 2
        let references = try EmojiReferences(entries: entries, font: font)
        for entry in entries {
            let image = try font.bitmap(for: entry).trainingImage(size: 64)
            let j = references.judge(image, name: entry.name)
            XCTAssertTrue(j.identity, entry.name)
            XCTAssertEqual(j.nearest, entry.name)
            XCTAssertEqual(j.tone, EmojiNameParts(entry.name).tones.isEmpty ? nil : true, entry.name)
        }
        // A dark-skinned thumbs up named light-skinned: the right emoji, the wrong tone.
        let dark = try XCTUnwrap(entries.first { $0.name == "thumbs up: dark skin tone" })
        let j = references.judge(try font.bitmap(for: dark).trainingImage(size: 64), name: "thumbs up: light skin tone")
        XCTAssertTrue(j.identity)
        XCTAssertEqual(j.tone, false)
        var score = EmojiScore()
        score.record(j)
        XCTAssertEqual(score.summary, "identity 100.0% (top-5 100.0%) of 1 images, skin tone 0.0% of 1")
    }
}

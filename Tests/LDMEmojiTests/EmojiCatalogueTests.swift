// emoji-test.txt parsing and the exclusion list.
import Foundation
import XCTest
@testable import LDMEmoji

final class EmojiCatalogueTests: XCTestCase {
    func testParsesCodePointsStatusGroupsAndNamesAsWritten() throws {
        let catalogue = try fixtureCatalogue()
        XCTAssertEqual(catalogue.entries.count, 11)
        XCTAssertEqual(catalogue.fullyQualified.map(\.name), [
            "thumbs up", "thumbs up: light skin tone", "thumbs up: dark skin tone", "family: man, woman, girl, boy",
            "twelve o’clock", "keycap: #", "keycap: 1", "flag: Germany", "flag: France"])

        let dark = catalogue.entries[2]
        XCTAssertEqual(dark.codepoints.map(\.value), [0x1F44D, 0x1F3FF])
        XCTAssertEqual(dark.status, .fullyQualified)
        XCTAssertEqual(dark.group, "People & Body")
        XCTAssertEqual(dark.subgroup, "hand-fingers-closed")
        XCTAssertEqual(dark.line, 9)
        XCTAssertEqual(dark.text, "👍🏿")

        let family = try fixtureEmoji("family: man, woman, girl, boy")
        XCTAssertEqual(family.codepointsText, "1F468 200D 1F469 200D 1F467 200D 1F466")
        XCTAssertEqual(family.subgroup, "family")

        // The keycap's comment holds a second `#`; the unqualified spelling is parsed but not drawn.
        let keycaps = catalogue.entries.filter { $0.name == "keycap: #" }
        XCTAssertEqual(keycaps.map(\.status), [.fullyQualified, .unqualified])
        XCTAssertEqual(keycaps[0].codepointsText, "0023 FE0F 20E3")
        XCTAssertEqual(keycaps[0].group, "Symbols")

        XCTAssertEqual(try fixtureEmoji("twelve o’clock").group, "Travel & Places")
        // A line without the Em.n version still gives the whole name.
        XCTAssertEqual(try fixtureEmoji("flag: France").subgroup, "country-flag")
    }

    func testMalformedLinesAreErrorsNamingTheLine() {
        let cases: [(String, String)] = [
            ("1F44D ; fully-qualified", "line 2: expected"),
            ("1F44G ; fully-qualified # 👍 E0.6 thumbs up", "line 2: 1F44G is not a hexadecimal code point"),
            ("1F44D ; fully qualified # 👍 E0.6 thumbs up", "line 2: unknown status fully qualified"),
            ("1F44D ; fully-qualified # 👍 E0.6", "line 2: no emoji name"),
        ]
        for (line, expected) in cases {
            XCTAssertThrowsError(try EmojiCatalogue(text: "# group: x\n" + line + "\n", path: "t.txt"), line) { error in
                XCTAssertTrue("\(error)".hasPrefix("t.txt " + expected), "\(error)")
            }
        }
    }

    func testExclusionListLeavesOutItsNamesAndSkipsComments() throws {
        let entries = try fixtureCatalogue().fullyQualified
        let list = EmojiExclusionList(text: "# held out\n\n  thumbs up: dark skin tone \nflag: Germany\r\nflag: Germany\n", path: "x.txt")
        XCTAssertEqual(list.names.map(\.line), [3, 4, 5])
        let (kept, excluded) = try list.apply(to: entries)
        XCTAssertEqual(excluded.map(\.name), ["thumbs up: dark skin tone", "flag: Germany"])
        XCTAssertEqual(kept.count, entries.count - 2)
        XCTAssertFalse(kept.contains { $0.name == "flag: Germany" || $0.name == "thumbs up: dark skin tone" })

        let none = try EmojiExclusionList(text: "# nothing\n", path: "e.txt").apply(to: entries)
        XCTAssertEqual(none.kept, entries)
        XCTAssertEqual(none.excluded, [])
    }

    func testAMisspeltExcludedNameIsAnError() throws {
        let entries = try fixtureCatalogue().fullyQualified
        let list = EmojiExclusionList(text: "thumbs up\nthumbs up: dark skintone\nflag: germany\n", path: "x.txt")
        XCTAssertThrowsError(try list.apply(to: entries)) { error in
            XCTAssertEqual(error as? EmojiDatasetError, .unknownExcludedName("x.txt", line: 2, name: "thumbs up: dark skintone",
                                                                              suggestion: nil, others: 1))
            XCTAssertFalse("\(error)".contains("\n"))
            XCTAssertTrue("\(error)".contains("would let a held-out emoji into training"), "\(error)")
        }
        // A straight apostrophe or other case names the catalogue's spelling.
        XCTAssertThrowsError(try EmojiExclusionList(text: "twelve o'clock\n", path: "x.txt").apply(to: entries)) { error in
            XCTAssertTrue("\(error)".contains("did you mean “twelve o’clock”?"), "\(error)")
        }
        XCTAssertThrowsError(try EmojiExclusionList(text: "Flag: Germany\n", path: "x.txt").apply(to: entries)) { error in
            XCTAssertTrue("\(error)".contains("did you mean “flag: Germany”?"), "\(error)")
        }
    }

    /// The shipped hold-out list against the installed emoji-test.txt (unicode-data, see `make setup`).
    func testShippedHoldOutListNamesOnlyFullyQualifiedEmoji() throws {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let catalogue = try EmojiCatalogue.read(path: EmojiCatalogue.debianPath)
        XCTAssertEqual(catalogue.fullyQualified.count, 3655)
        let list = try EmojiExclusionList.read(path: repository.appendingPathComponent("Prompts/emoji-holdout.txt").path)
        let (kept, excluded) = try list.apply(to: catalogue.fullyQualified)
        XCTAssertEqual(excluded.count, 305)
        XCTAssertEqual(kept.count, 3350)
    }
}

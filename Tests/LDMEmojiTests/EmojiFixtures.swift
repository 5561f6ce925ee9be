// Lines of Unicode's emoji-test.txt 15.0 (Debian unicode-data, /usr/share/unicode/emoji/emoji-test.txt),
// copied as they are, with their group and subgroup headers; the last entry is written the way
// files before Emoji 13 wrote them, without the version.
import Foundation
@testable import LDMEmoji

let emojiTestFixture = """
# emoji-test.txt
# Version: 15.0

# group: People & Body

# subgroup: hand-fingers-closed
1F44D                                                  ; fully-qualified     # 👍 E0.6 thumbs up
1F44D 1F3FB                                            ; fully-qualified     # 👍🏻 E1.0 thumbs up: light skin tone
1F44D 1F3FF                                            ; fully-qualified     # 👍🏿 E1.0 thumbs up: dark skin tone

# subgroup: family
1F468 200D 1F469 200D 1F467 200D 1F466                 ; fully-qualified     # 👨‍👩‍👧‍👦 E2.0 family: man, woman, girl, boy

# group: Travel & Places

# subgroup: time
1F55B                                                  ; fully-qualified     # 🕛 E0.6 twelve o’clock

# group: Symbols

# subgroup: keycap
0023 FE0F 20E3                                         ; fully-qualified     # #️⃣ E0.6 keycap: #
0023 20E3                                              ; unqualified         # #⃣ E0.6 keycap: #
0031 FE0F 20E3                                         ; fully-qualified     # 1️⃣ E0.6 keycap: 1
0031 20E3                                              ; unqualified         # 1⃣ E0.6 keycap: 1

# group: Flags

# subgroup: country-flag
1F1E9 1F1EA                                            ; fully-qualified     # 🇩🇪 E0.6 flag: Germany
1F1EB 1F1F7                                            ; fully-qualified     # 🇫🇷 flag: France

#EOF
"""

/// The fixture catalogue.
func fixtureCatalogue() throws -> EmojiCatalogue { try EmojiCatalogue(text: emojiTestFixture, path: "fixture") }

/// The fully-qualified fixture emoji called `name`.
func fixtureEmoji(_ name: String) throws -> EmojiEntry {
    guard let entry = try fixtureCatalogue().fullyQualified.first(where: { $0.name == name }) else {
        throw EmojiDatasetError.unreadable("fixture", what: "emoji \(name)")
    }
    return entry
}

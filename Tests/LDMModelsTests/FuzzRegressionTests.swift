// Inputs found by `make fuzz` that once crashed, kept under Tests/Fixtures/fuzz/regressions/ and
// replayed here: each must now give an error, not a crash.
import Foundation
import XCTest
@testable import LDMModels

final class FuzzRegressionTests: XCTestCase {
    let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/fuzz/regressions")

    /// A text-encoder config with num_attention_heads 0 divided by zero in validate().
    func testTextConfigsWithImpossibleSizesAreRefused() throws {
        let data = try Data(contentsOf: folder.appendingPathComponent("config-text-heads-zero.json"))
        let config = try JSONDecoder().decode(CLIPTextConfig.self, from: data)
        XCTAssertThrowsError(try config.validate()) { XCTAssertTrue("\($0)".contains("num_attention_heads"), "\($0)") }
        for (key, value) in [("hidden_size", -4), ("num_hidden_layers", 0), ("vocab_size", 1 << 40), ("intermediate_size", 0)] {
            var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            object["num_attention_heads"] = 4
            object[key] = value
            let c = try JSONDecoder().decode(CLIPTextConfig.self, from: JSONSerialization.data(withJSONObject: object))
            XCTAssertThrowsError(try c.validate(), key)
        }
    }
}

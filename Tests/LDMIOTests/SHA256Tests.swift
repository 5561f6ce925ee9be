// SHA-256 against Python's hashlib (values printed by hashlib.sha256(...).hexdigest()), across the
// padding boundaries (55, 56, 64 bytes) and a multi-block input fed in uneven pieces.
import XCTest
@testable import LDMIO

final class SHA256Tests: XCTestCase {
    func testDigestsMatchHashlib() {
        XCTAssertEqual(SHA256.hex([UInt8]()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex([UInt8](repeating: 0x61, count: 55)), "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318")
        XCTAssertEqual(SHA256.hex([UInt8](repeating: 0x61, count: 56)), "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a")
        XCTAssertEqual(SHA256.hex([UInt8](repeating: 0x61, count: 64)), "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb")
        let long = (0..<100_003).map { UInt8($0 * 7 % 256) }
        XCTAssertEqual(SHA256.hex(long), "77bf38ff81973e2bcd8fd562f4b24cfa19c509a923dff52ea49f6522f344540d")
        var pieces = SHA256()
        var start = 0, size = 1
        while start < long.count {
            let end = min(long.count, start + size)
            pieces.update(long[start..<end])
            start = end
            size = size * 3 + 1
        }
        XCTAssertEqual(pieces.finish().map { String(format: "%02x", $0) }.joined(), SHA256.hex(long))
    }

    func testFileHash() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sha-\(UUID().uuidString).bin")
        defer { try? FileManager.default.removeItem(at: url) }
        let long = (0..<100_003).map { UInt8($0 * 7 % 256) }
        try Data(long).write(to: url)
        XCTAssertEqual(try SHA256.hexOfFile(url.path), "77bf38ff81973e2bcd8fd562f4b24cfa19c509a923dff52ea49f6522f344540d")
        XCTAssertEqual(try SHA256.hexOfFile(url.path, from: 3), SHA256.hex(long.dropFirst(3)))
    }
}

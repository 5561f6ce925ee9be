import XCTest
final class LDMIOTestsPlaceholder: XCTestCase { func testNothingYet() {} }

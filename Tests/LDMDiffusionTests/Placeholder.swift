import XCTest
final class LDMDiffusionTestsPlaceholder: XCTestCase { func testNothingYet() {} }

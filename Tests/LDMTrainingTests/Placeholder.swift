import XCTest
final class LDMTrainingTestsPlaceholder: XCTestCase { func testNothingYet() {} }

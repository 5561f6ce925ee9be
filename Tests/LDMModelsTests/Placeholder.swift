import XCTest
final class LDMModelsTestsPlaceholder: XCTestCase { func testNothingYet() {} }

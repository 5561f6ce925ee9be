import XCTest
final class CLITestsPlaceholder: XCTestCase { func testNothingYet() {} }

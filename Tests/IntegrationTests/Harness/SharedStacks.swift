import Foundation

/// One TestStack per test class, started in the class's `setUp()` and stopped in its
/// `tearDown()`. XCTest runs class setUp, the tests and class tearDown one after another on
/// one thread, so this unsynchronised storage is never raced.
enum SharedStacks {
    nonisolated(unsafe) private static var stacks: [ObjectIdentifier: TestStack] = [:]
    nonisolated(unsafe) private static var errors: [ObjectIdentifier: String] = [:]

    static func start(_ suite: AnyClass, _ make: () throws -> TestStack) {
        do { stacks[ObjectIdentifier(suite)] = try make() } catch { errors[ObjectIdentifier(suite)] = "\(error)" }
    }

    static func stack(_ suite: AnyClass) throws -> TestStack {
        guard let s = stacks[ObjectIdentifier(suite)] else {
            throw StackError("stack did not start: \(errors[ObjectIdentifier(suite)] ?? "?")")
        }
        return s
    }

    static func stop(_ suite: AnyClass) {
        stacks.removeValue(forKey: ObjectIdentifier(suite))?.stop()
    }
}

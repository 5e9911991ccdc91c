@testable import HostSettings
@testable import HostSystem
@testable import ControllerCore
import XCTest

/// The modules below Core know files and settings, not the API: Core maps each kind of
/// their errors to one of the API's errors (no default), and the bus sends what Core maps.
final class ModuleErrorMappingTests: XCTestCase {
    func testEachKindOfSystemErrorHasItsAPIError() {
        let expected: [(SystemError.Kind, String)] = [(.io, "Io"), (.invalidInput, "InvalidArgs"), (.tooLarge, "LimitsExceeded")]
        for (kind, name) in expected {
            let mapped = ControllerError(SystemError(kind, "message naming /a/b"))
            XCTAssertEqual(mapped.kind, name, "\(kind)")
            XCTAssertEqual(mapped.message, "message naming /a/b")
        }
    }

    func testEachKindOfSettingErrorHasItsAPIError() {
        let expected: [(SettingError.Kind, String)] = [(.missingOnHost, "InvalidState"), (.unsupported, "NotSupported"), (.busy, "Busy")]
        for (kind, name) in expected {
            let mapped = ControllerError.mapped(SettingError(kind, "user 'x' does not exist")) as? ControllerError
            XCTAssertEqual(mapped?.kind, name, "\(kind)")
            XCTAssertEqual(mapped?.message, "user 'x' does not exist")
        }
    }

    func testOnlyTheModulesErrorsAreMapped() {
        XCTAssertEqual(ControllerError.mapped(SystemError.failed("cannot read /x", code: ENOENT)) as? ControllerError,
                       .io("cannot read /x: No such file or directory"))
        XCTAssertEqual(ControllerError.mapped(ControllerError.busy("b")) as? ControllerError, .busy("b"))
        XCTAssertTrue(ControllerError.mapped(CancellationError()) is CancellationError)
    }

    /// A file call's error names the path and the system's reason, and keeps errno for the
    /// rules that look at it (a link onto an existing name is `AlreadyExists` in Core).
    func testAFileCallsErrorNamesThePathAndKeepsErrno() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("files-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/a", contents: Data("a".utf8)))
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/b", contents: Data("b".utf8)))
        XCTAssertThrowsError(try Files.link(dir + "/a", as: dir + "/b")) { error in
            let e = error as? SystemError
            XCTAssertEqual(e?.alreadyExists, true, "\(error)")
            XCTAssertTrue(e?.message.contains(dir + "/b") == true, "\(error)")
        }
        XCTAssertEqual(try String(contentsOfFile: dir + "/b", encoding: .utf8), "b", "the existing name was replaced")
        XCTAssertThrowsError(try Files.existingStatus(dir + "/missing")) { error in
            XCTAssertEqual((error as? SystemError)?.notFound, true, "\(error)")
            XCTAssertTrue("\(error)".contains(dir + "/missing: No such file or directory"), "\(error)")
        }
        XCTAssertEqual(Files.kind(dir + "/a"), .file)
        XCTAssertEqual(Files.kind(dir), .directory)
        XCTAssertEqual(Files.kind(dir + "/missing"), .missing)
    }
}

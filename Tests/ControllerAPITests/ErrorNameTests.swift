import ControllerAPI
import ControllerCore
import XCTest

/// Core names an error's kind (it knows no bus); the bus sends it under the ErrorName whose
/// last component is that kind and falls back to Io otherwise. Every kind must have its name.
final class ErrorNameTests: XCTestCase {
    func testEveryCoreErrorKindHasItsDBusName() {
        let all: [ControllerError] = [
            .invalidArgs(""), .accessDenied(""), .interactiveAuthorizationRequired(""), .limitsExceeded(""),
            .noSuchVM(""), .noSuchDisk(""), .noSuchSnapshot(""), .noSuchBackup(""), .noSuchNetwork(""), .alreadyExists(""), .busy(""),
            .invalidState(""), .libvirt(""), .guestfs(""), .io(""), .cancelled(""), .notSupported(""),
        ]
        XCTAssertEqual(all.count, ErrorName.allCases.count, "a ControllerError case or an ErrorName was added on one side only")
        let names = Set(ErrorName.allCases.map(\.shortName))
        for error in all {
            XCTAssertTrue(names.contains(error.kind), "ControllerError kind \(error.kind) has no ErrorName")
        }
        XCTAssertEqual(Set(all.map(\.kind)), names)
    }
}

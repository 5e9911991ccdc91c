import ControllerAPI
import ControllerBus
import ControllerCore
import XCTest

/// Core names an error's kind (it knows no bus); the bus layer maps each kind to its
/// ErrorName with an exhaustive switch (no fallback). The name sent must end in Core's kind,
/// and every name the API lists must be sent for some kind.
final class ErrorNameTests: XCTestCase {
    func testEveryCoreErrorKindIsSentUnderItsOwnDBusName() {
        let all: [ControllerError] = [
            .invalidArgs("m"), .accessDenied("m"), .interactiveAuthorizationRequired("m"), .limitsExceeded("m"),
            .noSuchVM("m"), .noSuchDisk("m"), .noSuchSnapshot("m"), .noSuchBackup("m"), .noSuchNetwork("m"), .alreadyExists("m"),
            .busy("m"), .invalidState("m"), .libvirt("m"), .guestfs("m"), .io("m"), .cancelled("m"), .notSupported("m"),
        ]
        for error in all {
            XCTAssertEqual(error.dbusError.name, error.errorName.rawValue)
            XCTAssertEqual(error.errorName.shortName, error.kind, "\(error) is sent as \(error.errorName.rawValue)")
            XCTAssertEqual(error.dbusError.message, "m")
        }
        XCTAssertEqual(Set(all.map(\.errorName)), Set(ErrorName.allCases), "an ErrorName no ControllerError is sent as")
    }
}

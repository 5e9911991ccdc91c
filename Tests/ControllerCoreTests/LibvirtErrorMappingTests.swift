@testable import ControllerCore
import Libvirt
import XCTest

/// One mapping of libvirt's errors for the domain and the network caches alike.
final class LibvirtErrorMappingTests: XCTestCase {
    func testEachCodeMapsToItsKindForDomainsAndNetworksAlike() {
        let table: [(Int32, String)] = [
            (LibvirtError.noDomain, "NoSuchVM"), (LibvirtError.noNetwork, "NoSuchNetwork"),
            (LibvirtError.domainExists, "AlreadyExists"), (LibvirtError.networkExists, "AlreadyExists"),
            (LibvirtError.xmlError, "InvalidArgs"), (LibvirtError.xmlDetail, "InvalidArgs"), (LibvirtError.invalidArgument, "InvalidArgs"),
            (LibvirtError.operationInvalid, "InvalidState"),
            (LibvirtError.noSupport, "NotSupported"), (LibvirtError.operationUnsupported, "NotSupported"),
            (1, "Libvirt"),
        ]
        for (code, kind) in table {
            let error = ControllerError.libvirt(LibvirtError(code: code, domain: 0, message: "said libvirt"), "start n1")
            XCTAssertEqual(error.kind, kind, "code \(code)")
            XCTAssertTrue(error.message.hasPrefix("start n1: "), error.message)
            XCTAssertTrue(error.message.hasSuffix("said libvirt"), error.message)
        }
        let other = ControllerError.libvirt(LibvirtError(code: 1, domain: 0, message: "x"), "define n1")
        XCTAssertEqual(other.message, "define n1: libvirt error 1: x", "an unmapped code is named")
    }
}

@testable import ControllerCore
import XCTest

/// The network XML the service writes, and the IPv4 rules of DefineNetwork.
final class NetworkXMLTests: XCTestCase {
    func testIsolatedHasNeitherForwardNorIP() throws {
        let xml = NetworkXML.build(.init(name: "internal", kind: .isolated, ipv4: nil, dhcp: false, bridge: "mvbr0"))
        XCTAssertFalse(xml.contains("<forward"), xml)
        XCTAssertFalse(xml.contains("<ip"), xml)
        XCTAssertTrue(xml.contains("<bridge name=\"mvbr0\""), xml)
        XCTAssertEqual(try NetworkXML.read(xml).kind, "isolated")
    }

    func testNatHasItsAddressAndTheRestOfTheSubnetForDHCP() throws {
        let cidr = try XCTUnwrap(NetworkXML.IPv4CIDR("10.10.0.1/24"))
        let xml = NetworkXML.build(.init(name: "outside", kind: .nat, ipv4: cidr, dhcp: true, bridge: nil))
        XCTAssertTrue(xml.contains("<forward mode=\"nat\"/>"), xml)
        XCTAssertTrue(xml.contains("<ip address=\"10.10.0.1\" prefix=\"24\">"), xml)
        XCTAssertTrue(xml.contains("<range start=\"10.10.0.2\" end=\"10.10.0.254\"/>"), xml)
        XCTAssertEqual(try NetworkXML.read(xml).kind, "nat")
        // The host's address at the top of the subnet: the range stops below it.
        let high = try XCTUnwrap(NetworkXML.IPv4CIDR("192.168.5.254/24"))
        XCTAssertEqual(high.dhcpRange?.start, "192.168.5.1")
        XCTAssertEqual(high.dhcpRange?.end, "192.168.5.253")
    }

    func testCIDRRules() {
        for good in ["10.0.0.1/8", "192.168.1.1/30", "172.16.5.9/20"] { XCTAssertNotNil(NetworkXML.IPv4CIDR(good), good) }
        for bad in ["10.0.0.0/24", "10.0.0.255/24", "10.0.0.1/31", "10.0.0.1/7", "10.0.0.1", "10.0.0.1/", "256.0.0.1/24",
                    "10.0.01.1/24", "10.0.0.1/24/1", " 10.0.0.1/24", "10.0.0.1/+24", "a.b.c.d/24", "10..0.1/24", "١٠.0.0.1/24"] {
            XCTAssertNil(NetworkXML.IPv4CIDR(bad), bad)
        }
    }
}

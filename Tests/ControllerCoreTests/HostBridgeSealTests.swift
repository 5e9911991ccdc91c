@testable import ControllerCore
import Foundation
import XCTest

/// HostBridgeSeal's bookkeeping on a copy of the sysctl tree's layout (a real bridge's
/// values are checked on qemu:///system by RealGuestTests, through /proc/sys and the guest).
final class HostBridgeSealTests: XCTestCase {
    func testWritesWhatDiffersReadsBackAndNamesWhatFails() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("seal-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        for (path, old) in [("net/ipv4/conf/virbr9/arp_ignore", "0"), ("net/ipv4/conf/virbr9/forwarding", "1"),
                            ("net/ipv4/conf/virbr9/rp_filter", "1"), ("net/ipv6/conf/virbr9/disable_ipv6", "0")] {
            let file = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data((old + "\n").utf8).write(to: file)
        }
        let seal = HostBridgeSeal(root: root.path)
        let first = seal.apply("virbr9")
        XCTAssertTrue(first.held, "\(first)")
        XCTAssertEqual(first.changed, ["net.ipv4.conf.virbr9.arp_ignore=8", "net.ipv4.conf.virbr9.forwarding=0",
                                       "net.ipv6.conf.virbr9.disable_ipv6=1"])
        XCTAssertEqual(try String(contentsOf: root.appendingPathComponent("net/ipv4/conf/virbr9/arp_ignore"), encoding: .utf8), "8\n")
        XCTAssertEqual(seal.apply("virbr9"), HostBridgeSeal.Outcome(held: true, changed: [], failures: []))

        let missing = seal.apply("virbr8")
        XCTAssertFalse(missing.held)
        XCTAssertEqual(missing.failures.count, 4)
        XCTAssertTrue(missing.failures[0].hasPrefix("net.ipv4.conf.virbr8.arp_ignore: "), "\(missing.failures)")
        XCTAssertFalse(seal.apply("../x").held)
        XCTAssertFalse(HostBridgeSeal.isHostBridge("../lo"))
    }
}

/// The nftables script and how a listing is compared (the tables themselves are checked on
/// the host in QemuSystemTests and under the unit in tests/package/run).
final class HostBridgeFirewallTests: XCTestCase {
    func testTheScriptReplacesBothTablesAtomically() {
        let script = HostBridgeFirewall.script(["virbr2", "mvbr-iso"])
        let lines = script.split(separator: "\n").map { String($0.drop { $0 == "\t" }) }
        // Created then deleted first: one transaction that works whether the tables exist.
        XCTAssertEqual(Array(lines.prefix(4)), ["table inet multiverse_isolation", "delete table inet multiverse_isolation",
                                                "table arp multiverse_isolation", "delete table arp multiverse_isolation"])
        for bridge in ["virbr2", "mvbr-iso"] {
            XCTAssertEqual(lines.filter { $0 == "iifname \"\(bridge)\" drop" }.count, 2, "inet input and arp input for \(bridge)")
            XCTAssertEqual(lines.filter { $0 == "iifname \"\(bridge)\" oifname != \"\(bridge)\" drop" }.count, 1)
        }
        XCTAssertTrue(lines.contains("type filter hook forward priority filter; policy accept;"))
        // No bridges: only the removal.
        XCTAssertEqual(HostBridgeFirewall.script([]).split(separator: "\n").count, 4)
    }

    func testAListingHoldsOnlyWithExactlyTheRules() {
        let listing = """
            table inet multiverse_isolation {
            \tchain input {
            \t\ttype filter hook input priority filter; policy accept;
            \t\tiifname "virbr2" drop
            \t}

            \tchain forward {
            \t\ttype filter hook forward priority filter; policy accept;
            \t\tiifname "virbr2" oifname != "virbr2" drop
            \t}
            }
            """
        XCTAssertEqual(HostBridgeFirewall.rules(inListing: listing), HostBridgeFirewall.expectedRules(["virbr2"]).inet)
        XCTAssertNotEqual(HostBridgeFirewall.rules(inListing: listing), HostBridgeFirewall.expectedRules(["virbr2", "virbr3"]).inet)
    }

    func testBadBridgeNamesNeverReachNft() async {
        do {
            try await HostBridgeFirewall(nft: "/bin/false").apply(["virbr1\" accept; #"])
            XCTFail("accepted a bridge name with a quote")
        } catch {
            XCTAssertEqual((error as? ControllerError)?.kind, "InvalidArgs", "\(error)")
        }
    }
}

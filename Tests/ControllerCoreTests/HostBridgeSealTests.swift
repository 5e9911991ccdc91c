import ControllerCore
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

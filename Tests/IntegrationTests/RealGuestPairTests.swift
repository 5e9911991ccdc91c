import Foundation
import SDBus
import Synchronization
import XCTest

/// The router/interface-controller pair of Multiverse OS, both real Debian guests from the
/// one image of scripts/make-guest-image, on RealGuestTests' stack: each role's addresses
/// are written into its VM's overlay with the service's WriteFile before the first boot,
/// StartAll starts the router, waits for its READY=1, then starts the interface controller,
/// whose readiness check (a script in /etc/multiverse/ready.d) reports what it can reach.
extension RealGuestTests {
    static let routerAddress = "10.77.0.1"
    static let controllerAddress = "10.77.0.2"

    /// A systemd-networkd `.network` file for the NIC with `mac`.
    static func networkFile(mac: String, _ body: String) -> [UInt8] {
        Array("[Match]\nMACAddress=\(mac)\n\n[Network]\n\(body)\n".utf8)
    }

    /// The host's IPv4 addresses (loopback aside), and the default network's, which exists
    /// only once that network runs.
    static func hostAddresses() -> [String] {
        let listed = Command.run("/usr/sbin/ip", ["-4", "-o", "addr", "show"]).stdout
            .split(separator: "\n").compactMap { line -> String? in
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                guard let i = f.firstIndex(of: "inet"), i + 1 < f.count else { return nil }
                let address = String(f[i + 1].split(separator: "/")[0])
                return address.hasPrefix("127.") ? nil : address
            }
        let net = QemuSystemTests.virsh(["net-dumpxml", "default"]).stdout
        let uplink = net.range(of: "<ip address='").map { r in String(net[r.upperBound...].prefix { $0 != "'" }) }
        return Array(Set(listed + [uplink].compactMap { $0 })).sorted()
    }

    /// The interface controller's readiness check: waits for the router's internal address,
    /// then tries each host address through the router and directly on the link (an
    /// on-link route, so the guest asks for it with ARP on the internal bridge). Prints one
    /// line for STATUS; the details, with the neighbour table, go to /var/lib/multiverse.
    static func reachCheck(hosts: [String]) -> [UInt8] {
        Array("""
            #!/bin/sh
            # Written by RealGuestTests: what this interface controller reaches on the internal link.
            log=/var/lib/multiverse/reach.txt
            router=\(routerAddress)
            hosts="\(hosts.joined(separator: " "))"
            up=no
            for i in $(seq 1 120); do
              if ping -n -q -c 1 -W 1 "$router" >/dev/null 2>&1; then up=yes; break; fi
            done
            { echo "router $router answers: $up after $i tries"; ip -4 addr show; ip -4 route show; } >"$log" 2>&1
            [ "$up" = yes ] || { echo "reach: router $router does not answer"; exit 1; }
            answered="" arp=""
            for h in $hosts; do
              ping -n -c 2 -W 2 "$h" >>"$log" 2>&1 && answered="$answered $h(via-router)"
              ip route replace "$h/32" dev eth0 scope link
              ping -n -c 2 -W 2 "$h" >>"$log" 2>&1 && answered="$answered $h(on-link)"
              neighbour=$(ip neigh show "$h" dev eth0)
              echo "neighbour $h: $neighbour" >>"$log"
              case $neighbour in *lladdr*) arp="$arp $h" ;; esac
              ip route del "$h/32" dev eth0
            done
            if [ -n "$answered" ]; then echo "reach: host answered:$answered"; exit 2; fi
            echo "reach: router $router answers, host addresses $hosts do not (ARP answered on the link for:${arp:- none})"

            """.utf8)
    }

    /// A router and an interface controller, both defined from their profiles on overlays of
    /// the Debian image (kept, not ephemeral, so the overlay can be written before the first
    /// boot and read after the last), with the MACs the test gives them. StartAll: router
    /// first and ready, then the interface controller, ready only when its check found the
    /// router's internal address answering and none of the host's addresses — neither
    /// through the router nor on the internal link itself, where the host has no address.
    /// StopAll shuts both down in reverse; the check's log is read back with ReadFile.
    func testRouterAndInterfaceControllerOnTheInternalLink() throws {
        let s = try stack
        let tag = UUID().uuidString.prefix(4).lowercased()
        let (router, desk) = ("mvt-rt-\(tag)", "mvt-ic-\(tag)")
        let hex = String(tag.prefix(2))
        let (uplinkMAC, innerMAC, deskMAC) = ("52:54:00:\(hex):77:01", "52:54:00:\(hex):77:11", "52:54:00:\(hex):77:12")
        defer {
            for vm in [desk, router] {
                QemuSystemTests.virsh(["destroy", vm])
                QemuSystemTests.virsh(["undefine", vm])
                _ = try? stack.diskCall("\(vm)-root.qcow2", "Delete", ["a{sv}", "0"])
            }
        }
        let common = ["base_disk", "s", Self.base, "autostart", "b", "true", "shares", "a(ss)", "0",
                      "memory_mib", "t", "512", "vcpus", "u", "1"]
        let r1 = s.manager("DefineVM", ["ssa{sv}", router, "network-controller", "6"] + common + ["macs", "as", "2", uplinkMAC, innerMAC],
                           as: TestStack.grantedUser)
        XCTAssertTrue(r1.ok, r1.all)
        let r2 = s.manager("DefineVM", ["ssa{sv}", desk, "interface-controller", "6"] + common + ["macs", "as", "1", deskMAC],
                           as: TestStack.grantedUser)
        XCTAssertTrue(r2.ok, r2.all)
        guard r1.ok, r2.ok else { return }
        let routerNICs = QemuSystemTests.virsh(["domiflist", router]).stdout
        XCTAssertTrue(routerNICs.contains(uplinkMAC) && routerNICs.contains(innerMAC), routerNICs)
        XCTAssertTrue(QemuSystemTests.virsh(["domiflist", desk]).stdout.contains(deskMAC))

        // Each role's addresses, written into its overlay before it first boots: the two
        // overlays at once (one appliance each, [guestfs] max_appliances is 2; under TCG a
        // launch costs ~35 s of one core, and these machines have two).
        let hosts = Self.hostAddresses()
        XCTAssertFalse(hosts.isEmpty)
        let writes: [[(disk: String, path: String, content: [UInt8], mode: UInt32?)]] = [
            [("\(router)-root.qcow2", "/etc/systemd/network/10-uplink.network", Self.networkFile(mac: uplinkMAC, "DHCP=ipv4"), nil),
             ("\(router)-root.qcow2", "/etc/systemd/network/20-internal.network",
              Self.networkFile(mac: innerMAC, "Address=\(Self.routerAddress)/24"), nil)],
            [("\(desk)-root.qcow2", "/etc/systemd/network/20-internal.network",
              Self.networkFile(mac: deskMAC, "Address=\(Self.controllerAddress)/24\nGateway=\(Self.routerAddress)"), nil),
             ("\(desk)-root.qcow2", "/etc/multiverse/ready.d/50-reach", Self.reachCheck(hosts: hosts), 0o755)],
        ]
        let failures = Mutex<[String]>([])
        // Safe to share: each call only reads the stack's constant bus address and runs its
        // own busctl child process.
        nonisolated(unsafe) let shared = s
        DispatchQueue.concurrentPerform(iterations: writes.count) { i in
            for w in writes[i] {
                let options = w.mode.map { ["1", "mode", "u", "\($0)"] } ?? ["0"]
                let r = shared.busctl(["--timeout=300", "call", TestStack.busName, TestStack.diskPath(w.disk), TestStack.diskInterface,
                                       "WriteFile", "saya{sv}", w.path, "\(w.content.count)"] + w.content.map(String.init) + options,
                                      as: TestStack.grantedUser)
                guard r.ok else {
                    failures.withLock { $0.append("WriteFile \(w.path) in \(w.disk): \(r.all)") }
                    return
                }
            }
        }
        XCTAssertEqual(failures.withLock { $0 }, [])
        guard failures.withLock({ $0.isEmpty }) else { return }
        XCTAssertEqual(QemuSystemTests.virsh(["domstate", router]).stdout.trimmingCharacters(in: .whitespacesAndNewlines), "shut off")

        let started = Date()
        let all = s.manager("StartAll", ["a{sv}", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(all.ok, all.all)
        XCTAssertTrue(waitFor(900, interval: 1) { s.jobProperty(all.replyPath, "State") != .string("running") })
        let state = s.jobProperty(all.replyPath, "State")
        print("RealGuestTests: StartAll of the pair ended \(state.shown) after \(Int(Date().timeIntervalSince(started))) s")
        let status = s.vmProperty(desk, "GuestStatus")
        XCTAssertEqual(state, .string("succeeded"), "\(s.jobProperty(all.replyPath, "Error").shown); \(desk) status \(status.shown); console: \(Self.consoleTail(desk))")
        let result = s.jobProperty(all.replyPath, "Result")
        XCTAssertEqual(result["order"], .strings([router, desk]), result.shown)
        XCTAssertEqual(result["ready"], .strings([router, desk]), result.shown)
        XCTAssertEqual(s.vmProperty(router, "Ready"), .boolean(true))
        let guestStatus = status?.string ?? ""
        XCTAssertTrue(guestStatus.contains("reach: router \(Self.routerAddress) answers, host addresses \(hosts.joined(separator: " ")) do not"), status.shown)
        XCTAssertTrue(guestStatus.contains("(ARP answered on the link for: none)"), "the host answers ARP on the internal link: \(status.shown)")
        // The host's side, as sysctl shows it: the internal network's bridge is sealed.
        let network = ObjectPath.encode(prefix: "/org/multiverse/Controller/network", QemuSystemTests.internalNetwork)
        XCTAssertEqual(s.property(network, "org.multiverse.Controller.Network", "HostIsolated"), .boolean(true))
        let bridge = s.property(network, "org.multiverse.Controller.Network", "Bridge")?.string ?? ""
        for (key, value) in [("net/ipv4/conf/\(bridge)/arp_ignore", "8"), ("net/ipv4/conf/\(bridge)/forwarding", "0"),
                             ("net/ipv6/conf/\(bridge)/disable_ipv6", "1")] {
            XCTAssertEqual((try? String(contentsOfFile: "/proc/sys/" + key, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines),
                           value, "\(key) on the internal network's bridge")
        }

        let stop = s.manager("StopAll", ["a{sv}", "1", "timeout_s", "u", "240"], as: TestStack.grantedUser)
        XCTAssertTrue(stop.ok, stop.all)
        XCTAssertTrue(waitFor(600, interval: 1) { s.jobProperty(stop.replyPath, "State") != .string("running") })
        XCTAssertEqual(s.jobProperty(stop.replyPath, "State"), .string("succeeded"), s.jobProperty(stop.replyPath, "Error").shown)
        let stopped = s.jobProperty(stop.replyPath, "Result")
        XCTAssertEqual(stopped["stopped"], .strings([desk, router]), "not a clean shutdown of both, interface controller first: \(stopped.shown)")

        // What the check saw, from the stopped controller's overlay.
        let read = try stack.diskCall("\(desk)-root.qcow2", "ReadFile", ["sa{sv}", "/var/lib/multiverse/reach.txt", "0"])
        XCTAssertTrue(read.ok, read.all)
        let log = String(decoding: Self.bytes(read.stdout), as: UTF8.self)
        print("RealGuestTests: the interface controller's reach log:\n\(log)")
        XCTAssertTrue(log.contains("router \(Self.routerAddress) answers: yes"), log)
        for h in hosts { XCTAssertTrue(log.contains("neighbour \(h):"), "\(h) not tried: \(log)") }
    }
}

import Foundation
import SDBus
import XCTest

/// A real Debian 12 guest on `qemu:///system` (TCG): the image of scripts/make-guest-image
/// (Debian's kernel, systemd, udev, extlinux on its own disk, the readiness unit of guest/),
/// built once and cached in /var/cache/multiverse-test. It is a managed disk of the stack;
/// the VM is defined from a profile on an overlay of it, boots from its disk, and is judged
/// by what virsh and libvirt's log say.
final class RealGuestTests: XCTestCase {
    static let uri = QemuSystemTests.uri
    static let base = "debian12-controller.qcow2"

    override class func setUp() {
        SharedStacks.start(self) {
            try QemuSystemTests.startLibvirtd()
            let made = Command.run(TestStack.repo.appendingPathComponent("scripts/make-guest-image").path, [])
            guard made.ok, let image = made.stdout.split(separator: "\n").last.map(String.init) else {
                throw StackError("scripts/make-guest-image: \(made.all)")
            }
            let s = try TestStack(config: "[vms]\ndomain_type = \"qemu\"\ninternal_network = \"mvt-internal\"\n", libvirtURI: uri)
            // The image becomes a managed disk: the store reads its directory at start-up.
            s.stopDaemon()
            let copy = Command.run("/bin/cp", ["--reflink=auto", image, s.imageDir.appendingPathComponent(base).path])
            guard copy.ok else { throw StackError("copying \(image): \(copy.all)") }
            try s.startDaemon()
            return s
        }
    }

    override class func tearDown() { SharedStacks.stop(self) }

    var stack: TestStack { get throws { try SharedStacks.stack(Self.self) } }

    func vmCall(_ name: String, _ method: String, _ args: [String] = ["a{sv}", "0"]) throws -> CommandResult {
        guard let path = try stack.vmPath(name) else { throw StackError("no VM \(name)") }
        return try stack.busctl(["--timeout=300", "call", TestStack.busName, path, TestStack.vmInterface, method] + args, as: TestStack.grantedUser)
    }

    /// An ephemeral interface controller on an overlay of the Debian image (no NICs and no
    /// share here: the network pair is another test; the profile's /var/multiverse does not
    /// exist on these machines): its own systemd
    /// sends READY=1 through the readiness unit once multi-user.target is reached, with no
    /// failed unit; Shutdown powers it off through ACPI (libvirt logs a shutdown, not a
    /// destroy) and the ephemeral VM leaves nothing behind but the base image.
    func testDebianGuestBootsFromItsDiskSendsReadyAndShutsDownCleanly() throws {
        let s = try stack
        let name = "mvt-debian-\(UUID().uuidString.prefix(6))"
        let define = s.manager("DefineVM", ["ssa{sv}", name, "interface-controller", "6", "base_disk", "s", Self.base,
                                            "ephemeral", "b", "true", "networks", "as", "0", "shares", "a(ss)", "0",
                                            "memory_mib", "t", "512", "vcpus", "u", "1"], as: TestStack.grantedUser)
        XCTAssertTrue(define.ok, define.all)
        defer { QemuSystemTests.virsh(["destroy", name]); QemuSystemTests.virsh(["undefine", name]) }
        let xml = QemuSystemTests.virsh(["dumpxml", name]).stdout
        XCTAssertTrue(xml.contains("<boot dev='hd'/>") && !xml.contains("<kernel>"), "not a disk boot: \(xml)")
        XCTAssertTrue(xml.contains("\(name)-root.qcow2"), xml)

        let started = Date()
        let start = try vmCall(name, "Start")
        guard start.ok else { return XCTFail("Start: \(start.all) \(Self.consoleTail(name))") }
        let ready = waitFor(400, interval: 1) { (try? s.vmProperty(name, "Ready")) == "b true" }
        let bootSeconds = Int(Date().timeIntervalSince(started))
        let status = (try? s.vmProperty(name, "GuestStatus")) ?? ""
        XCTAssertTrue(ready, "no READY=1 from the guest's readiness unit after \(bootSeconds) s; status \(status); console: \(Self.consoleTail(name))")
        print("RealGuestTests: the Debian guest was ready \(bootSeconds) s after Start")
        XCTAssertEqual(status, "s \"Debian GNU/Linux 12 (bookworm): multi-user.target reached, 0 failed units\"")

        // Shutdown: ACPI power button -> logind -> poweroff; STOPPING=1 first.
        let shutdown = try vmCall(name, "Shutdown", ["a{sv}", "1", "timeout_s", "u", "240"])
        XCTAssertTrue(shutdown.ok, "the guest did not power off on ACPI within 240 s: \(shutdown.all) \(Self.consoleTail(name))")
        let log = (try? String(contentsOfFile: "/var/log/libvirt/qemu/\(name).log", encoding: .utf8)) ?? ""
        XCTAssertTrue(log.contains("reason=shutdown"), "libvirt's log does not show a guest shutdown: \(log.suffix(600))")
        XCTAssertTrue(waitFor(20, interval: 0.2) {
            QemuSystemTests.domainIsGone(name) && !s.imageFiles().contains("\(name)-root.qcow2")
        }, "the ephemeral VM or its overlay is still there: \(s.imageFiles())")
        XCTAssertTrue(s.imageFiles().contains(Self.base))
        XCTAssertTrue(s.log(tail: 200).contains("VM \(name): its guest is stopping"), s.log(tail: 40))
    }

    /// The last lines the guest wrote on its serial console (virsh's console log), for
    /// failure messages.
    static func consoleTail(_ name: String) -> String {
        let log = (try? String(contentsOfFile: "/var/log/libvirt/qemu/\(name).log", encoding: .utf8)) ?? "(no libvirt log)"
        return String(log.suffix(1500))
    }
}

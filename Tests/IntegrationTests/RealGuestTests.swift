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
            // On a machine without the cached Debian root, debootstrap alone takes minutes.
            let made = Command.run(TestStack.repo.appendingPathComponent("scripts/make-guest-image").path, [], timeout: 1800)
            guard made.ok, let image = made.stdout.split(separator: "\n").last.map(String.init) else {
                throw StackError("scripts/make-guest-image: \(made.all)")
            }
            // The image becomes a managed disk, copied in before the daemon reads its directory.
            return try TestStack(config: "[vms]\ndomain_type = \"qemu\"\ninternal_network = \"mvt-internal\"\n", libvirtURI: uri,
                                 adopt: [base: "qcow2"]) { images in
                let copy = Command.run("/bin/cp", ["--reflink=auto", image, images.appendingPathComponent(base).path])
                guard copy.ok else { throw StackError("copying \(image): \(copy.all)") }
            }
        }
    }

    override class func tearDown() { SharedStacks.stop(self) }

    var stack: TestStack { get throws { try SharedStacks.stack(Self.self) } }

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
        let start = try stack.vmCall(name, "Start")
        guard start.ok else { return XCTFail("Start: \(start.all) \(Self.consoleTail(name))") }
        let ready = waitFor(400, interval: 1) { s.vmProperty(name, "Ready") == .boolean(true) }
        let bootSeconds = Int(Date().timeIntervalSince(started))
        let status = s.vmProperty(name, "GuestStatus")
        XCTAssertTrue(ready, "no READY=1 from the guest's readiness unit after \(bootSeconds) s; status \(status.shown); console: \(Self.consoleTail(name))")
        print("RealGuestTests: the Debian guest was ready \(bootSeconds) s after Start")
        XCTAssertEqual(status, .string("Debian GNU/Linux 12 (bookworm): multi-user.target reached, 0 failed units"))

        // Shutdown: ACPI power button -> logind -> poweroff; STOPPING=1 first.
        let shutdown = try stack.vmCall(name, "Shutdown", ["a{sv}", "1", "timeout_s", "u", "240"])
        XCTAssertTrue(shutdown.ok, "the guest did not power off on ACPI within 240 s: \(shutdown.all) \(Self.consoleTail(name))")
        let log = (try? String(contentsOfFile: "/var/log/libvirt/qemu/\(name).log", encoding: .utf8)) ?? ""
        XCTAssertTrue(log.contains("reason=shutdown"), "libvirt's log does not show a guest shutdown: \(log.suffix(600))")
        XCTAssertTrue(waitFor(20, interval: 0.2) {
            QemuSystemTests.domainIsGone(name) && !s.imageFiles().contains("\(name)-root.qcow2")
        }, "the ephemeral VM or its overlay is still there: \(s.imageFiles())")
        XCTAssertTrue(s.imageFiles().contains(Self.base))
        XCTAssertTrue(s.log(tail: 200).contains("VM \(name): its guest is stopping"), s.log(tail: 40))
    }

    /// The disk API on the real image, judged by libguestfs' own tools: one guestfish session
    /// (one appliance launch) answers what Inspect, ReadFile, ListFiles and FilesystemUsage
    /// must agree with. /etc/os-release is a relative symlink in Debian 12: ReadFile follows
    /// it inside the guest.
    func testDiskAPIOnTheDebianImageAgreesWithGuestfish() throws {
        let s = try stack
        let image = s.imageDir.appendingPathComponent(Self.base).path
        let oracle = Command.run("/usr/bin/guestfish", ["--ro", "-a", image, "-i", "--",
            "echo", "==inspect", ":", "inspect-get-distro", "/dev/sda1", ":", "inspect-get-major-version", "/dev/sda1", ":",
            "inspect-get-product-name", "/dev/sda1", ":", "inspect-get-hostname", "/dev/sda1", ":",
            "echo", "==link", ":", "readlink", "/etc/os-release", ":",
            "echo", "==ls", ":", "ls", "/etc/systemd/system/multi-user.target.wants", ":",
            "echo", "==statvfs", ":", "statvfs", "/", ":", "echo", "==os-release", ":", "cat", "/etc/os-release"],
            environment: Self.guestfishEnvironment, timeout: 300)
        guard oracle.ok else { return XCTFail("guestfish: \(oracle.all)") }
        let sections = Self.sections(oracle.stdout)
        let inspectLines = sections["inspect"] ?? []
        XCTAssertEqual(inspectLines.first, "debian", oracle.stdout)
        XCTAssertEqual(sections["link"], ["../usr/lib/os-release"], "the oracle's image is not what the test expects")

        func disk(_ method: String, _ args: [String]) throws -> CommandResult { try stack.diskCall(Self.base, method, args) }
        let inspect = try disk("Inspect", ["a{sv}", "0"])
        XCTAssertTrue(inspect.ok, inspect.all)
        XCTAssertTrue(waitFor(300, interval: 0.5) { s.jobProperty(inspect.replyPath, "State") != .string("running") })
        XCTAssertEqual(s.jobProperty(inspect.replyPath, "State"), .string("succeeded"), s.jobProperty(inspect.replyPath, "Error").shown)
        let found = try disk("GetInspection", ["a{sv}", "0"])
        let result = found.stdout
        XCTAssertTrue(result.contains("\"distro\" s \"debian\""), found.all)
        XCTAssertEqual(inspectLines.count, 4, oracle.stdout)
        if inspectLines.count >= 4 {
            XCTAssertTrue(result.contains("\"version\" s \"\(inspectLines[1])"), "\(result) vs guestfish \(inspectLines)")
            XCTAssertTrue(result.contains("\"product_name\" s \"\(inspectLines[2])\""), "\(result) vs guestfish \(inspectLines)")
            XCTAssertTrue(result.contains("\"hostname\" s \"\(inspectLines[3])\""), "\(result) vs guestfish \(inspectLines)")
        }

        // ReadFile through the symlink: the bytes guestfish's cat prints.
        let read = try disk("ReadFile", ["sa{sv}", "/etc/os-release", "0"])
        XCTAssertTrue(read.ok, read.all)
        XCTAssertEqual(String(decoding: Self.bytes(read.stdout), as: UTF8.self), (sections["os-release"] ?? []).joined(separator: "\n") + "\n")

        // ListFiles: the names guestfish's ls lists (the enabled units, the readiness one among them).
        let list = try disk("ListFiles", ["sa{sv}", "/etc/systemd/system/multi-user.target.wants", "0"])
        XCTAssertTrue(list.ok, list.all)
        let listed = Set(Self.quoted(list.stdout).enumerated().filter { $0.offset % 2 == 0 }.map(\.element))
        XCTAssertEqual(listed, Set(sections["ls"] ?? []), list.stdout)
        XCTAssertTrue(listed.contains("multiverse-ready.service"), list.stdout)

        // GetFilesystemUsage, sampled by Inspect: the root's size, used and available bytes as statvfs says.
        let stat = Self.figures(sections["statvfs"] ?? [])
        let usage = try disk("GetFilesystemUsage", ["a{sv}", "0"]).stdout
        if let frsize = stat["frsize"], let blocks = stat["blocks"], let bfree = stat["bfree"], let bavail = stat["bavail"] {
            XCTAssertTrue(usage.hasPrefix("ta(sttt) ") && usage.hasSuffix(" 1 \"/dev/sda1\" \(blocks * frsize) \((blocks - bfree) * frsize) \(bavail * frsize)\n"),
                          "GetFilesystemUsage \(usage) against guestfish's statvfs \(stat)")
        } else {
            XCTFail("no statvfs figures from guestfish: \(oracle.stdout)")
        }
    }

    /// guestfish's output cut at its "==NAME" lines: NAME -> the lines after it.
    static func sections(_ output: String) -> [String: [String]] {
        var out: [String: [String]] = [:]
        var current = ""
        for line in output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("==") { current = String(line.dropFirst(2)); out[current] = [] } else if !current.isEmpty { out[current, default: []].append(line) }
        }
        for (k, v) in out { out[k] = Array(v.reversed().drop { $0.isEmpty }.reversed()) }
        return out
    }

    /// guestfish's `name: number` lines (statvfs) as a dictionary.
    static func figures(_ lines: [String]) -> [String: UInt64] {
        Dictionary(lines.compactMap { line -> (String, UInt64)? in
            let f = line.split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces) }
            guard f.count == 2, let value = UInt64(f[1]) else { return nil }
            return (f[0], value)
        }, uniquingKeysWith: { a, _ in a })
    }

    /// The bytes of a busctl `ay N b1 b2 ...` reply.
    static func bytes(_ reply: String) -> [UInt8] {
        reply.split(whereSeparator: { $0 == " " || $0 == "\n" }).dropFirst(2).compactMap { UInt8($0) }
    }

    /// The double-quoted strings of a busctl reply, in order.
    static func quoted(_ reply: String) -> [String] {
        reply.split(separator: "\"", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
    }

    /// The last lines the guest wrote on its serial console (virsh's console log), for
    /// failure messages.
    static func consoleTail(_ name: String) -> String {
        let log = (try? String(contentsOfFile: "/var/log/libvirt/qemu/\(name).log", encoding: .utf8)) ?? "(no libvirt log)"
        return String(log.suffix(1500))
    }
}

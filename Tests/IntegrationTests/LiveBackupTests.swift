import Foundation
import SDBus
import XCTest

/// Backup points of a running VM's disk on `qemu:///system` (TCG): the tests' tiny guest
/// (scripts/make-tiny-guest, `mv.disk=1`) writes known patterns to its disk when told to on
/// its port mv.disk.0, between points; each point, restored once the VM is stopped, holds
/// exactly what the guest had written before it (qemu-io's own pattern check on the
/// restored image). libvirt's checkpoints are read with virsh.
final class LiveBackupTests: XCTestCase {
    static let uri = QemuSystemTests.uri
    static let guestDir = ReadinessSystemTests.guestDir
    static let vm = "lb-vm"
    static let disk = "lb-data.qcow2"

    override class func setUp() {
        SharedStacks.start(self) {
            try QemuSystemTests.startLibvirtd()
            cleanup()
            return try ReadinessSystemTests.tinyGuestStack(more: "[disks]\ntracking_interval_s = 1\n")
        }
    }

    override class func tearDown() {
        SharedStacks.stop(self)
        cleanup()
    }

    static let pair = "lb-pair"

    static func cleanup() { removeVMs([vm, pair]) }

    /// Destroys and undefines the live-backup suites' VMs (with their checkpoints' metadata).
    static func removeVMs(_ names: [String]) {
        for name in names {
            QemuSystemTests.virsh(["destroy", name])
            QemuSystemTests.virsh(["undefine", name, "--checkpoints-metadata"])
        }
    }

    var stack: TestStack { get throws { try SharedStacks.stack(Self.self) } }

    static func xml(disk path: String, second: String? = nil, name: String = vm) -> String {
        let vdb = second.map { "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='\($0)'/><target dev='vdb' bus='virtio'/></disk>" } ?? ""
        return """
        <domain type='qemu'>
          <name>\(name)</name>
          <memory unit='MiB'>160</memory>
          <vcpu>1</vcpu>
          <os><type arch='x86_64' machine='pc'>hvm</type><kernel>\(guestDir)/vmlinuz</kernel><initrd>\(guestDir)/initrd.img</initrd>
            <cmdline>console=ttyS0 quiet mv.disk=1</cmdline></os>
          <features><acpi/><apic/></features>
          <cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model></cpu>
          <on_poweroff>destroy</on_poweroff>
          <devices>
            <disk type='file' device='disk'><driver name='qemu' type='qcow2' discard='unmap'/><source file='\(path)'/><target dev='vda' bus='virtio'/></disk>\(vdb)
            <serial type='pty'/><console type='pty'/><memballoon model='none'/>
            <channel type='unix'><source mode='bind'/><target type='virtio' name='mv.disk.0'/></channel>
          </devices>
        </domain>
        """
    }

    /// The guest's command port: each line is answered "ok N" once the guest synced it.
    final class GuestPort {
        let fd: Int32
        init(vm: String) throws {
            let xml = QemuSystemTests.virsh(["dumpxml", vm]).stdout
            guard let range = xml.range(of: "name='mv.disk.0'"),
                  let start = xml[..<range.lowerBound].range(of: "path='", options: .backwards) else {
                throw StackError("no mv.disk.0 socket in the live XML of \(vm)")
            }
            let path = String(xml[start.upperBound...].prefix { $0 != "'" })
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (i, byte) in path.utf8.enumerated() where i < raw.count - 1 { raw[i] = byte }
            }
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard connected == 0 else { close(fd); throw StackError("cannot connect to \(path)") }
            var timeout = timeval(tv_sec: 120, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
        deinit { close(fd) }

        /// Sends one command and returns the guest's answer line.
        func send(_ command: String) -> String {
            let line = Array((command + "\n").utf8)
            _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            var answer: [UInt8] = []
            var byte: UInt8 = 0
            while read(fd, &byte, 1) == 1 {
                if byte == UInt8(ascii: "\n") { break }
                answer.append(byte)
            }
            return String(decoding: answer, as: UTF8.self)
        }
    }

    /// Runs a disk job to its end; its Result, or nil (recorded).
    func runJob(_ disk: String, _ method: String, _ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> [String: DBusValue]? {
        try finish(try stack.diskCall(disk, method, args), "\(method) \(disk)", file: file, line: line)
    }

    /// Runs a VM job to its end; its Result, or nil (recorded).
    func runVMJob(_ vm: String, _ method: String, _ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> [String: DBusValue]? {
        try finish(try stack.vmCall(vm, method, args), "\(method) \(vm)", file: file, line: line)
    }

    /// Waits for the job a call started; its Result when it succeeded, else nil (recorded).
    func finish(_ r: CommandResult, _ what: String, file: StaticString, line: UInt) throws -> [String: DBusValue]? {
        let s = try stack
        guard r.ok else { XCTFail("\(what): \(r.all)", file: file, line: line); return nil }
        _ = waitFor(300, interval: 0.2) { s.jobProperty(r.replyPath, "State") != .string("running") }
        guard s.jobProperty(r.replyPath, "State") == .string("succeeded") else {
            XCTFail("\(what): \(s.jobProperty(r.replyPath, "Error").shown)", file: file, line: line)
            return nil
        }
        return s.jobProperty(r.replyPath, "Result")?.stringKeyedDictionary?.mapValues { $0.unwrapped }
    }

    /// qemu-io's pattern check of `length` bytes at `offset` of the image (0 for zeros).
    static func holds(_ image: String, byte: UInt8, at offset: Int, length: Int) -> Bool {
        let r = Command.run("/usr/bin/qemu-io", ["-r", "-f", "qcow2", "-c", "read -P \(byte) \(offset) \(length)", image])
        return r.ok && !r.all.contains("verification failed") && r.stdout.contains("read \(length)/\(length) bytes")
    }

    static func checkpoints(_ name: String = vm) -> [String] {
        QemuSystemTests.virsh(["checkpoint-list", name, "--name"]).stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// Three points while the guest writes between them (data, zeros over data, a discard):
    /// a full one, then incremental ones on it, libvirt keeping one checkpoint (the newest
    /// point's); an offline point once the VM stopped, then a live one after the next start
    /// is incremental on it (the offline point's checkpoint was redefined in libvirt). Each
    /// point restored holds exactly the patterns written before it.
    func testRunningVMPointsHoldWhatTheGuestWroteBeforeEach() throws {
        let s = try stack
        let image = s.imageDir.appendingPathComponent(Self.disk).path
        XCTAssertTrue(s.createDisk(Self.disk, size: 64 << 20, as: TestStack.grantedUser).ok)
        let define = s.manager("DefineVMFromXML", ["sa{sv}", Self.xml(disk: image), "0"], as: TestStack.grantedUser)
        XCTAssertTrue(define.ok, define.all)
        let start = try s.vmCall(Self.vm, "Start")
        XCTAssertTrue(start.ok, start.all)
        var port: GuestPort?
        _ = waitFor(60, interval: 0.5) { port = try? GuestPort(vm: Self.vm); return port != nil }
        guard let port else { return XCTFail("the guest's port did not appear") }
        let kib = 1024
        XCTAssertEqual(port.send("P A 0 1024"), "ok 1")

        guard let first = try runJob(Self.disk, "Backup", ["a{sv}", "0"]), let p1 = first["backup_id"]?.string else { return }
        XCTAssertEqual(first["kind"]?.string, "full", "\(first)")
        XCTAssertEqual(Self.checkpoints(), ["mv-\(p1)"])
        // The backup's end came as libvirt's job-completed event (-3 in the daemon's debug log;
        // the wait wakes on it).
        XCTAssertTrue(s.log(tail: 400).contains("libvirt event -3/0 for \(Self.vm)"), s.log(tail: 20))
        let tracking = s.diskProperty(Self.disk, "ChangeTracking")?.stringKeyedDictionary
        XCTAssertEqual(tracking?["state"]?.string, "tracking", "\(String(describing: tracking))")
        XCTAssertEqual(tracking?["changed"]?.uint64, 0)

        XCTAssertEqual(port.send("P B 1024 64"), "ok 2")
        XCTAssertEqual(port.send("Z x 0 64"), "ok 3")
        XCTAssertEqual(port.send("D x 128 64"), "ok 4")
        // What the guest changed since p1, measured through libvirt on the service's clock
        // (1 s here): 64 KiB of B, 64 KiB of zeros over A and a 64 KiB discard.
        var changed: UInt64?
        XCTAssertTrue(waitFor(30, interval: 0.5) {
            changed = s.diskProperty(Self.disk, "ChangeTracking")?.stringKeyedDictionary?["changed"]?.uint64
            return (changed ?? 0) >= 192 << 10
        }, "ChangeTracking.changed did not reach the guest's 192 KiB: \(String(describing: changed))")
        XCTAssertTrue((128 << 10)...(256 << 10) ~= Int(changed ?? 0), "changed \(String(describing: changed)) for 192 KiB written")
        guard let second = try runJob(Self.disk, "Backup", ["a{sv}", "0"]), let p2 = second["backup_id"]?.string else { return }
        XCTAssertEqual(second["kind"]?.string, "incremental", "\(second)")
        XCTAssertEqual(second["parent"]?.string, p1)
        XCTAssertEqual(Self.checkpoints(), ["mv-\(p2)"], "libvirt keeps the newest point's checkpoint only")

        // While it runs: a point restored as a new disk (the disk itself cannot be restored).
        let busy = s.diskCall(Self.disk, "Restore", ["sa{sv}", p1, "0"])
        XCTAssertTrue(!busy.ok && busy.all.contains("is held by VM \(Self.vm)"), busy.all)
        guard let copy = try runJob(Self.disk, "Restore", ["sa{sv}", p1, "1", "new_name", "s", "lb-p1.qcow2"]) else { return }
        XCTAssertEqual(copy["disk"]?.string, "lb-p1.qcow2")
        let copied = s.imageDir.appendingPathComponent("lb-p1.qcow2").path
        XCTAssertTrue(Self.holds(copied, byte: UInt8(ascii: "A"), at: 0, length: 1024 * kib), "point \(p1) as a new disk")
        XCTAssertTrue(Self.holds(copied, byte: 0, at: 1024 * kib, length: 64 * kib), "nothing written after \(p1)")
        XCTAssertEqual(s.vmProperty(Self.vm, "State"), .string("running"))

        XCTAssertEqual(port.send("P C 2048 64"), "ok 5")
        guard let third = try runJob(Self.disk, "Backup", ["a{sv}", "1", "mode", "s", "incremental"]), let p3 = third["backup_id"]?.string else { return }
        XCTAssertEqual(third["parent"]?.string, p2)
        // Changed blocks only: the third point holds the one 64 KiB block written (and the
        // qcow2 metadata).
        XCTAssertLessThan(third["size"]?.uint64 ?? .max, 1 << 20, "\(third)")

        // Stopped: an offline point, whose checkpoint libvirt gets for the next start.
        XCTAssertTrue(try s.vmCall(Self.vm, "Destroy").ok)
        XCTAssertTrue(waitFor(60, interval: 0.5) { s.vmProperty(Self.vm, "State") == .string("shutoff") })
        guard let offline = try runJob(Self.disk, "Backup", ["a{sv}", "0"]), let p4 = offline["backup_id"]?.string else { return }
        XCTAssertEqual(offline["parent"]?.string, p3, "\(offline)")
        XCTAssertEqual(Self.checkpoints(), ["mv-\(p4)"], "the offline point's checkpoint is redefined in libvirt")
        let offlineTracking = s.diskProperty(Self.disk, "ChangeTracking")?.stringKeyedDictionary
        XCTAssertEqual(offlineTracking?["state"]?.string, "tracking", "\(String(describing: offlineTracking))")
        XCTAssertEqual(offlineTracking?["changed"]?.uint64, 0)

        // Running again: the next live point builds on the offline one.
        XCTAssertTrue(try s.vmCall(Self.vm, "Start").ok)
        var again: GuestPort?
        _ = waitFor(60, interval: 0.5) { again = try? GuestPort(vm: Self.vm); return again != nil }
        XCTAssertEqual(again?.send("P D 4096 64"), "ok 1")
        guard let fifth = try runJob(Self.disk, "Backup", ["a{sv}", "0"]) else { return }
        XCTAssertEqual(fifth["kind"]?.string, "incremental", "\(fifth)")
        XCTAssertEqual(fifth["parent"]?.string, p4)
        XCTAssertTrue(try s.vmCall(Self.vm, "Destroy").ok)
        XCTAssertTrue(waitFor(60, interval: 0.5) { s.vmProperty(Self.vm, "State") == .string("shutoff") })

        // Each point restored into the disk: exactly what was written before it.
        for (id, expected) in [(p1, [("A", 0, 1024)]), (p2, [("0", 0, 64), ("A", 64, 64), ("0", 128, 64), ("A", 192, 832), ("B", 1024, 64)]),
                               (p3, [("0", 0, 64), ("B", 1024, 64), ("C", 2048, 64), ("0", 2112, 64)])] {
            guard try runJob(Self.disk, "Restore", ["sa{sv}", id, "0"]) != nil else { return }
            for (letter, offset, length) in expected {
                let byte = letter == "0" ? UInt8(0) : Character(letter).asciiValue!
                XCTAssertTrue(Self.holds(image, byte: byte, at: offset * kib, length: length * kib), "point \(id): \(letter) at \(offset) KiB")
            }
        }
        XCTAssertFalse(Self.holds(image, byte: 0, at: 2048 * kib, length: 64 * kib), "the check itself must see C at 2048 KiB")
    }

    static func strings(_ value: DBusValue?) -> [String] { value?.arrayElements?.compactMap(\.string) ?? [] }

    /// VM.Backup of a running two-disk VM: both disks' points from one push backup with one
    /// checkpoint (virsh), each holding what the guest wrote to it before the point; a
    /// Disk.Backup of one disk afterwards is incremental on its VM point; a VM point of the
    /// stopped VM; VM.ListBackups; VM.Restore of each point brings both disks back together.
    func testAVMPointTakesBothDisksTogetherAndRestoresThem() throws {
        let s = try stack
        let (a, b) = ("lb-pair-a.qcow2", "lb-pair-b.qcow2")
        let (imageA, imageB) = (s.imageDir.appendingPathComponent(a).path, s.imageDir.appendingPathComponent(b).path)
        XCTAssertTrue(s.createDisk(a, size: 32 << 20, as: TestStack.grantedUser).ok)
        XCTAssertTrue(s.createDisk(b, size: 32 << 20, as: TestStack.grantedUser).ok)
        let define = s.manager("DefineVMFromXML", ["sa{sv}", Self.xml(disk: imageA, second: imageB, name: Self.pair), "0"], as: TestStack.grantedUser)
        XCTAssertTrue(define.ok, define.all)
        XCTAssertTrue(try s.vmCall(Self.pair, "Start").ok)
        var port: GuestPort?
        _ = waitFor(60, interval: 0.5) { port = try? GuestPort(vm: Self.pair); return port != nil }
        guard let port else { return XCTFail("the guest's port did not appear") }
        XCTAssertEqual(port.send("P A 0 64 vda"), "ok 1")
        XCTAssertEqual(port.send("P A 0 64 vdb"), "ok 2")

        guard let first = try runVMJob(Self.pair, "Backup", ["a{sv}", "0"]), let g1 = first["backup_id"]?.string else { return }
        XCTAssertEqual(Self.strings(first["disks"]), [a, b], "\(first)")
        XCTAssertEqual(Self.strings(first["kinds"]), ["full", "full"])
        XCTAssertEqual(Self.checkpoints(Self.pair), ["mv-\(g1)"], "one checkpoint for both disks")

        XCTAssertEqual(port.send("P B 0 64 vda"), "ok 3")
        XCTAssertEqual(port.send("P B 0 64 vdb"), "ok 4")
        guard let second = try runVMJob(Self.pair, "Backup", ["a{sv}", "0"]), let g2 = second["backup_id"]?.string else { return }
        XCTAssertEqual(Self.strings(second["kinds"]), ["incremental", "incremental"], "\(second)")
        XCTAssertEqual(Self.checkpoints(Self.pair), ["mv-\(g2)"])

        // One disk alone, still running: incremental on its point of the VM point.
        XCTAssertEqual(port.send("P C 64 64 vda"), "ok 5")
        guard let alone = try runJob(a, "Backup", ["a{sv}", "0"]) else { return }
        XCTAssertEqual(alone["kind"]?.string, "incremental", "\(alone)")
        XCTAssertEqual(alone["parent"]?.string, Self.strings(second["points"]).first)

        XCTAssertTrue(try s.vmCall(Self.pair, "Destroy").ok)
        XCTAssertTrue(waitFor(60, interval: 0.5) { s.vmProperty(Self.pair, "State") == .string("shutoff") })
        guard let stopped = try runVMJob(Self.pair, "Backup", ["a{sv}", "0"]), let g3 = stopped["backup_id"]?.string else { return }
        XCTAssertEqual(Self.strings(stopped["disks"]), [a, b])
        let list = try s.vmCall(Self.pair, "ListBackups", ["a{sv}", "0"])
        for id in [g1, g2, g3] { XCTAssertTrue(list.stdout.contains("\"\(id)\""), list.stdout) }
        let refused = try s.vmCall(Self.pair, "Restore", ["sa{sv}", g1, "0"], as: TestStack.otherUser)
        XCTAssertFalse(refused.ok, "another user restored the VM: \(refused.all)")

        for (id, letter) in [(g1, UInt8(ascii: "A")), (g2, UInt8(ascii: "B"))] {
            guard try runVMJob(Self.pair, "Restore", ["sa{sv}", id, "0"]) != nil else { return }
            for image in [imageA, imageB] {
                XCTAssertTrue(Self.holds(image, byte: letter, at: 0, length: 64 << 10), "\(id): \(image)")
                XCTAssertTrue(Self.holds(image, byte: 0, at: 64 << 10, length: 64 << 10), "\(id): \(image) has nothing written after the point")
            }
        }
    }
}

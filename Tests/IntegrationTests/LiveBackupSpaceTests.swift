import Foundation
import SDBus
import XCTest

/// A running VM's point on a small backup store (a 3 GiB tmpfs mounted over the stack's
/// backup directory) that something else fills: the preflight refuses a point that cannot
/// fit, and the watch stops qemu's job when the room the point may still need is taken
/// during the copy — before a push target fills the filesystem, which would make qemu fail
/// the guest's own writes. The guest is never paused and its writes during the backup
/// succeed. (Broken once, the watch back at a fixed 64 MiB floor: qemu filled the store.)
final class LiveBackupSpaceTests: XCTestCase {
    static let vm = "lbs-vm"
    static let disk = "lbs-data.qcow2"

    override class func setUp() {
        SharedStacks.start(self) {
            try QemuSystemTests.startLibvirtd()
            cleanup()
            let s = try ReadinessSystemTests.tinyGuestStack()
            s.stopDaemon()
            let store = s.dir.appendingPathComponent("backups").path
            let mount = Command.run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=3000m,mode=0711", "tmpfs", store])
            guard mount.ok else { throw StackError("cannot mount a tmpfs on \(store): \(mount.all)") }
            try s.startDaemon()
            return s
        }
    }

    override class func tearDown() {
        cleanup()
        if let s = try? SharedStacks.stack(self) {
            s.stopDaemon()
            _ = Command.run("/usr/bin/umount", [s.dir.appendingPathComponent("backups").path])
        }
        SharedStacks.stop(self)
        cleanup()
    }

    static func cleanup() { LiveBackupTests.removeVMs([vm]) }

    var stack: TestStack { get throws { try SharedStacks.stack(Self.self) } }
    var store: String { get throws { try stack.dir.appendingPathComponent("backups").path } }

    func free() throws -> UInt64 {
        (try FileManager.default.attributesOfFileSystem(forPath: try store)[.systemFreeSize] as? NSNumber)?.uint64Value ?? 0
    }

    /// Takes all but `left` bytes of the store with a file of someone else's.
    func fill(leaving left: UInt64, file: String = "filler") throws {
        let free = try free()
        guard free > left else { throw StackError("the store has \(free) bytes free, fewer than the \(left) to leave") }
        try take(free - left, file: file)
    }

    /// Takes `bytes` of the store with a file of someone else's.
    func take(_ bytes: UInt64, file: String) throws {
        let r = Command.run("/usr/bin/fallocate", ["-l", String(bytes), try store + "/" + file])
        XCTAssertTrue(r.ok, r.all)
    }

    func job(_ r: CommandResult) throws -> (state: String, error: String) {
        let s = try stack
        guard r.ok else { return ("not started", r.all) }
        _ = waitFor(300, interval: 0.05) { s.jobProperty(r.replyPath, "State") != .string("running") }
        return (s.jobProperty(r.replyPath, "State")?.string ?? "", s.jobProperty(r.replyPath, "Error")?.string ?? "")
    }

    /// Unfinished files in the store, besides the filler.
    func leftovers() throws -> [String] {
        (try FileManager.default.contentsOfDirectory(atPath: try store)).filter { $0.hasPrefix(".") }
    }

    /// The guest ran without a pause: libvirt says running, started by a boot (a VM paused
    /// on an I/O error stays paused, or says "unpaused" once resumed).
    func neverPaused() -> Bool {
        let r = QemuSystemTests.virsh(["domstate", Self.vm, "--reason"])
        return r.stdout.contains("running (booted)")
    }

    func testTheStoreRunningOutNeverPausesTheGuest() throws {
        let s = try stack
        let image = s.imageDir.appendingPathComponent(Self.disk).path
        // 2 GiB of data: a full point's copy lasts long enough to take the room away.
        XCTAssertTrue(s.createDisk(Self.disk, size: 3 << 30, as: TestStack.grantedUser).ok)
        let data = Command.run("/usr/bin/qemu-io", ["-f", "qcow2", "-c", "write -P 0x41 0 1G", "-c", "write -P 0x41 1G 1G", image])
        XCTAssertTrue(data.ok, data.all)
        let define = s.manager("DefineVMFromXML", ["sa{sv}", LiveBackupTests.xml(disk: image, name: Self.vm), "0"], as: TestStack.grantedUser)
        XCTAssertTrue(define.ok, define.all)
        XCTAssertTrue(try s.vmCall(Self.vm, "Start").ok)
        var port: LiveBackupTests.GuestPort?
        _ = waitFor(60, interval: 0.5) { port = try? LiveBackupTests.GuestPort(vm: Self.vm); return port != nil }
        guard let port else { return XCTFail("the guest's port did not appear") }

        // 1. No room for the point: refused before qemu writes anything.
        try fill(leaving: 600 << 20)
        let refused = try job(s.diskCall(Self.disk, "Backup", ["a{sv}", "0"]))
        XCTAssertEqual(refused.state, "failed")
        XCTAssertTrue(refused.error.contains("needs up to"), refused.error)
        let needs = UInt64(refused.error.components(separatedBy: "needs up to ").last?.split(separator: " ").first ?? "") ?? 0
        XCTAssertEqual(try leftovers(), [])
        XCTAssertEqual(port.send("P B 0 64"), "ok 1")

        // 2. The room taken while qemu copies: the watch stops the job; the guest's write in
        // the middle of it (copy-before-write to the push target) succeeds.
        // The store holds just what the point needs, the floor and 300 MiB; then, once qemu
        // copies, 600 MiB more are taken: less than the point still needs, while qemu keeps
        // over 1 GiB of room until the watch looks again (250 ms; ~750 MB/s here).
        try FileManager.default.removeItem(atPath: try store + "/filler")
        XCTAssertGreaterThan(needs, 1 << 30, refused.error)
        try fill(leaving: needs + (64 << 20) + (300 << 20))
        let r = s.diskCall(Self.disk, "Backup", ["a{sv}", "0"])
        XCTAssertTrue(r.ok, r.all)
        let t0 = Date()
        XCTAssertTrue(waitFor(60, interval: 0.02) { (s.jobProperty(r.replyPath, "Progress")?.double ?? 0) > 0.01 })
        try take(600 << 20, file: "filler2")
        print("the store was filled \(String(format: "%.2f", Date().timeIntervalSince(t0))) s into the backup, \(try free() >> 20) MiB left")
        XCTAssertEqual(port.send("P C 512000 64"), "ok 2", "the guest's write during the backup failed")
        let stopped = try job(r)
        XCTAssertEqual(stopped.state, "failed")
        XCTAssertTrue(stopped.error.contains("may still need"), stopped.error)
        XCTAssertEqual(try leftovers(), [])
        XCTAssertTrue(neverPaused(), QemuSystemTests.virsh(["domstate", Self.vm, "--reason"]).stdout)
        XCTAssertEqual(port.send("P D 1024 64"), "ok 3")

        // Neither left a point; the guest's writes are on its disk (read beside the running
        // VM, shared).
        let points = s.diskCall(Self.disk, "ListBackupPoints", ["a{sv}", "0"])
        XCTAssertEqual(points.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "a(ssstts) 0", points.all)
        for (letter, offset) in [("B", 0), ("C", 512000), ("D", 1024)] {
            let r = Command.run("/usr/bin/qemu-io", ["-r", "-U", "-f", "qcow2", "-c", "read -P \(Character(letter).asciiValue!) \(offset << 10) 64k", image])
            XCTAssertTrue(r.ok && !r.all.contains("verification failed"), "\(letter) at \(offset) KiB: \(r.all)")
        }
    }
}

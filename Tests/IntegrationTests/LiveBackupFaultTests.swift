import Foundation
import SDBus
import XCTest

/// Faults in the middle of a running VM's backup point, on `qemu:///system` with the tiny
/// guest: the VM's qemu killed, the VM destroyed, the daemon killed. Each leaves no file of
/// the unfinished point, no checkpoint of it in libvirt, and a chain whose next point is
/// right (full when qemu left the tracking inconsistent) and restores what the guest wrote.
/// The disk holds 512 MiB of data so that a full point takes long enough to be interrupted.
final class LiveBackupFaultTests: XCTestCase {
    static let vm = "lbf-vm"
    static let disk = "lbf-data.qcow2"

    override class func setUp() {
        SharedStacks.start(self) {
            try QemuSystemTests.startLibvirtd()
            cleanup()
            return try ReadinessSystemTests.tinyGuestStack()
        }
    }

    override class func tearDown() {
        SharedStacks.stop(self)
        cleanup()
    }

    static func cleanup() { LiveBackupTests.removeVMs([vm, pair]) }

    var stack: TestStack { get throws { try SharedStacks.stack(Self.self) } }

    /// Starts a job on the disk; its object path.
    func begin(_ method: String, _ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String? {
        let r = try stack.diskCall(Self.disk, method, args)
        guard r.ok else { XCTFail("\(method): \(r.all)", file: file, line: line); return nil }
        return r.replyPath
    }

    /// Waits for a job's end: its state, Error and Result.
    func end(_ job: String) throws -> (state: String, error: String, result: [String: DBusValue]) {
        let s = try stack
        _ = waitFor(300, interval: 0.2) { s.jobProperty(job, "State") != .string("running") }
        return (s.jobProperty(job, "State")?.string ?? "", s.jobProperty(job, "Error")?.string ?? "",
                s.jobProperty(job, "Result")?.stringKeyedDictionary?.mapValues { $0.unwrapped } ?? [:])
    }

    /// Runs a disk job to its end; its Result when it succeeded, else nil (recorded).
    func run(_ method: String, _ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> [String: DBusValue]? {
        guard let job = try begin(method, args, file: file, line: line) else { return nil }
        let ended = try end(job)
        guard ended.state == "succeeded" else { XCTFail("\(method): \(ended.error)", file: file, line: line); return nil }
        return ended.result
    }

    /// Waits until `job` has copied something (its Progress moved), so a fault lands in the
    /// middle of qemu's copy; false if it ended first.
    func copying(_ job: String) throws -> Bool {
        let s = try stack
        return waitFor(60, interval: 0.05) {
            (s.jobProperty(job, "Progress")?.double ?? 0) > 0.02 || s.jobProperty(job, "State") != .string("running")
        } && s.jobProperty(job, "State") == .string("running")
    }

    func startVM() throws -> LiveBackupTests.GuestPort? {
        let s = try stack
        let start = try s.vmCall(Self.vm, "Start")
        XCTAssertTrue(start.ok, start.all)
        var port: LiveBackupTests.GuestPort?
        _ = waitFor(60, interval: 0.5) { port = try? LiveBackupTests.GuestPort(vm: Self.vm); return port != nil }
        XCTAssertNotNil(port, "the guest's port did not appear")
        return port
    }

    func waitShutOff() throws {
        let s = try stack
        XCTAssertTrue(waitFor(60, interval: 0.2) { s.vmProperty(Self.vm, "State") == .string("shutoff") })
    }

    /// Unfinished files in the backup directory (partials of a point).
    func leftovers() throws -> [String] {
        let dir = try stack.dir.appendingPathComponent("backups").path
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix(".") }.sorted()
    }

    /// The pid of the VM's qemu, as libvirt recorded it.
    static func qemuPID() -> pid_t? {
        (try? String(contentsOfFile: "/run/libvirt/qemu/\(vm).pid", encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    func testAKilledQemuADestroyedVMAndAKilledDaemonMidBackupLeaveNothingAndTheChainHolds() throws {
        let s = try stack
        let image = s.imageDir.appendingPathComponent(Self.disk).path
        XCTAssertTrue(s.createDisk(Self.disk, size: 1 << 30, as: TestStack.grantedUser).ok)
        // 512 MiB of data: a full point copies all of it.
        let fill = Command.run("/usr/bin/qemu-io", ["-f", "qcow2", "-c", "write -P 0x41 0 512M", image])
        XCTAssertTrue(fill.ok, fill.all)
        let define = s.manager("DefineVMFromXML", ["sa{sv}", LiveBackupTests.xml(disk: image, name: Self.vm), "0"], as: TestStack.grantedUser)
        XCTAssertTrue(define.ok, define.all)
        guard var port = try startVM() else { return }
        let started = Date()
        guard try run("Backup", ["a{sv}", "0"]) != nil else { return }
        print("a live full point of 512 MiB took \(String(format: "%.2f", Date().timeIntervalSince(started))) s")

        // 1. The VM's qemu killed during a full point: the job fails, nothing is left, and
        // the next point is full, saying why (the live point's bitmap was in qemu only, never
        // stored in the image).
        XCTAssertEqual(port.send("P B 0 64"), "ok 1")
        guard let killed = try begin("Backup", ["a{sv}", "1", "mode", "s", "full"]) else { return }
        XCTAssertTrue(try copying(killed), "the full point ended before the fault")
        kill(try XCTUnwrap(Self.qemuPID()), SIGKILL)
        let afterKill = try end(killed)
        XCTAssertEqual(afterKill.state, "failed")
        try waitShutOff()
        XCTAssertEqual(try leftovers(), [])
        XCTAssertTrue(waitFor(10, interval: 0.2) { s.diskProperty(Self.disk, "ChangeTracking")?.stringKeyedDictionary?["state"]?.string == "broken" },
                      "\(String(describing: s.diskProperty(Self.disk, "ChangeTracking")))")
        guard let p2Result = try run("Backup", ["a{sv}", "0"]), let p2 = p2Result["backup_id"]?.string else { return }
        XCTAssertEqual(p2Result["kind"]?.string, "full", "\(p2Result)")
        XCTAssertTrue(p2Result["reason"]?.string?.contains("qemu was killed") == true, "\(p2Result)")
        XCTAssertEqual(LiveBackupTests.checkpoints(Self.vm), ["mv-\(p2)"])

        // 2. The VM destroyed during a full point: the job fails naming it; the next point
        // is incremental on the last good one.
        guard let again = try startVM() else { return }
        port = again
        XCTAssertEqual(port.send("P C 1024 64"), "ok 1")
        guard let destroyed = try begin("Backup", ["a{sv}", "1", "mode", "s", "full"]) else { return }
        XCTAssertTrue(try copying(destroyed), "the full point ended before the fault")
        XCTAssertTrue(try s.vmCall(Self.vm, "Destroy").ok)
        let afterDestroy = try end(destroyed)
        XCTAssertEqual(afterDestroy.state, "failed")
        XCTAssertTrue(afterDestroy.error.contains("stopped during the backup"), afterDestroy.error)
        try waitShutOff()
        XCTAssertEqual(try leftovers(), [])
        guard let p3Result = try run("Backup", ["a{sv}", "0"]), let p3 = p3Result["backup_id"]?.string else { return }
        XCTAssertEqual(p3Result["kind"]?.string, "incremental", "\(p3Result)")
        XCTAssertEqual(p3Result["parent"]?.string, p2)
        XCTAssertEqual(LiveBackupTests.checkpoints(Self.vm), ["mv-\(p3)"], "the failed point's checkpoint is gone")

        // 3. The daemon killed during a full point: after its restart nothing of the point
        // is left, qemu's job is gone, and the next point is incremental on the last good one.
        guard let third = try startVM() else { return }
        port = third
        XCTAssertEqual(port.send("P D 2048 64"), "ok 1")
        guard let orphaned = try begin("Backup", ["a{sv}", "1", "mode", "s", "full"]) else { return }
        XCTAssertTrue(try copying(orphaned), "the full point ended before the fault")
        s.stopDaemon(signal: SIGKILL)
        try s.startDaemon()
        XCTAssertEqual(try leftovers(), [])
        // qemu's job outlives the daemon when the restart is quicker than the copy: the
        // restarted daemon aborts it (libvirt 9.0 ends an aborted backup 30 s later).
        let left = !QemuSystemTests.virsh(["domjobinfo", Self.vm]).stdout.contains("None")
        XCTAssertTrue(waitFor(90, interval: 0.5) { QemuSystemTests.virsh(["domjobinfo", Self.vm]).stdout.contains("None") },
                      "qemu's backup job still runs: \(QemuSystemTests.virsh(["domjobinfo", Self.vm]).stdout)")
        // (Whether the restarted daemon or qemu ended it depends on the copy's remaining
        // time; the daemon logs an abort.)
        print("qemu's backup job \(left ? "outlived" : "ended before") the daemon's restart; the daemon "
              + (s.log(tail: 400).contains("aborting the backup job VM \(Self.vm)") ? "aborted it" : "aborted none"))
        guard let p4Result = try run("Backup", ["a{sv}", "0"]), let p4 = p4Result["backup_id"]?.string else { return }
        XCTAssertEqual(p4Result["kind"]?.string, "incremental", "\(p4Result)")
        XCTAssertEqual(p4Result["parent"]?.string, p3)
        XCTAssertEqual(LiveBackupTests.checkpoints(Self.vm), ["mv-\(p4)"])
        XCTAssertEqual(s.vmProperty(Self.vm, "State"), .string("running"), "the guest ran on through every fault")
        XCTAssertEqual(port.send("P E 4096 64"), "ok 2", "the guest still writes")

        // Each point restored as a new disk holds what was written before it.
        for (n, (id, expected)) in [(p2, [("B", 0, 64), ("A", 1024, 64)]),
                               (p3, [("B", 0, 64), ("C", 1024, 64), ("A", 2048, 64)]), (p4, [("C", 1024, 64), ("D", 2048, 64), ("A", 4096, 64)])].enumerated() {
            let copy = "lbf-p\(n + 1).qcow2"
            guard try run("Restore", ["sa{sv}", id, "1", "new_name", "s", copy]) != nil else { return }
            let path = s.imageDir.appendingPathComponent(copy).path
            for (letter, offset, length) in expected {
                XCTAssertTrue(LiveBackupTests.holds(path, byte: Character(letter).asciiValue!, at: offset << 10, length: length << 10),
                              "point \(id): \(letter) at \(offset) KiB")
            }
            _ = s.diskCall(copy, "Delete", ["a{sv}", "0"])
        }
    }
}

import ControllerAPI
import Foundation
import SDBus
import XCTest

/// The daemon killed at each step of a running two-disk VM's point, on `qemu:///system`
/// with the tiny guest. The daemon kills itself with SIGKILL at the step named by
/// `MULTIVERSE_CRASH_AT` (HostSystem's `CrashPoints`: a kill from outside cannot aim
/// between two lines): the point drafted but not begun, qemu's copy done but nothing
/// recorded, one disk's manifest written but not the other's, every manifest written but
/// the old checkpoint not yet deleted. After each restart nothing unfinished is left, a VM
/// point exists only when all its disks have their point, and the next point is
/// incremental on the last recorded one, with one checkpoint left in libvirt.
extension LiveBackupFaultTests {
    static let pair = "lbf-pair"
    static let steps = ["live-backup.drafted", "live-backup.copied", "live-backup.partly-recorded", "live-backup.recorded"]

    func points(_ disk: String) throws -> [(id: String, parent: String)] { try stack.backupPoints(disk).map { ($0.id, $0.parent) } }

    /// Runs VM.Backup of the pair to its end; its Result, or nil (recorded).
    func backUpPair(_ what: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String: DBusValue]? {
        let call = try stack.vmCall(Self.pair, "Backup", ["a{sv}", "0"])
        guard call.ok else { XCTFail("\(what): \(call.all)", file: file, line: line); return nil }
        let ended = try end(call.replyPath)
        guard ended.state == "succeeded" else { XCTFail("\(what): \(ended.error)", file: file, line: line); return nil }
        return ended.result
    }

    func testADaemonKilledAtEachStepOfAVMPointLeavesNothingUnfinishedAndTheChainHolds() throws {
        let s = try stack
        let disks = ["lbf-pair-a.qcow2", "lbf-pair-b.qcow2"]
        let images = disks.map { s.imageDir.appendingPathComponent($0).path }
        for disk in disks { XCTAssertTrue(s.createDisk(disk, size: 32 << 20, as: TestStack.grantedUser).ok) }
        let xml = LiveBackupTests.xml(disk: images[0], second: images[1], name: Self.pair)
        XCTAssertTrue(s.manager("DefineVMFromXML", ["sa{sv}", xml, "0"], as: TestStack.grantedUser).ok)
        XCTAssertTrue(try s.vmCall(Self.pair, "Start").ok)
        var found: LiveBackupTests.GuestPort?
        _ = waitFor(60, interval: 0.5) { found = try? LiveBackupTests.GuestPort(vm: Self.pair); return found != nil }
        guard let port = found else { return XCTFail("the guest's port did not appear") }
        var writes = 0
        // The guest writes `letter` at `offset` KiB (64 KiB) on both disks.
        func write(_ letter: UInt8, at offset: Int) {
            for target in ["vda", "vdb"] {
                writes += 1
                XCTAssertEqual(port.send("P \(Character(UnicodeScalar(letter))) \(offset) 64 \(target)"), "ok \(writes)")
            }
        }
        write(UInt8(ascii: "A"), at: 0)
        guard let first = try backUpPair("the first VM point"), let g0 = first["backup_id"]?.string else { return }
        var previous = g0
        var lone: (group: String, point: String, letters: Int)?

        for (n, step) in Self.steps.enumerated() {
            write(UInt8(ascii: "B") + UInt8(n), at: 64 * (n + 1))
            let before = try disks.map { try points($0).map(\.id) }
            s.stopDaemon()
            try s.startDaemon(environment: ["MULTIVERSE_CRASH_AT": step])
            XCTAssertTrue(waitFor(30, interval: 0.1) { s.vmPropertyIfPresent(Self.pair, "State") != nil }, "\(step): the daemon does not know the VM")
            // (Its reply may be lost: the job can reach its crash point first. The crash
            // point's line and the exit status show the job ran to it.)
            _ = try s.vmCall(Self.pair, "Backup", ["a{sv}", "0"])
            XCTAssertEqual(s.daemonExit(within: 120), 128 + SIGKILL, "\(step): the daemon did not stop at its crash point")
            XCTAssertTrue(s.log(tail: 5).contains("crash point \(step) reached"), "\(step): \(s.log(tail: 5))")
            try s.startDaemon()
            XCTAssertTrue(waitFor(30, interval: 0.1) { s.vmPropertyIfPresent(Self.pair, "State") != nil }, "\(step): the restarted daemon does not know the VM")

            XCTAssertEqual(try leftovers(), [], "\(step): unfinished files after the restart")
            XCTAssertTrue(QemuSystemTests.virsh(["domjobinfo", Self.pair]).stdout.contains("None"), "\(step): qemu still runs a job")
            // The crashed point's checkpoint (made with qemu's copy) is there until the next
            // backup reconciles; its name is the crashed VM point's.
            let crashed = LiveBackupTests.checkpoints(Self.pair).filter { $0 != "mv-\(previous)" }.first.map { String($0.dropFirst(3)) }
            let after = try disks.map { try points($0).map(\.id) }
            let listed = try s.vmCall(Self.pair, "ListBackups", ["a{sv}", "0"])
            switch step {
            case "live-backup.drafted":
                XCTAssertNil(crashed, "a checkpoint without a begun backup")
                XCTAssertEqual(after, before)
            case "live-backup.copied":
                let id = try XCTUnwrap(crashed, "qemu's copy made its checkpoint")
                XCTAssertEqual(after, before, "nothing is recorded before the manifests")
                XCTAssertFalse(listed.stdout.contains(id), listed.stdout)
            case "live-backup.partly-recorded":
                // The first disk's point is recorded, the second's not: no VM point, and the
                // first disk keeps its point.
                let id = try XCTUnwrap(crashed)
                XCTAssertEqual(after[0].count, before[0].count + 1)
                XCTAssertEqual(after[1], before[1])
                XCTAssertFalse(listed.stdout.contains(id), "an incomplete VM point is listed: \(listed.stdout)")
                XCTAssertTrue(s.log(tail: 400).contains("VM point \(id) is incomplete"), "the restart does not say so")
                lone = (id, after[0].last!, n + 2)
            default:
                let id = try XCTUnwrap(crashed)
                XCTAssertTrue(listed.stdout.contains(id), "every manifest was written: \(listed.stdout)")
                XCTAssertEqual(after.map(\.count), before.map { $0.count + 1 })
                previous = id
            }

            guard let next = try backUpPair("the point after a crash at \(step)"), let id = next["backup_id"]?.string else { return }
            XCTAssertEqual(LiveBackupTests.strings(next["kinds"]), ["incremental", "incremental"], "\(step): \(next)")
            // Each disk's point is on the disk's newest recorded point.
            let chains = try disks.map { try points($0) }
            for (disk, chain) in chains.enumerated() {
                XCTAssertEqual(chain.last?.parent, chain.dropLast().last?.id, "\(step): disk \(disk)")
            }
            XCTAssertEqual(LiveBackupTests.checkpoints(Self.pair), ["mv-\(id)"], "\(step): one checkpoint left")
            previous = id
        }

        // VM.Restore (of the stopped VM) refuses the incomplete VM point, naming what it lacks.
        QemuSystemTests.virsh(["destroy", Self.pair])
        XCTAssertTrue(waitFor(60, interval: 0.2) { s.vmProperty(Self.pair, "State") == .string("shutoff") })
        if let lone {
            let refused = try s.vmCall(Self.pair, "Restore", ["sa{sv}", lone.group, "0"])
            XCTAssertFalse(refused.ok)
            XCTAssertTrue(refused.stderr.contains("is incomplete: \(disks[1]) has no point in it"), refused.all)
        }

        // The newest points hold every letter on both disks; the lone point of the interrupted
        // VM point holds what was written before it.
        var restores = try disks.map { (try points($0).last!.id, 5) }
        if let lone { restores.append((lone.point, lone.letters)) }
        for (n, (point, letters)) in restores.enumerated() {
            let copy = "lbf-crash-\(n).qcow2"
            let call = s.diskCall(disks[n == 1 ? 1 : 0], "Restore", ["sa{sv}", point, "1", "new_name", "s", copy])
            XCTAssertTrue(call.ok, call.all)
            let ended = try end(call.replyPath)
            XCTAssertEqual(ended.state, "succeeded", ended.error)
            let path = s.imageDir.appendingPathComponent(copy).path
            for k in 0..<5 {
                let byte = k < letters ? UInt8(ascii: "A") + UInt8(k) : 0
                XCTAssertTrue(LiveBackupTests.holds(path, byte: byte, at: (64 * k) << 10, length: 64 << 10), "point \(point): letter \(k) at \(64 * k) KiB")
            }
            _ = s.diskCall(copy, "Delete", ["a{sv}", "0"])
        }
    }
}

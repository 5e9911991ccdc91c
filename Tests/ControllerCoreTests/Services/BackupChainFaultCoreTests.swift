@testable import ControllerCore
import Foundation
import HostSystem
import XCTest

/// Faults of stopped disks' points: a corrupted point found by VerifyBackup and never
/// restored (over the disk or as a new one), what a daemon killed mid-point leaves, a
/// storage daemon killed mid-copy.
extension BackupChainCoreTests {
    func testACorruptedPointIsFoundByVerifyAndNeverRestored() async throws {
        let disk = try await core.create("c", size: 8 << 20)
        try io(disk.path, ["write -P 0x31 0 2M"])
        let p1Job = try await backup("c")
        let p1 = try XCTUnwrap(string(p1Job, "backup_id"))
        try io(disk.path, ["write -P 0x32 1M 64k"])
        let p2Job = try await backup("c")
        let p2 = try XCTUnwrap(string(p2Job, "backup_id"))
        try io(disk.path, ["write -P 0x33 0 8M"])
        let before = try Data(contentsOf: URL(fileURLWithPath: disk.path))

        // One byte of p1's data flipped on the backup disk (found through qemu-img map).
        let map = try JSONSerialization.jsonObject(with: Data(try tool("/usr/bin/qemu-img", ["map", "--output=json", "-f", "qcow2", core.core.backups.pointImage(p1)]).utf8)) as? [[String: Any]]
        let offset = try XCTUnwrap(map?.first { ($0["data"] as? Bool) == true }?["offset"] as? Int)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: core.core.backups.pointImage(p1)))
        try handle.seek(toOffset: UInt64(offset + 4096))
        try handle.write(contentsOf: Data([0x00]))
        try handle.close()

        let verify = try await core.finished(try await core.disks.runVerify(try await core.disks.checkVerify("c", backup: p2), uid: 0))
        XCTAssertEqual(verify.state, "failed")
        XCTAssertTrue(verify.error.contains("backup point \(p1) is corrupted") == true, verify.error)
        let restore = try await restore("c", p2)
        XCTAssertEqual(restore.state, "failed")
        XCTAssertTrue(restore.error.contains("does not match its index") == true, restore.error)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: disk.path)), before, "the disk was touched")
        // Nor is it restored as a new disk: no disk, no file of that name is left.
        let asNew = try await core.finished(try await core.disks.runRestore(try await core.disks.checkRestore("c", backup: p2, newName: "c-copy"), uid: 0))
        XCTAssertEqual(asNew.state, "failed")
        XCTAssertTrue(asNew.error.contains("does not match its index") == true, asNew.error)
        let copy = await core.store.disk(named: "c-copy")
        XCTAssertNil(copy)
        XCTAssertFalse(FileManager.default.fileExists(atPath: core.store.path(of: "c-copy")))
        XCTAssertFalse((try FileManager.default.contentsOfDirectory(atPath: core.store.directory)).contains { $0.hasPrefix(".") })
    }

    func testWhatADaemonKilledMidPointLeavesIsCleanedAndTheChainHolds() async throws {
        let disk = try await core.create("k", size: 8 << 20)
        try io(disk.path, ["write -P 0x41 0 1M"])
        let p1Job = try await backup("k")
        let p1 = try XCTUnwrap(string(p1Job, "backup_id"))
        // What a daemon killed between the storage daemon's job and the manifest leaves: a
        // bitmap no record names and unfinished files.
        try io(disk.path, ["write -P 0x42 0 64k"])
        try tool("/usr/bin/qemu-img", ["bitmap", "--add", disk.path, "mv-k-ghost"])
        for name in [".k-ghost.qcow2.partial", ".k-ghost.index.partial", "k-orphan.qcow2", "k-orphan.index"] {
            FileManager.default.createFile(atPath: "\(core.core.backups.directory)/\(name)", contents: Data([1]))
        }
        try await core.core.backups.scan()
        XCTAssertEqual(backupFiles().filter { $0.contains("ghost") || $0.contains("orphan") }, [])
        let p2 = try await backup("k")
        XCTAssertEqual(string(p2, "kind"), "incremental", "the parent's bitmap still tracked every write")
        XCTAssertEqual(string(p2, "parent"), p1)
        XCTAssertEqual(try bitmaps(disk.path), [BackupChain.bitmapName(try XCTUnwrap(string(p2, "backup_id")))])
    }

    func testAKilledStorageDaemonFailsTheJobAndTheNextPointIsFull() async throws {
        await core.close()
        // The rate counts every byte of the disk, holes too: a small disk.
        core = try await CoreHarness(copyRate: CopyRate(bytesPerSecond: 8 << 20))
        let disk = try await core.create("slow", size: 16 << 20)
        try io(disk.path, ["write -P 0x51 0 1M"])
        let p1Job = try await backup("slow")
        let p1 = try XCTUnwrap(string(p1Job, "backup_id"))
        try io(disk.path, ["write -P 0x52 0 12M"])
        let job = try await core.disks.runBackup(try await core.disks.checkBackup("slow", compress: false), uid: 0)
        var pid: Int32?
        for _ in 0..<100 where pid == nil {
            try await Task.sleep(for: .milliseconds(100))
            pid = Int32((try? tool("/usr/bin/pgrep", ["-f", "qemu-storage-daemon.*\(disk.path)"]))?.split(separator: "\n").first ?? "")
        }
        let qsd = try XCTUnwrap(pid, "no storage daemon ran")
        // The storage daemon holds qemu's write lock: a writer (as a VM started meanwhile)
        // cannot open the disk.
        XCTAssertThrowsError(try io(disk.path, ["write -P 0x53 0 64k"]), "a writer opened the disk during the backup")
        kill(qsd, SIGKILL)
        let failed = try await core.finished(job)
        XCTAssertEqual(failed.state, "failed")
        XCTAssertFalse(backupFiles().contains { $0.hasPrefix(".") }, "\(backupFiles())")
        let left = try await core.disks.points(of: "slow").map(\.id)
        XCTAssertEqual(left, [p1])
        // qemu left every bitmap in-use: the next point cannot trust them, is full and says so.
        let inconsistent = await tracking("slow")
        XCTAssertEqual(inconsistent?.state, .broken)
        XCTAssertTrue(inconsistent?.reason.contains("inconsistent") == true, "\(String(describing: inconsistent))")
        let next = try await backup("slow")
        XCTAssertEqual(string(next, "kind"), "full")
        XCTAssertTrue(string(next, "reason")?.contains("inconsistent") == true, "\(next.result)")
        XCTAssertEqual(try bitmaps(disk.path), [BackupChain.bitmapName(try XCTUnwrap(string(next, "backup_id")))])
    }

    /// A chain of four points, the disk copied as it was at each (`as-of/N`).
    func chainOfFour(_ name: String) async throws -> (disk: DiskInfo, ids: [String], saved: String) {
        let disk = try await core.create(name, size: 8 << 20)
        let saved = core.dir.appendingPathComponent("as-of-\(name)").path
        try FileManager.default.createDirectory(atPath: saved, withIntermediateDirectories: true)
        var ids: [String] = []
        for (n, command) in ["write -P 0x61 0 4M", "write -P 0x62 1M 128k", "write -z 2M 64k", "write -P 0x64 7M 64k"].enumerated() {
            try io(disk.path, [command])
            let job = try await backup(name)
            ids.append(try XCTUnwrap(string(job, "backup_id")))
            try FileManager.default.copyItem(atPath: disk.path, toPath: "\(saved)/\(n + 1)")
        }
        return (disk, ids, saved)
    }

    func deleteBackup(_ disk: String, _ id: String) async throws -> JobSnapshot {
        try await core.finished(try await core.disks.runDeleteBackup(try await core.disks.checkDeleteBackup(disk, backup: id), uid: 0))
    }

    func verified(_ disk: String, _ id: String) async throws -> UInt64? {
        let job = try await core.finished(try await core.disks.runVerify(try await core.disks.checkVerify(disk, backup: id), uid: 0))
        XCTAssertEqual(job.state, "succeeded", job.error)
        if case .uint64(let n)? = job.result["points_checked"] { return n }
        return nil
    }

    /// Live backups' reservations count what their push targets may still grow by: what a
    /// target already holds is in the filesystem's free space and is not counted twice, and
    /// the free-space watch keeps room for every running backup's rest. (Margins of
    /// gigabytes: other tests may write to the same filesystem meanwhile.)
    func testSpaceReservationsCountWhatRunningBackupsMayStillWrite() async throws {
        let backups = core.core.backups
        let gib: UInt64 = 1 << 30
        let target = "\(backups.directory)/.space-test.qcow2.partial"
        defer { try? FileManager.default.removeItem(atPath: target) }
        FileManager.default.createFile(atPath: target, contents: nil)
        let free = try Files.availableBytes(backups.directory)
        guard free > 8 * gib else { return XCTFail("the backup filesystem has \(free) bytes free; the test needs 8 GiB") }
        // One backup reserves all but 3 GiB (and the floor), then its target holds 4 GiB.
        let reservation = free - DiskContext.backupSpaceFloor - 3 * gib
        try await backups.reserveSpace(reservation, files: [target], key: "vm one", for: "one")
        let fill = runTool("/usr/bin/fallocate", ["-l", "\(4 * gib)", target])
        XCTAssertEqual(fill.status, 0, fill.output)
        let needed = await backups.spaceStillNeeded()
        let held = try XCTUnwrap(Files.status(target)?.allocated)
        XCTAssertGreaterThanOrEqual(held, 4 * gib)
        XCTAssertEqual(needed, reservation - held, "the reservation less what its target holds")
        // A second backup of 1 GiB fits (counting the first's whole reservation, it would not).
        try await backups.reserveSpace(gib, files: [], key: "vm two", for: "two")
        await backups.endDrafts([], names: [], key: "vm two")
        // One of 5 GiB does not, and the refusal names the figures.
        do {
            try await backups.reserveSpace(5 * gib, files: [], key: "vm three", for: "three")
            XCTFail("a reservation beyond the free space was granted")
        } catch ControllerError.limitsExceeded(let message) {
            XCTAssertTrue(message.contains("still needed by other backups"), message)
        }
        await backups.endDrafts([], names: [], key: "vm one")
        let left = await backups.spaceStillNeeded()
        XCTAssertEqual(left, 0)
    }
}

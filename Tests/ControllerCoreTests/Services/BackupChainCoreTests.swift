@testable import ControllerCore
import Foundation
import HostSystem
import XCTest

/// Backup chains of stopped disks through DiskService's check/run halves, on real
/// qemu-img, qemu-io and qemu-storage-daemon: each point restored and compared with the
/// disk as it was (`qemu-img compare`), the chain's bitmaps as `qemu-img info` lists them,
/// corruption and a killed storage daemon caught.
final class BackupChainCoreTests: XCTestCase {
    var core: CoreHarness!

    override func setUp() async throws { core = try await CoreHarness() }
    override func tearDown() async throws { await core?.close() }

    @discardableResult
    func tool(_ path: String, _ arguments: [String]) throws -> String {
        let (status, text) = runTool(path, arguments)
        guard status == 0 else { throw NSError(domain: path, code: Int(status), userInfo: [NSLocalizedDescriptionKey: "\(arguments): \(text)"]) }
        return text
    }

    /// Writes into the image through qemu-io (as a guest's writes arrive: clusters, zero
    /// writes, discards).
    func io(_ path: String, _ commands: [String]) throws {
        try tool("/usr/bin/qemu-io", ["-f", "qcow2"] + commands.flatMap { ["-c", $0] } + [path])
    }

    /// Whether `a` and `b` (the disk's format, the other qcow2) hold the same guest bytes.
    func same(_ a: String, _ b: String, format: String = "qcow2") -> Bool {
        (try? tool("/usr/bin/qemu-img", ["compare", "-f", format, "-F", "qcow2", a, b])) != nil
    }

    func backup(_ disk: String, mode: BackupMode? = nil) async throws -> JobSnapshot {
        let job = try await core.finished(try await core.disks.runBackup(try await core.disks.checkBackup(disk, compress: false, mode: mode), uid: 0))
        XCTAssertEqual(job.state, "succeeded", job.error)
        return job
    }

    func restore(_ disk: String, _ id: String) async throws -> JobSnapshot {
        try await core.finished(try await core.disks.runRestore(try await core.disks.checkRestore(disk, backup: id), uid: 0))
    }

    func string(_ job: JobSnapshot, _ key: String) -> String? {
        if case .string(let s) = job.result[key] { s } else { nil }
    }

    func bitmaps(_ path: String) throws -> [String] {
        let data = try core.qemuInfo(path)["format-specific"] as? [String: Any]
        return ((data?["data"] as? [String: Any])?["bitmaps"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
    }

    func backupFiles() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: core.core.backups.directory)) ?? []).sorted()
    }

    /// The disk's ChangeTracking as its view says now.
    func tracking(_ name: String) async -> ChangeTracking? {
        await core.disks.views().first { $0.info.name == name }?.tracking
    }

    func testEveryPointOfAChainRestoresExactlyWhatTheDiskHeldThen() async throws {
        let disk = try await core.create("data", size: 64 << 20)
        let saved = core.dir.appendingPathComponent("as-of").path
        try FileManager.default.createDirectory(atPath: saved, withIntermediateDirectories: true)
        try io(disk.path, ["write -P 0xaa 0 4M", "write -P 0xbb 8M 1M"])
        let untracked = await tracking("data")
        XCTAssertEqual(untracked?.state, ChangeTracking.State.none)
        XCTAssertEqual(untracked?.reason, "disk data has no earlier point")
        let first = try await backup("data")
        XCTAssertEqual(string(first, "kind"), "full")
        let head = await core.core.backups.head(of: "data")
        let tracked = await tracking("data")
        XCTAssertEqual(tracked, ChangeTracking(state: .tracking, since: head?.created ?? 1, reason: "", changed: 0, measured: head?.created ?? 1))
        XCTAssertEqual(string(first, "reason"), "disk data has no earlier point")
        let p1 = try XCTUnwrap(string(first, "backup_id"))
        try FileManager.default.copyItem(atPath: disk.path, toPath: "\(saved)/1")
        XCTAssertEqual(try bitmaps(disk.path), [BackupChain.bitmapName(p1)])

        // 1 % of the disk in 64 KiB extents, a guest zero write over data, a discard.
        try io(disk.path, ["write -P 0xcc 20M 320k", "write -P 0xcd 40M 320k", "write -z 0 64k", "discard 8M 128k"])
        let second = try await backup("data")
        XCTAssertEqual(string(second, "kind"), "incremental")
        XCTAssertEqual(string(second, "parent"), p1)
        XCTAssertNil(second.result["reason"])
        let p2 = try XCTUnwrap(string(second, "backup_id"))
        try FileManager.default.copyItem(atPath: disk.path, toPath: "\(saved)/2")
        // Only the tracking since the newest point is left on the disk.
        XCTAssertEqual(try bitmaps(disk.path), [BackupChain.bitmapName(p2)])
        // The point holds the changed clusters, not the disk: 640 KiB + 192 KiB written.
        guard case .uint64(let size) = second.result["size"] else { return XCTFail("\(second.result)") }
        XCTAssertLessThan(size, 2 * (832 << 10) + (512 << 10), "an incremental point of 832 KiB of changes")
        let image = try core.qemuInfo(core.core.backups.pointImage(p2))
        XCTAssertEqual(image["backing-filename"] as? String, "\(p1).qcow2", "relative name of the parent")
        XCTAssertEqual(image["backing-filename-format"] as? String, "qcow2")

        try io(disk.path, ["write -P 0xdd 60M 64k"])
        let p3Job = try await backup("data")
        let p3 = try XCTUnwrap(string(p3Job, "backup_id"))
        try FileManager.default.copyItem(atPath: disk.path, toPath: "\(saved)/3")
        let listed = try await core.disks.points(of: "data")
        XCTAssertEqual(listed.map(\.id), [p1, p2, p3])
        XCTAssertEqual(listed.map(\.parent), [nil, p1, p2])
        let backupIDs = try await core.disks.backups(of: "data").map(\.id)
        XCTAssertEqual(backupIDs, [p1, p2, p3])

        let verify = try await core.finished(try await core.disks.runVerify(try await core.disks.checkVerify("data", backup: p3), uid: 0))
        XCTAssertEqual(verify.state, "succeeded", verify.error)
        XCTAssertEqual(verify.result["points_checked"], .uint64(3))

        for (n, id) in [p2, p1, p3].enumerated() {
            try io(disk.path, ["write -P 0xee 0 64M"])
            let job = try await restore("data", id)
            XCTAssertEqual(job.state, "succeeded", "restore \(n): \(job.error)")
            let number = [p1, p2, p3].firstIndex(of: id)! + 1
            XCTAssertTrue(same(disk.path, "\(saved)/\(number)"), "point \(number) restored differs from the disk as it was")
        }
        // Any point as a new disk: the disk itself untouched, the new one of its format.
        let current = try Data(contentsOf: URL(fileURLWithPath: disk.path))
        let asNew = try await core.finished(try await core.disks.runRestore(try await core.disks.checkRestore("data", backup: p2, newName: "data-2"), uid: 0))
        XCTAssertEqual(asNew.state, "succeeded", asNew.error)
        XCTAssertEqual(asNew.result["disk"], .string("data-2"))
        let listed2 = await core.store.disk(named: "data-2")
        let made = try XCTUnwrap(listed2)
        XCTAssertEqual(made.format, "qcow2")
        XCTAssertNil(made.backingFile, "a standalone image")
        XCTAssertTrue(same(made.path, "\(saved)/2"), "point 2 restored as a new disk differs from the disk as it was")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: disk.path)), current, "the disk was touched")
        XCTAssertEqual(try core.qemuInfo(made.path)["format"] as? String, "qcow2")
        await assertError("AlreadyExists", naming: "data-2") { try await self.core.disks.checkRestore("data", backup: p1, newName: "data-2") }
        await assertError("InvalidArgs", naming: "../x") { try await self.core.disks.checkRestore("data", backup: p1, newName: "../x") }
        // The restored disk has no tracking: the property and the next point say why.
        let broken = await tracking("data")
        XCTAssertEqual(broken?.state, .broken)
        XCTAssertTrue(broken?.reason.contains("change tracking since point \(p3) is gone") == true, "\(String(describing: broken))")
        XCTAssertNil(broken?.changed)
        let after = try await backup("data")
        XCTAssertEqual(string(after, "kind"), "full")
        XCTAssertTrue(string(after, "reason")?.contains("change tracking since point \(p3) is gone") == true, "\(after.result)")
        XCTAssertFalse(backupFiles().contains { $0.hasPrefix(".") }, "\(backupFiles())")
    }

    func testModesAndImagesThatCannotTrackChangesAreClearErrors() async throws {
        try await core.create("q", size: 8 << 20)
        await assertError("InvalidState", naming: "no earlier point") { try await self.core.disks.checkBackup("q", compress: false, mode: .incremental) }
        await assertError("InvalidArgs", naming: "image") { try await self.core.disks.checkBackup("q", compress: true, mode: .auto) }

        try await core.create("r", size: 8 << 20, format: "raw")
        let raw = try await backup("r")
        XCTAssertEqual(string(raw, "kind"), "full")
        XCTAssertTrue(string(raw, "reason")?.contains("raw disks cannot track changes") == true, "\(raw.result)")
        await assertError("NotSupported", naming: "raw disks cannot track changes") { try await self.core.disks.checkBackup("r", compress: false, mode: .incremental) }
        let rawTracking = await tracking("r")
        XCTAssertEqual(rawTracking?.state, ChangeTracking.State.none, "a raw disk with points tracks nothing")
        XCTAssertTrue(rawTracking?.reason.contains("raw disks cannot track changes") == true)

        // A qcow2 version 2 image: full points, and incremental refused naming the fix.
        try tool("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", "-o", "compat=0.10", core.store.path(of: "old"), "8M"])
        try ImageFormatRecord.write(core.store.path(of: "old"), format: "qcow2")
        _ = try await core.store.scan()
        let v2 = try await backup("old")
        XCTAssertTrue(string(v2, "reason")?.contains("qemu-img amend -o compat=1.1") == true, "\(v2.result)")
        let refused = try await core.finished(try await core.disks.runBackup(try await core.disks.checkBackup("old", compress: false, mode: .incremental), uid: 0))
        XCTAssertEqual(refused.state, "failed")
        XCTAssertTrue(refused.error.contains("qemu-img amend -o compat=1.1"), refused.error)

        // Mode full on an intact chain: full, no reason; the chain goes on from it.
        try io(core.store.path(of: "q"), ["write -P 0x11 0 1M"])
        _ = try await backup("q")
        let full = try await backup("q", mode: .full)
        XCTAssertEqual(string(full, "kind"), "full")
        XCTAssertNil(full.result["reason"])
        let next = try await backup("q")
        XCTAssertEqual(string(next, "parent"), string(full, "backup_id"))
    }

    func testARevertResetsTheChainOnPurposeAndSnapshotsKeepWorking() async throws {
        let disk = try await core.create("v", size: 8 << 20)
        try io(disk.path, ["write -P 0x21 0 1M"])
        try await core.disks.runSnapshot(try await core.disks.checkSnapshot(.create, "s1", on: "v"))
        _ = try await backup("v")
        try io(disk.path, ["write -P 0x22 0 1M"])
        // qemu-img alone refuses this revert while the disk has bitmaps; the service resets
        // the tracking first.
        try await core.disks.runSnapshot(try await core.disks.checkSnapshot(.revert, "s1", on: "v"))
        XCTAssertEqual(try bitmaps(disk.path), [])
        let point = try await backup("v")
        XCTAssertEqual(string(point, "kind"), "full")
        XCTAssertTrue(string(point, "reason")?.contains("is gone") == true, "\(point.result)")
        let next = try await backup("v")
        XCTAssertEqual(string(next, "kind"), "incremental")
    }

    func testDeletingAnyPointKeepsEveryOtherPointRestorableToItsDigest() async throws {
        let (disk, ids, saved) = try await chainOfFour("d")
        let digests = try await core.disks.points(of: "d").map(\.digest)

        // A middle point: the next one is rebased onto the one before.
        let deleted1 = try await deleteBackup("d", ids[1])
        XCTAssertEqual(deleted1.state, "succeeded", deleted1.error)
        var listed = try await core.disks.points(of: "d")
        XCTAssertEqual(listed.map(\.id), [ids[0], ids[2], ids[3]])
        XCTAssertEqual(listed.map(\.parent), [nil, ids[0], ids[2]])
        XCTAssertEqual(try core.qemuInfo(core.core.backups.pointImage(ids[2]))["backing-filename"] as? String, "\(ids[0]).qcow2")
        // The full point: the next one's blocks are committed into it and it becomes the next.
        let deleted0 = try await deleteBackup("d", ids[0])
        XCTAssertEqual(deleted0.state, "succeeded", deleted0.error)
        listed = try await core.disks.points(of: "d")
        XCTAssertEqual(listed.map(\.id), [ids[2], ids[3]])
        XCTAssertEqual(listed.map(\.kind), [.full, .incremental])
        XCTAssertNil(try core.qemuInfo(core.core.backups.pointImage(ids[2]))["backing-filename"])
        XCTAssertEqual(listed.map(\.digest), [digests[2], digests[3]], "a merge changed what a point holds")
        let checked = try await verified("d", ids[3])
        XCTAssertEqual(checked, 2)
        for (n, id) in [(3, ids[2]), (4, ids[3])] {
            let job = try await restore("d", id)
            XCTAssertEqual(job.state, "succeeded", job.error)
            XCTAssertTrue(same(disk.path, "\(saved)/\(n)"), "point \(n) no longer restores what the disk held")
        }
        // The newest: nothing depends on it; the tracking went with it, so the next point is full.
        let deleted3 = try await deleteBackup("d", ids[3])
        XCTAssertEqual(deleted3.state, "succeeded", deleted3.error)
        let left = try await core.disks.points(of: "d").map(\.id)
        XCTAssertEqual(left, [ids[2]])
        XCTAssertEqual(backupFiles(), ["\(ids[2]).index", "\(ids[2]).point", "\(ids[2]).qcow2"])
        await assertError("NoSuchBackup", naming: ids[3]) { try await self.core.disks.checkDeleteBackup("d", backup: ids[3]) }
    }

    func testARestartFinishesADeletionAKillInterrupted() async throws {
        let (disk, ids, saved) = try await chainOfFour("r")
        let backups = core.core.backups
        // What a daemon killed in the middle of deleting the full point leaves: the point
        // marked, the next point's blocks committed into it and the merged image renamed, the
        // next point's manifest not yet rewritten.
        let found = await backups.point(ids[0])
        var first = try XCTUnwrap(found)
        first.deleting = true
        try await backups.writeManifest(first)
        _ = try tool("/usr/bin/qemu-img", ["commit", "-q", "-d", "-f", "qcow2", backups.pointImage(ids[1])])
        try FileManager.default.removeItem(atPath: backups.pointImage(ids[1]))
        try FileManager.default.moveItem(atPath: backups.pointImage(ids[0]), toPath: backups.pointImage(ids[1]))
        try await backups.scan()
        let pending = try await core.disks.points(of: "r").map(\.id)
        XCTAssertEqual(pending, Array(ids[1...]), "a point being deleted is not listed")
        await assertError("NoSuchBackup", naming: ids[0]) { try await self.core.disks.checkRestore("r", backup: ids[0]) }
        await backups.resumeDeletions()
        let listed = try await core.disks.points(of: "r")
        XCTAssertEqual(listed.map(\.id), Array(ids[1...]))
        XCTAssertEqual(listed.first?.kind, .full)
        XCTAssertFalse(backupFiles().contains { $0.hasPrefix(ids[0] + ".") }, "\(backupFiles())")
        let checked = try await verified("r", ids[3])
        XCTAssertEqual(checked, 3)
        let job = try await restore("r", ids[1])
        XCTAssertEqual(job.state, "succeeded", job.error)
        XCTAssertTrue(same(disk.path, "\(saved)/2"))
    }

    func testThePolicyKeepsTheNewestPointsMakesFullOnesAndBacksUpOnSchedule() async throws {
        let disk = try await core.create("p", size: 8 << 20)
        let policies = core.disks.policies
        await assertError("InvalidArgs", naming: "20000") { try await policies.checkBackupPolicy("p", .init(keepLast: 20000)) }
        await assertError("InvalidArgs", naming: "interval_s 10") { try await policies.checkBackupPolicy("p", .init(intervalSeconds: 10)) }
        let plan = try await policies.checkBackupPolicy("p", .init(keepLast: 2, fullEvery: 3))
        XCTAssertEqual(plan.details, ["disk": "p", "operation": "set-backup-policy"])
        try await policies.runBackupPolicy(plan)
        var kinds: [String] = []
        var ids: [String] = []
        for n in 0..<4 {
            try io(disk.path, ["write -P \(0x70 + n) \(n)M 64k"])
            let job = try await backup("p")
            kinds.append(string(job, "kind") ?? "")
            ids.append(try XCTUnwrap(string(job, "backup_id")))
            if n == 3 { XCTAssertTrue(string(job, "reason")?.contains("full_every") == true, "\(job.result)") }
            let count = try await core.disks.points(of: "p").count
            XCTAssertLessThanOrEqual(count, 2)
        }
        XCTAssertEqual(kinds, ["full", "incremental", "incremental", "full"])
        let listed = try await core.disks.points(of: "p").map(\.id)
        XCTAssertEqual(listed, [ids[2], ids[3]])

        // The schedule: due now, no VM on the disk: the tick starts a Backup job.
        try await policies.runBackupPolicy(try await policies.checkBackupPolicy("p", .init(intervalSeconds: 60)))
        _ = try await core.core.disks.policies.records.update("p") { $0.lastScheduledBackup = 0 }
        try io(disk.path, ["write -P 0x7f 5M 64k"])
        await policies.backupTick()
        var scheduled: [String] = []
        for _ in 0..<100 {
            scheduled = try await core.disks.points(of: "p").map(\.id)
            if !scheduled.contains(ids[2]) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        XCTAssertEqual(scheduled.count, 2, "\(scheduled)")
        XCTAssertFalse(scheduled.contains(ids[2]), "no scheduled point was made and pruned to keep_last: \(scheduled)")
        let record = await core.core.disks.policies.records.record("p")
        XCTAssertGreaterThan(record.lastScheduledBackup, 0)
        // The policy engine's clock outlives the harness: no schedule left behind.
        try await policies.runBackupPolicy(try await policies.checkBackupPolicy("p", .init(intervalSeconds: 0)))
    }

    func testAnUnfinishedDeletionIsFinishedBeforeTheNextOneAndCanBeAskedForAgain() async throws {
        let (disk, ids, saved) = try await chainOfFour("u")
        let backups = core.core.backups
        // A deletion of the second point that stopped right after marking it.
        let found = await backups.point(ids[1])
        var second = try XCTUnwrap(found)
        second.deleting = true
        try await backups.writeManifest(second)
        try await backups.scan()
        // Asked for by its id again, it is finished (not NoSuchBackup).
        let plan = try await core.disks.checkDeleteBackup("u", backup: ids[1])
        XCTAssertEqual(plan.backupID, ids[1])
        // Another deletion on the disk finishes it first, then does its own.
        let job = try await deleteBackup("u", ids[2])
        XCTAssertEqual(job.state, "succeeded", job.error)
        let listed = try await core.disks.points(of: "u")
        XCTAssertEqual(listed.map(\.id), [ids[0], ids[3]])
        XCTAssertEqual(listed.map(\.parent), [nil, ids[0]])
        let checked = try await verified("u", ids[3])
        XCTAssertEqual(checked, 2)
        let restored = try await restore("u", ids[3])
        XCTAssertEqual(restored.state, "succeeded", restored.error)
        XCTAssertTrue(same(disk.path, "\(saved)/4"))
        await assertError("NoSuchBackup", naming: ids[1]) { try await self.core.disks.checkDeleteBackup("u", backup: ids[1]) }
    }
}

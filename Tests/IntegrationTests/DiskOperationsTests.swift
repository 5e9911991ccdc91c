import Foundation
import SDBus
import XCTest

/// Disk snapshots, Overlays and Clone (a job with progress and cancel) through the real
/// stack with real qemu-img and qemu-io.
final class DiskOperationsTests: XCTestCase {
    override class func setUp() { SharedStacks.start(self) { try TestStack() } }
    override class func tearDown() { SharedStacks.stop(self) }
    var stack: TestStack { get throws { try SharedStacks.stack(Self.self) } }

    /// "DIRTY WRITEBACK" page counts of a file in the page cache: "0 0" once the service
    /// synced what it wrote (scripts/lib/unwritten-pages.py, cachestat(2)).
    func unwrittenPages(_ file: String) -> String {
        let script = TestStack.repo.appendingPathComponent("scripts/lib/unwritten-pages.py").path
        let r = Command.run("/usr/bin/python3", ["-I", script, file])
        return r.ok ? r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) : r.all
    }

    func testSnapshotsCreateRevertDeleteAndAreListed() throws {
        let s = try stack
        XCTAssertTrue(s.createDisk("snapdisk", size: 1 << 20, as: TestStack.grantedUser).ok)
        let image = s.imageDir.appendingPathComponent("snapdisk").path
        XCTAssertTrue(qemuIO("write -P 0x11 0 64k", image).ok)
        let create = try stack.diskCall("snapdisk", "CreateSnapshot", ["sa{sv}", "v1", "0"])
        XCTAssertTrue(create.ok, create.all)
        let listed = s.diskProperty("snapdisk", "Snapshots")
        XCTAssertEqual(listed.firstFields, ["v1"], listed.shown)
        XCTAssertTrue(Command.run("/usr/bin/qemu-img", ["snapshot", "-l", image]).stdout.contains("v1"))
        XCTAssertTrue(qemuIO("write -P 0x22 0 64k", image).ok)
        XCTAssertTrue(try stack.diskCall("snapdisk", "RevertSnapshot", ["sa{sv}", "v1", "0"]).ok)
        assertPattern(0x11, offset: 0, length: 64 << 10, in: image)
        // Names reserved for VM snapshots and versioning; duplicates; unknown; denied.
        XCTAssertTrue(try stack.diskCall("snapdisk", "CreateSnapshot", ["sa{sv}", "vm-x", "0"]).stderr.contains("belong to VM snapshots"))
        XCTAssertTrue(try stack.diskCall("snapdisk", "CreateSnapshot", ["sa{sv}", "v1", "0"]).stderr.contains("already has a snapshot v1"))
        XCTAssertTrue(try stack.diskCall("snapdisk", "RevertSnapshot", ["sa{sv}", "nope", "0"]).stderr.contains("has no snapshot nope"))
        XCTAssertFalse(try stack.diskCall("snapdisk", "DeleteSnapshot", ["sa{sv}", "v1", "0"], as: TestStack.otherUser).ok)
        XCTAssertTrue(Command.run("/usr/bin/qemu-img", ["snapshot", "-l", image]).stdout.contains("v1"))
        XCTAssertTrue(try stack.diskCall("snapdisk", "DeleteSnapshot", ["sa{sv}", "v1", "0"]).ok)
        XCTAssertEqual(s.diskProperty("snapdisk", "Snapshots"), .array(elementSignature: "(st)", []))
        // raw: NotSupported naming the format.
        XCTAssertTrue(s.createDisk("rawdisk", size: 1 << 20, format: "raw", as: TestStack.grantedUser).ok)
        XCTAssertTrue(try stack.diskCall("rawdisk", "CreateSnapshot", ["sa{sv}", "x", "0"]).stderr.contains("rawdisk is raw; internal snapshots need qcow2"))
        // A disk others are built on: Overlays lists them, writes to it are Busy.
        let overlay = s.manager("CreateDisk", ["stsa{sv}", "child", String(1 << 20), "qcow2", "1", "backing", "s", "snapdisk"], as: TestStack.grantedUser)
        XCTAssertTrue(overlay.ok, overlay.all)
        XCTAssertEqual(s.diskProperty("snapdisk", "Overlays"), .objectPaths(["\(TestStack.diskPath("child"))"]))
        XCTAssertTrue(try stack.diskCall("snapdisk", "CreateSnapshot", ["sa{sv}", "v2", "0"]).stderr.contains("disk snapdisk is held by disk child, which is built on it (base)"))
        XCTAssertTrue(try stack.diskCall("child", "Delete", ["a{sv}", "0"]).ok)
        XCTAssertEqual(s.diskProperty("snapdisk", "Overlays"), .objectPaths([]))
    }

    func testCloneFullAndLinkedAsJobs() async throws {
        let s = try stack
        XCTAssertTrue(s.createDisk("source", size: 64 << 20, as: TestStack.grantedUser).ok)
        let source = s.imageDir.appendingPathComponent("source").path
        XCTAssertTrue(qemuIO("write -P 0x5a 1M 8M", source).ok)
        let before = sha256(source)
        let signals = try await SignalCollector(stack: s, match: "type='signal',sender='\(TestStack.busName)'")
        defer { Task { await signals.close() } }

        let r = try stack.diskCall("source", "Clone", ["sa{sv}", "copy", "0"])
        XCTAssertTrue(r.ok, r.all)
        let job = r.replyPath
        let done = await signals.wait(timeout: 30) { $0.member == "Completed" && $0.path == job }
        XCTAssertEqual(done?.arguments.first, .boolean(true), signals.summary)
        let copy = s.imageDir.appendingPathComponent("copy").path
        XCTAssertEqual(unwrittenPages(copy), "0 0", "the clone was not synced to disk")
        assertPattern(0x5a, offset: 1 << 20, length: 8 << 20, in: copy)
        XCTAssertEqual(sha256(source), before, "the source changed")
        let check = Command.run("/usr/bin/qemu-img", ["check", copy])
        XCTAssertTrue(check.ok, check.all)
        // Sparse: the copy allocates about what the source does, not its 64 MiB.
        var st = stat()
        XCTAssertEqual(stat(copy, &st), 0)
        XCTAssertLessThan(Int(st.st_blocks) * 512, 32 << 20)
        XCTAssertEqual(s.diskProperty("copy", "VirtualSize"), .uint64(67108864))

        let linked = try stack.diskCall("source", "Clone", ["sa{sv}", "thin", "1", "linked", "b", "true"])
        XCTAssertTrue(linked.ok, linked.all)
        let linkedJob = linked.replyPath
        let linkedDone = await signals.wait(timeout: 30) { $0.member == "Completed" && $0.path == linkedJob }
        XCTAssertEqual(linkedDone?.arguments.first, .boolean(true), signals.summary)
        XCTAssertEqual(s.diskProperty("thin", "BackingDisk"), .string("source"))
        XCTAssertEqual(s.diskProperty("source", "Overlays"), .objectPaths(["\(TestStack.diskPath("thin"))"]))
        // Existing name and bad name refused before any job; denied for the other user.
        XCTAssertTrue(try stack.diskCall("source", "Clone", ["sa{sv}", "copy", "0"]).stderr.contains("disk copy already exists"))
        XCTAssertTrue(try stack.diskCall("source", "Clone", ["sa{sv}", "../x", "0"]).stderr.contains("invalid disk name"))
        XCTAssertFalse(try stack.diskCall("source", "Clone", ["sa{sv}", "stolen", "0"], as: TestStack.otherUser).ok)
        XCTAssertFalse(s.imageFiles().contains("stolen"))
    }

    func testCancelledCloneLeavesNothing() async throws {
        let s = try stack
        XCTAssertTrue(s.createDisk("big", size: 2 << 30, format: "raw", as: TestStack.grantedUser).ok)
        let big = s.imageDir.appendingPathComponent("big").path
        // 1 GiB of data: seconds of copying, time enough to cancel in the middle.
        XCTAssertTrue(qemuIO("write -P 0x77 0 1G", big, format: "raw").ok)
        let before = sha256(big)
        let signals = try await SignalCollector(stack: s, match: "type='signal',sender='\(TestStack.busName)'")
        defer { Task { await signals.close() } }
        let r = try stack.diskCall("big", "Clone", ["sa{sv}", "big-copy", "0"])
        XCTAssertTrue(r.ok, r.all)
        let job = r.replyPath
        // Progress grows while it copies; another user may not cancel it. Sampled only until
        // two steps have been seen: the daemon's copy moves about 1 GB/s here, so waiting
        // longer would let it finish before the cancel.
        var progress: [Double] = []
        for _ in 0..<40 where progress.filter({ $0 > 0 }).count < 2 {
            if let v = s.jobProperty(job, "Progress")?.double { progress.append(v) }
            usleep(20_000)
        }
        let foreign = s.call(job, TestStack.jobInterface, "Cancel", ["a{sv}", "0"], as: TestStack.otherUser)
        XCTAssertFalse(foreign.ok, foreign.all)
        let cancel = s.call(job, TestStack.jobInterface, "Cancel", ["a{sv}", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(cancel.ok, cancel.all)
        let done = await signals.wait(timeout: 30) { $0.member == "Completed" && $0.path == job }
        XCTAssertEqual(done?.arguments.first, .boolean(false), signals.summary)
        XCTAssertEqual(s.jobProperty(job, "State"), .string("cancelled"))
        XCTAssertEqual(progress, progress.sorted(), "progress went backwards: \(progress)")
        XCTAssertGreaterThan(progress.last ?? 0, 0, "no progress seen: \(progress)")
        XCTAssertEqual(s.imageFiles().filter { $0.contains("big-copy") }, [], "left: \(s.imageFiles())")
        XCTAssertEqual(sha256(big), before)
    }

    /// Creates an empty raw disk of `size` (all holes: its copy is instant, its SHA-256 runs
    /// at ~1.6 GB/s) and starts an image Backup of it (the whole-copy engine, which hashes
    /// every byte); returns the job once it is seen running.
    func startLongBackup(_ s: TestStack, _ name: String, size: UInt64) throws -> String {
        XCTAssertTrue(s.createDisk(name, size: size, format: "raw", as: TestStack.grantedUser).ok)
        let r = try stack.diskCall(name, "Backup", ["a{sv}", "1", "mode", "s", "image"])
        XCTAssertTrue(r.ok, r.all)
        let job = r.replyPath
        usleep(500_000)
        XCTAssertEqual(s.jobProperty(job, "State"), .string("running"))
        return job
    }

    /// No file of a backup of `disk` in the backup directory and none listed.
    func assertNoBackup(_ s: TestStack, of disk: String) throws {
        let backupDir = s.dir.appendingPathComponent("backups").path
        let left = (try? FileManager.default.contentsOfDirectory(atPath: backupDir)) ?? []
        XCTAssertEqual(left.filter { $0.contains(disk) }, [], "left in \(backupDir): \(left)")
        XCTAssertEqual(try stack.diskCall(disk, "ListBackups", ["a{sv}", "0"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines), "a(stts) 0")
    }

    /// HeldBy as a bus client sees it: the job's lease is announced before the job's object
    /// appears, read back while it runs, and gone before the job's Completed.
    func testHeldByFollowsAJobFromBeforeItsStartToBeforeItsEnd() async throws {
        let s = try stack
        let disk = TestStack.diskPath("held")
        let signals = try await SignalCollector(stack: s, match: "type='signal',sender='\(TestStack.busName)'")
        defer { Task { await signals.close() } }
        XCTAssertTrue(s.createDisk("held", size: 64 << 30, format: "raw", as: TestStack.grantedUser).ok)
        XCTAssertEqual(s.diskProperty("held", "HeldBy"), .array(elementSignature: "(so)", []))
        let r = try stack.diskCall("held", "Backup", ["a{sv}", "1", "mode", "s", "image"])
        XCTAssertTrue(r.ok, r.all)
        let job = r.replyPath
        let lease = DBusValue.array(elementSignature: "(so)", [.structure([.string("consistent-reader"), .objectPath(job)])])
        XCTAssertEqual(s.diskProperty("held", "HeldBy"), lease)
        let cancel = s.call(job, TestStack.jobInterface, "Cancel", ["a{sv}", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(cancel.ok, cancel.all)
        _ = await signals.wait(timeout: 30) { $0.member == "Completed" && $0.path == job }
        let heldBy: (ReceivedSignal) -> DBusValue? = { signal in
            guard signal.path == disk, signal.member == "PropertiesChanged", signal.arguments.count > 1 else { return nil }
            return signal.arguments[1].stringKeyedDictionary?["HeldBy"]?.unwrapped
        }
        let all = signals.all
        let taken = all.firstIndex { heldBy($0) == lease }
        let added = all.firstIndex { $0.member == "InterfacesAdded" && $0.arguments.first == .objectPath(job) }
        let given = all.lastIndex { heldBy($0) == .array(elementSignature: "(so)", []) }
        let completed = all.firstIndex { $0.member == "Completed" && $0.path == job }
        guard let taken, let added, let given, let completed else { return XCTFail(signals.summary) }
        XCTAssertLessThan(taken, added, signals.summary)
        XCTAssertLessThan(added, given, signals.summary)
        XCTAssertLessThan(given, completed, signals.summary)
        XCTAssertEqual(s.diskProperty("held", "HeldBy"), .array(elementSignature: "(so)", []))
        try assertNoBackup(s, of: "held")
    }

    /// A Backup holds its disk: a resize meanwhile is Busy; a cancelled Backup leaves no file.
    /// 64 GiB: the SHA-256 would take ~40 s.
    func testABackupHoldsItsDiskAndCancelsCleanly() async throws {
        let s = try stack
        let signals = try await SignalCollector(stack: s, match: "type='signal',sender='\(TestStack.busName)',member='Completed'")
        defer { Task { await signals.close() } }
        let job = try startLongBackup(s, "holes", size: 64 << 30)
        let resize = try stack.diskCall("holes", "Resize", ["ta{sv}", String(65 << 30), "1", "filesystem", "b", "false"])
        XCTAssertTrue(resize.stderr.contains("disk holes is held by job") && resize.stderr.contains("(Backup) (consistent-reader)"), resize.all)
        XCTAssertEqual(Command.run("/usr/bin/stat", ["-c", "%s", s.imageDir.appendingPathComponent("holes").path]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines), String(64 << 30))
        // Progress follows the hash (the copy of holes is instant): valid, above 0, below 1.
        XCTAssertEqual(s.jobProperty(job, "ProgressValid"), .boolean(true))
        let fraction = s.jobProperty(job, "Progress")?.double ?? -1
        XCTAssertGreaterThan(fraction, 0, s.jobProperty(job, "Progress").shown)
        XCTAssertLessThan(fraction, 0.9, s.jobProperty(job, "Progress").shown)
        XCTAssertTrue(s.call(job, TestStack.jobInterface, "Cancel", ["a{sv}", "0"], as: TestStack.grantedUser).ok)
        let done = await signals.wait(timeout: 30) { $0.path == job }
        XCTAssertEqual(done?.arguments.first, .boolean(false), signals.summary)
        try assertNoBackup(s, of: "holes")
        // Released: the resize goes through now.
        let again = try stack.diskCall("holes", "Resize", ["ta{sv}", String(65 << 30), "1", "filesystem", "b", "false"])
        XCTAssertTrue(again.ok, again.all)
    }

    /// Someone writes the image behind the service's back while it is being backed up (as a
    /// VM started with `virsh` would): the backup is discarded with Busy, never kept torn.
    /// 16 GiB: the SHA-256 runs ~10 s, the write comes after half a second.
    func testABackupOfAnImageChangedMeanwhileIsDiscarded() async throws {
        let s = try stack
        let signals = try await SignalCollector(stack: s, match: "type='signal',sender='\(TestStack.busName)',member='Completed'")
        defer { Task { await signals.close() } }
        let job = try startLongBackup(s, "moving", size: 16 << 30)
        let image = s.imageDir.appendingPathComponent("moving").path
        // A qemu is stopped by the image lock the Backup holds ...
        let refused = qemuIO("write -P 0x5a 1G 64k", image, format: "raw")
        XCTAssertFalse(refused.ok, refused.all)
        XCTAssertTrue(refused.all.contains("Failed to get \"write\" lock"), refused.all)
        // ... a process that ignores qemu's locks is caught by the source's stamp.
        let dd = Command.run("/usr/bin/dd", ["if=/dev/urandom", "of=\(image)", "bs=64k", "count=1", "seek=16384", "conv=notrunc", "status=none"])
        XCTAssertTrue(dd.ok, dd.all)
        let done = await signals.wait(timeout: 120) { $0.path == job }
        XCTAssertEqual(done?.arguments.first, .boolean(false), signals.summary)
        XCTAssertTrue((done?.arguments.last?.string ?? "").contains("changed while it was being backed up"), signals.summary)
        try assertNoBackup(s, of: "moving")
    }

    /// A backup chain through mvctl and the bus: a full point, an incremental one on it,
    /// both listed with their kind and parent, verified, and the first restored exactly
    /// (qemu-img compare against a copy of the disk as it was then).
    func testMvctlBackupChainVerifyAndRestoreAnyPoint() throws {
        let s = try stack
        XCTAssertTrue(s.mvctl(["disk", "create", "chain", "16M"], as: TestStack.grantedUser).ok)
        let image = s.imageDir.appendingPathComponent("chain").path
        XCTAssertTrue(qemuIO("write -P 0x71 0 4M", image).ok)
        let first = s.mvctl(["disk", "backup", "chain", "--json"], as: TestStack.grantedUser)
        XCTAssertTrue(first.ok, first.all)
        let firstResult = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any], first.all)
        XCTAssertEqual(firstResult["kind"] as? String, "full")
        let p1 = try XCTUnwrap(firstResult["backup_id"] as? String)
        let asOf = s.dir.appendingPathComponent("chain-as-of-p1").path
        XCTAssertTrue(Command.run("/usr/bin/cp", [image, asOf]).ok)
        XCTAssertTrue(qemuIO("write -P 0x72 1M 128k", image).ok)
        let second = s.mvctl(["disk", "backup", "chain"], as: TestStack.grantedUser)
        XCTAssertTrue(second.ok, second.all)
        XCTAssertTrue(second.stdout.contains("(incremental on \(p1),"), second.all)

        let points = try stack.diskCall("chain", "ListBackupPoints", ["a{sv}", "0"])
        XCTAssertTrue(points.stdout.hasPrefix("a(ssstts) 2 \"\(p1)\" \"full\" \"\""), points.all)
        let listed = s.mvctl(["disk", "backups", "chain"])
        XCTAssertTrue(listed.ok, listed.all)
        XCTAssertTrue(listed.stdout.contains("incremental") && listed.stdout.contains(p1), listed.all)
        let p2 = try XCTUnwrap(listed.stdout.split(separator: "\n").last?.split(separator: " ").first.map(String.init))

        let verify = s.mvctl(["disk", "verify", "chain", p2], as: TestStack.grantedUser)
        XCTAssertTrue(verify.ok, verify.all)
        XCTAssertTrue(verify.stdout.contains("2 points checked"), verify.all)
        // Verify needs disk.manage like Backup: an unprivileged caller is refused.
        XCTAssertFalse(s.mvctl(["disk", "verify", "chain", p2], as: TestStack.otherUser).ok)

        let restore = s.mvctl(["disk", "restore", "chain", p1], as: TestStack.grantedUser)
        XCTAssertTrue(restore.ok, restore.all)
        let compare = Command.run("/usr/bin/qemu-img", ["compare", "-f", "qcow2", "-F", "qcow2", image, asOf])
        XCTAssertTrue(compare.ok, compare.all)
        let third = s.mvctl(["disk", "backup", "chain"], as: TestStack.grantedUser)
        XCTAssertTrue(third.stdout.contains("(full,") && third.stdout.contains("full because change tracking since point \(p2) is gone"), third.all)

        // Retention: with keep_last 2 the next point prunes the oldest (their data merged
        // into the points after them); DeleteBackup removes one more, and what is left
        // still verifies.
        let p3 = try XCTUnwrap(third.stdout.split(separator: " ").dropFirst().first.map(String.init), third.all)
        let policy = s.mvctl(["disk", "backup-policy", "chain", "--keep-last", "2"], as: TestStack.grantedUser)
        XCTAssertTrue(policy.ok && policy.stdout.contains("keep_last"), policy.all)
        XCTAssertEqual(s.diskProperty("chain", "BackupPolicy")["keep_last"], .uint32(2))
        XCTAssertTrue(qemuIO("write -P 0x73 2M 64k", image).ok)
        let fourth = s.mvctl(["disk", "backup", "chain", "--json"], as: TestStack.grantedUser)
        let fourthResult = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(fourth.stdout.utf8)) as? [String: Any], fourth.all)
        XCTAssertEqual(fourthResult["pruned"] as? [String], [p1, p2], fourth.all)
        let p4 = try XCTUnwrap(fourthResult["backup_id"] as? String)
        let pruned = try stack.diskCall("chain", "ListBackupPoints", ["a{sv}", "0"])
        XCTAssertTrue(pruned.stdout.hasPrefix("a(ssstts) 2 \"\(p3)\" \"full\" \"\""), pruned.all)
        XCTAssertFalse(s.mvctl(["disk", "delete-backup", "chain", p3], as: TestStack.otherUser).ok)
        let delete = s.mvctl(["disk", "delete-backup", "chain", p3], as: TestStack.grantedUser)
        XCTAssertTrue(delete.ok && delete.stdout.contains("deleted backup \(p3) of chain"), delete.all)
        let last = s.mvctl(["disk", "verify", "chain", p4], as: TestStack.grantedUser)
        XCTAssertTrue(last.ok && last.stdout.contains("1 points checked"), last.all)
        let files = try FileManager.default.contentsOfDirectory(atPath: s.dir.appendingPathComponent("backups").path)
        XCTAssertEqual(files.filter { $0.hasPrefix("chain-") }.sorted(), ["\(p4).index", "\(p4).point", "\(p4).qcow2"])
    }

    func testMvctlDiskCloneSnapshotsAndJobs() throws {
        let s = try stack
        XCTAssertTrue(s.mvctl(["disk", "create", "m1", "4M"], as: TestStack.grantedUser).ok)
        let clone = s.mvctl(["disk", "clone", "m1", "m2"], as: TestStack.grantedUser)
        XCTAssertTrue(clone.ok, clone.all)
        XCTAssertTrue(s.imageFiles().contains("m2"))
        XCTAssertTrue(s.mvctl(["disk", "clone", "m1", "m3", "--linked"], as: TestStack.grantedUser).ok)
        XCTAssertTrue(s.mvctl(["disk", "show", "m3"]).stdout.contains("BackingDisk        m1"))
        XCTAssertTrue(s.mvctl(["disk", "snapshot", "create", "m2", "pin"], as: TestStack.grantedUser).ok)
        XCTAssertTrue(s.mvctl(["disk", "snapshot", "list", "m2"]).stdout.contains("pin"))
        XCTAssertTrue(s.mvctl(["disk", "snapshot", "revert", "m2", "pin"], as: TestStack.grantedUser).ok)
        XCTAssertEqual(s.mvctl(["disk", "snapshot", "revert", "m2", "nope"], as: TestStack.grantedUser).status, 3)
        XCTAssertTrue(s.mvctl(["disk", "snapshot", "delete", "m2", "pin"], as: TestStack.grantedUser).ok)
        let backup = s.mvctl(["disk", "backup", "m2", "--compress"], as: TestStack.grantedUser)
        XCTAssertTrue(backup.ok, backup.all)
        let id = backup.stdout.split(separator: " ").dropFirst().first.map(String.init) ?? ""
        XCTAssertTrue(s.mvctl(["disk", "backups", "m2"]).stdout.contains(id))
        XCTAssertTrue(s.mvctl(["disk", "restore", "m2", id], as: TestStack.grantedUser).ok)
        let jobs = s.mvctl(["disk", "jobs"])
        XCTAssertTrue(jobs.stdout.contains("Clone") && jobs.stdout.contains("succeeded"), jobs.all)
        let cancelDone = s.mvctl(["disk", "job-cancel", "1"], as: TestStack.grantedUser)
        XCTAssertEqual(cancelDone.status, 1, cancelDone.all)   // a finished job: InvalidState
    }

    func testBackupRestoreVerifiesTheChecksum() async throws {
        let s = try stack
        XCTAssertTrue(s.createDisk("precious", size: 16 << 20, as: TestStack.grantedUser).ok)
        let image = s.imageDir.appendingPathComponent("precious").path
        XCTAssertTrue(qemuIO("write -P 0x42 0 1M", image).ok)
        let signals = try await SignalCollector(stack: s, match: "type='signal',sender='\(TestStack.busName)',member='Completed'")
        defer { Task { await signals.close() } }
        func runJob(_ r: CommandResult) async -> ReceivedSignal? {
            let job = r.replyPath
            return await signals.wait(timeout: 30) { $0.path == job }
        }
        // An internal snapshot: an uncompressed image backup is a byte copy that keeps it.
        XCTAssertTrue(try stack.diskCall("precious", "CreateSnapshot", ["sa{sv}", "pinned", "0"]).ok)
        let backup = try stack.diskCall("precious", "Backup", ["a{sv}", "1", "mode", "s", "image"])
        XCTAssertTrue(backup.ok, backup.all)
        let done = await runJob(backup)
        XCTAssertEqual(done?.arguments.first, .boolean(true), signals.summary)
        XCTAssertTrue(try stack.diskCall("precious", "DeleteSnapshot", ["sa{sv}", "pinned", "0"]).ok)
        let snapshots = Command.run("/usr/bin/qemu-img", ["snapshot", "-l", image])
        XCTAssertEqual(snapshots.status, 0, snapshots.all)
        XCTAssertEqual(snapshots.stdout, "", "pinned was the only snapshot: \(snapshots.all)")   // qemu-img lists none
        XCTAssertFalse(snapshots.stdout.contains("pinned"), snapshots.all)
        let list = try stack.diskCall("precious", "ListBackups", ["a{sv}", "0"], as: TestStack.otherUser)
        let fields = list.stdout.split(separator: "\"").map(String.init)
        XCTAssertTrue(list.stdout.hasPrefix("a(stts) 1 "), list.all)
        let id = fields.count > 1 ? fields[1] : ""
        let sum = fields.count > 3 ? fields[3] : ""
        let backupFile = s.dir.appendingPathComponent("backups/\(id).img").path
        XCTAssertEqual(unwrittenPages(backupFile), "0 0", "the backup was not synced to disk")
        XCTAssertEqual(sha256(backupFile), sum)
        let manifest = (try? String(contentsOfFile: s.dir.appendingPathComponent("backups/\(id).json").path, encoding: .utf8)) ?? ""
        XCTAssertTrue(manifest.contains("\"internalSnapshots\" : true"), manifest)

        // Change the disk, restore: the data is back and the image is sound.
        XCTAssertTrue(qemuIO("write -P 0x99 0 1M", image).ok)
        XCTAssertFalse(try stack.diskCall("precious", "Restore", ["sa{sv}", id, "0"], as: TestStack.otherUser).ok)
        assertPattern(0x99, offset: 0, length: 1 << 20, in: image)
        let restore = try stack.diskCall("precious", "Restore", ["sa{sv}", id, "0"])
        XCTAssertTrue(restore.ok, restore.all)
        let restored = await runJob(restore)
        XCTAssertEqual(restored?.arguments.first, .boolean(true), signals.summary)
        XCTAssertEqual(unwrittenPages(image), "0 0", "the restored image was not synced to disk")
        assertPattern(0x42, offset: 0, length: 1 << 20, in: image)
        XCTAssertTrue(Command.run("/usr/bin/qemu-img", ["check", image]).ok)
        XCTAssertTrue(Command.run("/usr/bin/qemu-img", ["snapshot", "-l", image]).stdout.contains("pinned"), "the backup's snapshot did not come back")
        XCTAssertTrue(s.diskProperty("precious", "Snapshots").firstFields.contains("pinned"), "Snapshots was not refreshed after the restore")

        // A corrupted backup is refused by name and the disk is not touched.
        XCTAssertTrue(qemuIO("write -P 0x13 0 1M", image).ok)
        let current = sha256(image)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: backupFile))
        try handle.seek(toOffset: 4096)
        handle.write(Data([0xde, 0xad, 0xbe, 0xef]))
        try handle.close()
        let bad = try stack.diskCall("precious", "Restore", ["sa{sv}", id, "0"])
        XCTAssertTrue(bad.ok, bad.all)
        let refused = await runJob(bad)
        XCTAssertEqual(refused?.arguments.first, .boolean(false), signals.summary)
        XCTAssertTrue((refused?.arguments.last?.string ?? "").contains("backup \(id) is corrupted"), signals.summary)
        XCTAssertEqual(sha256(image), current)
        XCTAssertEqual(s.imageFiles().filter { $0.hasPrefix(".") }, [])
        XCTAssertTrue(try stack.diskCall("precious", "Restore", ["sa{sv}", "no-such-backup", "0"]).stderr.contains("has no backup no-such-backup"))
    }

    /// A job belongs to the service, not to the connection that started it: the client
    /// (busctl) disconnects as soon as it has the job's path, the job still runs to its end,
    /// and twenty such clients leave no file descriptor or object behind in the daemon. The
    /// clients come four at a time (`[jobs] max_concurrent`): a fifth while four clones
    /// still run is refused, which is another test's subject.
    func testJobsOutliveTheClientsThatStartedThem() async throws {
        let s = try stack
        XCTAssertTrue(s.createDisk("orphan-src", size: 8 << 20, as: TestStack.grantedUser).ok)
        XCTAssertTrue(qemuIO("write -P 0x33 0 4M", s.imageDir.appendingPathComponent("orphan-src").path).ok)
        let pid = s.daemon?.pid ?? 0
        func fds() -> Int { ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count }
        let before = fds()
        for batch in 0..<5 {
            var jobs: [String] = []
            for i in batch * 4..<batch * 4 + 4 {
                let r = try stack.diskCall("orphan-src", "Clone", ["sa{sv}", "orphan-\(i)", "0"])
                XCTAssertTrue(r.ok, r.all)
                jobs.append(r.replyPath)
            }
            // Every client process has exited; the jobs finish anyway.
            for job in jobs {
                var state: DBusValue?
                for _ in 0..<200 {
                    state = s.jobProperty(job, "State")
                    if state != .string("running") { break }
                    usleep(50_000)
                }
                XCTAssertEqual(state, .string("succeeded"), job)
            }
        }
        for i in 0..<20 { XCTAssertTrue(s.imageFiles().contains("orphan-\(i)")) }
        for i in 0..<20 { XCTAssertTrue(try stack.diskCall("orphan-\(i)", "Delete", ["a{sv}", "0"]).ok) }
        XCTAssertLessThanOrEqual(fds(), before + 2, "file descriptors grew from \(before) to \(fds())")
    }
}

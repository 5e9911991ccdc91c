import ControllerAPI
import Foundation
import SDBus
import XCTest

/// kill -9 of the daemon in the middle of a clone, a backup and a resize, then a restart: the
/// images are sound, no temporary or partial file is left, no lease or image lock is left,
/// every object is back, and the interrupted work is not reported as done.
final class CrashRecoveryTests: XCTestCase {
    func testKill9DuringCloneBackupAndResizeLeavesNothingHalfDone() throws {
        let s = try TestStack()
        defer { s.stop() }
        XCTAssertTrue(s.createDisk("src", size: 1 << 30, format: "raw", as: TestStack.grantedUser).ok)
        let src = s.imageDir.appendingPathComponent("src").path
        XCTAssertTrue(qemuIO("write -P 0x61 0 512M", src, format: "raw").ok)
        let sum = Command.run("/usr/bin/sha256sum", [src]).stdout.split(separator: " ").first.map(String.init)
        let backups = s.dir.appendingPathComponent("backups").path
        let disk = "/org/multiverse/Controller/disk/src"

        for (method, args) in [("Clone", ["sa{sv}", "half", "0"]), ("Backup", ["a{sv}", "0"]),
                               ("Resize", ["ta{sv}", String(2 << 30), "0"])] {
            let r = s.call(disk, TestStack.diskInterface, method, args, as: TestStack.grantedUser)
            XCTAssertTrue(r.ok, r.all)
            // Wait until the copy has visibly started, then kill the daemon.
            for _ in 0..<100 {
                let partial = s.imageFiles().contains { $0.contains(".creating-") }
                    || ((try? FileManager.default.contentsOfDirectory(atPath: backups)) ?? []).contains { $0.contains(".partial") }
                if partial { break }
                usleep(20_000)
            }
            XCTAssertEqual(s.stopDaemon(signal: SIGKILL), 128 + SIGKILL, method)
            try s.startDaemon()
            XCTAssertEqual(s.imageFiles(), ["src"], "\(method): left \(s.imageFiles())")
            let left = (try? FileManager.default.contentsOfDirectory(atPath: backups)) ?? []
            XCTAssertEqual(left, [], "\(method): left \(left)")
            XCTAssertTrue(s.log(tail: 40).contains("removed unfinished"), s.log(tail: 20))
            // The killed daemon's leases and image locks died with it: nothing holds the
            // disk, and an outside writer gets it (the same bytes written again).
            XCTAssertEqual(s.diskProperty("src", "HeldBy"), .array(elementSignature: "(so)", []), method)
            let write = qemuIO("write -P 0x61 0 4k", src, format: "raw")
            XCTAssertTrue(write.ok, "\(method): \(write.all)")
        }
        // The source is intact, its object is back, the interrupted jobs are gone rather
        // than reported as succeeded, and no backup is listed.
        XCTAssertEqual(Command.run("/usr/bin/sha256sum", [src]).stdout.split(separator: " ").first.map(String.init), sum)
        // qemu-img has no check for raw images: its size is what an interrupted Resize could have changed.
        let info = Command.run("/usr/bin/qemu-img", ["info", "--output=json", "-f", "raw", src])
        XCTAssertTrue(info.ok, info.all)
        XCTAssertTrue(info.stdout.contains("\"virtual-size\": \(1 << 30),"), info.stdout)
        XCTAssertTrue(s.manager("GetDiskByName", ["sa{sv}", "src", "0"]).ok)
        XCTAssertFalse(s.manager("GetDiskByName", ["sa{sv}", "half", "0"]).ok)
        // Jobs live in the daemon's memory: after the restart none is listed (ListJobs gives
        // paths; a job shown as anything, succeeded included, would be one too many).
        let jobs = s.manager("ListJobs", ["a{sv}", "0"])
        XCTAssertTrue(jobs.ok, jobs.all)
        XCTAssertEqual(jobs.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "ao 0")
        let listed = s.call(disk, TestStack.diskInterface, "ListBackups", ["a{sv}", "0"])
        XCTAssertEqual(listed.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "a(stts) 0")
    }

    /// The daemon killed at each step of a stopped disk's point and of the merges that delete
    /// points (it kills itself at the step `MULTIVERSE_CRASH_AT` names: HostSystem's
    /// CrashPoints): after each restart no unfinished file is left, an interrupted deletion
    /// is finished, the next point is incremental on the newest recorded one, the image keeps
    /// only the newest point's bitmap once the next point is made, and every point left
    /// verifies against its index and restores what the disk held.
    func testADaemonKilledAtEachStepOfAPointOrAMergeLeavesAChainThatVerifies() throws {
        let s = try TestStack()
        defer { s.stop() }
        XCTAssertTrue(s.createDisk("chain", size: 64 << 20, as: TestStack.grantedUser).ok)
        let image = s.imageDir.appendingPathComponent("chain").path
        let backups = s.dir.appendingPathComponent("backups").path
        func run(_ method: String, _ args: [String]) -> [String: DBusValue]? {
            let r = s.diskCall("chain", method, args)
            guard r.ok else { XCTFail("\(method): \(r.all)"); return nil }
            _ = waitFor(120, interval: 0.1) { s.jobProperty(r.replyPath, "State") != .string("running") }
            guard s.jobProperty(r.replyPath, "State") == .string("succeeded") else {
                XCTFail("\(method): \(s.jobProperty(r.replyPath, "Error").shown)"); return nil
            }
            return s.jobProperty(r.replyPath, "Result")?.stringKeyedDictionary?.mapValues { $0.unwrapped }
        }
        func write(_ letter: Character, megabyte: Int) {
            XCTAssertTrue(qemuIO("write -P \(letter.asciiValue!) \(megabyte)M 64k", image).ok)
        }
        func bitmaps() -> [String] {
            let info = Command.run("/usr/bin/qemu-img", ["info", "--output=json", "-f", "qcow2", "--force-share", image])
            let json = try? JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any]
            let data = (json?["format-specific"] as? [String: Any])?["data"] as? [String: Any]
            return ((data?["bitmaps"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String }.sorted()
        }
        func crash(at step: String, _ method: String, _ args: [String]) throws {
            s.stopDaemon()
            try s.startDaemon(environment: ["MULTIVERSE_CRASH_AT": step])
            // (Its reply may be lost: the job can reach its crash point first. The crash
            // point's line and the exit status show the job ran to it.)
            _ = s.diskCall("chain", method, args)
            XCTAssertEqual(s.daemonExit(within: 120), 128 + SIGKILL, "\(step): the daemon did not stop at its crash point")
            XCTAssertTrue(s.log(tail: 5).contains("crash point \(step) reached"), "\(step): \(s.log(tail: 5))")
            try s.startDaemon()
            let left = ((try? FileManager.default.contentsOfDirectory(atPath: backups)) ?? []).filter { $0.hasPrefix(".") }
            XCTAssertEqual(left, [], "\(step): unfinished files after the restart")
        }
        var written: [(Character, Int)] = []
        for (letter, megabyte) in [("A", 0), ("B", 1), ("C", 2)] as [(Character, Int)] {
            write(letter, megabyte: megabyte)
            written.append((letter, megabyte))
            XCTAssertNotNil(run("Backup", ["a{sv}", "0"]))
        }
        var ids = s.backupPoints("chain").map(\.id)
        XCTAssertEqual(s.backupPoints("chain").map(\.kind), ["full", "incremental", "incremental"])

        // A point: killed once the storage daemon's copy (with the new bitmap) is done, and
        // once its manifest is written but the parent's bitmap still there.
        write("D", megabyte: 3)
        written.append(("D", 3))
        try crash(at: "backup.copied", "Backup", ["a{sv}", "0"])
        XCTAssertEqual(s.backupPoints("chain").map(\.id), ids, "nothing is recorded before the manifest")
        guard let p4 = run("Backup", ["a{sv}", "0"]), let id4 = p4["backup_id"]?.string else { return }
        XCTAssertEqual(p4["kind"]?.string, "incremental", "\(p4)")
        XCTAssertEqual(p4["parent"]?.string, ids.last)
        XCTAssertEqual(bitmaps(), ["mv-\(id4)"], "the killed point's bitmap is gone")
        ids.append(id4)
        write("E", megabyte: 4)
        written.append(("E", 4))
        try crash(at: "backup.recorded", "Backup", ["a{sv}", "0"])
        let afterRecorded = s.backupPoints("chain")
        XCTAssertEqual(afterRecorded.count, ids.count + 1, "the point is recorded")
        XCTAssertEqual(afterRecorded.last?.parent, id4)
        ids.append(try XCTUnwrap(afterRecorded.last?.id))
        guard let p6 = run("Backup", ["a{sv}", "0"]), let id6 = p6["backup_id"]?.string else { return }
        XCTAssertEqual(p6["kind"]?.string, "incremental", "\(p6)")
        XCTAssertEqual(p6["parent"]?.string, ids.last)
        XCTAssertEqual(bitmaps(), ["mv-\(id6)"], "the older bitmap left by the killed daemon is gone")
        ids.append(id6)

        // Deletions: the full point (its next point committed into it) killed after the merge
        // and after the rename, a middle point (the next rebased) after the merge, one killed
        // just after it was marked. The restart finishes each in the background.
        for (step, victim) in [("delete-backup.merged", ids[0]), ("delete-backup.renamed", ids[1]), ("delete-backup.merged", ids[3]),
                               ("delete-backup.marked", ids[4])] {
            try crash(at: step, "DeleteBackup", ["sa{sv}", victim, "0"])
            XCTAssertFalse(s.backupPoints("chain").map(\.id).contains(victim), "\(step): \(victim) is listed while it is being deleted")
            XCTAssertTrue(waitFor(60, interval: 0.2) { s.log(tail: 100).contains("finished the deletion of backup point \(victim)") },
                          "\(step): \(s.log(tail: 10))")
        }
        let left = s.backupPoints("chain")
        XCTAssertEqual(left.map(\.id), [ids[2], ids[5]])
        XCTAssertEqual(left.map(\.kind), ["full", "incremental"])
        XCTAssertEqual(left.last?.parent, ids[2])
        guard let verified = run("VerifyBackup", ["sa{sv}", ids[5], "0"]) else { return }
        XCTAssertEqual(verified["points_checked"]?.uint64, 2, "\(verified)")
        // The newest point holds every letter; the full one what was written before it.
        for (point, letters) in [(ids[5], 5), (ids[2], 3)] {
            let copy = "chain-\(letters)"
            XCTAssertNotNil(run("Restore", ["sa{sv}", point, "1", "new_name", "s", copy]))
            let path = s.imageDir.appendingPathComponent(copy).path
            for (n, (letter, megabyte)) in written.enumerated() {
                XCTAssertTrue(LiveBackupTests.holds(path, byte: n < letters ? letter.asciiValue! : 0, at: megabyte << 20, length: 64 << 10),
                              "point \(point): \(letter) at \(megabyte) MiB")
            }
        }
        XCTAssertEqual(Set(s.backupPoints("chain").map(\.id)), [ids[2], ids[5]])
    }

    /// kill -9 at a random point of Apply (all four settings) in a loop, then restart: every
    /// settings file is either its old or its new complete self, no temporary file is left,
    /// and a final Apply brings the host into compliance.
    func testKill9DuringSettingsApplyLoopLeavesFilesComplete() throws {
        let s = try TestStack(settings: "enforcing = false", hostRootOptions: ["--drifted"], rebuildSeconds: 0.3)
        defer { s.stop() }
        let etc = s.hostRoot.appendingPathComponent("etc")
        let files = ["initramfs-tools/modules", "group", "gshadow", "default/rng-tools-debian"].map { etc.appendingPathComponent($0).path }
        let drifted = files.map { (try? String(contentsOfFile: $0, encoding: .utf8)) ?? "" }
        var applied: [String] = []
        for round in 0..<6 {
            // Put the drifted files back (enforcing is off: the daemon leaves them).
            for (file, text) in zip(files, drifted) { try text.write(toFile: file, atomically: true, encoding: .utf8) }
            let apply = try Child("/usr/bin/busctl", ["--system", "--timeout=60", "call", TestStack.busName, ObjectPaths.settings,
                                                      SettingsInterface.name, "Apply", "asa{sv}", "0", "0"],
                                  environment: ["DBUS_SYSTEM_BUS_ADDRESS": s.address],
                                  stdout: "/dev/null", stderr: "/dev/null")
            usleep(UInt32(20_000 + round * 60_000))
            XCTAssertEqual(s.stopDaemon(signal: SIGKILL), 128 + SIGKILL)
            _ = apply.wait(timeout: 10)
            for (index, file) in files.enumerated() {
                let now = (try? String(contentsOfFile: file, encoding: .utf8)) ?? "<missing>"
                if round == 0 || applied.count <= index {
                    XCTAssertTrue(now.hasSuffix("\n") && !now.isEmpty, "round \(round): \(file) is torn: \(now.suffix(80))")
                } else {
                    XCTAssertTrue(now == drifted[index] || now == applied[index], "round \(round): \(file) is neither old nor new")
                }
            }
            try s.startDaemon()
            let left = Command.run("/usr/bin/find", [etc.path, "-name", "*.mvtmp-*"]).stdout
            XCTAssertEqual(left, "", "round \(round): temporary files left: \(left)")
            if round == 0 {
                // Learn what a complete Apply writes, for the next rounds' comparison.
                XCTAssertTrue(s.call(ObjectPaths.settings, SettingsInterface.name, "Apply", ["asa{sv}", "0", "0"]).ok)
                applied = files.map { (try? String(contentsOfFile: $0, encoding: .utf8)) ?? "" }
            }
        }
        let final = s.call(ObjectPaths.settings, SettingsInterface.name, "Apply", ["asa{sv}", "0", "0"])
        XCTAssertTrue(final.ok, final.all)
        XCTAssertEqual(s.mvctl(["settings", "check"]).status, 0, s.mvctl(["settings", "check"]).all)
        XCTAssertEqual(files.map { (try? String(contentsOfFile: $0, encoding: .utf8)) ?? "" }, applied)
    }
}

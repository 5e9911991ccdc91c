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

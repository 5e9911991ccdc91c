import Foundation
import SDBus
import XCTest

/// kill -9 of the daemon in the middle of a clone and of a backup, then a restart: the
/// images are sound, no temporary or partial file is left, every object is back, and the
/// interrupted work is not reported as done.
final class CrashRecoveryTests: XCTestCase {
    func testKill9DuringCloneAndBackupLeavesNothingHalfDone() throws {
        let s = try TestStack()
        defer { s.stop() }
        XCTAssertTrue(s.createDisk("src", size: 1 << 30, format: "raw", as: TestStack.grantedUser).ok)
        let src = s.imageDir.appendingPathComponent("src").path
        XCTAssertTrue(Command.run("/usr/bin/qemu-io", ["-f", "raw", "-c", "write -P 0x61 0 512M", src]).ok)
        let sum = Command.run("/usr/bin/sha256sum", [src]).stdout.split(separator: " ").first.map(String.init)
        let backups = s.dir.appendingPathComponent("backups").path
        let disk = "/org/multiverse/Controller/disk/src"

        for (method, args) in [("Clone", ["sa{sv}", "half", "0"]), ("Backup", ["a{sv}", "0"])] {
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
        }
        // The source is intact, its object is back, the interrupted jobs are gone rather
        // than reported as succeeded, and no backup is listed.
        XCTAssertEqual(Command.run("/usr/bin/sha256sum", [src]).stdout.split(separator: " ").first.map(String.init), sum)
        XCTAssertTrue(Command.run("/usr/bin/qemu-img", ["check", "-f", "raw", src]).status != 2)
        XCTAssertTrue(s.manager("GetDiskByName", ["sa{sv}", "src", "0"]).ok)
        XCTAssertFalse(s.manager("GetDiskByName", ["sa{sv}", "half", "0"]).ok)
        let jobs = s.manager("ListJobs", ["a{sv}", "0"])
        XCTAssertFalse(jobs.stdout.contains("Clone"), jobs.stdout)
        let listed = s.call(disk, TestStack.diskInterface, "ListBackups", ["a{sv}", "0"])
        XCTAssertEqual(listed.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "a(stts) 0")
    }
}

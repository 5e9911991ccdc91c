import ControllerAPI
import Foundation
import SDBus
import XCTest

/// The image and backup directories on a 24 MiB tmpfs made for the test: CreateDisk, Clone
/// and Backup fail with an `Io` error naming the directory and leave nothing behind.
final class DiskFullTests: XCTestCase {
    func testFullDirectoriesGiveClearErrorsAndLeaveNothing() async throws {
        var mounted: [String] = []
        let s = try TestStack { images in
            let backups = images.deletingLastPathComponent().appendingPathComponent("backups")
            try FileManager.default.createDirectory(at: backups, withIntermediateDirectories: true)
            for dir in [images.path, backups.path] {
                let r = Command.run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=24M,mode=0755", "tmpfs", dir])
                guard r.ok else { throw StackError("mount tmpfs on \(dir): \(r.all)") }
                mounted.append(dir)
            }
        }
        defer {
            s.stopDaemon()
            for dir in mounted { _ = Command.run("/usr/bin/umount", [dir]) }
            s.stop()
        }
        let images = s.imageDir.path
        // 1. CreateDisk: a fully preallocated image larger than the filesystem.
        let big = s.manager("CreateDisk", ["stsa{sv}", "huge", String(64 << 20), "raw", "1", "preallocation", "s", "full"], as: TestStack.grantedUser)
        XCTAssertFalse(big.ok)
        XCTAssertTrue(big.stderr.contains(ErrorName.io.rawValue) || big.stderr.contains("creating disk huge in \(images) failed"), big.all)
        XCTAssertTrue(big.stderr.contains("in \(images) failed"), big.all)
        XCTAssertEqual(s.imageFiles(), [])

        // 2. Clone and Backup of a disk holding 14 MiB: a second copy does not fit.
        XCTAssertTrue(s.createDisk("data", size: 32 << 20, as: TestStack.grantedUser).ok)
        XCTAssertTrue(qemuIO("write -P 0x33 0 14M", "\(images)/data").ok)
        let signals = try await SignalCollector(stack: s, match: "type='signal',sender='\(TestStack.busName)',member='Completed'")
        defer { Task { await signals.close() } }
        let clone = s.call("/org/multiverse/Controller/disk/data", TestStack.diskInterface, "Clone", ["sa{sv}", "copy", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(clone.ok, clone.all)
        let cloneDone = await signals.wait(timeout: 30) { _ in true }
        XCTAssertEqual(cloneDone?.arguments.first, .boolean(false), signals.summary)
        XCTAssertTrue((cloneDone?.arguments.last?.string ?? "").contains("the clone of data to copy in \(images) failed"), signals.summary)
        XCTAssertEqual(s.imageFiles(), ["data"])

        // Fill the backup filesystem first so the 14 MiB backup cannot fit either.
        let filler = s.dir.appendingPathComponent("backups/filler").path
        _ = Command.run("/usr/bin/fallocate", ["-l", "16M", filler])
        let mark = signals.all.count
        let backup = s.call("/org/multiverse/Controller/disk/data", TestStack.diskInterface, "Backup", ["a{sv}", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(backup.ok, backup.all)
        let backupDone = await signals.wait(timeout: 30, after: mark) { _ in true }
        XCTAssertEqual(backupDone?.arguments.first, .boolean(false), signals.summary)
        XCTAssertTrue((backupDone?.arguments.last?.string ?? "").contains("into \(s.dir.path)/backups failed"), signals.summary)
        let left = try FileManager.default.contentsOfDirectory(atPath: s.dir.appendingPathComponent("backups").path)
        XCTAssertEqual(left, ["filler"])
        XCTAssertTrue(s.daemon?.isRunning ?? false)
    }
}

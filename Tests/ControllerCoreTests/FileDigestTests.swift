import Foundation
import Synchronization
import XCTest
@testable import HostSystem
@testable import ControllerCore

/// `FileDigest` against coreutils' `sha256sum` on real files.
final class FileDigestTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("digest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func sha256sum(_ path: String) -> String {
        run("/usr/bin/sha256sum", [path]).output.split(separator: " ").first.map(String.init) ?? "sha256sum failed"
    }

    /// Data, a hole and a tail that is not a whole block: several ring rounds, a short last read.
    func testMatchesSha256sumOnASparseFileOfOddSize() async throws {
        let path = directory.appendingPathComponent("odd.img").path
        let fd = open(path, O_CREAT | O_WRONLY, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var bytes = [UInt8](repeating: 0, count: 3 << 20)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 31 &+ 7) }
        XCTAssertEqual(pwrite(fd, bytes, bytes.count, 0), bytes.count)
        XCTAssertEqual(pwrite(fd, bytes, 12345, 37 << 20), 12345)   // a 34 MiB hole before it
        close(fd)
        let ours = try await FileDigest.sha256(path)
        XCTAssertEqual(ours, sha256sum(path))
        XCTAssertEqual(ours.count, 64)
    }

    /// Holes are hashed as zeros without being read: one that ends the file, a file that is
    /// only a hole, data that starts in the middle of a block.
    func testHolesAtTheEndAndEverywhere() async throws {
        let tail = directory.appendingPathComponent("tail.img").path
        let fd = open(tail, O_CREAT | O_WRONLY, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
        let bytes = [UInt8](repeating: 0xa5, count: 5000)
        XCTAssertEqual(pwrite(fd, bytes, bytes.count, (6 << 20) + 123), bytes.count)
        XCTAssertEqual(ftruncate(fd, (21 << 20) + 7), 0)
        close(fd)
        let ours = try await FileDigest.sha256(tail)
        XCTAssertEqual(ours, sha256sum(tail))

        let empty = directory.appendingPathComponent("hole.img").path
        XCTAssertTrue(FileManager.default.createFile(atPath: empty, contents: Data()))
        XCTAssertEqual(truncate(empty, (9 << 20) + 1), 0)
        let hole = try await FileDigest.sha256(empty)
        XCTAssertEqual(hole, sha256sum(empty))
    }

    /// Progress comes every 64 MiB hashed (holes too), rising, and 1 at the end.
    func testProgressRisesToOne() async throws {
        let path = directory.appendingPathComponent("progress.img").path
        let fd = open(path, O_CREAT | O_WRONLY, 0o600)
        let bytes = [UInt8](repeating: 0x11, count: 1 << 20)
        XCTAssertEqual(pwrite(fd, bytes, bytes.count, 100 << 20), bytes.count)
        XCTAssertEqual(ftruncate(fd, 300 << 20), 0)
        close(fd)
        let seen = Seen()
        _ = try await FileDigest.sha256(path) { seen.add($0) }
        let values = seen.values
        XCTAssertEqual(values.count, 5, "\(values)")   // at 64, 128, 192, 256 MiB and the end
        XCTAssertEqual(values, values.sorted(), "\(values)")
        XCTAssertEqual(values.first ?? 0, 64.0 / 300, accuracy: 1e-9)
        XCTAssertEqual(values.last, 1)
    }

    /// Values handed in from another thread.
    final class Seen: Sendable {
        private let list = Mutex<[Double]>([])
        func add(_ value: Double) { list.withLock { $0.append(value) } }
        var values: [Double] { list.withLock { $0 } }
    }

    func testEmptyFile() async throws {
        let path = directory.appendingPathComponent("empty").path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data()))
        let ours = try await FileDigest.sha256(path)
        XCTAssertEqual(ours, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    func testAMissingFileIsAnIoErrorNamingIt() async {
        let path = directory.appendingPathComponent("nope").path
        do {
            _ = try await FileDigest.sha256(path)
            XCTFail("no error")
        } catch {
            XCTAssertEqual((ControllerError.mapped(error) as? ControllerError)?.kind, "Io", "\(error)")
            XCTAssertTrue("\(error)".contains(path), "\(error)")
        }
    }

    /// A 64 GiB file that is one hole (~40 s to hash).
    func hugeHole() -> String {
        let path = directory.appendingPathComponent("huge.img").path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data()))
        XCTAssertEqual(truncate(path, 64 << 30), 0)
        return path
    }

    /// Starts `work`, cancels it after `delay` and expects it to end with `CancellationError`.
    func assertCancellationStops(_ what: String, after delay: Duration = .milliseconds(200),
                                 _ work: @escaping @Sendable () async throws -> String) async throws {
        let task = Task { try await work() }
        if delay > .zero { try await Task.sleep(for: delay) }
        task.cancel()
        do {
            _ = try await task.value
            XCTFail("\(what) finished despite the cancellation")
        } catch {
            XCTAssertTrue(error is CancellationError, "\(error)")
        }
    }

    /// Cancellation stops the hashing between blocks.
    func testCancellationStopsTheReading() async throws {
        let path = hugeHole()
        try await assertCancellationStops("the digest of 64 GiB") { try await FileDigest.sha256(path) }
    }

    /// Allocated bytes of a file (`st_blocks`).
    func allocated(_ path: String) -> Int64 {
        var st = stat()
        return stat(path, &st) == 0 ? Int64(st.st_blocks) * 512 : -1
    }

    /// The copy is the same bytes (`cmp`), its hash is `sha256sum`'s, and it is sparse: the
    /// source's holes and a run of written zeros stay holes; the mode is 0640. The copy
    /// without a hash (`FileDigest.copy`, a disk image) is the same, with mode 0600.
    func testACopyIsIdenticalSparseAndHashed() async throws {
        let source = directory.appendingPathComponent("source.img").path
        let fd = open(source, O_CREAT | O_WRONLY, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var bytes = [UInt8](repeating: 0, count: 6 << 20)
        for i in bytes.indices where i < (1 << 20) || i >= (5 << 20) { bytes[i] = UInt8(truncatingIfNeeded: i &* 13 &+ 1) }
        XCTAssertEqual(pwrite(fd, bytes, bytes.count, 0), bytes.count)   // 4 MiB of written zeros inside
        XCTAssertEqual(pwrite(fd, bytes, 777, 40 << 20), 777)             // a 34 MiB hole, a short tail
        XCTAssertEqual(ftruncate(fd, (50 << 20) + 3), 0)                  // and a hole at the end
        close(fd)
        let copy = directory.appendingPathComponent("copy.img").path
        let sum = try await FileDigest.sha256(source, copyingTo: copy)
        XCTAssertEqual(sum, sha256sum(source))
        XCTAssertEqual(sha256sum(copy), sum)
        try assertSparseSyncedCopy(of: source, copy, mode: 0o640)

        let plain = directory.appendingPathComponent("plain.img").path
        let seen = Seen()
        try await FileDigest.copy(source, to: plain, progress: { seen.add($0) })
        XCTAssertEqual(seen.values.last, 1, "\(seen.values)")
        try assertSparseSyncedCopy(of: source, plain, mode: 0o600)
    }

    /// `copy` has the bytes of `source`, its size, `mode`, is synced and sparse (2–3 MiB
    /// allocated: the data of the source built in the test above).
    func assertSparseSyncedCopy(of source: String, _ copy: String, mode: Int) throws {
        XCTAssertEqual(FileManager.default.contents(atPath: source), FileManager.default.contents(atPath: copy))
        let attributes = try FileManager.default.attributesOfItem(atPath: copy)
        XCTAssertEqual(attributes[.size] as? Int, (50 << 20) + 3)
        XCTAssertEqual((attributes[.posixPermissions] as? Int).map { $0 & 0o777 }, mode)
        XCTAssertEqual(unwrittenPages(copy), "0 0", "\(copy) was not synced (dirty and under-writeback pages)")
        XCTAssertLessThan(allocated(copy), 3 << 20, "\(copy) is not sparse: \(allocated(copy)) bytes allocated")
        XCTAssertGreaterThanOrEqual(allocated(copy), 2 << 20)
    }

    /// "DIRTY WRITEBACK" page counts of a file (scripts/lib/unwritten-pages.py, cachestat(2)).
    func unwrittenPages(_ path: String) -> String {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/lib/unwritten-pages.py").path
        return run("/usr/bin/python3", ["-I", script, path]).output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The destination must be new: an existing file is an `Io` error naming it, untouched.
    func testACopyNeverOverwrites() async throws {
        let source = directory.appendingPathComponent("a").path
        let existing = directory.appendingPathComponent("b").path
        XCTAssertTrue(FileManager.default.createFile(atPath: source, contents: Data("new".utf8)))
        XCTAssertTrue(FileManager.default.createFile(atPath: existing, contents: Data("old".utf8)))
        do {
            _ = try await FileDigest.sha256(source, copyingTo: existing)
            XCTFail("an existing file was overwritten")
        } catch {
            XCTAssertEqual((ControllerError.mapped(error) as? ControllerError)?.kind, "Io", "\(error)")
            XCTAssertTrue("\(error)".contains(existing), "\(error)")
        }
        XCTAssertEqual(FileManager.default.contents(atPath: existing), Data("old".utf8))
    }

    /// A write that fails (the file size limit here, a full disk in real life) ends the copy
    /// with an `Io` error naming the destination and the reason, not a short copy with a hash.
    func testAFailedWriteEndsTheCopy() async throws {
        let source = directory.appendingPathComponent("big").path
        let fd = open(source, O_CREAT | O_WRONLY, 0o600)
        let bytes = [UInt8](repeating: 0x5a, count: 1 << 20)
        for block in 0..<12 { XCTAssertEqual(pwrite(fd, bytes, bytes.count, off_t(block << 20)), bytes.count) }
        close(fd)
        let copy = directory.appendingPathComponent("copy").path
        var saved = rlimit()
        getrlimit(Int32(RLIMIT_FSIZE.rawValue), &saved)
        let oldHandler = signal(SIGXFSZ, SIG_IGN)   // writes past the limit then fail with EFBIG
        var limit = saved
        limit.rlim_cur = 6 << 20
        XCTAssertEqual(setrlimit(Int32(RLIMIT_FSIZE.rawValue), &limit), 0)
        defer {
            setrlimit(Int32(RLIMIT_FSIZE.rawValue), &saved)
            signal(SIGXFSZ, oldHandler)
        }
        do {
            _ = try await FileDigest.sha256(source, copyingTo: copy)
            XCTFail("a copy past the file size limit succeeded")
        } catch {
            XCTAssertEqual((ControllerError.mapped(error) as? ControllerError)?.kind, "Io", "\(error)")
            XCTAssertTrue("\(error)".contains("cannot write \(copy)"), "\(error)")
            XCTAssertTrue("\(error)".contains(String(cString: strerror(EFBIG))), "\(error)")
        }
    }

    /// Cancelling a copy of 64 GiB of holes stops it (the caller removes the file).
    func testCancellationStopsACopy() async throws {
        let path = hugeHole()
        let copy = directory.appendingPathComponent("huge.copy").path
        try await assertCancellationStops("the copy of 64 GiB") { try await FileDigest.sha256(path, copyingTo: copy) }
        var st = stat()
        XCTAssertEqual(stat(copy, &st), 0)
        XCTAssertEqual(st.st_blocks, 0, "a copy of holes wrote data")
        // Without the hash, 64 GiB of holes take well under 200 ms to copy: cancelled at once.
        let plain = directory.appendingPathComponent("huge.plain").path
        try await assertCancellationStops("the copy of 64 GiB without a hash", after: .zero) {
            try await FileDigest.copy(path, to: plain)
            return ""
        }
        XCTAssertEqual(stat(plain, &st), 0)
        XCTAssertEqual(st.st_size, 0, "a cancelled copy went on")
    }

    func run(_ tool: String, _ arguments: [String]) -> (status: Int32, output: String) { runTool(tool, arguments) }

    func freeBytes(_ path: String) -> Int64 {
        var fs = statvfs()
        return statvfs(path, &fs) == 0 ? Int64(fs.f_bavail) * Int64(fs.f_frsize) : -1
    }

    /// On a file system with reflinks (a real XFS in a loop-mounted image; needs root, as the
    /// test suite runs) the copy is a clone: same bytes and hash, and the file system's free
    /// space does not shrink by the file's size. On ext4 (the other tests) it is written.
    func testACopyOnXfsIsAClone() async throws {
        try XCTSkipUnless(geteuid() == 0, "mounting an XFS image needs root (scripts/test runs this as root; --fast does not)")
        let image = directory.appendingPathComponent("xfs.img").path
        let mountPoint = directory.appendingPathComponent("xfs").path
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: image, contents: Data()))
        XCTAssertEqual(truncate(image, 400 << 20), 0)
        let mkfs = run("/usr/sbin/mkfs.xfs", ["-q", "-f", image])
        XCTAssertEqual(mkfs.status, 0, mkfs.output)
        let mount = run("/usr/bin/mount", ["-o", "loop", image, mountPoint])
        XCTAssertEqual(mount.status, 0, "mounting an XFS image needs root and a loop device: \(mount.output)")
        guard mount.status == 0 else { return }
        defer { _ = run("/usr/bin/umount", [mountPoint]) }

        let source = mountPoint + "/source"
        let fd = open(source, O_CREAT | O_WRONLY, 0o600)
        var bytes = [UInt8](repeating: 0, count: 1 << 20)
        for block in 0..<64 {
            for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 7 &+ block) }
            XCTAssertEqual(pwrite(fd, bytes, bytes.count, off_t(block << 20)), bytes.count)
        }
        fsync(fd)
        close(fd)
        let before = freeBytes(mountPoint)
        let copy = mountPoint + "/copy"
        let sum = try await FileDigest.sha256(source, copyingTo: copy)
        sync()
        XCTAssertEqual(sum, sha256sum(source))
        XCTAssertEqual(sha256sum(copy), sum)
        try await FileDigest.copy(source, to: mountPoint + "/plain")
        sync()
        XCTAssertEqual(sha256sum(mountPoint + "/plain"), sum)
        let used = before - freeBytes(mountPoint)
        XCTAssertLessThan(used, 8 << 20, "two copies on XFS took \(used) bytes: not clones")
    }
}

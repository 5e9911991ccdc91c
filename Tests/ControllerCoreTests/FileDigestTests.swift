import Foundation
import XCTest
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
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        p.arguments = [path]
        let out = Pipe()
        p.standardOutput = out
        try? p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: " ").first.map(String.init) ?? "sha256sum failed"
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
            XCTAssertEqual((error as? ControllerError)?.dbusName, "org.multiverse.Controller.Error.Io")
            XCTAssertTrue("\(error)".contains(path), "\(error)")
        }
    }

    /// 64 GiB of holes take ~40 s to hash: cancellation must stop it between blocks.
    func testCancellationStopsTheReading() async throws {
        let path = directory.appendingPathComponent("huge.img").path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data()))
        XCTAssertEqual(truncate(path, 64 << 30), 0)
        let task = Task { try await FileDigest.sha256(path) }
        try await Task.sleep(for: .milliseconds(200))
        task.cancel()
        do {
            _ = try await task.value
            XCTFail("the digest of 64 GiB finished despite the cancellation")
        } catch {
            XCTAssertTrue(error is CancellationError, "\(error)")
        }
    }
}

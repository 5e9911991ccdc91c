import Foundation
import XCTest
@testable import ControllerCore

/// `[disks] copy_rate_mib_s`: the daemon's own copies and qemu-img convert keep to it, the
/// bytes are the same, and a paced copy still stops at once when cancelled.
final class CopyRateTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("rate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// A file of `mib` MiB of random bytes (nothing for the sparse copy to leave out).
    func randomFile(_ name: String, mib: Int) throws -> String {
        let path = directory.appendingPathComponent(name).path
        let random = try XCTUnwrap(FileHandle(forReadingAtPath: "/dev/urandom"))
        defer { try? random.close() }
        let bytes = random.readData(ofLength: mib << 20)
        XCTAssertEqual(bytes.count, mib << 20)
        try bytes.write(to: URL(fileURLWithPath: path))
        return path
    }

    func same(_ a: String, _ b: String) throws -> Bool {
        try Data(contentsOf: URL(fileURLWithPath: a)) == Data(contentsOf: URL(fileURLWithPath: b))
    }

    /// 24 MiB at 16 MiB/s cannot take less than 1.5 s (less one 4 MiB block read ahead);
    /// the hash of a paced backup copy is still the file's.
    func testTheDaemonsCopiesKeepToTheRate() async throws {
        let source = try randomFile("source.img", mib: 24)
        let rate = CopyRate(bytesPerSecond: 16 << 20)
        let copy = directory.appendingPathComponent("copy.img").path
        let clock = ContinuousClock()
        let took = try await clock.measure { try await FileDigest.copy(source, to: copy, rate: rate) }
        XCTAssertGreaterThanOrEqual(took, .milliseconds(1250), "24 MiB at 16 MiB/s took \(took)")
        XCTAssertTrue(try same(source, copy))

        let hashed = directory.appendingPathComponent("hashed.img").path
        var sum = ""
        let tookHashed = try await clock.measure { sum = try await FileDigest.sha256(source, copyingTo: hashed, rate: rate) }
        XCTAssertGreaterThanOrEqual(tookHashed, .milliseconds(1250), "24 MiB at 16 MiB/s took \(tookHashed)")
        let expected = try await FileDigest.sha256(source)
        XCTAssertEqual(sum, expected)
        XCTAssertTrue(try same(source, hashed))
    }

    /// qemu-img convert gets the limit as -r.
    func testQemuImgConvertKeepsToTheRate() async throws {
        let source = try randomFile("source.raw", mib: 24)
        let copy = directory.appendingPathComponent("converted.raw").path
        let took = try await ContinuousClock().measure {
            try await QemuImg(path: "/usr/bin/qemu-img").convert(source: source, format: "raw",
                                                                 rate: CopyRate(bytesPerSecond: 16 << 20), to: copy)
        }
        XCTAssertGreaterThanOrEqual(took, .milliseconds(1000), "qemu-img convert -r of 24 MiB at 16 MiB/s took \(took)")
        XCTAssertTrue(try same(source, copy))
    }

    /// A clone paced to 4 MiB/s (six seconds for 24 MiB) is cancelled after 300 ms: the
    /// job's error is Cancelled at once and no image, finished or temporary, is left.
    func testCancellingAPacedCloneLeavesNothing() async throws {
        let images = directory.appendingPathComponent("images").path
        let store = DiskStore(directory: images, qemuImg: QemuImg(path: "/usr/bin/qemu-img"),
                              copyRate: CopyRate(bytesPerSecond: 4 << 20), logger: .init(label: "test"))
        try await store.scan()
        let base = try randomFile("images/base.img", mib: 24)
        try ImageFormatRecord.write(base, format: "raw")   // what AdoptDisk records
        try await store.scan()
        let clock = ContinuousClock()
        let started = clock.now
        let task = Task { try await store.clone("base.img", to: "copy.img", linked: false) { _ in } }
        try await Task.sleep(for: .milliseconds(300))
        task.cancel()
        do {
            _ = try await task.value
            XCTFail("the paced clone finished despite the cancellation")
        } catch {
            XCTAssertEqual((error as? ControllerError)?.kind, "Cancelled", "\(error)")
        }
        XCTAssertLessThan(clock.now - started, .seconds(3), "the cancellation waited for the copy")
        let left = try FileManager.default.contentsOfDirectory(atPath: images).sorted()
        XCTAssertEqual(left, ["base.img"])
    }
}

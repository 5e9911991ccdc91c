import Foundation
import Synchronization
import XCTest
@testable import HostSystem
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

    /// With a progress handler, convert hands on qemu-img's own `-p` reports as they
    /// arrive (a paced copy of 24 MiB takes over a second, so several arrive), rising to
    /// 100 %; the copy is the same. Cancelling a reporting convert kills qemu-img at once.
    func testQemuImgConvertReportsItsOwnProgressAndStopsWhenCancelled() async throws {
        let source = try randomFile("source.raw", mib: 24)
        let copy = directory.appendingPathComponent("reported.raw").path
        let reports = Mutex<[Double]>([])
        try await QemuImg(path: "/usr/bin/qemu-img").convert(source: source, format: "raw",
                                                             rate: CopyRate(bytesPerSecond: 16 << 20), to: copy) { fraction in
            reports.withLock { $0.append(fraction) }
        }
        let seen = reports.withLock { $0 }
        XCTAssertGreaterThan(seen.count, 3, "qemu-img's reports: \(seen)")
        XCTAssertEqual(seen, seen.sorted(), "progress went back: \(seen)")
        XCTAssertEqual(seen.last, 1.0)
        XCTAssertTrue(try same(source, copy))

        let slow = directory.appendingPathComponent("cancelled.raw").path
        let clock = ContinuousClock()
        let started = clock.now
        let task = Task {
            try await QemuImg(path: "/usr/bin/qemu-img").convert(source: source, format: "raw",
                                                                 rate: CopyRate(bytesPerSecond: 2 << 20), to: slow) { _ in }
        }
        try await Task.sleep(for: .milliseconds(300))
        task.cancel()
        do {
            try await task.value
            XCTFail("the paced convert finished despite the cancellation")
        } catch {}
        XCTAssertLessThan(clock.now - started, .seconds(5), "the cancellation waited for qemu-img (12 s at 2 MiB/s)")
    }

    /// qemu-img's reports split anywhere between two reads still read as whole reports;
    /// anything else on the line is ignored.
    func testProgressReportsSplitAcrossReads() {
        var reader = QemuImg.ProgressReader()
        XCTAssertEqual(reader.read("    (0.00/100%)\r    (12."), 0)
        XCTAssertNil(reader.read("5"))
        XCTAssertEqual(reader.read("0/100%)\r"), 0.125)
        XCTAssertEqual(reader.read("    (40.00/100%)\r    (50.00/100%)\r"), 0.5)
        XCTAssertNil(reader.read("qemu-img: warning\r"))
        XCTAssertNil(reader.read("    (250.00/100%)\r"))
        XCTAssertEqual(reader.read("    (100.00/100%)\r\n"), 1.0)
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

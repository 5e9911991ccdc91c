@testable import ControllerCore
import XCTest

/// The rules of a disk's ChangeTracking property: the file's bitmaps for a stopped disk,
/// libvirt's measure for a running one, the reasons a point would be full.
final class ChangeTrackingTests: XCTestCase {
    let point = BackupPoint(id: "d-1", disk: "d", kind: .full, parent: nil, created: 100, size: 1, virtualSize: 1 << 20,
                            format: "qcow2", blockSize: 65536, digest: "x", bitmap: "mv-d-1", reason: nil)

    func disk(format: String = "qcow2", bitmaps: [DiskBitmap] = []) -> DiskInfo {
        DiskInfo(name: "d", path: "/i/d", format: format, virtualSize: 1 << 20, allocatedSize: 0, compat: format == "qcow2" ? "1.1" : nil,
                 bitmaps: bitmaps)
    }

    func testAStoppedDiskTracksWhileItsNewestPointsBitmapIsConsistent() {
        let measure = ChangeTracking.Measure(point: "d-1", bytes: 0, at: 100)
        XCTAssertEqual(ChangeTracking.of(disk(bitmaps: [DiskBitmap(name: "mv-d-1", inUse: false)]), head: point, isBase: false, running: false, measure: measure),
                       ChangeTracking(state: .tracking, since: 100, reason: "", changed: 0, measured: 100))
        let crashed = ChangeTracking.of(disk(bitmaps: [DiskBitmap(name: "mv-d-1", inUse: true)]), head: point, isBase: false, running: false, measure: measure)
        XCTAssertEqual(crashed.state, .broken)
        XCTAssertTrue(crashed.reason.contains("inconsistent"), crashed.reason)
        XCTAssertNil(crashed.changed)
        let gone = ChangeTracking.of(disk(), head: point, isBase: false, running: false, measure: nil)
        XCTAssertEqual(gone.state, .broken)
        XCTAssertTrue(gone.reason.contains("is gone"), gone.reason)
        // A measure of an older point says nothing about the newest one.
        let old = ChangeTracking.Measure(point: "d-0", bytes: 5, at: 50)
        XCTAssertNil(ChangeTracking.of(disk(bitmaps: [DiskBitmap(name: "mv-d-1", inUse: false)]), head: point, isBase: false, running: false, measure: old).changed)
    }

    func testNothingToTrackIsNoneWithTheReason() {
        XCTAssertEqual(ChangeTracking.of(disk(), head: nil, isBase: false, running: false, measure: nil),
                       ChangeTracking(state: .none, since: 0, reason: "disk d has no earlier point"))
        let raw = ChangeTracking.of(disk(format: "raw"), head: point, isBase: false, running: false, measure: nil)
        XCTAssertEqual(raw.state, .none)
        XCTAssertTrue(raw.reason.contains("raw disks cannot track changes"), raw.reason)
        XCTAssertEqual(ChangeTracking.of(disk(bitmaps: [DiskBitmap(name: "mv-d-1", inUse: false)]), head: point, isBase: true, running: false, measure: nil).state, .none)
    }

    func testARunningDiskFollowsLibvirtsMeasureNotTheFile() {
        // Running: qemu marks the file's bitmaps in use; that alone is no inconsistency.
        let started = ChangeTracking.of(disk(bitmaps: [DiskBitmap(name: "mv-d-1", inUse: true)]), head: point, isBase: false, running: true, measure: nil)
        XCTAssertEqual(started.state, .tracking)
        // A bitmap made while it runs is in qemu only: libvirt's size says it is there.
        let measured = ChangeTracking.of(disk(), head: point, isBase: false, running: true,
                                         measure: ChangeTracking.Measure(point: "d-1", bytes: 196_608, at: 160))
        XCTAssertEqual(measured, ChangeTracking(state: .tracking, since: 100, reason: "", changed: 196_608, measured: 160))
        // A checkpoint without a size: qemu has no consistent bitmap since the point.
        let lost = ChangeTracking.of(disk(bitmaps: [DiskBitmap(name: "mv-d-1", inUse: true)]), head: point, isBase: false, running: true,
                                     measure: ChangeTracking.Measure(point: "d-1", bytes: nil, at: 160))
        XCTAssertEqual(lost.state, .broken)
        XCTAssertNil(lost.changed)
    }
}

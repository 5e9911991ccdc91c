import Foundation
import SDBus
import XCTest

/// SetVersioning: automatic `auto-*` snapshots on an interval (only when the image
/// changed) and at each stop of the VM using the disk, pruned to `keep`; the user's own
/// snapshots are never pruned. Real qemu-img and libvirt's test driver.
final class DiskVersioningTests: XCTestCase {
    override class func setUp() { SharedStacks.start(self) { try TestStack() } }
    override class func tearDown() { SharedStacks.stop(self) }
    var stack: TestStack { get throws { try SharedStacks.stack(Self.self) } }

    /// Snapshot names in the image, per qemu-img.
    func snapshots(_ image: String) -> [String] {
        Command.run("/usr/bin/qemu-img", ["snapshot", "-U", "-l", image]).stdout.split(separator: "\n").dropFirst(2)
            .compactMap { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.map(String.init) }
    }

    func autos(_ image: String) -> [String] { snapshots(image).filter { $0.hasPrefix("auto-") } }

    /// The versions vdisk's Snapshots property lists.
    func published(_ s: TestStack) -> Set<String> {
        Set((s.diskProperty("vdisk", "Snapshots")?.arrayElements ?? []).compactMap { $0.structFields?.first?.string }.filter { $0.hasPrefix("auto-") })
    }

    func testIntervalSnapshotsArePrunedToKeepAndPinnedOnesStay() throws {
        let s = try stack
        XCTAssertTrue(s.createDisk("vdisk", size: 1 << 20, as: TestStack.grantedUser).ok)
        XCTAssertTrue(s.createDisk("vraw", size: 1 << 20, format: "raw", as: TestStack.grantedUser).ok)
        let image = s.imageDir.appendingPathComponent("vdisk").path
        XCTAssertTrue(try stack.diskCall("vraw", "SetVersioning", ["a{sv}", "1", "enabled", "b", "true"]).stderr.contains("vraw is raw"))
        XCTAssertTrue(try stack.diskCall("vdisk", "SetVersioning", ["a{sv}", "1", "interval_s", "u", "2"]).stderr.contains("invalid interval_s 2"))
        XCTAssertTrue(try stack.diskCall("vdisk", "SetVersioning", ["a{sv}", "1", "keep", "u", "0"]).stderr.contains("invalid keep 0"))
        XCTAssertFalse(try stack.diskCall("vdisk", "SetVersioning", ["a{sv}", "1", "enabled", "b", "true"], as: TestStack.otherUser).ok)
        XCTAssertTrue(try stack.diskCall("vdisk", "CreateSnapshot", ["sa{sv}", "pinned", "0"]).ok)

        let set = try stack.diskCall("vdisk", "SetVersioning", ["a{sv}", "3", "enabled", "b", "true", "interval_s", "u", "5", "keep", "u", "2"])
        XCTAssertTrue(set.ok, set.all)
        let versioning = s.diskProperty("vdisk", "Versioning")
        XCTAssertTrue(versioning["interval_s"] == .uint32(5) && versioning["keep"] == .uint32(2), versioning.shown)
        // Three changes, three versions; the oldest pruned to keep two.
        var seen: Set<String> = []
        for round in 0..<3 {
            XCTAssertTrue(qemuIO("write -P \(round + 1) 0 4k", image).ok)
            // The Snapshots property shows a version once its stamp is recorded: only a write
            // after that is a change (qemu-io here bypasses the lease a VM would need).
            XCTAssertTrue(waitFor(15) { !Set(autos(image)).subtracting(seen).isEmpty && !published(s).subtracting(seen).isEmpty },
                          "no new version in round \(round): \(snapshots(image))")
            seen.formUnion(autos(image))
        }
        // The new version is taken before the oldest is pruned: wait for the pruning.
        XCTAssertTrue(waitFor(10) { autos(image).count == 2 }, "not pruned to keep 2: \(snapshots(image))")
        XCTAssertEqual(seen.count, 3)
        XCTAssertTrue(snapshots(image).contains("pinned"), "a user snapshot was pruned")
        // Unchanged image: no new version after another interval.
        let current = autos(image)
        sleep(7)
        XCTAssertEqual(autos(image), current)
        let listed = s.diskProperty("vdisk", "Snapshots")
        for name in current { XCTAssertTrue(listed.firstFields.contains(name), listed.shown) }
    }

    func testSnapshotAtEachStopOfTheVM() throws {
        let s = try stack
        XCTAssertTrue(s.createDisk("stopdisk", size: 1 << 20, as: TestStack.grantedUser).ok)
        let image = s.imageDir.appendingPathComponent("stopdisk").path
        XCTAssertTrue(try stack.diskCall("stopdisk", "SetVersioning", ["a{sv}", "4", "enabled", "b", "true", "interval_s", "u", "0",
                                                               "keep", "u", "5", "on_stop", "b", "true"]).ok)
        let define = s.manager("DefineVM", ["ssa{sv}", "versioned", "app", "1", "disks", "as", "1", "stopdisk"], as: TestStack.grantedUser)
        XCTAssertTrue(define.ok, define.all)
        let vm = define.replyPath
        for round in 1...2 {
            XCTAssertTrue(s.call(vm, TestStack.vmInterface, "Start", ["a{sv}", "0"], as: TestStack.grantedUser).ok)
            XCTAssertEqual(autos(image).count, round - 1, "a snapshot was taken while the VM ran")
            XCTAssertTrue(s.call(vm, TestStack.vmInterface, "Destroy", ["a{sv}", "0"], as: TestStack.grantedUser).ok)
            XCTAssertTrue(waitFor(10) { autos(image).count == round }, "no on_stop version after stop \(round): \(snapshots(image))")
            if round == 1 { sleep(1) } // distinct timestamps
        }
    }
}

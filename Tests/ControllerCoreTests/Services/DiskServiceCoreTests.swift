@testable import ControllerCore
import Foundation
import XCTest

/// DiskService and DiskPolicyEngine through their check/run halves, without a bus, polkitd
/// or root: every image judged by `qemu-img info`, every refused check leaving no trace.
final class DiskServiceCoreTests: XCTestCase {
    var core: CoreHarness!

    override func setUp() async throws { core = try await CoreHarness() }
    override func tearDown() async throws { await core?.close() }

    func testCreateMakesTheImageAndAnnouncesIt() async throws {
        let plan = try await core.disks.checkCreate(CreateDiskRequest(name: "data", size: 128 << 20, format: "raw"))
        XCTAssertEqual(plan.details, ["disk": "data", "operation": "create"])
        // The check touches nothing.
        XCTAssertFalse(FileManager.default.fileExists(atPath: core.store.path(of: "data")))
        XCTAssertTrue(core.events.isEmpty)
        let info = try await core.disks.runCreate(plan)
        let qemu = try core.qemuInfo(info.path)
        XCTAssertEqual(qemu["format"] as? String, "raw")
        XCTAssertEqual((qemu["virtual-size"] as? NSNumber)?.uint64Value, 128 << 20)
        XCTAssertEqual(core.added, ["data"])
        await assertError("AlreadyExists", naming: "data") { try await self.core.disks.checkCreate(CreateDiskRequest(name: "data", size: 512, format: "raw")) }
        await assertError("InvalidArgs", naming: "../x") { try await self.core.disks.checkCreate(CreateDiskRequest(name: "../x", size: 512, format: "raw")) }
        await assertError("InvalidArgs", naming: "1000") { try await self.core.disks.checkCreate(CreateDiskRequest(name: "odd", size: 1000, format: "raw")) }
    }

    func testOverlayKnowsItsBackingDiskAndProtectsIt() async throws {
        try await core.create("base")
        core.clearEvents()
        try await core.create("top", backing: "base")
        let qemu = try core.qemuInfo(core.store.path(of: "top"))
        XCTAssertEqual(qemu["backing-filename"] as? String, core.store.path(of: "base"))
        let views = await core.disks.views()
        XCTAssertEqual(views.first { $0.info.name == "base" }?.overlays, ["top"])
        XCTAssertEqual(views.first { $0.info.name == "top" }?.backingDisk, "base")
        // The base's Overlays were republished after the overlay was added.
        let republished = core.events.contains { if case .changed(let v) = $0 { return v.contains { $0.info.name == "base" && $0.overlays == ["top"] } } else { return false } }
        XCTAssertTrue(republished, "\(core.events)")
        await assertError("Busy", naming: "top") { try await self.core.disks.checkDelete("base") }
        await assertError("Busy", naming: "top") { try await self.core.disks.checkResize("base", to: 128 << 20, shrink: false, filesystem: false) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: core.store.path(of: "base")))
    }

    func testResizeChecksNameTheValueAndImageOnlyGrowWorks() async throws {
        let disk = try await core.create("grow", size: 64 << 20)
        await assertError("InvalidArgs", naming: "already has a virtual size of \(64 << 20)") {
            try await self.core.disks.checkResize("grow", to: 64 << 20, shrink: false, filesystem: true)
        }
        await assertError("InvalidArgs", naming: "shrink=true") { try await self.core.disks.checkResize("grow", to: 32 << 20, shrink: false, filesystem: true) }
        await assertError("InvalidArgs", naming: "1000") { try await self.core.disks.checkResize("grow", to: 1000, shrink: false, filesystem: true) }
        await assertError("NoSuchDisk", naming: "nope") { try await self.core.disks.checkResize("nope", to: 1 << 30, shrink: false, filesystem: true) }
        let plan = try await core.disks.checkResize("grow", to: 96 << 20, shrink: false, filesystem: false)
        XCTAssertNil(plan.live)
        XCTAssertEqual(plan.details["size"], String(96 << 20))
        let job = try await core.finished(try await core.disks.runResize(plan, uid: 1000))
        XCTAssertEqual(job.state, "succeeded", job.error)
        XCTAssertEqual(job.startedByUID, 1000)
        XCTAssertEqual(job.target, .disk("grow"))
        XCTAssertEqual(job.result["new_size"], .uint64(96 << 20))
        XCTAssertEqual(job.result["live"], .bool(false))
        XCTAssertEqual((try core.qemuInfo(disk.path)["virtual-size"] as? NSNumber)?.uint64Value, 96 << 20)
    }

    func testCloneBackupAndRestoreKeepTheBytes() async throws {
        let disk = try await core.create("src", size: 8 << 20, format: "raw")
        let pattern = Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        try write(pattern, to: disk.path, at: 1 << 20)

        let clone = try await core.finished(try await core.disks.runClone(try await core.disks.checkClone("src", to: "copy", linked: false), uid: 0))
        XCTAssertEqual(clone.state, "succeeded", clone.error)
        XCTAssertEqual(try read(core.store.path(of: "copy"), at: 1 << 20, count: pattern.count), pattern)
        XCTAssertTrue(core.added.contains("copy"))
        await assertError("AlreadyExists", naming: "copy") { try await self.core.disks.checkClone("src", to: "copy", linked: false) }

        let backup = try await core.finished(try await core.disks.runBackup(try await core.disks.checkBackup("src", compress: false), uid: 0))
        XCTAssertEqual(backup.state, "succeeded", backup.error)
        guard case .string(let id) = backup.result["backup_id"] else { return XCTFail("no backup_id in \(backup.result)") }
        let backupIDs = try await core.disks.backups(of: "src").map(\.id)
        XCTAssertEqual(backupIDs, [id])

        try write(Data(repeating: 0xEE, count: pattern.count), to: disk.path, at: 1 << 20)
        XCTAssertNotEqual(try read(disk.path, at: 1 << 20, count: pattern.count), pattern)
        await assertError("NoSuchBackup", naming: "nope") { try await self.core.disks.checkRestore("src", backup: "nope") }
        let restore = try await core.finished(try await core.disks.runRestore(try await core.disks.checkRestore("src", backup: id), uid: 0))
        XCTAssertEqual(restore.state, "succeeded", restore.error)
        XCTAssertEqual(try read(disk.path, at: 1 << 20, count: pattern.count), pattern)
    }

    func testSnapshotsFollowTheRulesAndQemuImgSeesThem() async throws {
        try await core.create("raw", format: "raw")
        await assertError("NotSupported", naming: "qcow2") { try await self.core.disks.checkSnapshot(.create, "s1", on: "raw") }
        let disk = try await core.create("q")
        await assertError("InvalidArgs", naming: "auto-x") { try await self.core.disks.checkSnapshot(.create, "auto-x", on: "q") }
        await assertError("NoSuchSnapshot", naming: "s1") { try await self.core.disks.checkSnapshot(.revert, "s1", on: "q") }
        try await core.disks.runSnapshot(try await core.disks.checkSnapshot(.create, "s1", on: "q"))
        let snapshots = (try core.qemuInfo(disk.path)["snapshots"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
        XCTAssertEqual(snapshots, ["s1"])
        let snapshotNames = try await core.disks.existing("q").snapshots.map(\.name)
        XCTAssertEqual(snapshotNames, ["s1"])
        await assertError("AlreadyExists", naming: "s1") { try await self.core.disks.checkSnapshot(.create, "s1", on: "q") }
        try await core.disks.runSnapshot(try await core.disks.checkSnapshot(.delete, "s1", on: "q"))
        XCTAssertNil(try core.qemuInfo(disk.path)["snapshots"])
    }

    func testDeleteRefusesADiskAVMUsesAndRemovesOtherwise() async throws {
        let disk = try await core.create("used")
        var request = VMService.DefineRequest(name: "user", profile: "app")
        request.disks = ["used"]
        let vm = try await core.vms.runDefine(try await core.vms.checkDefine(request))
        await assertError("Busy", naming: "user") { try await self.core.disks.checkDelete("used") }
        XCTAssertTrue(FileManager.default.fileExists(atPath: disk.path))
        try await core.vms.runUndefine(try await core.vms.checkUndefine(vm.uuid, deleteDisks: false))
        try await core.disks.runDelete(try await core.disks.checkDelete("used"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: disk.path))
        XCTAssertEqual(core.removed, ["used"])
    }

    func testPolicyChecksNameTheValueAndRunsPersist() async throws {
        try await core.create("p", size: 64 << 20, format: "raw")
        let engine = core.disks.policies
        await assertError("InvalidArgs", naming: "1.5") { try await engine.checkAutoGrow("p", .init(threshold: 1.5)) }
        await assertError("InvalidArgs", naming: "must be above") { try await engine.checkAutoGrow("p", .init(enabled: true, max: 64 << 20)) }
        await assertError("NotSupported", naming: "qcow2") { try await engine.checkVersioning("p", .init(enabled: true)) }
        try await engine.runAutoGrow(try await engine.checkAutoGrow("p", .init(enabled: true, threshold: 0.8, max: 1 << 30)))
        let record = await core.disks.views().first { $0.info.name == "p" }?.record
        XCTAssertEqual(record?.autoGrow.enabled, true)
        XCTAssertEqual(record?.autoGrow.threshold, 0.8)
        let published = core.events.contains { if case .policies("p", let r) = $0 { return r.autoGrow.enabled } else { return false } }
        XCTAssertTrue(published)
    }

    private func write(_ data: Data, to path: String, at offset: UInt64) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: data)
        try handle.close()
    }

    private func read(_ path: String, at offset: UInt64, count: Int) throws -> Data {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        return try handle.read(upToCount: count) ?? Data()
    }
}

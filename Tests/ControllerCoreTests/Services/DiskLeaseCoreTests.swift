@testable import ControllerCore
import Foundation
import HostSystem
import XCTest

/// The disks' leases through the services' check/run halves, on libvirt's test driver with
/// real qemu-img and paced copies (`[disks] copy_rate_mib_s = 4`): what a job holds, nothing
/// else gets; a plan checked before the job started is refused when it runs; a VM holds its
/// disks from its start until Destroy returns.
final class DiskLeaseCoreTests: XCTestCase {
    var core: CoreHarness!

    override func setUp() async throws { core = try await CoreHarness(copyRate: CopyRate(bytesPerSecond: 4 << 20)) }
    override func tearDown() async throws { await core?.close() }

    /// A qcow2 disk with `mib` MiB of data written by qemu-io (a paced copy of it takes
    /// `mib` / 4 seconds).
    @discardableResult
    func filledDisk(_ name: String, mib: Int = 16) async throws -> DiskInfo {
        let disk = try await core.create(name, size: 64 << 20)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-io")
        p.arguments = ["-f", "qcow2", "-c", "write -P 0x5a 0 \(mib)M", disk.path]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        return try await core.store.refresh(name)
    }

    func defineVM(_ name: String, disks: [String]) async throws -> VMInfo {
        var request = VMService.DefineRequest(name: name, profile: "app")
        request.disks = disks
        return try await core.vms.runDefine(try await core.vms.checkDefine(request))
    }

    func start(_ vm: VMInfo) async throws {
        try await core.vms.runLifecycle(try await core.vms.checkLifecycle(vm.uuid, .start), .start)
    }

    func holders(_ disk: String) async -> [String] {
        await core.store.holdings(of: disk).map { "\($0.kind.rawValue) \($0.label)" }
    }

    func testAWriterJobHoldsItsDiskAgainstEveryOtherUse() async throws {
        try await filledDisk("data")
        let web = try await defineVM("web", disks: ["data"])
        let snapshotJob = try await core.vms.runSnapshot(try await core.vms.checkSnapshot(web.uuid, .create, "s0"), uid: 0)
        let snapshot = try await core.finished(try XCTUnwrap(snapshotJob))
        XCTAssertEqual(snapshot.state, "succeeded", snapshot.error)
        try await core.create("spare")
        let runner = try await defineVM("runner", disks: ["spare"])
        try await start(runner)
        let backup = try await core.finished(try await core.disks.runBackup(try await core.disks.checkBackup("data", compress: false), uid: 0))
        let backupID = try XCTUnwrap(backup.result["backup_id"].flatMap { if case .string(let id) = $0 { id } else { nil } })

        // Each writer job in turn, paced: everything else is refused while it runs.
        let writers: [(String, () async throws -> JobSnapshot)] = [
            ("Resize", { try await self.core.disks.runResize(try await self.core.disks.checkResize("data", to: 128 << 20, shrink: false, filesystem: false), uid: 0) }),
            ("Restore", { try await self.core.disks.runRestore(try await self.core.disks.checkRestore("data", backup: backupID), uid: 0) }),
        ]
        for (operation, run) in writers {
            // Plans checked before the job started: their run is refused under its lease.
            let startPlan = try await core.vms.checkLifecycle(web.uuid, .start)
            let clonePlan = try await core.disks.checkClone("data", to: "copy", linked: false)
            // Read-only (web's definition has it): a consistent reader's lease beside runner's.
            var attach = VMService.AttachRequest(disk: "data", target: "vdb")
            attach.readonly = true
            attach.live = true
            attach.persistent = false
            let attachPlan = try await core.vms.checkAttach(runner.uuid, attach)
            let revertPlan = try await core.vms.checkSnapshot(web.uuid, .revert, "s0")
            let before = try Data(contentsOf: URL(fileURLWithPath: core.store.path(of: "data")))

            let job = try await run()
            let holder = "job \(job.id) (\(operation))"
            let held = await holders("data")
            XCTAssertEqual(held, ["writer \(holder)"])
            await assertError("Busy", naming: holder) { try await self.core.vms.checkLifecycle(web.uuid, .start) }
            await assertError("Busy", naming: holder) { try await self.core.vms.runLifecycle(startPlan, .start) }
            await assertError("Busy", naming: holder) { try await self.core.vms.checkAttach(runner.uuid, attach) }
            await assertError("Busy", naming: holder) { try await self.core.vms.runConfigure(attachPlan) }
            await assertError("Busy", naming: holder) { try await self.core.vms.checkSnapshot(web.uuid, .create, "s1") }
            await assertError("Busy", naming: holder) { try await self.core.vms.runSnapshot(revertPlan, uid: 0) }
            await assertError("Busy", naming: holder) { try await self.core.disks.checkWrite("data", "/etc/x", content: [1], mode: nil) }
            await assertError("Busy", naming: holder) { try await self.core.disks.checkDelete("data") }
            await assertError("Busy", naming: holder) { try await self.core.disks.checkResize("data", to: 256 << 20, shrink: false, filesystem: false) }
            await assertError("Busy", naming: holder) { try await self.core.disks.checkClone("data", to: "copy2", linked: false) }
            await assertError("Busy", naming: holder) { try await self.core.disks.runClone(clonePlan, uid: 0) }
            await assertError("Busy", naming: holder) { try await self.core.disks.checkSnapshot(.create, "s1", on: "data") }
            // A live-safe read is no writer's business (the page lists a disk's files as it opens).
            _ = try await core.disks.checkInspect("data")
            _ = try await core.disks.checkRead("data", "/", listing: true)

            // Nothing the refused calls would have made exists, and the VMs are as they were.
            XCTAssertFalse(FileManager.default.fileExists(atPath: core.store.path(of: "copy")))
            let webState = await core.vmManager.vm(uuid: web.uuid)?.state
            XCTAssertEqual(webState, .shutoff)
            let runnerDisks = await core.vmManager.vm(uuid: runner.uuid)?.disks.map(\.target)
            XCTAssertEqual(runnerDisks, ["vda"])
            let running = await core.jobs.list().filter { $0.state == "running" }.map(\.operation)
            XCTAssertEqual(running, [operation])

            try await core.jobs.cancel(job.id)
            let ended = try await core.finished(job)
            XCTAssertEqual(ended.state, "cancelled", ended.error)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: core.store.path(of: "data"))), before, "\(operation) changed the disk")
            let after = await holders("data")
            XCTAssertEqual(after, [], "the lease is gone when the job reports its end")
        }
        try await start(web)
        let running = await holders("data")
        XCTAssertEqual(running, ["vm VM web"])
    }

    func testAConsistentReaderAllowsReadersAndRefusesAVM() async throws {
        try await filledDisk("data")
        let web = try await defineVM("web", disks: ["data"])
        let backup = try await core.disks.runBackup(try await core.disks.checkBackup("data", compress: false), uid: 0)
        let holder = "job \(backup.id) (Backup)"
        await assertError("Busy", naming: holder) { try await self.core.vms.checkLifecycle(web.uuid, .start) }
        await assertError("Busy", naming: holder) { try await self.core.disks.checkFormat("data", FormatRequest(fstype: "ext4", partitionTable: "gpt", label: nil)) }
        // Readers may share it with the backup: the checks pass.
        _ = try await core.disks.checkInspect("data")
        _ = try await core.disks.checkClone("data", to: "copy", linked: false)
        try await core.jobs.cancel(backup.id)
        _ = try await core.finished(backup)
        let after = await holders("data")
        XCTAssertEqual(after, [])
    }

    func testAVMHoldsItsDisksFromItsStartUntilDestroyReturns() async throws {
        try await core.create("data")
        let web = try await defineVM("web", disks: ["data"])
        core.clearEvents()
        try await start(web)
        let running = await holders("data")
        XCTAssertEqual(running, ["vm VM web"])
        await assertError("Busy", naming: "VM web") { try await self.core.disks.checkFormat("data", FormatRequest(fstype: "ext4", partitionTable: "gpt", label: nil)) }
        // A point is taken through the VM's qemu (beside its lease); an image backup would be torn.
        let point = try await core.disks.checkBackup("data", compress: false)
        XCTAssertEqual(point.live?.vm.name, "web")
        await assertError("Busy", naming: "VM web") { try await self.core.disks.checkBackup("data", compress: false, mode: .image) }
        await assertError("Busy", naming: "VM web") { try await self.core.disks.checkClone("data", to: "copy", linked: true) }
        // A live grow goes through the VM's qemu, beside its lease.
        let grow = try await core.disks.checkResize("data", to: 128 << 20, shrink: false, filesystem: false)
        XCTAssertNotNil(grow.live)
        _ = try await core.disks.checkInspect("data")

        try await core.vms.runLifecycle(try await core.vms.checkLifecycle(web.uuid, .destroy), .destroy)
        let stopped = await holders("data")
        XCTAssertEqual(stopped, [], "Destroy returned: the lease is gone without waiting for libvirt's event")
        let announced = core.events.compactMap { event -> [LeaseKind]? in
            if case .heldBy("data", let leases) = event { return leases.map(\.kind) } else { return nil }
        }
        XCTAssertEqual(announced.first, [.vm])
        XCTAssertEqual(announced.last, [])
        // A live grow planned while it ran is refused now: the VM's lease is gone.
        await assertError("InvalidState", naming: "no longer used by a running VM") { try await self.core.disks.runResize(grow, uid: 0) }
    }

    func testAPlanCheckedBeforeAnotherChangeIsRefusedUnderItsLease() async throws {
        try await core.create("data", size: 64 << 20)
        let planned = try await core.disks.checkResize("data", to: 96 << 20, shrink: false, filesystem: false)
        let other = try await core.finished(try await core.disks.runResize(
            try await core.disks.checkResize("data", to: 128 << 20, shrink: false, filesystem: false), uid: 0))
        XCTAssertEqual(other.state, "succeeded", other.error)
        await assertError("InvalidState", naming: "changed while the call was authorized") { try await self.core.disks.runResize(planned, uid: 0) }
        XCTAssertEqual((try core.qemuInfo(core.store.path(of: "data"))["virtual-size"] as? NSNumber)?.uint64Value, 128 << 20)
        let held = await holders("data")
        XCTAssertEqual(held, [])
    }

    func testAVMStartedOutsideTheServiceGetsItsLeasesFromLibvirtsEvent() async throws {
        try await core.create("data")
        let web = try await defineVM("web", disks: ["data"])
        // libvirt's own start, as virsh would: no lease taken by the service.
        try await core.vmManager.startWithinBudget(web.uuid)
        var held: [String] = []
        for _ in 0..<100 {
            held = await holders("data")
            if !held.isEmpty { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        XCTAssertEqual(held, ["vm VM web"])
        await assertError("Busy", naming: "VM web") { try await self.core.disks.checkWrite("data", "/x", content: [1], mode: nil) }
        // Leases of VMs libvirt no longer lists go when they are rebuilt.
        await core.disks.rebuildVMLeases([])
        let rebuilt = await holders("data")
        XCTAssertEqual(rebuilt, [])
    }

    func testAnOverlayHoldsItsBaseAgainstWritersAndVMs() async throws {
        try await core.create("base")
        try await core.create("top", backing: "base")
        let held = await holders("base")
        XCTAssertEqual(held, ["base disk top, which is built on it"])
        let vm = try await defineVM("direct", disks: ["base"])
        await assertError("Busy", naming: "disk top") { try await self.core.vms.checkLifecycle(vm.uuid, .start) }
        await assertError("Busy", naming: "disk top") { try await self.core.disks.checkWrite("base", "/x", content: [1], mode: nil) }
        _ = try await core.disks.checkClone("base", to: "copy", linked: true)
    }

    // MARK: qemu's own image locks (a VM started outside the service)

    /// Runs qemu-io on `path` with `command` as an outside qemu would open the image
    /// (locking as qemu does); returns its exit status and output.
    func qemuIO(_ path: String, _ command: String, shared: Bool = false) throws -> (status: Int32, output: String) {
        runTool("/usr/bin/qemu-io", ["-f", "qcow2"] + (shared ? ["-U", "-r"] : []) + ["-c", command, path])
    }

    func testAQemuStartedDuringAnOfflineResizeFailsOnTheLockAndNoWriteIsLost() async throws {
        let disk = try await filledDisk("data")
        let resize = try await core.disks.runResize(try await core.disks.checkResize("data", to: 128 << 20, shrink: false, filesystem: false), uid: 0)
        try await Task.sleep(for: .milliseconds(300))
        let outside = try qemuIO(disk.path, "write -P 0x11 32M 64k")
        XCTAssertNotEqual(outside.status, 0, outside.output)
        XCTAssertTrue(outside.output.contains("Failed to get \"write\" lock"), outside.output)
        let ended = try await core.finished(resize)
        XCTAssertEqual(ended.state, "succeeded", ended.error)
        XCTAssertEqual((try core.qemuInfo(disk.path)["virtual-size"] as? NSNumber)?.uint64Value, 128 << 20)
        // The refused write is nowhere; once the job is over, an outside writer gets the image.
        XCTAssertTrue(try qemuIO(disk.path, "read -P 0 32M 64k", shared: true).output.contains("read 65536/65536"))
        let after = try qemuIO(disk.path, "write -P 0x11 32M 64k")
        XCTAssertEqual(after.status, 0, after.output)
        XCTAssertTrue(try qemuIO(disk.path, "read -P 0x11 32M 64k", shared: true).output.contains("read 65536/65536"))
    }

    func testAnImageAlreadyOpenForWritingOutsideTheServiceIsNotReplaced() async throws {
        let disk = try await filledDisk("data", mib: 1)
        // An outside qemu holding the image open for writing (qemu-io waits on its stdin).
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-io")
        holder.arguments = ["-f", "qcow2", disk.path]
        let stdin = Pipe()
        holder.standardInput = stdin
        holder.standardOutput = FileHandle.nullDevice
        try holder.run()
        defer { try? stdin.fileHandleForWriting.close(); holder.waitUntilExit() }
        try await Task.sleep(for: .milliseconds(500))
        let before = try Data(contentsOf: URL(fileURLWithPath: disk.path))
        let resize = try await core.finished(try await core.disks.runResize(
            try await core.disks.checkResize("data", to: 96 << 20, shrink: false, filesystem: false), uid: 0))
        XCTAssertEqual(resize.state, "failed")
        XCTAssertTrue(resize.error.contains("is open for writing by another process"), resize.error)
        let backup = try await core.finished(try await core.disks.runBackup(try await core.disks.checkBackup("data", compress: false), uid: 0))
        XCTAssertEqual(backup.state, "failed")
        XCTAssertTrue(backup.error.contains("is open for writing by another process"), backup.error)
        // The image is byte for byte what it was, and nothing was left beside it.
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: disk.path)), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: core.store.directory).sorted(), ["data"])
        let held = await holders("data")
        XCTAssertEqual(held, [])
    }
}

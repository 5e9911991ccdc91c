@testable import ControllerCore
import Foundation
import XCTest

/// VMService on libvirt's test driver, without a bus, polkitd or root.
final class VMServiceCoreTests: XCTestCase {
    var core: CoreHarness!

    override func setUp() async throws { core = try await CoreHarness() }
    override func tearDown() async throws { await core?.close() }

    func testDefineChecksNameTheValueAndTouchNothing() async throws {
        await assertError("InvalidArgs", naming: "nosuch") { try await self.core.vms.checkDefine(VMService.DefineRequest(name: "a", profile: "nosuch")) }
        var request = VMService.DefineRequest(name: "a", profile: "app")
        request.seclabel = "weird"
        await assertError("InvalidArgs", naming: "weird") { try await self.core.vms.checkDefine(request) }
        request = VMService.DefineRequest(name: "a", profile: "app")
        request.baseDisk = "missing"
        await assertError("NoSuchDisk", naming: "missing") { try await self.core.vms.checkDefine(request) }
        request = VMService.DefineRequest(name: "a", profile: "app")
        request.memoryMiB = 4
        await assertError("InvalidArgs", naming: "4") { try await self.core.vms.checkDefine(request) }
        let defined = await core.vmManager.vm(named: "a")
        XCTAssertNil(defined)
    }

    func testDefineFromBaseDiskMakesAnOverlayAndUndefineCanDeleteIt() async throws {
        try await core.create("debian")
        core.clearEvents()
        var request = VMService.DefineRequest(name: "web", profile: "app")
        request.baseDisk = "debian"
        let plan = try await core.vms.checkDefine(request)
        XCTAssertEqual(plan.details, ["vm": "web", "operation": "define", "profile": "app", "seclabel": "dynamic", "disks": "",
                                      "shares": "", "networks": "network:multiverse", "base_disk": "debian"])
        XCTAssertEqual(plan.overlay?.request.name, "web-root.qcow2")
        XCTAssertTrue(core.added.isEmpty, "the check made a disk")
        let vm = try await core.vms.runDefine(plan)
        XCTAssertEqual(vm.disks.first?.source, core.store.path(of: "web-root.qcow2"))
        XCTAssertEqual(try core.qemuInfo(core.store.path(of: "web-root.qcow2"))["backing-filename"] as? String, core.store.path(of: "debian"))
        let baseDisk = try await core.vms.find("web").metadata.baseDisk
        XCTAssertEqual(baseDisk, "debian")
        await assertError("AlreadyExists", naming: "web") { try await self.core.vms.checkDefine(request) }

        let undefine = try await core.vms.checkUndefine(vm.uuid, deleteDisks: true)
        XCTAssertEqual(undefine.deleteDisks, ["web-root.qcow2"])
        try await core.vms.runUndefine(undefine)
        XCTAssertFalse(FileManager.default.fileExists(atPath: core.store.path(of: "web-root.qcow2")))
        XCTAssertTrue(FileManager.default.fileExists(atPath: core.store.path(of: "debian")))
        await assertError("NoSuchVM", naming: "web") { try await self.core.vms.find("web") }
    }

    /// Which overlay an ephemeral VM owns is the service's record, not the domain's metadata:
    /// metadata rewritten through libvirt (by anyone with libvirt access) to name another disk
    /// makes the service delete nothing but the overlay it made.
    func testMetadataRewrittenThroughLibvirtCannotMakeTheServiceDeleteADisk() async throws {
        try await core.create("debian")
        try await core.create("victim")
        var request = VMService.ForeignDefineRequest(xml: "<domain type='test'><name>eph</name><memory unit='MiB'>64</memory><os><type>hvm</type></os></domain>")
        request.baseDisk = "debian"
        request.ephemeral = true
        let plan = try await core.vms.checkDefine(request)
        XCTAssertEqual(plan.details["base_disk"], "debian")
        let vm = try await core.vms.runDefine(plan)
        XCTAssertEqual(vm.disks.first?.source, core.store.path(of: "eph-root.qcow2"))
        XCTAssertEqual(vm.disks.first?.target, "vda")
        // Someone with libvirt access rewrites the metadata: its overlay is now "victim".
        _ = try await core.vmManager.redefine(vm.uuid, "forge") { xml in
            try DomainXML.withMetadata(xml, VMMetadata(ephemeral: true, baseDisk: "debian", overlay: "victim"))
        }
        // And defines a second ephemeral VM naming "victim" too, outside the service.
        let outside = try await core.vmManager.define(xml: DomainXML.withMetadata(
            "<domain type='test'><name>outside</name><memory unit='MiB'>64</memory><os><type>hvm</type></os></domain>",
            VMMetadata(ephemeral: true, overlay: "victim")), name: "outside")
        for info in [vm, outside] {
            try await core.vms.runLifecycle(try await core.vms.checkLifecycle(info.uuid, .start), .start)
            try await core.vms.runLifecycle(try await core.vms.checkLifecycle(info.uuid, .destroy), .destroy)
        }
        for _ in 0..<100 where await core.vmManager.list().contains(where: { ["eph", "outside"].contains($0.name) }) {
            try await Task.sleep(for: .milliseconds(50))
        }
        let left = await core.vmManager.list().map(\.name)
        XCTAssertFalse(left.contains("eph") || left.contains("outside"), "the stopped ephemeral VMs were not discarded: \(left)")
        for _ in 0..<100 where FileManager.default.fileExists(atPath: core.store.path(of: "eph-root.qcow2")) {
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: core.store.path(of: "eph-root.qcow2")), "the overlay the service made stayed")
        XCTAssertTrue(FileManager.default.fileExists(atPath: core.store.path(of: "victim")), "the service deleted a disk named by forged metadata")
        XCTAssertEqual(try core.qemuInfo(core.store.path(of: "victim"))["virtual-size"] as? Int, 64 << 20)
    }

    func testLifecycleFollowsTheStateAndTheStateIsAnEnum() async throws {
        let vm = try await core.vms.runDefine(try await core.vms.checkDefine(VMService.DefineRequest(name: "life", profile: "app")))
        XCTAssertEqual(vm.state, .shutoff)
        await assertError("InvalidState", naming: "shutoff") { try await self.core.vms.checkLifecycle(vm.uuid, .suspend) }
        await assertError("InvalidState", naming: "shut down") { try await self.core.vms.checkShutdown(vm.uuid, timeoutSeconds: nil, force: false) }
        await assertError("InvalidArgs", naming: "force needs timeout_s") { try await self.core.vms.checkShutdown(vm.uuid, timeoutSeconds: nil, force: true) }
        let start = try await core.vms.checkLifecycle(vm.uuid, .start)
        XCTAssertEqual(start.details, ["vm": "life", "operation": "start"])
        try await core.vms.runLifecycle(start, .start)
        let started = try await core.vms.existing(vm.uuid).state
        XCTAssertEqual(started, .running)
        await assertError("InvalidState", naming: "running") { try await self.core.vms.checkLifecycle(vm.uuid, .start) }
        await assertError("InvalidState", naming: "running") { try await self.core.vms.checkUndefine(vm.uuid, deleteDisks: false) }
        try await core.vms.runLifecycle(try await core.vms.checkLifecycle(vm.uuid, .suspend), .suspend)
        let paused = try await core.vms.existing(vm.uuid).state
        XCTAssertEqual(paused, .paused)
        try await core.vms.runLifecycle(try await core.vms.checkLifecycle(vm.uuid, .destroy), .destroy)
        let destroyed = try await core.vms.existing(vm.uuid).state
        XCTAssertEqual(destroyed, .shutoff)
        XCTAssertTrue(VMState.pmsuspended.isActive)
        XCTAssertFalse(VMState.crashed.isActive)
        XCTAssertEqual(VMState(code: 3), .paused)
        XCTAssertEqual(VMState(code: 99), .nostate)
    }

    func testAttachDiskRulesAndAttachedToFollows() async throws {
        let disk = try await core.create("extra")
        let vm = try await core.vms.runDefine(try await core.vms.checkDefine(VMService.DefineRequest(name: "dev", profile: "app")))
        await assertError("InvalidArgs", naming: "xda") {
            try await self.core.vms.checkAttach(vm.uuid, VMService.AttachRequest(disk: "extra", target: "xda"))
        }
        await assertError("InvalidState", naming: "live") {
            var r = VMService.AttachRequest(disk: "extra", target: "vdb")
            r.live = true
            return try await self.core.vms.checkAttach(vm.uuid, r)
        }
        let plan = try await core.vms.checkAttach(vm.uuid, VMService.AttachRequest(disk: "extra", target: "vdb"))
        XCTAssertEqual(plan.details, ["vm": "dev", "operation": "attach-disk", "disk": "extra", "target": "vdb"])
        try await core.vms.runConfigure(plan)
        let sources = try await core.vms.existing(vm.uuid).disks.map(\.source)
        XCTAssertEqual(sources, [disk.path])
        await assertError("AlreadyExists", naming: "vdb") {
            try await self.core.vms.checkAttach(vm.uuid, VMService.AttachRequest(disk: "extra", target: "vdb"))
        }
        // AttachedTo follows libvirt's events.
        let deadline = ContinuousClock.now + .seconds(10)
        while await core.disks.views().first(where: { $0.info.name == "extra" })?.attachedTo != [vm.uuid], ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let attachedTo = await core.disks.views().first { $0.info.name == "extra" }?.attachedTo
        XCTAssertEqual(attachedTo, [vm.uuid])
        // An active VM's disk refuses an image Backup and a Format (a point goes through its qemu).
        try await core.vms.runLifecycle(try await core.vms.checkLifecycle(vm.uuid, .start), .start)
        await assertError("Busy", naming: "dev") { try await self.core.disks.checkBackup("extra", compress: true) }
        await assertError("Busy", naming: "dev") { try await self.core.disks.checkFormat("extra", try FormatRequest(fstype: "ext4", partitionTable: nil, label: nil)) }
        let resize = try await core.disks.checkResize("extra", to: 128 << 20, shrink: false, filesystem: true)
        XCTAssertEqual(resize.live?.vm.name, "dev", "a grow of an active VM's disk is live")
        await assertError("Busy", naming: "dev") { try await self.core.disks.checkResize("extra", to: 32 << 20, shrink: true, filesystem: true) }
    }

    func testStartAllStartsTheAutostartVMsInBootOrder() async throws {
        for (name, profile) in [("ui", "interface-controller"), ("net", "network-controller"), ("idle", "app")] {
            var request = VMService.DefineRequest(name: name, profile: profile)
            request.autostart = name != "idle"
            request.memoryMiB = 256
            _ = try await core.vms.runDefine(try await core.vms.checkDefine(request))
        }
        let job = try await core.finished(try await core.vms.runStartAll(try await core.vms.checkStartAll(), uid: 0))
        XCTAssertEqual(job.state, "succeeded", job.error)
        XCTAssertEqual(job.target, .service)
        XCTAssertEqual(job.result["order"], .strings(["net", "ui"]))
        let net = try await core.vms.find("net").state
        XCTAssertEqual(net, .running)
        let idle = try await core.vms.find("idle").state
        XCTAssertEqual(idle, .shutoff)
    }
}

/// JobManager without a bus: limits, cancellation, the commit point.
final class JobManagerCoreTests: XCTestCase {
    func testLimitCancelAndCommitPoint() async throws {
        let jobs = JobManager(maxConcurrent: 1, retention: .seconds(60), logger: .init(label: "jobs-test"))
        let committed = AsyncStream<Void>.makeStream()
        let long = try await jobs.start(operation: "Wait", target: .disk("d"), uid: 7) { job in
            job.progress(0.5)
            while true { try job.checkCancelled(); try await Task.sleep(for: .milliseconds(10)) }
        }
        do {
            _ = try await jobs.start(operation: "Other", target: .service, uid: 7) { _ in [:] }
            XCTFail("a second job started past max_concurrent 1")
        } catch let error as ControllerError {
            XCTAssertEqual(error.kind, "LimitsExceeded")
        }
        let cancellable = try await jobs.checkCancel(long.id).startedByUID
        XCTAssertEqual(cancellable, 7)
        try await jobs.cancel(long.id)
        var state = "running"
        for _ in 0..<500 where state == "running" {
            try await Task.sleep(for: .milliseconds(10))
            state = await jobs.job(long.id)?.snapshot.state ?? "gone"
        }
        XCTAssertEqual(state, "cancelled")
        do {
            _ = try await jobs.checkCancel(long.id)
            XCTFail("a cancelled job can be cancelled again")
        } catch let error as ControllerError {
            XCTAssertEqual(error.kind, "InvalidState")
        }
        let past = try await jobs.start(operation: "Commit", target: .service, uid: 0) { job in
            job.commit()
            committed.continuation.yield()
            try await Task.sleep(for: .milliseconds(300))
            return ["done": .bool(true)]
        }
        for await _ in committed.stream { break }
        do {
            _ = try await jobs.checkCancel(past.id)
            XCTFail("a job past its commit point can be cancelled")
        } catch let error as ControllerError {
            XCTAssertEqual(error.kind, "InvalidState")
            XCTAssertTrue(error.message.contains("commit point"), error.message)
        }
    }

    /// Shutdown's cancelAll: woken by the last job's end (a cancelled job that ends at once
    /// makes it return long before its deadline), and bounded by the deadline when a job
    /// past its commit point does not end.
    func testCancelAllWakesOnTheLastEndOrItsDeadline() async throws {
        let jobs = JobManager(maxConcurrent: 2, retention: .seconds(60), logger: .init(label: "jobs-test"))
        let cancellable = try await jobs.start(operation: "Wait", target: .disk("d"), uid: 0) { job in
            while true { try job.checkCancelled(); try await Task.sleep(for: .milliseconds(10)) }
        }
        var began = ContinuousClock.now
        await jobs.cancelAll(timeout: .seconds(30))
        XCTAssertLessThan(ContinuousClock.now - began, .seconds(10), "cancelAll waited for its deadline though the job ended")
        let state = await jobs.job(cancellable.id)?.snapshot.state
        XCTAssertEqual(state, "cancelled")

        let committed = AsyncStream<Void>.makeStream()
        let past = try await jobs.start(operation: "Commit", target: .service, uid: 0) { job in
            job.commit()
            committed.continuation.yield()
            try? await Task.sleep(for: .seconds(5))
            return [:]
        }
        for await _ in committed.stream { break }
        began = ContinuousClock.now
        await jobs.cancelAll(timeout: .milliseconds(300))
        let waited = ContinuousClock.now - began
        XCTAssertGreaterThanOrEqual(waited, .milliseconds(300))
        XCTAssertLessThan(waited, .seconds(4), "cancelAll outlived its deadline")
        let running = await jobs.job(past.id)?.snapshot.state
        XCTAssertEqual(running, "running")
    }
}

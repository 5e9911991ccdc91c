import ControllerAPI
@testable import ControllerCore
import Foundation
import XCTest

/// The reference prints each method's polkit details from ControllerAPI's PolkitDetails:
/// every privileged method is listed, and the plans the service builds pass exactly the
/// listed keys (so the list cannot drift from the code).
final class PolkitDetailsTests: XCTestCase {
    func testEveryPrivilegedMethodIsListedAndNothingElse() {
        var privileged: Set<String> = []
        for i in ControllerInterfaces.all {
            for m in i.methods where m.action != nil { privileged.insert("\(i.shortName).\(m.name)") }
        }
        XCTAssertEqual(Set(PolkitDetails.byMethod.keys), privileged)
    }

    func testThePlansPassExactlyTheListedDetails() async throws {
        let shares = FileManager.default.temporaryDirectory.appendingPathComponent("mv-details-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: shares.appendingPathComponent("music"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: shares) }
        let core = try await CoreHarness(shareRoot: shares.path)
        defer { Task { await core.close() } }
        func expect(_ method: String, _ details: [String: String], file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertEqual(Set(details.keys), Set(PolkitDetails.byMethod[method]?.keys ?? []), method, file: file, line: line)
        }
        try await core.create("d1")
        try await core.create("base")
        try await core.create("extra")
        expect("Manager.CreateDisk", try await core.disks.checkCreate(CreateDiskRequest(name: "d2", size: 1 << 20, format: "qcow2")).details)
        expect("Disk.Resize", try await core.disks.checkResize("d1", to: 128 << 20, shrink: false, filesystem: false).details)
        expect("Disk.Clone", try await core.disks.checkClone("d1", to: "d3", linked: false).details)
        expect("Disk.Backup", try await core.disks.checkBackup("d1", compress: false).details)
        expect("Disk.Backup", try await core.disks.checkBackup("d1", compress: true).details)
        let point = try await core.finished(try await core.disks.runBackup(try await core.disks.checkBackup("d1", compress: false), uid: 0))
        guard case .string(let pointID)? = point.result["backup_id"] else { return XCTFail("no point: \(point.error)") }
        expect("Disk.VerifyBackup", try await core.disks.checkVerify("d1", backup: pointID).details)
        expect("Disk.Restore", try await core.disks.checkRestore("d1", backup: pointID).details)
        expect("Disk.DeleteBackup", try await core.disks.checkDeleteBackup("d1", backup: pointID).details)
        expect("Disk.SetBackupPolicy", try await core.disks.policies.checkBackupPolicy("d1", .init(keepLast: 3)).details)
        expect("Disk.CreateSnapshot", try await core.disks.checkSnapshot(.create, "s1", on: "d1").details)
        expect("Disk.Delete", try await core.disks.checkDelete("d1").details)
        expect("Disk.WriteFile", try await core.disks.checkWrite("d1", "/x", content: [1], mode: nil).details)
        expect("Disk.ReadFile", try await core.disks.checkRead("d1", "/x", listing: false).details)
        expect("Disk.ListDirectory", try await core.disks.checkRead("d1", "/", listing: true).details)
        expect("Disk.Inspect", try await core.disks.checkInspect("d1").details)
        expect("Disk.GetInspection", try await core.disks.checkGuestValues("d1", inspection: true).details)
        expect("Disk.GetFilesystemUsage", try await core.disks.checkGuestValues("d1", inspection: false).details)

        var define = VMService.DefineRequest(name: "web", profile: "app")
        define.baseDisk = "base"
        define.disks = ["d1"]
        define.shares = [(hostPath: shares.appendingPathComponent("music").path, tag: "music")]
        let plan = try await core.vms.checkDefine(define)
        expect("Manager.DefineVM", plan.details)
        if let network = PolkitDetails.byMethod["Manager.DefineVM"]?.also.first, plan.internalNetwork != nil {
            XCTAssertEqual(Set(plan.networkDetails.keys), Set(network.keys))
        }
        var foreign = VMService.ForeignDefineRequest(xml: "<domain type='test'><name>f</name><memory unit='MiB'>64</memory><os><type>hvm</type></os></domain>")
        foreign.baseDisk = "base"
        expect("Manager.DefineVMFromXML", try await core.vms.checkDefine(foreign).details)

        let vm = try await core.vms.runDefine(plan)
        expect("VM.Start", try await core.vms.checkLifecycle(vm.uuid, .start).details)
        expect("VM.AttachDisk", try await core.vms.checkAttach(vm.uuid, VMService.AttachRequest(disk: "extra", target: "vdc")).details)
        expect("VM.AddShare", try await core.vms.checkAddShare(vm.uuid, hostPath: shares.path, tag: "root", readonly: false).details)
        expect("VM.DetachDisk", try await core.vms.checkDetach(vm.uuid, target: "vdb", live: nil, persistent: nil, timeoutSeconds: nil).details)
        let undefine = try await core.vms.checkUndefine(vm.uuid, deleteDisks: true)
        expect("VM.Undefine", undefine.details)
        XCTAssertEqual(Set(undefine.diskDetails.keys), Set(PolkitDetails.byMethod["VM.Undefine"]?.also.first?.keys ?? []))

        expect("Manager.DefineNetwork", try await core.vms.networks.checkDefine(NetworkService.DefineRequest(name: "n1", kind: "isolated")).details)
        expect("Network.SetAutostart", try await core.vms.networks.checkSetAutostart("default", enabled: false).details)
        let network = try await core.vms.networks.checkDefine(NetworkService.DefineRequest(name: "n2", kind: "isolated"))
        _ = try await core.vms.networks.runDefine(network)
        expect("Network.Stop", try await core.vms.networks.checkStop("n2").details)
    }
}

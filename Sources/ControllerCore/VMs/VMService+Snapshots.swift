import FoundationEssentials

/// VM snapshots: `vm-NAME` on every managed qcow2 disk of a shut-off VM.
extension VMService {
    public typealias SnapshotAction = SnapshotOperation

    /// A checked VM snapshot call.
    public struct SnapshotPlan: Sendable {
        public let vm: VMInfo
        public let action: SnapshotAction
        public let name: String
        public let disks: [DiskInfo]
        public var details: [String: String] { ["vm": vm.name, "operation": action.rawValue] }

        static func what(_ action: SnapshotAction, _ name: String, _ vm: String) -> String {
            switch action {
            case .create: "take snapshot \(name) of VM \(vm)"
            case .revert: "revert VM \(vm) to snapshot \(name)"
            case .delete: "delete snapshot \(name) of VM \(vm)"
            }
        }
    }

    var snapshots: VMSnapshots { VMSnapshots(qemuImg: qemuImg) }

    /// The VM's snapshots: name and creation time.
    public func listSnapshots(_ uuid: String) async throws -> [(name: String, created: UInt64)] {
        let info = try await existing(uuid)
        let all = await disks.list()
        let byPath = Set(all.map(\.path))
        let managed = all.filter { d in info.disks.contains { $0.source == d.path } && byPath.contains(d.path) && d.format == "qcow2" }
        return snapshots.list(managed)
    }

    public func checkSnapshot(_ uuid: String, _ action: SnapshotAction, _ name: String) async throws -> SnapshotPlan {
        let info = try await existing(uuid)
        try NameRule.snapshot.validate(name)
        let vmDisks = try VMSnapshots.disks(of: info, managed: await disks.list())
        switch action {
        case .create:
            try await snapshots.requireAbsent(name, on: vmDisks)
        case .revert:
            try await snapshots.require(name, on: vmDisks)
            for disk in vmDisks {
                // Reverting an image others are built on would corrupt them.
                do { try await disks.checkDeletable(disk.name) } catch let error as ControllerError {
                    if case .busy(let message) = error { throw ControllerError.busy("cannot revert: \(message)") }
                    throw error
                }
            }
        case .delete:
            try await snapshots.require(name, on: vmDisks)
        }
        try await disks.checkWriting(vmDisks, for: SnapshotPlan.what(action, name, info.name))
        return SnapshotPlan(vm: info, action: action, name: name, disks: vmDisks)
    }

    /// Create and revert run as a job; delete returns nil when done.
    public func runSnapshot(_ plan: SnapshotPlan, uid: UInt32) async throws -> JobSnapshot? {
        let (snapshots, name, vmDisks, disks) = (self.snapshots, plan.name, plan.disks, self.disks)
        let names = vmDisks.map(\.name)
        // The disks' own objects show the snapshots too: re-read them, also after a failure
        // (a failed create removes what it took, a failed revert may have reverted some).
        let republish: @Sendable () async -> Void = { await disks.imagesChanged(names) }
        let result: [String: JobValue] = ["snapshot": .string(name), "disks": .strings(vmDisks.map(\.name))]
        let what = SnapshotPlan.what(plan.action, name, plan.vm.name)
        // Every disk of the VM is held as a writer for the whole change (a VM start, a
        // Resize or an Inspect of one of them meanwhile is Busy).
        switch plan.action {
        case .create:
            return try await disks.writingJob("CreateSnapshot", target: .vm(plan.vm.uuid), disks: vmDisks, uid: uid, for: what) { job in
                do { try await snapshots.create(name, on: vmDisks, job: job) } catch { await republish(); throw error }
                await republish()
                return result
            }
        case .revert:
            return try await disks.writingJob("RevertSnapshot", target: .vm(plan.vm.uuid), disks: vmDisks, uid: uid, for: what) { job in
                do { try await snapshots.revert(name, on: vmDisks, job: job) } catch { await republish(); throw error }
                await republish()
                return result
            }
        case .delete:
            do {
                try await disks.writing(vmDisks, label: "a DeleteSnapshot call", for: what) { try await snapshots.delete(name, on: vmDisks) }
            } catch {
                await republish()
                throw error
            }
            await republish()
            logger.notice("deleted snapshot \(name) of VM \(plan.vm.name)")
            return nil
        }
    }
}

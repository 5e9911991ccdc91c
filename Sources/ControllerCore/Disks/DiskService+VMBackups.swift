import FoundationEssentials

/// Backups of a whole VM: one point of each managed disk it writes to, taken together
/// (VM.Backup), and their restore (VM.Restore). A VM point's id is its `group`: each of its
/// disk points records it.
extension DiskService {
    /// A checked VM.Backup.
    public struct VMBackupPlan: Sendable {
        public let vm: VMInfo
        /// The managed disks the VM writes to, with their targets in the VM.
        public let disks: [(disk: DiskInfo, target: String)]
        public let mode: BackupMode
        /// The VM runs: its disks' points are taken through its qemu, in one transaction.
        public var live: Bool { vm.state.isActive }
        public var details: [String: String] {
            ["vm": vm.name, "operation": "backup", "mode": mode.rawValue, "disks": disks.map(\.disk.name).joined(separator: ",")]
        }
        var leases: [LeaseRequest] { disks.map { LeaseRequest($0.disk.name, live ? .onlineBackup : .consistentReader) } }
        var what: String { "back up VM \(vm.name)" }
    }

    /// The managed disks `vm` writes to, with their targets.
    func writableDisks(of vm: VMInfo) async throws -> [(disk: DiskInfo, target: String)] {
        let managed = await context.store.list()
        var disks: [(disk: DiskInfo, target: String)] = []
        for d in vm.disks where !d.readonly {
            guard let disk = managed.first(where: { $0.path == d.source }) else { continue }
            try disk.requireUsable()
            disks.append((disk, d.target))
        }
        return disks
    }

    public func checkVMBackup(_ vm: VMInfo, mode: BackupMode?) async throws -> VMBackupPlan {
        let mode = mode ?? .auto
        guard mode != .image else {
            throw ControllerError.invalidArgs("a VM backup is a point of each of its disks: mode auto, full or incremental, not image")
        }
        let disks = try await writableDisks(of: vm)
        guard !disks.isEmpty else { throw ControllerError.invalidState("VM \(vm.name) writes to no managed disk: there is nothing to back up") }
        if mode == .incremental {
            for (disk, _) in disks {
                if disk.format != "qcow2" { throw ControllerError.notSupported("disk \(disk.name) of VM \(vm.name) is \(disk.format): raw disks cannot track changes") }
                if await context.backups.points(of: disk.name).isEmpty {
                    throw ControllerError.invalidState("no incremental point of VM \(vm.name) is possible: disk \(disk.name) has no earlier point")
                }
            }
        }
        let plan = VMBackupPlan(vm: vm, disks: disks, mode: mode)
        try await context.checkLeases(plan.leases, for: plan.what)
        return plan
    }

    public func runVMBackup(_ plan: VMBackupPlan, uid: UInt32) async throws -> JobSnapshot {
        let context = self.context
        return try await context.leasedJob("Backup", target: .vm(plan.vm.uuid), leases: plan.leases, uid: uid, for: plan.what) {
            for (disk, _) in plan.disks { try await context.requireUnchanged(disk, for: plan.what) }
        } _: { job in
            try await context.backUpVM(plan, job: job)
        }
    }

    /// A checked VM.Restore.
    public struct VMRestorePlan: Sendable {
        public let vm: VMInfo
        public let backupID: String
        /// Each point of the VM point with the disk it restores.
        public let points: [(point: BackupPoint, disk: DiskInfo)]
        public var details: [String: String] {
            ["vm": vm.name, "operation": "restore", "backup": backupID, "disks": points.map(\.disk.name).joined(separator: ",")]
        }
        var leases: [LeaseRequest] { points.map { LeaseRequest($0.disk.name, .writer) } }
        var what: String { "restore VM \(vm.name) from \(backupID)" }
    }

    public func checkVMRestore(_ vm: VMInfo, backup id: String) async throws -> VMRestorePlan {
        guard DiskName.isValid(id) else { throw ControllerError.invalidArgs("invalid backup id \(CallerText.quoted(id))") }
        let sources = Set(vm.disks.map(\.source))
        let (points, missing) = await context.backups.vmPoint(id)
        guard missing.isEmpty else {
            throw ControllerError.noSuchBackup("VM point \(id) is incomplete: \(missing.joined(separator: ", ")) has no point in it "
                                               + "(its making was interrupted, or the point was deleted since); restore its disks' points one by one")
        }
        var restores: [(point: BackupPoint, disk: DiskInfo)] = []
        for point in points {
            let disk = try await context.disk(point.disk)
            guard sources.contains(disk.path) else { continue }
            restores.append((point, disk))
        }
        guard !restores.isEmpty else { throw ControllerError.noSuchBackup("VM \(vm.name) has no backup \(id)") }
        let plan = VMRestorePlan(vm: vm, backupID: id, points: restores)
        try await context.checkLeases(plan.leases, for: plan.what)
        return plan
    }

    public func runVMRestore(_ plan: VMRestorePlan, uid: UInt32) async throws -> JobSnapshot {
        let context = self.context
        return try await context.leasedJob("Restore", target: .vm(plan.vm.uuid), leases: plan.leases, uid: uid, for: plan.what) {
            for (_, disk) in plan.points { try await context.requireUnchanged(disk, for: plan.what) }
        } _: { job in
            job.progress(0)
            let count = Double(plan.points.count)
            for (n, item) in plan.points.enumerated() {
                try await context.restorePoint(item.point.id, into: item.disk) { job.progress((Double(n) + ($0 ?? 0)) / count) } commit: { job.commit() }
            }
            return ["backup_id": .string(plan.backupID), "disks": .strings(plan.points.map(\.disk.name)),
                    "points": .strings(plan.points.map(\.point.id))]
        }
    }

    /// The VM's points (VM.Backup), oldest first: id, time, and the disk points it holds
    /// (complete VM points only: see ``BackupStore/vmPoint(_:)``).
    public func vmPoints(_ vm: VMInfo) async -> [(id: String, created: UInt64, points: [String])] {
        let sources = Set(vm.disks.map(\.source))
        let managed = await context.store.list().filter { sources.contains($0.path) }.map(\.name)
        var groups: [String: [BackupPoint]] = [:]
        for name in managed {
            for point in await context.backups.points(of: name) { if let group = point.group { groups[group, default: []].append(point) } }
        }
        for group in groups.keys where !(await context.backups.vmPoint(group).missing.isEmpty) { groups[group] = nil }
        return groups.map { (id: $0.key, created: $0.value.map(\.created).min() ?? 0, points: $0.value.map(\.id).sorted()) }
            .sorted { ($0.created, $0.id) < ($1.created, $1.id) }
    }
}

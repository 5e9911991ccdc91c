/// VM.Backup, VM.Restore and the VM's points: the disk work is the disk service's
/// (``DiskService/checkVMBackup(_:mode:)``); this finds the VM.
extension VMService {
    public func checkBackup(_ uuid: String, mode: BackupMode?) async throws -> DiskService.VMBackupPlan {
        try await disks.checkVMBackup(try await existing(uuid), mode: mode)
    }

    public func runBackup(_ plan: DiskService.VMBackupPlan, uid: UInt32) async throws -> JobSnapshot {
        try await disks.runVMBackup(plan, uid: uid)
    }

    public func checkRestore(_ uuid: String, backup id: String) async throws -> DiskService.VMRestorePlan {
        let vm = try await existing(uuid)
        if vm.state.isActive { throw ControllerError.busy("VM \(vm.name) is \(vm.state.rawValue): a restore needs it shut off") }
        return try await disks.checkVMRestore(vm, backup: id)
    }

    public func runRestore(_ plan: DiskService.VMRestorePlan, uid: UInt32) async throws -> JobSnapshot {
        try await disks.runVMRestore(plan, uid: uid)
    }

    /// The VM's points, oldest first.
    public func backupPoints(_ uuid: String) async throws -> [(id: String, created: UInt64, points: [String])] {
        await disks.vmPoints(try await existing(uuid))
    }
}

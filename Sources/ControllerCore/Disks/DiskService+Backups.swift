import FoundationEssentials

/// Backups of a disk: Backup (points of its chain, or image backups), Restore of any of
/// them, the listing of points, VerifyBackup and DeleteBackup.
extension DiskService {
    /// A checked Backup.
    public struct BackupPlan: Sendable {
        public let disk: DiskInfo
        public let compress: Bool
        public let mode: BackupMode
        /// The running VM using the disk and its target there: the point is taken through
        /// its qemu (libvirt's push backup).
        public let live: (vm: VMInfo, target: String)?
        public var details: [String: String] { ["disk": disk.name, "operation": "backup", "mode": mode.rawValue] }
        /// Stopped: the image must stay still; running: beside the VM's lease.
        var lease: LeaseRequest { LeaseRequest(disk.name, live == nil ? .consistentReader : .onlineBackup) }
    }

    /// Checks a Backup: `mode` nil is `auto` (a point of the disk's chain), or `image` when
    /// `compress` is asked for (only image backups are compressed).
    public func checkBackup(_ name: String, compress: Bool, mode: BackupMode? = nil) async throws -> BackupPlan {
        let disk = try await context.disk(name)
        let mode = mode ?? (compress ? .image : .auto)
        if compress && mode != .image {
            throw ControllerError.invalidArgs("compress applies to image backups (mode \"image\"), not to mode \"\(mode.rawValue)\"")
        }
        if compress && disk.format != "qcow2" && disk.format != "raw" { throw ControllerError.notSupported("cannot compress a \(disk.format) disk") }
        if mode == .incremental {
            // What the records already tell (the image itself is read once authorized).
            if disk.format != "qcow2" { throw ControllerError.notSupported("disk \(name) is \(disk.format): raw disks cannot track changes, so every point is full") }
            if await context.backups.points(of: name).isEmpty {
                throw ControllerError.invalidState("no incremental point of disk \(name) is possible: disk \(name) has no earlier point")
            }
        }
        // A disk a running VM writes to gets a point through the VM's qemu (point in time);
        // an image backup of it would be copied torn, and is refused.
        let live = await context.activeUser(of: disk)
        if let live, mode == .image {
            throw ControllerError.busy("disk \(name) is in use by running VM \(live.vm.name): image backups need it stopped; a point (mode auto, full or incremental) is taken while it runs")
        }
        let plan = BackupPlan(disk: disk, compress: compress, mode: mode, live: live)
        try await context.checkLeases([plan.lease], for: "back up disk \(name)")
        return plan
    }

    public func runBackup(_ plan: BackupPlan, uid: UInt32) async throws -> JobSnapshot {
        let context = self.context
        let disk = plan.disk
        let what = "back up disk \(disk.name)"
        // The disk is held for the copy: VMs, snapshots, resizes, writes and automatic
        // versions are refused (Busy) rather than change the image under the copy.
        return try await context.leasedJob("Backup", target: .disk(disk.name), leases: [plan.lease], uid: uid, for: what) {
            try await context.requireUnchanged(disk, for: what)
        } _: { job in
            try await context.backUp(disk, mode: plan.mode, compress: plan.compress, live: plan.live, job: job)
        }
    }

    /// A checked Restore: over the disk, or (`newName`) as a new disk.
    public struct RestorePlan: Sendable {
        public let disk: DiskInfo
        public let backupID: String
        /// The new disk to make; nil restores over `disk`.
        public let newName: String?
        public var details: [String: String] { ["disk": disk.name, "operation": "restore", "backup": backupID, "new_name": newName ?? ""] }
        var what: String { newName.map { "restore backup \(backupID) of disk \(disk.name) as disk \($0)" } ?? "restore disk \(disk.name)" }
        /// Over the disk: it is written. As a new disk: the disk is not touched (it may be
        /// in use by a running VM).
        var leases: [LeaseRequest] { newName == nil ? [LeaseRequest(disk.name, .writer)] : [] }
    }

    public func checkRestore(_ name: String, backup id: String, newName: String? = nil) async throws -> RestorePlan {
        let disk = try await context.disk(name)
        guard DiskName.isValid(id) else { throw ControllerError.invalidArgs("invalid backup id \(CallerText.quoted(id))") }
        if let newName {
            try DiskName.validate(newName)
            try await store.precheckCreate(CreateDiskRequest(name: newName, size: 512, format: "qcow2"))
        }
        guard await context.backups.belongs(id, to: name) else {
            throw ControllerError.noSuchBackup("disk \(name) has no backup \(id)")
        }
        let plan = RestorePlan(disk: disk, backupID: id, newName: newName)
        try await context.checkLeases(plan.leases, for: plan.what)
        return plan
    }

    public func runRestore(_ plan: RestorePlan, uid: UInt32) async throws -> JobSnapshot {
        let context = self.context
        let (disk, id) = (plan.disk, plan.backupID)
        return try await context.leasedJob("Restore", target: .disk(disk.name), leases: plan.leases, uid: uid, for: plan.what) {
            if plan.newName == nil { try await context.requireUnchanged(disk, for: plan.what) }
            guard await context.backups.belongs(id, to: disk.name) else { throw ControllerError.noSuchBackup("disk \(disk.name) has no backup \(id)") }
        } _: { job in
            job.progress(0)
            if let newName = plan.newName {
                let info = try await context.restoreAsNew(newName, from: id, of: disk) { job.progress($0) }
                return ["backup_id": .string(id), "disk": .string(info.name)]
            }
            if await context.backups.isPoint(id) {
                try await context.restorePoint(id, into: disk) { _ in } commit: { job.commit() }
                return ["backup_id": .string(id)]
            }
            await context.guests.cache.release(disk.path)
            let verified = try await context.backups.verify(id) { job.progress($0 * 0.5) }
            job.progress(0.5)
            _ = try await context.store.restore(disk.name, from: context.backups.image(of: id), format: verified.format,
                                                compressed: verified.compressed) { job.commit() }
            await context.guests.cache.release(disk.path)
            await context.publish(disk.name)
            return ["backup_id": .string(id)]
        }
    }

    /// A checked call on one backup of a disk (DeleteBackup, VerifyBackup).
    public struct BackupIDPlan: Sendable {
        public let disk: String
        public let backupID: String
        public let operation: String
        public var details: [String: String] { ["disk": disk, "operation": operation, "backup": backupID] }
    }

    /// Checks that `id` names a backup of disk `name`.
    func checkBackupID(_ name: String, _ id: String, operation: String, deleting: Bool = false) async throws -> BackupIDPlan {
        _ = try await context.disk(name)
        guard DiskName.isValid(id) else { throw ControllerError.invalidArgs("invalid backup id \(CallerText.quoted(id))") }
        guard await context.backups.belongs(id, to: name, deleting: deleting) else { throw ControllerError.noSuchBackup("disk \(name) has no backup \(id)") }
        return BackupIDPlan(disk: name, backupID: id, operation: operation)
    }

    public func checkDeleteBackup(_ name: String, backup id: String) async throws -> BackupIDPlan {
        try await checkBackupID(name, id, operation: "delete-backup", deleting: true)
    }

    /// Deletes a backup: an image backup's files, or a point whose data the next point
    /// takes over first (``BackupStore/deletePoint(_:)``). Needs no lease: the disk is not
    /// touched.
    public func runDeleteBackup(_ plan: BackupIDPlan, uid: UInt32) async throws -> JobSnapshot {
        let (context, backups) = (self.context, context.backups)
        return try await context.jobs.start(operation: "DeleteBackup", target: .disk(plan.disk), uid: uid) { job in
            job.progress(nil)
            if await backups.isPoint(plan.backupID) {
                try await backups.deletePoint(plan.backupID)
                await context.pointsChanged(plan.disk)
            } else {
                try await backups.deleteImageBackup(plan.backupID)
            }
            return ["backup_id": .string(plan.backupID)]
        }
    }

    /// A disk's chain points, oldest first.
    public func points(of name: String) async throws -> [BackupPoint] {
        _ = try await context.disk(name)
        return await context.backups.points(of: name)
    }

    public func checkVerify(_ name: String, backup id: String) async throws -> BackupIDPlan {
        try await checkBackupID(name, id, operation: "verify-backup")
    }

    /// Re-checks a backup: a point's chain against its indexes, an image backup against its
    /// SHA-256. Needs no lease: backups are not the disk.
    public func runVerify(_ plan: BackupIDPlan, uid: UInt32) async throws -> JobSnapshot {
        let backups = context.backups
        return try await context.jobs.start(operation: "VerifyBackup", target: .disk(plan.disk), uid: uid) { job in
            if await backups.point(plan.backupID) != nil {
                let (point, checked) = try await backups.verifyPoint(plan.backupID) { job.progress($0) }
                return ["backup_id": .string(point.id), "digest": .string(point.digest), "points_checked": .uint64(UInt64(checked))]
            }
            let info = try await backups.verify(plan.backupID) { job.progress($0) }
            return ["backup_id": .string(info.id), "digest": .string(info.sha256), "points_checked": .uint64(0)]
        }
    }
}

import FoundationEssentials

extension DiskContext {
    /// The body of a Backup job (a call's, or the schedule's): an image backup, or the next
    /// point of the disk's chain followed by the retention of the disk's backup policy.
    /// The caller holds a consistent-reader lease on the disk, or (`live`: a running VM uses
    /// it) an online-backup lease beside the VM's.
    func backUp(_ disk: DiskInfo, mode: BackupMode, compress: Bool, live: (vm: VMInfo, target: String)? = nil, job: Job) async throws -> [String: JobValue] {
        await guests.cache.release(disk.path)
        guard mode != .image else {
            let info = try await backups.backup(disk, compress: compress) { job.progress($0) }
            return ["backup_id": .string(info.id), "kind": .string("image"), "size": .uint64(info.size), "sha256": .string(info.sha256)]
        }
        let policy = await policies.record(disk.name).backup
        let isBase = await store.list().contains { $0.backingFile == disk.path }
        let point: BackupPoint
        if let live {
            point = try await backUpLive(live.vm, disks: [LiveDisk(disk: disk, target: live.target, isBase: isBase)], mode: mode, group: nil, job: job)[0]
        } else {
            point = try await backups.makePoint(disk, mode: mode, isBase: isBase, policy: policy) { job.progress($0) }
            await redefineCheckpoints(of: disk)
        }
        var result: [String: JobValue] = ["backup_id": .string(point.id), "kind": .string(point.kind.rawValue), "size": .uint64(point.size),
                                          "sha256": .string(point.digest), "digest": .string(point.digest)]
        if let parent = point.parent { result["parent"] = .string(parent) }
        if let reason = point.reason { result["reason"] = .string(reason) }
        // The point is made: a failed pruning is said in the log, not as a failed backup.
        do {
            let pruned = try await backups.prune(disk.name, keepLast: policy.keepLast)
            if !pruned.isEmpty { result["pruned"] = .strings(pruned) }
        } catch {
            logger.warning("backup point \(point.id) of disk \(disk.name) made, but pruning to keep_last \(policy.keepLast) failed: \(error)")
        }
        return result
    }

    /// After an offline point: the VMs defined on the disk get the point's checkpoint in
    /// libvirt (REDEFINE) and lose the older ones, so a backup once the VM runs is
    /// incremental. Best effort: the next live backup reconciles again.
    func redefineCheckpoints(of disk: DiskInfo) async {
        for vm in await vms.list() where vm.disks.contains(where: { $0.source == disk.path }) {
            do { try await reconcileCheckpoints(vm) } catch {
                logger.info("checkpoints of VM \(vm.name) not updated after a point of disk \(disk.name) (reconciled before its next live backup): \(error)")
            }
        }
    }
}

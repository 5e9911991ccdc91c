import FoundationEssentials

extension DiskContext {
    /// The body of a Backup job (a call's, or the schedule's): an image backup, or the next
    /// point of the disk's chain followed by the retention of the disk's backup policy.
    /// The caller holds a consistent-reader lease on the disk.
    func backUp(_ disk: DiskInfo, mode: BackupMode, compress: Bool, job: Job) async throws -> [String: JobValue] {
        await guests.cache.release(disk.path)
        guard mode != .image else {
            let info = try await backups.backup(disk, compress: compress) { job.progress($0) }
            return ["backup_id": .string(info.id), "kind": .string("image"), "size": .uint64(info.size), "sha256": .string(info.sha256)]
        }
        let policy = await policies.record(disk.name).backup
        let isBase = await store.list().contains { $0.backingFile == disk.path }
        let point = try await backups.makePoint(disk, mode: mode, isBase: isBase, policy: policy) { job.progress($0) }
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
}

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
        do {
            if let live {
                point = try await backUpLive(live.vm, disks: [LiveDisk(disk: disk, target: live.target, isBase: isBase)], mode: mode, group: nil, job: job)[0]
            } else {
                point = try await backups.makePoint(disk, mode: mode, isBase: isBase, policy: policy) { job.progress($0) }
                await redefineCheckpoints(of: disk)
            }
        } catch {
            // A failed point may have left the tracking inconsistent (a killed qemu).
            await pointsChanged(disk.name)
            throw error
        }
        await pointsChanged(disk.name, newest: point)
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

    /// The body of VM.Backup: one point of each of the VM's disks, through its qemu in one
    /// transaction while it runs, one after the other (nothing writes) while it is stopped;
    /// then each disk's retention. A stopped VM's point is all its disks or none: the points
    /// made before a failure are deleted again.
    func backUpVM(_ plan: DiskService.VMBackupPlan, job: Job) async throws -> [String: JobValue] {
        let group = await backups.newGroupID(plan.vm.name)
        let all = await store.list()
        let isBase = { (d: DiskInfo) in all.contains { $0.backingFile == d.path } }
        var points: [BackupPoint] = []
        if plan.live {
            points = try await backUpLive(plan.vm, disks: plan.disks.map { LiveDisk(disk: $0.disk, target: $0.target, isBase: isBase($0.disk)) },
                                          mode: plan.mode, group: group, job: job)
        } else {
            let count = Double(plan.disks.count)
            do {
                for (n, item) in plan.disks.enumerated() {
                    await guests.cache.release(item.disk.path)
                    let policy = await policies.record(item.disk.name).backup
                    points.append(try await backups.makePoint(item.disk, mode: plan.mode, isBase: isBase(item.disk), policy: policy, group: group,
                                                              groupDisks: plan.disks.map(\.disk.name)) {
                        job.progress((Double(n) + ($0 ?? 0)) / count)
                    })
                }
            } catch {
                for point in points.reversed() {
                    do { try await backups.deletePoint(point.id) } catch {
                        logger.warning("point \(point.id) of the failed backup of VM \(plan.vm.name) stays: \(error)")
                    }
                }
                throw error
            }
            do { try await reconcileCheckpoints(plan.vm) } catch {
                logger.info("checkpoints of VM \(plan.vm.name) not updated after its point \(group) (reconciled before its next live backup): \(error)")
            }
        }
        for point in points { await pointsChanged(point.disk, newest: point) }
        var pruned: [String] = []
        for point in points {
            let keep = await policies.record(point.disk).backup.keepLast
            do { pruned += try await backups.prune(point.disk, keepLast: keep) } catch {
                logger.warning("VM point \(group) made, but pruning disk \(point.disk) to keep_last \(keep) failed: \(error)")
            }
        }
        logger.notice("backup point \(group) of VM \(plan.vm.name): \(points.map { "\($0.disk) \($0.kind.rawValue)" }.joined(separator: ", "))\(plan.live ? " (live)" : "")")
        var result: [String: JobValue] = ["backup_id": .string(group), "disks": .strings(points.map(\.disk)), "points": .strings(points.map(\.id)),
                                          "kinds": .strings(points.map(\.kind.rawValue)), "size": .uint64(points.reduce(0) { $0 + $1.size })]
        if !pruned.isEmpty { result["pruned"] = .strings(pruned) }
        return result
    }

    /// Restores point `id` into `disk` (stopped; the caller holds a writer's lease): the
    /// chain flattened into the disk's format and checked block by block against the point's
    /// index before it replaces the disk (the points held against deletions meanwhile).
    func restorePoint(_ id: String, into disk: DiskInfo, progress: @escaping @Sendable (Double?) -> Void, commit: @escaping @Sendable () -> Void) async throws {
        await guests.cache.release(disk.path)
        let (backups, store) = (self.backups, self.store)
        _ = try await backups.whileReading(disk.name) {
            guard let point = await backups.point(id) else { throw ControllerError.noSuchBackup("disk \(disk.name) has no backup \(id)") }
            return try await store.restore(disk.name, from: backups.pointImage(id), format: "qcow2", compressed: false, flatten: true,
                                           check: { try await backups.checkRestored($0, format: disk.format, against: point) }) { commit() }
        }
        await guests.cache.release(disk.path)
        await publish(disk.name)
    }

    /// Makes the new disk `name` from backup `id` of `disk` (a point, checked against its
    /// index before it gets its name; or a verified image backup), in `disk`'s format, and
    /// announces it. `disk` is not touched.
    func restoreAsNew(_ name: String, from id: String, of disk: DiskInfo, progress: @escaping @Sendable (Double) -> Void) async throws -> DiskInfo {
        let (backups, store) = (self.backups, self.store)
        let info: DiskInfo
        if await backups.isPoint(id) {
            info = try await backups.whileReading(disk.name) {
                guard let point = await backups.point(id) else { throw ControllerError.noSuchBackup("disk \(disk.name) has no backup \(id)") }
                return try await store.restoreAsNew(name, from: backups.pointImage(id), format: "qcow2", compressed: false, flatten: true,
                                                    outputFormat: disk.format) { try await backups.checkRestored($0, format: disk.format, against: point) }
            }
        } else {
            let verified = try await backups.verify(id) { progress($0 * 0.5) }
            progress(0.5)
            info = try await store.restoreAsNew(name, from: backups.image(of: id), format: verified.format, compressed: verified.compressed,
                                                flatten: false, outputFormat: disk.format)
        }
        await added(info)
        return info
    }
}

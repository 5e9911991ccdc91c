import FoundationEssentials
import HostSystem

/// Points of disks a running VM uses: libvirt's push backup, one qemu transaction for all
/// of them with the checkpoint that tracks writes after the point, into point files the
/// service created (overlays of the parent points) in the backup directory.
///
/// The records are the truth for the bitmaps: before and after each live backup libvirt's
/// checkpoints are reconciled with them (``CheckpointXML/reconcile(_:wanted:)``): a
/// checkpoint a failed backup left is deleted, the checkpoint of an offline point is
/// redefined. A parent whose bitmap the running qemu does not hold consistently (libvirt
/// gives no changed-bytes figure for it) gives a full point, said in its `reason`.
extension DiskContext {
    /// One disk of a running VM to back up.
    struct LiveDisk: Sendable {
        let disk: DiskInfo
        let target: String
        /// Other disks are built on it (full points, no tracking).
        let isBase: Bool
    }

    /// Bytes left free on the backup filesystem below which a running backup is aborted
    /// (qemu fails the guest's own writes when a push target cannot grow).
    static let backupSpaceFloor: UInt64 = 64 << 20

    /// Makes one point of each of `disks` of running VM `vm` in one push backup; `group`
    /// names the VM point they form (VM.Backup).
    func backUpLive(_ vm: VMInfo, disks: [LiveDisk], mode: BackupMode, group: String?, job: Job) async throws -> [BackupPoint] {
        let backups = self.backups
        let names = disks.map(\.disk.name)
        // One live backup per VM: libvirt runs one job per domain, and the job figures this
        // backup reads must be its own (the VM's key is claimed beside the disks').
        let vmKey = "vm \(vm.uuid)"
        try await backups.claim(names + [vmKey])
        var drafts: [BackupStore.PointDraft] = []
        var finished: [BackupPoint] = []
        var reserved: UInt64 = 0
        var begun = false
        do {
            job.progress(0)
            // A backup job the VM runs now is no one's (this claim is the VM's only live
            // backup): a daemon killed during a backup left it, writing into a file the
            // restart removed. It goes before anything else.
            if let running = try? await vms.jobStats(vm.uuid, completed: false), running.running,
               running.operation == VMJobStats.backupOperation {
                logger.notice("aborting the backup job VM \(vm.name) still ran (left by a daemon that stopped during a backup)")
                await abortLiveBackup(vm)
            }
            let targets = vm.disks.map(\.target)
            let checkpoints = try await reconcileCheckpoints(vm)
            var backupDisks: [CheckpointXML.BackupDisk] = []
            var newBitmaps: [String: String] = [:]
            for item in disks {
                let disk = item.disk
                let policy = await policies.record(disk.name).backup
                var image = try await qemuImg.info(path: disk.path, format: disk.format)
                // The running qemu's view of the bitmaps: a parent's bitmap counts when libvirt
                // measures its changed bytes (the bitmap exists and is consistent).
                let head = await backups.head(of: disk.name)
                let described = head?.bitmap.flatMap { CheckpointXML.describing($0, on: item.target, in: checkpoints) }
                image.bitmaps = described?.changedBytes[item.target] != nil ? [(name: head!.bitmap!, flags: [])] : []
                let tracking = disk.format == "qcow2" && image.compat != "0.10" && !item.isBase
                let draft = try await backups.draftPoint(disk, mode: mode, image: image, isBase: item.isBase, policy: policy, tracking: tracking,
                                                         bitmap: group.map(BackupChain.bitmapName))
                drafts.append(draft)
                let estimate = draft.parent == nil ? max(image.allocatedSize, disk.backingFile == nil ? 0 : disk.virtualSize)
                                                   : (described?.changedBytes[item.target] ?? disk.virtualSize)
                reserved += estimate + estimate / 64 + (1 << 20)
                backupDisks.append(.init(target: item.target, file: draft.temporary, since: draft.parent == nil ? nil : described?.name))
                if let bitmap = draft.bitmap { newBitmaps[item.target] = bitmap }
            }
            try await backups.reserveSpace(reserved, files: drafts.map(\.temporary), key: vmKey, for: names.joined(separator: ", "))
            let checkpoint = newBitmaps.isEmpty ? nil
                : CheckpointXML.checkpoint(name: BackupChain.bitmapName(group ?? drafts[0].id), bitmaps: newBitmaps, targets: targets)
            CrashPoints.reach("live-backup.drafted")
            let jobsEnded = await vms.vm(uuid: vm.uuid)?.jobsEnded ?? 0
            try await vms.backupBegin(vm.uuid, backup: CheckpointXML.pushBackup(backupDisks, targets: targets), checkpoint: checkpoint)
            begun = true
            try await waitForLiveBackup(vm, job: job, jobsEnded: jobsEnded)
            begun = false
            // qemu writes no more: the point files hold all they will (and are renamed next).
            await backups.releaseSpace(key: vmKey)
            CrashPoints.reach("live-backup.copied")
            let count = Double(drafts.count)
            let members = group == nil ? nil : names
            for (n, draft) in drafts.enumerated() {
                let share = 0.8 + 0.2 * Double(n) / count
                finished.append(try await backups.finishPoint(draft, group: group, groupDisks: members, live: true) {
                    job.progress(share + $0 * 0.2 / count)
                })
                if n + 1 < drafts.count { CrashPoints.reach("live-backup.partly-recorded") }
            }
            // The disks are free again; the VM's key stays claimed until its checkpoints are
            // reconciled, so no other live backup of the VM begins meanwhile.
            await backups.endDrafts(drafts, names: names, key: vmKey)
            CrashPoints.reach("live-backup.recorded")
            // The parents' checkpoints go (and with them their bitmaps in qemu).
            do { _ = try await reconcileCheckpoints(vm) } catch {
                logger.warning("backup of VM \(vm.name) made; its older checkpoints are removed before the next backup: \(error)")
            }
            await backups.unclaim([vmKey])
            return finished
        } catch {
            // qemu must have stopped writing before its files go.
            if begun { await abortLiveBackup(vm) }
            for draft in drafts { await backups.discard(draft) }
            // The disks are released (a point's deletion needs them free); the VM's key stays
            // claimed until its checkpoints are reconciled.
            await backups.endDrafts(drafts, names: names, key: vmKey)
            // A VM point is all its disks or none: the points recorded before a failure go.
            for point in finished.reversed() {
                do { try await backups.deletePoint(point.id) } catch {
                    logger.warning("point \(point.id) of the failed backup of VM \(vm.name) stays (its VM point is incomplete): \(error)")
                }
            }
            // A checkpoint the failed backup made is no record's: it goes now, or before the
            // next backup.
            _ = try? await reconcileCheckpoints(vm)
            await backups.unclaim([vmKey])
            throw await backups.pointError(error, names.joined(separator: ", "))
        }
    }

    /// Waits for the VM's push backup to end, reporting its progress; aborts it when the
    /// job is cancelled or the backup filesystem runs low. It wakes at libvirt's
    /// job-completed event (the VM's ``VMInfo/jobsEnded`` moves past `jobsEnded`, counted
    /// before the backup began) or its stop, and otherwise every 250 ms: libvirt sends no
    /// progress events, and the free-space watch must look while qemu writes.
    /// The watch: the backup filesystem must keep room for what the point files of every
    /// running live backup may still grow by (their reservations less what they hold) and
    /// the floor; when something else takes that room, qemu's job is stopped before a push
    /// target can fill the filesystem (qemu 7.2 then fails the guest's own writes).
    private func waitForLiveBackup(_ vm: VMInfo, job: Job, jobsEnded: UInt64) async throws {
        var seen = jobsEnded
        while true {
            // (A cancelled wait returns at once: the checks below abort qemu's job.) Counted
            // before libvirt is asked: an event for another job (an aborted one ending late)
            // wakes one round, not every round, and one after the question wakes the next.
            seen = await waitForJobEnd(vm, after: seen, timeout: .milliseconds(250))
            guard await vms.vm(uuid: vm.uuid)?.state.isActive == true else {
                throw ControllerError.io("VM \(vm.name) stopped during the backup")
            }
            let current: VMJobStats
            do { current = try await vms.jobStats(vm.uuid, completed: false) } catch {
                // libvirt says "not running" (InvalidState) before its stop event reaches
                // the VM cache.
                if case ControllerError.invalidState = error { throw ControllerError.io("VM \(vm.name) stopped during the backup") }
                if await vms.vm(uuid: vm.uuid)?.state.isActive != true { throw ControllerError.io("VM \(vm.name) stopped during the backup") }
                throw error
            }
            if !current.running {
                let ended = try await vms.jobStats(vm.uuid, completed: true)
                guard ended.operation == VMJobStats.backupOperation else {
                    throw ControllerError.io("the backup of VM \(vm.name) ended unseen (libvirt reports another job last)")
                }
                if ended.succeeded { return }
                throw ControllerError.io("qemu's backup of VM \(vm.name) failed: \(ended.error ?? "no reason given")")
            }
            if Task.isCancelled { throw CancellationError() }
            let free = (try? Files.availableBytes(backups.directory)) ?? .max
            let needed = Self.backupSpaceFloor + (await backups.spaceStillNeeded())
            if free < needed {
                throw ControllerError.io("the backup of VM \(vm.name) was stopped: \(backups.directory) has \(free) bytes free, "
                    + "and the running backups' points may still need \(needed)")
            }
            if current.total > 0 { job.progress(0.8 * Double(current.processed) / Double(current.total)) }
        }
    }

    /// Aborts the backup jobs of running VMs that no live backup of this daemon owns: a
    /// daemon killed during a live backup left them writing into files its restart removed,
    /// room no reservation counts. Run when libvirt is reached.
    func abortOrphanedBackups(_ all: [VMInfo]) async {
        for vm in all where vm.state.isActive {
            // The VM's key, as a live backup takes it: one of ours running keeps its job.
            let key = "vm \(vm.uuid)"
            guard (try? await backups.claim([key])) != nil else { continue }
            if let job = try? await vms.jobStats(vm.uuid, completed: false), job.running, job.operation == VMJobStats.backupOperation {
                logger.notice("aborting the backup job VM \(vm.name) runs (left by a daemon that stopped during a backup)")
                await abortLiveBackup(vm)
            }
            await backups.unclaim([key])
        }
    }

    /// Aborts the VM's backup job and waits (up to 60 s: libvirt 9.0 ends an aborted backup
    /// only after its event handler gave up waiting 30 s for the domain's job lock) until
    /// qemu no longer runs it, so its target files can go.
    private func abortLiveBackup(_ vm: VMInfo) async {
        try? await vms.abortJob(vm.uuid)
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            guard let now = await vms.vm(uuid: vm.uuid), now.state.isActive, let stats = try? await vms.jobStats(vm.uuid, completed: false),
                  stats.running else { return }
            try? await vms.abortJob(vm.uuid)
            // Until the job-completed event, the VM's stop, or a second (a lost event).
            _ = await waitForJobEnd(vm, after: now.jobsEnded, timeout: .seconds(1))
        }
        logger.warning("the backup job of VM \(vm.name) still runs 60 s after it was aborted")
    }

    /// Waits up to `timeout` for libvirt's next job-completed event of `vm` after the
    /// `seen`-th (``VMInfo/jobsEnded``) or for the VM's stop; returns the count then.
    private func waitForJobEnd(_ vm: VMInfo, after seen: UInt64, timeout: Duration) async -> UInt64 {
        _ = try? await vms.wait(for: vm.uuid, timeout: timeout, rereadAtDeadline: false) {
            ($0?.jobsEnded ?? 0) != seen || $0?.state.isActive != true
        }
        return await vms.vm(uuid: vm.uuid)?.jobsEnded ?? seen
    }

    /// Makes libvirt's checkpoints of `vm` the ones the records need (each disk's newest
    /// point's bitmap) and returns them as libvirt then describes them.
    @discardableResult
    func reconcileCheckpoints(_ vm: VMInfo) async throws -> [CheckpointXML.Checkpoint] {
        var wanted: [String: String] = [:]
        let managed = await store.list()
        for d in vm.disks {
            guard let disk = managed.first(where: { $0.path == d.source }), let bitmap = await backups.head(of: disk.name)?.bitmap else { continue }
            wanted[d.target] = bitmap
        }
        let existing = try await vms.checkpoints(vm.uuid).map(CheckpointXML.parse)
        let plan = CheckpointXML.reconcile(existing, wanted: wanted)
        guard !plan.delete.isEmpty || !plan.redefine.isEmpty else { return existing }
        let active = await vms.vm(uuid: vm.uuid)?.state.isActive == true
        for name in plan.delete {
            // While the VM runs a checkpoint goes with its bitmaps in qemu, unless libvirt
            // could not measure every one of them (not in qemu, or inconsistent: a qemu
            // killed before it stored them, a disk restored): then its metadata alone.
            let measured = existing.first { $0.name == name }.map { Set($0.changedBytes.keys) == Set($0.bitmaps.keys) } ?? false
            try await vms.deleteCheckpoint(vm.uuid, name, metadataOnly: !active || !measured)
            logger.info("deleted checkpoint \(name) of VM \(vm.name)\(active && !measured ? " (its metadata: qemu holds none of its bitmaps consistently)" : ""): no backup point needs it")
        }
        let targets = vm.disks.map(\.target)
        // One checkpoint per bitmap name (a VM point's disks share theirs).
        for (bitmap, pairs) in Dictionary(grouping: plan.redefine, by: \.value).sorted(by: { $0.key < $1.key }) {
            let disks = Dictionary(uniqueKeysWithValues: pairs.map { ($0.key, $0.value) })
            try await vms.redefineCheckpoint(vm.uuid, CheckpointXML.checkpoint(name: bitmap, bitmaps: disks, targets: targets,
                                                                              created: UInt64(Date().timeIntervalSince1970)))
            logger.info("redefined checkpoint \(bitmap) of VM \(vm.name) for \(disks.keys.sorted().joined(separator: ", ")): the newest points' bitmap")
        }
        return try await vms.checkpoints(vm.uuid).map(CheckpointXML.parse)
    }
}

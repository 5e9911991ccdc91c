import FoundationEssentials

/// The `ChangeTracking` of the disks (``ChangeTracking``): its state follows from each
/// disk's view (bitmaps as last read, newest point, leases); the bytes changed since the
/// newest point are measured here.
extension DiskContext {
    /// A point of `disk` was made (nothing changed since it yet), or its chain changed
    /// (a point deleted): re-reads the disk and publishes its view.
    func pointsChanged(_ disk: String, newest point: BackupPoint? = nil) async {
        if let point {
            measures.withLock { $0[disk] = ChangeTracking.Measure(point: point.id, bytes: 0, at: point.created) }
        }
        await publish(disk)
    }

    /// A VM started or stopped on `names`: re-reads them (a qemu that did not close them
    /// cleanly left their bitmaps in use) and publishes their views; measures what a
    /// running VM changed since each newest point.
    func vmLeasesChanged(_ names: [String]) async {
        // A start makes the running qemu the judge of the bitmaps: a figure from before
        // (another run, a restore since) says nothing about this run until measured again.
        for name in names {
            guard await store.holdings(of: name).contains(where: { $0.kind == .vm }) else { continue }
            measures.withLock { _ = $0.removeValue(forKey: name) }
        }
        for name in names { await publish(name) }
        await measureRunningDisks(names)
    }

    /// Measures the bytes changed since the newest point of each disk a running VM writes
    /// (`only` those disks when given): libvirt's size of the point's checkpoint, which the
    /// VM's qemu counts in the point's bitmap. Publishes the disks whose figure changed.
    func measureRunningDisks(_ only: [String]? = nil) async {
        let prefix = store.directory + "/"
        for vm in await vms.list() where vm.state.isActive {
            var wanted: [(name: String, target: String, point: BackupPoint)] = []
            for used in vm.disks where used.source.hasPrefix(prefix) && !used.readonly {
                let name = String(used.source.dropFirst(prefix.count))
                guard only?.contains(name) ?? true, let head = await backups.head(of: name), head.bitmap != nil else { continue }
                wanted.append((name, used.target, head))
            }
            guard !wanted.isEmpty else { continue }
            let now = UInt64(Date().timeIntervalSince1970)
            let checkpoints: [CheckpointXML.Checkpoint]
            do { checkpoints = try await vms.checkpoints(vm.uuid).map(CheckpointXML.parse) } catch {
                logger.info("changes since the newest points of VM \(vm.name)'s disks not measured: \(error)")
                continue
            }
            for disk in wanted {
                // A point made meanwhile is newer than this figure (its own 0 stands).
                guard await backups.head(of: disk.name)?.id == disk.point.id else { continue }
                // No checkpoint of the point: not measured (the next backup redefines it);
                // one without a size: qemu has no consistent bitmap of it.
                guard let checkpoint = checkpoints.first(where: { $0.bitmaps[disk.target] == disk.point.bitmap }) else { continue }
                let bytes = checkpoint.changedBytes[disk.target]
                // A figure seen before keeps the time it was first measured.
                let changed = measures.withLock { m in
                    guard m[disk.name]?.point != disk.point.id || m[disk.name]?.bytes != bytes else { return false }
                    // Two measurements crossing: the one taken later stands.
                    if let known = m[disk.name], known.point == disk.point.id, known.at > now { return false }
                    m[disk.name] = ChangeTracking.Measure(point: disk.point.id, bytes: bytes, at: now)
                    return true
                }
                guard changed else { continue }
                let all = await store.list()
                await emit(.changed(await views(all.filter { $0.name == disk.name }, all: all)))
            }
        }
    }
}

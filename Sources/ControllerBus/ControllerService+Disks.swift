import ControllerCore
import SDBus

/// Disk methods: Delete, per-disk snapshots and Clone.
extension ControllerService {
    func handleDiskCall(_ name: String, _ call: MethodCall) async throws -> [DBusValue] {
        let args = Arguments(call: call)
        guard let disk = await disks.disk(named: name) else { throw ControllerError.noSuchDisk("disk \(name) no longer exists") }
        func authorize(_ operation: String, _ extra: [String: String] = [:]) async throws {
            let caller = try await callers.caller(for: call)
            try await authorizer.authorize(caller, .diskManage, details: ["disk": name, "operation": operation].merging(extra) { a, _ in a })
        }
        switch call.member {
        case "Delete":
            try args.options(0).finish()
            try await disks.precheckDelete(name)
            if let user = await vms.list().first(where: { vm in vm.disks.contains { $0.source == disk.path } }) {
                throw ControllerError.busy("disk \(name) is used by VM \(user.name); detach it first")
            }
            try await authorize("delete")
            await guests.cache.release(disk.path)
            try await disks.delete(name)
            try? await policies.remove(name)
            await bus.unexport(path: ObjectPaths.disk(name))
            await publishDiskChange(nil)
            return []
        case "CreateSnapshot", "RevertSnapshot", "DeleteSnapshot":
            let snapshot = args.string(0)
            try args.options(1).finish()
            guard DiskName.isValid(snapshot) else {
                throw ControllerError.invalidArgs("invalid snapshot name \(DiskName.quoted(snapshot)): use 1-64 characters of A-Z a-z 0-9 . _ -, not starting with '.' or '-'")
            }
            guard disk.format == "qcow2" else {
                throw ControllerError.notSupported("disk \(name) is \(disk.format); internal snapshots need qcow2")
            }
            let exists = disk.snapshots.contains { $0.name == snapshot }
            switch call.member {
            case "CreateSnapshot":
                if snapshot.hasPrefix("vm-") || snapshot.hasPrefix("auto-") {
                    throw ControllerError.invalidArgs("snapshot names vm-* and auto-* belong to VM snapshots and versioning; choose another than \(snapshot)")
                }
                if exists { throw ControllerError.alreadyExists("disk \(name) already has a snapshot \(snapshot)") }
            default:
                if !exists { throw ControllerError.noSuchSnapshot("disk \(name) has no snapshot \(snapshot)") }
            }
            try await requireNotInUse(disk, for: call.member == "DeleteSnapshot" ? "delete a snapshot of" : call.member == "CreateSnapshot" ? "snapshot" : "revert")
            let operation = ["CreateSnapshot": "create-snapshot", "RevertSnapshot": "revert-snapshot", "DeleteSnapshot": "delete-snapshot"][call.member]!
            try await authorize(operation, ["snapshot": snapshot])
            let qemuImg = QemuImg(path: config.qemuImgPath)
            let action: QemuImg.SnapshotAction = call.member == "CreateSnapshot" ? .create : call.member == "RevertSnapshot" ? .apply : .delete
            let path = disk.path
            await guests.cache.release(path)
            try await disks.exclusive(name) { try await qemuImg.snapshot(action, snapshot, path: path) }
            logger.notice("\(operation) \(snapshot) on disk \(name)")
            await publishDiskChange(name)
            return []
        case "Clone":
            let newName = args.string(0)
            var options = try args.options(1)
            let linked = try options.bool("linked") ?? false
            try options.finish()
            try DiskName.validate(newName)
            try await disks.precheckCreate(CreateDiskRequest(name: newName, size: 512, format: "qcow2"))
            let caller = try await callers.caller(for: call)
            try await authorizer.authorize(caller, .diskManage, details: ["disk": name, "operation": "clone", "new_name": newName])
            let store = disks
            let job = try await jobs.start(operation: "Clone", target: ObjectPaths.disk(name), uid: caller.uid) { [self] job in
                await guests.cache.release(disk.path)
                let info = try await store.clone(name, to: newName, linked: linked) { job.progress($0) }
                try await exportDisk(info, announce: true)
                await publishDiskChange(nil)
                return ["disk": .string(info.name), "linked": .bool(linked), "size": .uint64(info.allocatedSize)]
            }
            return [.objectPath(ObjectPaths.job(job.id))]
        case "Backup":
            var options = try args.options(0)
            let compress = try options.bool("compress") ?? false
            try options.finish()
            if compress && disk.format != "qcow2" && disk.format != "raw" { throw ControllerError.notSupported("cannot compress a \(disk.format) disk") }
            // Consistency: a disk a running VM writes to is refused rather than copied torn.
            if let user = await activeUser(of: disk) {
                throw ControllerError.busy("disk \(name) is in use by running VM \(user.vm.name); stop it to back the disk up consistently")
            }
            if await disks.isBusy(name) { throw ControllerError.busy("disk \(name) is busy with another operation") }
            let caller = try await callers.caller(for: call)
            try await authorizer.authorize(caller, .diskManage, details: ["disk": name, "operation": "backup"])
            let (store, images) = (backups, disks)
            let appliances = guests.cache
            let job = try await jobs.start(operation: "Backup", target: ObjectPaths.disk(name), uid: caller.uid) { job in
                // The disk is held for the copy: snapshots, resizes, writes and automatic
                // versions wait (Busy) rather than change the image under the copy.
                try await images.exclusive(name) {
                    await appliances.release(disk.path)
                    let info = try await store.backup(disk, compress: compress) { job.progress($0) }
                    return ["backup_id": .string(info.id), "size": .uint64(info.size), "sha256": .string(info.sha256)]
                }
            }
            return [.objectPath(ObjectPaths.job(job.id))]
        case "ListBackups":
            try args.options(0).finish()
            return [.array(elementSignature: "(stts)", await backups.list(disk: name).map {
                .structure([.string($0.id), .uint64($0.created), .uint64($0.size), .string($0.sha256)])
            })]
        case "Restore":
            let id = args.string(0)
            try args.options(1).finish()
            guard DiskName.isValid(id) else { throw ControllerError.invalidArgs("invalid backup id \(DiskName.quoted(id))") }
            guard let backup = await backups.backup(id), backup.disk == name else {
                throw ControllerError.noSuchBackup("disk \(name) has no backup \(id)")
            }
            try await requireNotInUse(disk, for: "restore")
            let caller = try await callers.caller(for: call)
            try await authorizer.authorize(caller, .diskManage, details: ["disk": name, "operation": "restore", "backup": id])
            let (store, images) = (backups, disks)
            let job = try await jobs.start(operation: "Restore", target: ObjectPaths.disk(name), uid: caller.uid) { [self] job in
                job.progress(0)
                let verified = try await store.verify(id) { job.progress($0 * 0.5) }
                job.progress(0.5)
                await guests.cache.release(disk.path)
                _ = try await images.restore(name, from: store.image(of: id), format: verified.format,
                                         compressed: verified.compressed) { job.commit() }
                await guests.cache.release(disk.path)
                await publishDiskChange(name)
                return ["backup_id": .string(id)]
            }
            return [.objectPath(ObjectPaths.job(job.id))]
        default:
            if let reply = try await handleDiskGuestCall(disk, call) { return reply }
            if let reply = try await handleDiskPolicyCall(disk, call) { return reply }
            throw ControllerError.notSupported("\(call.member) is not implemented")
        }
    }

    /// Writes to a disk a running VM uses, or that other disks are built on, are `Busy`.
    func requireNotInUse(_ disk: DiskInfo, for what: String) async throws {
        if let user = await activeUser(of: disk) {
            throw ControllerError.busy("cannot \(what) disk \(disk.name): VM \(user.vm.name) is using it (\(user.vm.state))")
        }
        let overlays = await disks.list().filter { $0.backingFile == disk.path }.map(\.name)
        if !overlays.isEmpty {
            throw ControllerError.busy("cannot \(what) disk \(disk.name): it is the backing file of \(overlays.joined(separator: ", "))")
        }
    }

    /// Re-reads `changed` (if any) and republishes every disk's changeable properties
    /// (sizes, snapshots, overlays).
    func publishDiskChange(_ changed: String?) async {
        if let changed { _ = try? await disks.refresh(changed) }
        let all = await disks.list()
        for disk in all where changed == nil || disk.name == changed || disk.path == all.first(where: { $0.name == changed })?.backingFile {
            var props = diskProperties(disk, overlays: all.filter { $0.backingFile == disk.path }.map(\.name))
            for key in ["Name", "Path", "AttachedTo"] { props[key] = nil }
            await bus.setProperties(path: ObjectPaths.disk(disk.name), interface: Interfaces.disk.name, props)
        }
    }
}

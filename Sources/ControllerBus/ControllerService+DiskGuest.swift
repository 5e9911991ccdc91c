import ControllerCore
import Foundation
import SDBus

/// Disk methods that look inside the image or change it as a whole: Resize, Format,
/// Inspect, ListFiles, ReadFile, WriteFile.
extension ControllerService {
    func handleDiskGuestCall(_ disk: DiskInfo, _ call: MethodCall) async throws -> [DBusValue]? {
        let args = Arguments(call: call)
        let name = disk.name
        switch call.member {
        case "Resize":
            let size = args.uint64(0)
            var options = try args.options(1)
            let allowShrink = try options.bool("shrink") ?? false
            let filesystem = try options.bool("filesystem") ?? true
            try options.finish()
            guard size > 0, size <= config.maxDiskSize else {
                throw ControllerError.invalidArgs("invalid size \(size): must be between 1 and \(config.maxDiskSize) bytes")
            }
            guard size % 512 == 0 else { throw ControllerError.invalidArgs("invalid size \(size): must be a multiple of 512 bytes") }
            guard size != disk.virtualSize else { throw ControllerError.invalidArgs("disk \(name) already has a virtual size of \(size) bytes") }
            let shrink = size < disk.virtualSize
            if shrink && !allowShrink {
                throw ControllerError.invalidArgs("size \(size) is below disk \(name)'s \(disk.virtualSize) bytes: pass shrink=true to shrink")
            }
            let user = await activeUser(of: disk)
            if let user, shrink {
                throw ControllerError.busy("cannot shrink disk \(name): VM \(user.vm.name) is using it (\(user.vm.state))")
            }
            if user == nil { try await requireNotInUse(disk, for: "resize") }
            if await disks.isBusy(name) { throw ControllerError.busy("disk \(name) is busy with another operation") }
            let caller = try await callers.caller(for: call)
            try await authorizer.authorize(caller, .diskManage, details: ["disk": name, "operation": "resize", "size": String(size)])
            let job = try await jobs.start(operation: "Resize", target: ObjectPaths.disk(name), uid: caller.uid) { [self] job in
                if let user {
                    return try await liveGrow(disk, vm: user.vm, target: user.target, to: size, job: job)
                }
                return try await resizeOffline(name, to: size, filesystem: filesystem, job: job)
            }
            return [.objectPath(ObjectPaths.job(job.id))]

        case "Format":
            let fstype = args.string(0)
            var options = try args.options(1)
            let request = try FormatRequest(fstype: fstype, partitionTable: try options.string("partition_table"),
                                            label: try options.string("label"))
            try options.finish()
            try await requireNotInUse(disk, for: "format")
            if await disks.isBusy(name) { throw ControllerError.busy("disk \(name) is busy with another operation") }
            let caller = try await callers.caller(for: call)
            try await authorizer.authorize(caller, .diskManage, details: ["disk": name, "operation": "format", "fstype": fstype])
            let job = try await jobs.start(operation: "Format", target: ObjectPaths.disk(name), uid: caller.uid) { [self] job in
                await guests.cache.release(disk.path)
                let appliances = guests.cache
                let start: DiskStore.TransformStart = disk.snapshots.isEmpty ? .fresh : .copy
                let (device, _) = try await disks.transform(name, start: start, progress: { job.progress($0) }, commit: { job.commit() }) { temporary, d in
                    try await request.apply(temporary, format: d.format, disk: name, appliances: appliances) { job.progress($0) }
                }
                await guests.cache.release(disk.path)
                _ = try? await policies.update(name) { $0.usage = []; $0.sampled = 0 }
                await publishDiskChange(name)
                logger.notice("formatted disk \(name): \(request.partitionTable) \(request.fstype) on \(device)")
                return ["fstype": .string(request.fstype), "partition_table": .string(request.partitionTable),
                        "device": .string(device), "label": .string(request.label ?? "")]
            }
            return [.objectPath(ObjectPaths.job(job.id))]

        case "Inspect":
            try args.options(0).finish()
            let caller = try await callers.caller(for: call)
            try await authorizer.authorize(caller, .diskInspect, details: ["disk": name, "operation": "inspect"])
            let job = try await jobs.start(operation: "Inspect", target: ObjectPaths.disk(name), uid: caller.uid) { [self] job in
                job.progress(nil)
                let report = try await withTaskCancellationHandler {
                    try await guests.inspect(disk, readonly: true)
                } onCancel: {
                    Task { await self.guests.cache.kill(disk.path) }
                }
                try Task.checkCancellation()
                await usageSampled(name, report.usage)
                return ["os_type": .string(report.osType), "distro": .string(report.distro), "version": .string(report.version),
                        "product_name": .string(report.productName), "hostname": .string(report.hostname),
                        "filesystems": .pairs(report.filesystems.map { [$0.device, $0.type] }), "usage": .usage(report.usage)]
            }
            return [.objectPath(ObjectPaths.job(job.id))]

        case "ListFiles", "ReadFile":
            let path = try GuestPath.normalize(args.string(0))
            try args.options(1).finish()
            let caller = try await callers.caller(for: call)
            try await authorizer.authorize(caller, .diskInspect, details: ["disk": name, "operation": call.member == "ListFiles" ? "list-files" : "read-file", "path": path])
            if call.member == "ReadFile" {
                return [.bytes(try await guests.readFile(disk, path, readonly: true))]
            }
            let entries = try await guests.listFiles(disk, path, readonly: true)
            return [.array(elementSignature: "(ssttt)", entries.map {
                .structure([.string($0.name), .string($0.type), .uint64($0.size), .uint64(UInt64($0.mode)), .uint64($0.mtime)])
            })]

        case "WriteFile":
            let path = try GuestPath.normalize(args.string(0))
            let content = args.bytes(1)
            var options = try args.options(2)
            let mode = try options.uint32("mode")
            try options.finish()
            guard content.count <= GuestImages.maxFileBytes else {
                throw ControllerError.limitsExceeded("WriteFile: \(content.count) bytes is more than \(GuestImages.maxFileBytes)")
            }
            if let mode, mode > 0o7777 { throw ControllerError.invalidArgs("invalid mode \(String(mode, radix: 8)): use permission bits up to 07777") }
            if path == "/" { throw ControllerError.invalidArgs("guest path / is a directory") }
            try await requireNotInUse(disk, for: "write to")
            if await disks.isBusy(name) { throw ControllerError.busy("disk \(name) is busy with another operation") }
            let caller = try await callers.caller(for: call)
            try await authorizer.authorize(caller, .diskWrite, details: ["disk": name, "operation": "write-file", "path": path])
            try await guests.writeFile(disk, path, content: content, mode: mode)
            logger.notice("wrote \(content.count) bytes to \(path) in disk \(name)")
            await publishDiskChange(name)
            return []

        default:
            return nil
        }
    }

    /// Resize of a disk no running VM uses: on a private copy, renamed over the disk at the
    /// end (the commit point); the image, the last partition and its filesystem.
    func resizeOffline(_ name: String, to size: UInt64, filesystem: Bool, job: Job) async throws -> [String: JobValue] {
        guard let disk = await disks.disk(named: name) else { throw ControllerError.noSuchDisk("no disk named \(name)") }
        await guests.cache.release(disk.path)
        let resizer = DiskResizer(qemuImg: QemuImg(path: config.qemuImgPath), appliances: guests.cache)
        let progress: @Sendable (Double) -> Void = { job.progress(0.4 + 0.55 * $0) }
        let (outcome, info) = try await disks.transform(name, start: .copy, progress: { job.progress($0) }, commit: { job.commit() }) { temporary, d in
            if size < d.virtualSize {
                return try await resizer.shrink(temporary, format: d.format, disk: name, from: d.virtualSize, to: size, progress: progress)
            }
            return try await resizer.grow(temporary, format: d.format, disk: name, from: d.virtualSize, to: size,
                                          filesystem: filesystem, progress: progress)
        }
        await guests.cache.release(disk.path)
        await publishDiskChange(name)
        logger.notice("resized disk \(name) from \(outcome.oldSize) to \(info.virtualSize) bytes\(outcome.filesystem.isEmpty ? "" : " (\(outcome.filesystem))")\(outcome.note.isEmpty ? "" : ": \(outcome.note)")")
        return ["old_size": .uint64(outcome.oldSize), "new_size": .uint64(info.virtualSize),
                "filesystem_grown": .bool(outcome.filesystemGrown), "filesystem_shrunk": .bool(outcome.filesystemShrunk),
                "filesystem": .string(outcome.filesystem), "note": .string(outcome.note), "live": .bool(false)]
    }

    /// Grow of a disk a running VM uses: the image only, through libvirt's block resize
    /// (qemu grows it under the guest). The guest grows its own partition and filesystem.
    func liveGrow(_ disk: DiskInfo, vm: VMInfo, target: String, to size: UInt64, job: Job) async throws -> [String: JobValue] {
        job.progress(nil)
        job.commit()
        _ = try await vms.perform(vm.uuid, "resize disk \(target) of") { try $0.blockResize(target, bytes: size) }
        await publishDiskChange(disk.name)
        logger.notice("grew disk \(disk.name) of running VM \(vm.name) to \(size) bytes (live, image only)")
        return ["old_size": .uint64(disk.virtualSize), "new_size": .uint64(size), "filesystem_grown": .bool(false),
                "filesystem_shrunk": .bool(false), "filesystem": .string(""), "live": .bool(true),
                "note": .string("the disk is in use by running VM \(vm.name): the image was grown live; the guest grows its partition and filesystem")]
    }

    /// The running VM (and its target) that uses `disk`, if any.
    func activeUser(of disk: DiskInfo) async -> (vm: VMInfo, target: String)? {
        let active = ["running", "paused", "blocked", "shutdown", "pmsuspended"]
        for vm in await vms.list() where active.contains(vm.state) {
            if let d = vm.disks.first(where: { $0.source == disk.path }) { return (vm, d.target) }
        }
        return nil
    }
}

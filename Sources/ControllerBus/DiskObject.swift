import ControllerAPI
import ControllerCore
import SDBus

/// `org.multiverse.Controller.Disk` at `/org/multiverse/Controller/disk/NAME`: one object
/// per managed disk. Each handler reads its arguments, lets ``DiskService`` check them,
/// authorizes with what the check found, runs, and replies.
struct DiskObject: Sendable {
    let name: String
    let context: BusContext
    var disks: DiskService { context.disks }

    static let bindings: [MethodBinding<DiskObject>] = [
        .init(DiskInterface.resize) { try await $0.resize($1) },
        .init(DiskInterface.clone) { try await $0.clone($1) },
        .init(DiskInterface.backup) { try await $0.backup($1) },
        .init(DiskInterface.listBackups) { try await $0.listBackups($1) },
        .init(DiskInterface.listBackupPoints) { try await $0.listBackupPoints($1) },
        .init(DiskInterface.verifyBackup) { try await $0.verifyBackup($1) },
        .init(DiskInterface.deleteBackup) { try await $0.deleteBackup($1) },
        .init(DiskInterface.setBackupPolicy) { try await $0.setBackupPolicy($1) },
        .init(DiskInterface.restore) { try await $0.restore($1) },
        .init(DiskInterface.createSnapshot) { try await $0.snapshot($1, .create) },
        .init(DiskInterface.revertSnapshot) { try await $0.snapshot($1, .revert) },
        .init(DiskInterface.deleteSnapshot) { try await $0.snapshot($1, .delete) },
        .init(DiskInterface.format) { try await $0.format($1) },
        .init(DiskInterface.inspect) { try await $0.inspect($1) },
        .init(DiskInterface.listFiles) { try await $0.listFiles($1) },
        .init(DiskInterface.listDirectory) { try await $0.listDirectory($1) },
        .init(DiskInterface.readFile) { try await $0.readFile($1) },
        .init(DiskInterface.getInspection) { try await $0.getInspection($1) },
        .init(DiskInterface.getFilesystemUsage) { try await $0.getFilesystemUsage($1) },
        .init(DiskInterface.writeFile) { try await $0.writeFile($1) },
        .init(DiskInterface.setAutoGrow) { try await $0.setAutoGrow($1) },
        .init(DiskInterface.setVersioning) { try await $0.setVersioning($1) },
        .init(DiskInterface.delete) { try await $0.delete($1) },
    ]

    func resize(_ call: BusCall) async throws -> [DBusValue] {
        let size = call.uint64("size")
        var options = try call.options()
        let shrink = try options.bool("shrink") ?? false
        let filesystem = try options.bool("filesystem") ?? true
        try options.finish()
        let plan = try await disks.checkResize(name, to: size, shrink: shrink, filesystem: filesystem)
        let caller = try await context.authorize(call, plan.details)
        return BusContext.reply(try await disks.runResize(plan, uid: caller.uid))
    }

    func clone(_ call: BusCall) async throws -> [DBusValue] {
        let newName = call.string("new_name")
        var options = try call.options()
        let linked = try options.bool("linked") ?? false
        try options.finish()
        let plan = try await disks.checkClone(name, to: newName, linked: linked)
        let caller = try await context.authorize(call, plan.details)
        return BusContext.reply(try await disks.runClone(plan, uid: caller.uid))
    }

    func backup(_ call: BusCall) async throws -> [DBusValue] {
        var options = try call.options()
        let compress = try options.bool("compress") ?? false
        let mode = try BackupMode(option: try options.string("mode"))
        try options.finish()
        let plan = try await disks.checkBackup(name, compress: compress, mode: mode)
        let caller = try await context.authorize(call, plan.details)
        return BusContext.reply(try await disks.runBackup(plan, uid: caller.uid))
    }

    func listBackups(_ call: BusCall) async throws -> [DBusValue] {
        try call.options().finish()
        return [.array(elementSignature: "(stts)", try await disks.backups(of: name).map {
            .structure([.string($0.id), .uint64($0.created), .uint64($0.size), .string($0.sha256)])
        })]
    }

    func listBackupPoints(_ call: BusCall) async throws -> [DBusValue] {
        try call.options().finish()
        return [.array(elementSignature: "(ssstts)", try await disks.points(of: name).map {
            .structure([.string($0.id), .string($0.kind.rawValue), .string($0.parent ?? ""), .uint64($0.created), .uint64($0.size), .string($0.digest)])
        })]
    }

    func verifyBackup(_ call: BusCall) async throws -> [DBusValue] {
        let id = call.string("backup_id")
        try call.options().finish()
        let plan = try await disks.checkVerify(name, backup: id)
        let caller = try await context.authorize(call, plan.details)
        return BusContext.reply(try await disks.runVerify(plan, uid: caller.uid))
    }

    func deleteBackup(_ call: BusCall) async throws -> [DBusValue] {
        let id = call.string("backup_id")
        try call.options().finish()
        let plan = try await disks.checkDeleteBackup(name, backup: id)
        let caller = try await context.authorize(call, plan.details)
        return BusContext.reply(try await disks.runDeleteBackup(plan, uid: caller.uid))
    }

    func restore(_ call: BusCall) async throws -> [DBusValue] {
        let id = call.string("backup_id")
        var options = try call.options()
        let newName = try options.string("new_name")
        try options.finish()
        let plan = try await disks.checkRestore(name, backup: id, newName: newName)
        let caller = try await context.authorize(call, plan.details)
        return BusContext.reply(try await disks.runRestore(plan, uid: caller.uid))
    }

    func snapshot(_ call: BusCall, _ action: DiskService.SnapshotAction) async throws -> [DBusValue] {
        let snapshot = call.string("name")
        try call.options().finish()
        let plan = try await disks.checkSnapshot(action, snapshot, on: name)
        try await context.authorize(call, plan.details)
        try await disks.runSnapshot(plan)
        return []
    }

    func format(_ call: BusCall) async throws -> [DBusValue] {
        let fstype = call.string("fstype")
        var options = try call.options()
        let request = try FormatRequest(fstype: fstype, partitionTable: try options.string("partition_table"),
                                        label: try options.string("label"))
        try options.finish()
        let plan = try await disks.checkFormat(name, request)
        let caller = try await context.authorize(call, plan.details)
        return BusContext.reply(try await disks.runFormat(plan, uid: caller.uid))
    }

    func inspect(_ call: BusCall) async throws -> [DBusValue] {
        try call.options().finish()
        let plan = try await disks.checkInspect(name)
        let caller = try await context.authorize(call, plan.details)
        return BusContext.reply(try await disks.runInspect(plan, uid: caller.uid))
    }

    func listFiles(_ call: BusCall) async throws -> [DBusValue] { try await entries(call, targets: false) }

    func listDirectory(_ call: BusCall) async throws -> [DBusValue] { try await entries(call, targets: true) }

    /// ListFiles (a(ssttt)) or ListDirectory (a(ssttts), with each symlink's target).
    private func entries(_ call: BusCall, targets: Bool) async throws -> [DBusValue] {
        let path = call.string("guest_path")
        var options = try call.options()
        let page = ListingPage(after: try options.string("after"), limit: try options.uint32("limit"))
        try options.finish()
        try page.validate()
        let plan = try await disks.checkRead(name, path, listing: true)
        try await context.authorize(call, plan.details)
        return [.array(elementSignature: targets ? "(ssttts)" : "(ssttt)", try await disks.runListFiles(plan, page: page).map {
            .structure([.string($0.name), .string($0.type), .uint64($0.size), .uint64(UInt64($0.mode)), .uint64($0.mtime)]
                       + (targets ? [.string($0.target)] : []))
        })]
    }

    func readFile(_ call: BusCall) async throws -> [DBusValue] {
        let path = call.string("guest_path")
        try call.options().finish()
        let plan = try await disks.checkRead(name, path, listing: false)
        try await context.authorize(call, plan.details)
        return [.bytes(try await disks.runReadFile(plan))]
    }

    func getInspection(_ call: BusCall) async throws -> [DBusValue] {
        try call.options().finish()
        let plan = try await disks.checkGuestValues(name, inspection: true)
        try await context.authorize(call, plan.details)
        return [.result(await disks.runGetInspection(plan))]
    }

    func getFilesystemUsage(_ call: BusCall) async throws -> [DBusValue] {
        try call.options().finish()
        let plan = try await disks.checkGuestValues(name, inspection: false)
        try await context.authorize(call, plan.details)
        let (sampled, usage) = await disks.runGetFilesystemUsage(plan)
        return [.uint64(sampled), .usage(usage)]
    }

    func writeFile(_ call: BusCall) async throws -> [DBusValue] {
        let path = call.string("guest_path")
        let content = call.bytes("content")
        var options = try call.options()
        let mode = try options.uint32("mode")
        try options.finish()
        let plan = try await disks.checkWrite(name, path, content: content, mode: mode)
        try await context.authorize(call, plan.details)
        try await disks.runWrite(plan)
        return []
    }

    func setAutoGrow(_ call: BusCall) async throws -> [DBusValue] {
        var o = try call.options("policy")
        let change = DiskPolicyEngine.AutoGrowChange(enabled: try o.bool("enabled"), threshold: try o.double("threshold"),
                                                     step: try o.uint64("step"), max: try o.uint64("max"))
        try o.finish()
        let plan = try await disks.policies.checkAutoGrow(name, change)
        try await context.authorize(call, plan.details)
        try await disks.policies.runAutoGrow(plan)
        return []
    }

    func setBackupPolicy(_ call: BusCall) async throws -> [DBusValue] {
        var o = try call.options("policy")
        let change = DiskPolicyEngine.BackupPolicyChange(keepLast: try o.uint32("keep_last"), fullEvery: try o.uint32("full_every"),
                                                         maxChain: try o.uint32("max_chain"), intervalSeconds: try o.uint32("interval_s"))
        try o.finish()
        let plan = try await disks.policies.checkBackupPolicy(name, change)
        try await context.authorize(call, plan.details)
        try await disks.policies.runBackupPolicy(plan)
        return []
    }

    func setVersioning(_ call: BusCall) async throws -> [DBusValue] {
        var o = try call.options("policy")
        let change = DiskPolicyEngine.VersioningChange(enabled: try o.bool("enabled"), intervalSeconds: try o.uint32("interval_s"),
                                                       keep: try o.uint32("keep"), onStop: try o.bool("on_stop"))
        try o.finish()
        let plan = try await disks.policies.checkVersioning(name, change)
        try await context.authorize(call, plan.details)
        try await disks.policies.runVersioning(plan)
        return []
    }

    func delete(_ call: BusCall) async throws -> [DBusValue] {
        try call.options().finish()
        let plan = try await disks.checkDelete(name)
        try await context.authorize(call, plan.details)
        try await disks.runDelete(plan)
        return []
    }
}

/// The disk objects on the bus, mirroring ``DiskEvent``s.
extension DiskObject {
    static func export(_ view: DiskView, context: BusContext, handlers: [String: MethodHandler], announce: Bool) async throws {
        try await context.bus.export(path: ObjectPaths.disk(view.info.name), interfaces: [
            DiskInterface.declaration.exported(properties: properties(view), handlers: handlers),
        ], announce: announce)
    }

    static func mirror(_ event: DiskEvent, context: BusContext, handlers: [String: MethodHandler]) async {
        let bus = context.bus
        let interface = DiskInterface.name
        switch event {
        case .added(let view):
            do { try await export(view, context: context, handlers: handlers, announce: true) } catch {
                context.logger.error("cannot export disk \(view.info.name): \(error)")
            }
        case .changed(let views):
            await bus.setProperties(interface: interface, views.map { view in
                var props = properties(view)
                // AttachedTo and HeldBy come with their own events, in their own order.
                for key in ["Name", "Path", "AttachedTo", "HeldBy"] { props[key] = nil }
                return (ObjectPaths.disk(view.info.name), props)
            })
        case .removed(let name):
            await bus.unexport(path: ObjectPaths.disk(name))
        case .policies(let name, let record):
            await bus.setProperties(path: ObjectPaths.disk(name), interface: interface, policyProperties(record))
        case .attachedTo(let name, let uuids):
            await bus.setProperties(path: ObjectPaths.disk(name), interface: interface, ["AttachedTo": .objectPaths(uuids.map(ObjectPaths.vm))])
        case .heldBy(let name, let leases):
            await bus.setProperties(path: ObjectPaths.disk(name), interface: interface, ["HeldBy": .heldBy(leases)])
        case .usageHigh(let name, let fraction):
            try? await bus.emitSignal(path: ObjectPaths.disk(name), interface: interface, member: DiskInterface.usageHigh.name, [.double(fraction)])
        }
    }

    static func properties(_ view: DiskView) -> [String: DBusValue] {
        let disk = view.info
        return [
            "Name": .string(disk.name),
            "Path": .string(disk.path),
            "ImageFormat": .string(disk.format),
            "Problems": .array(elementSignature: "s", disk.problems.map { .string($0) }),
            "VirtualSize": .uint64(disk.virtualSize),
            "AllocatedSize": .uint64(disk.allocatedSize),
            "BackingDisk": .string(view.backingDisk),
            "AttachedTo": .objectPaths(view.attachedTo.map(ObjectPaths.vm)),
            "HeldBy": .heldBy(view.heldBy),
            "Overlays": .objectPaths(view.overlays.map { ObjectPaths.disk($0) }),
            "Snapshots": .array(elementSignature: "(st)", disk.snapshots.map { .structure([.string($0.name), .uint64($0.created)]) }),
            "ChangeTracking": .changeTracking(view.tracking),
        ].merging(policyProperties(view.record)) { a, _ in a }
    }

    static func policyProperties(_ r: DiskRecord) -> [String: DBusValue] {
        [
            // Kept for its signature, always empty: the figures are guest values, which
            // PropertiesChanged would send to every bus client (GetFilesystemUsage serves them).
            "FilesystemUsage": .usage([]),
            "UsageSampled": .uint64(r.sampled),
            "AutoGrow": .vardict(["enabled": .boolean(r.autoGrow.enabled), "threshold": .double(r.autoGrow.threshold),
                                  "step": .uint64(r.autoGrow.step), "max": .uint64(r.autoGrow.max)]),
            "Versioning": .vardict(["enabled": .boolean(r.versioning.enabled), "interval_s": .uint32(r.versioning.intervalSeconds),
                                    "keep": .uint32(r.versioning.keep), "on_stop": .boolean(r.versioning.onStop)]),
            "BackupPolicy": .vardict(["keep_last": .uint32(r.backup.keepLast), "full_every": .uint32(r.backup.fullEvery),
                                      "max_chain": .uint32(r.backup.maxChain), "interval_s": .uint32(r.backup.intervalSeconds)]),
        ]
    }
}

extension DBusValue {
    /// A disk's leases as `a(so)`: kind and holder's object path.
    static func heldBy(_ leases: [DiskLease]) -> DBusValue {
        .array(elementSignature: "(so)", leases.map { lease in
            let holder = switch lease.holder {
            case .job(let id): ObjectPaths.job(id)
            case .vm(let uuid): ObjectPaths.vm(uuid)
            case .disk(let name): ObjectPaths.disk(name)
            case .work: ObjectPaths.root
            }
            return .structure([.string(lease.kind.rawValue), .objectPath(holder)])
        })
    }

    /// A disk's change tracking as `a{sv}` (changed and measured only when measured).
    static func changeTracking(_ t: ChangeTracking) -> DBusValue {
        var fields: [String: DBusValue] = ["state": .string(t.state.rawValue), "since": .uint64(t.since), "reason": .string(t.reason)]
        if let changed = t.changed {
            fields["changed"] = .uint64(changed)
            fields["measured"] = .uint64(t.measured)
        }
        return .vardict(fields)
    }

    /// Filesystem usage rows as `a(sttt)`: device, size, used, available.
    static func usage(_ rows: [FilesystemUsage]) -> DBusValue {
        .array(elementSignature: "(sttt)", rows.map { .structure([.string($0.device), .uint64($0.size), .uint64($0.used), .uint64($0.available)]) })
    }

    /// A job's result (or an inspection) as `a{sv}`.
    static func result(_ values: [String: JobValue]) -> DBusValue {
        .vardict(values.mapValues { value in
            switch value {
            case .string(let s): return .string(s)
            case .strings(let a): return .strings(a)
            case .bool(let b): return .boolean(b)
            case .uint64(let n): return .uint64(n)
            case .double(let d): return .double(d)
            case .usage(let rows): return .usage(rows)
            case .pairs(let rows): return .array(elementSignature: "(ss)", rows.map { .structure($0.prefix(2).map { .string($0) }) })
            }
        })
    }
}

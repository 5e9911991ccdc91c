import ControllerAPI
import ControllerCore
import SDBus

/// `org.multiverse.Controller.VM` at `/org/multiverse/Controller/vm/UUID`: one object per
/// libvirt domain. Handlers read arguments, let ``VMService`` check, authorize, run, reply.
struct VMObject: Sendable {
    let uuid: String
    let context: BusContext
    var vms: VMService { context.vms }

    static let bindings: [MethodBinding<VMObject>] = [
        .init(VMInterface.start) { try await $0.lifecycle($1, .start) },
        .init(VMInterface.shutdown) { try await $0.shutdown($1) },
        .init(VMInterface.destroy) { try await $0.lifecycle($1, .destroy) },
        .init(VMInterface.reboot) { try await $0.lifecycle($1, .reboot) },
        .init(VMInterface.suspend) { try await $0.lifecycle($1, .suspend) },
        .init(VMInterface.resume) { try await $0.lifecycle($1, .resume) },
        .init(VMInterface.undefine) { try await $0.undefine($1) },
        .init(VMInterface.attachDisk) { try await $0.attachDisk($1) },
        .init(VMInterface.detachDisk) { try await $0.detachDisk($1) },
        .init(VMInterface.addShare) { try await $0.addShare($1) },
        .init(VMInterface.removeShare) { try await $0.removeShare($1) },
        .init(VMInterface.setAutostart) { try await $0.setAutostart($1) },
        .init(VMInterface.setResources) { try await $0.setResources($1) },
        .init(VMInterface.getXML) { try await $0.getXML($1) },
        .init(VMInterface.createSnapshot) { try await $0.snapshot($1, .create) },
        .init(VMInterface.revertSnapshot) { try await $0.snapshot($1, .revert) },
        .init(VMInterface.deleteSnapshot) { try await $0.snapshot($1, .delete) },
        .init(VMInterface.listSnapshots) { try await $0.listSnapshots($1) },
        .init(VMInterface.backup) { try await $0.backup($1) },
        .init(VMInterface.restore) { try await $0.restore($1) },
        .init(VMInterface.listBackups) { try await $0.listBackups($1) },
    ]

    func lifecycle(_ call: BusCall, _ action: VMService.Lifecycle) async throws -> [DBusValue] {
        try call.options().finish()
        let plan = try await vms.checkLifecycle(uuid, action)
        try await context.authorize(call, plan.details)
        if !plan.networksToStart.isEmpty { try await context.authorize(call, also: .networkManage, plan.networkDetails) }
        try await vms.runLifecycle(plan, action)
        return []
    }

    func shutdown(_ call: BusCall) async throws -> [DBusValue] {
        var options = try call.options()
        let timeout = try options.uint32("timeout_s")
        let force = try options.bool("force") ?? false
        try options.finish()
        let plan = try await vms.checkShutdown(uuid, timeoutSeconds: timeout, force: force)
        try await context.authorize(call, plan.details)
        try await vms.runShutdown(plan)
        return []
    }

    func undefine(_ call: BusCall) async throws -> [DBusValue] {
        var options = try call.options()
        let deleteDisks = try options.bool("delete_disks") ?? false
        try options.finish()
        let plan = try await vms.checkUndefine(uuid, deleteDisks: deleteDisks)
        try await context.authorize(call, plan.details)
        if !plan.deleteDisks.isEmpty { try await context.authorize(call, also: .diskManage, plan.diskDetails) }
        try await vms.runUndefine(plan)
        return []
    }

    /// Authorizes and runs a checked change of the definition or devices.
    private func configure(_ call: BusCall, _ plan: VMService.ConfigurePlan) async throws -> [DBusValue] {
        try await context.authorize(call, plan.details)
        try await vms.runConfigure(plan)
        return []
    }

    func attachDisk(_ call: BusCall) async throws -> [DBusValue] {
        var request = VMService.AttachRequest(disk: call.string("disk"), target: call.string("target"))
        var options = try call.options()
        request.readonly = try options.bool("readonly") ?? false
        request.bus = try options.string("bus")
        request.live = try options.bool("live")
        request.persistent = try options.bool("persistent")
        request.format = try options.string("format")
        try options.finish()
        return try await configure(call, try await vms.checkAttach(uuid, request))
    }

    func detachDisk(_ call: BusCall) async throws -> [DBusValue] {
        let target = call.string("target")
        var options = try call.options()
        let (live, persistent) = (try options.bool("live"), try options.bool("persistent"))
        let timeout = try options.uint32("timeout_s")
        try options.finish()
        return try await configure(call, try await vms.checkDetach(uuid, target: target, live: live, persistent: persistent,
                                                                  timeoutSeconds: timeout))
    }

    func addShare(_ call: BusCall) async throws -> [DBusValue] {
        let (hostPath, tag) = (call.string("host_path"), call.string("tag"))
        var options = try call.options()
        let readonly = try options.bool("readonly") ?? false
        try options.finish()
        return try await configure(call, try await vms.checkAddShare(uuid, hostPath: hostPath, tag: tag, readonly: readonly))
    }

    func removeShare(_ call: BusCall) async throws -> [DBusValue] {
        let tag = call.string("tag")
        try call.options().finish()
        return try await configure(call, try await vms.checkRemoveShare(uuid, tag: tag))
    }

    func setAutostart(_ call: BusCall) async throws -> [DBusValue] {
        let enabled = call.bool("enabled")
        var options = try call.options()
        let fallback = try options.string("fallback")
        let readyTimeout = try options.uint32("ready_timeout_s")
        try options.finish()
        return try await configure(call, try await vms.checkAutostart(uuid, enabled: enabled, fallback: fallback, readyTimeoutSeconds: readyTimeout))
    }

    func setResources(_ call: BusCall) async throws -> [DBusValue] {
        var options = try call.options()
        let memory = try options.uint64("memory_mib")
        let vcpus = try options.uint32("vcpus")
        try options.finish()
        return try await configure(call, try await vms.checkResources(uuid, memoryMiB: memory, vcpus: vcpus))
    }

    func getXML(_ call: BusCall) async throws -> [DBusValue] {
        var options = try call.options()
        let inactive = try options.bool("inactive") ?? false
        try options.finish()
        return [.string(try await vms.xml(uuid, inactive: inactive))]
    }

    func snapshot(_ call: BusCall, _ action: VMService.SnapshotAction) async throws -> [DBusValue] {
        let name = call.string("name")
        try call.options().finish()
        let plan = try await vms.checkSnapshot(uuid, action, name)
        let caller = try await context.authorize(call, plan.details)
        return try await vms.runSnapshot(plan, uid: caller.uid).map(BusContext.reply) ?? []
    }

    func backup(_ call: BusCall) async throws -> [DBusValue] {
        var options = try call.options()
        let mode = try BackupMode(option: try options.string("mode"))
        try options.finish()
        let plan = try await vms.checkBackup(uuid, mode: mode)
        let caller = try await context.authorize(call, plan.details)
        return BusContext.reply(try await vms.runBackup(plan, uid: caller.uid))
    }

    func restore(_ call: BusCall) async throws -> [DBusValue] {
        let id = call.string("backup_id")
        try call.options().finish()
        let plan = try await vms.checkRestore(uuid, backup: id)
        let caller = try await context.authorize(call, plan.details)
        return BusContext.reply(try await vms.runRestore(plan, uid: caller.uid))
    }

    func listBackups(_ call: BusCall) async throws -> [DBusValue] {
        try call.options().finish()
        return [.array(elementSignature: "(stas)", try await vms.backupPoints(uuid).map {
            .structure([.string($0.id), .uint64($0.created), .array(elementSignature: "s", $0.points.map(DBusValue.string))])
        })]
    }

    func listSnapshots(_ call: BusCall) async throws -> [DBusValue] {
        try call.options().finish()
        return [.array(elementSignature: "(st)", try await vms.listSnapshots(uuid).map { .structure([.string($0.name), .uint64($0.created)]) })]
    }
}

/// The VM objects on the bus, mirroring ``VMEvent``s (each carries what its object shows).
extension VMObject {
    static func export(_ view: VMView, context: BusContext, handlers: [String: MethodHandler], announce: Bool) async throws {
        try await context.bus.export(path: ObjectPaths.vm(view.info.uuid), interfaces: [
            VMInterface.declaration.exported(properties: properties(view), handlers: handlers),
        ], announce: announce)
    }

    static func mirror(_ event: VMEvent, context: BusContext, handlers: [String: MethodHandler]) async {
        switch event {
        case .added(let view):
            do { try await export(view, context: context, handlers: handlers, announce: true) } catch {
                context.logger.error("cannot export VM \(view.info.name): \(error)")
            }
        case .updated(let view, let stateChanged):
            let info = view.info
            let path = ObjectPaths.vm(info.uuid)
            await context.bus.setProperties(path: path, interface: VMInterface.name, properties(view))
            if stateChanged {
                try? await context.bus.emitSignal(path: path, interface: VMInterface.name, member: VMInterface.stateChanged.name,
                                                  [.string(info.state.rawValue), .string(info.stateReason)])
            }
        case .removed(let uuid):
            await context.bus.unexport(path: ObjectPaths.vm(uuid))
        case .ready(let info):
            try? await context.bus.emitSignal(path: ObjectPaths.vm(info.uuid), interface: VMInterface.name, member: VMInterface.ready.name, [])
        }
    }

    static func properties(_ view: VMView) -> [String: DBusValue] {
        let info = view.info
        let disks: [DBusValue] = zip(info.disks, view.managedDisks).map { d, name in
            .structure([.string(d.target), .string(d.source), .string(d.format), .objectPath(name.map { ObjectPaths.disk($0) } ?? "/")])
        }
        return [
            "Name": .string(info.name),
            "UUID": .string(info.uuid),
            "State": .string(info.state.rawValue),
            "StateReason": .string(info.stateReason),
            "Profile": .string(info.profile),
            "VCPUs": .uint32(info.vcpus),
            "MemoryMiB": .uint64(info.memoryMiB),
            "Autostart": .boolean(info.autostart),
            "Persistent": .boolean(info.persistent),
            "Ephemeral": .boolean(info.ephemeral),
            "Disks": .array(elementSignature: "(ssso)", disks),
            "Shares": .array(elementSignature: "(ss)", info.shares.map { .structure([.string($0.hostPath), .string($0.tag)]) }),
            "Interfaces": .array(elementSignature: "(sss)", info.interfaces.map { .structure([.string($0.mac), .string($0.source), .string($0.model)]) }),
            "Readiness": .string(info.guest.readiness.rawValue),
            "Ready": .boolean(info.guest.readiness == .ready),
            "ReadySince": .uint64(info.guest.readySince),
            "GuestStatus": .string(info.guest.status),
            "Fallback": .string(info.metadata.fallback),
        ]
    }
}

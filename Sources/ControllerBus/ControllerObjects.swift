import ControllerAPI
import ControllerCore
import Logging
import SDBus

/// The D-Bus face of the controller: the root Manager object, one object per VM, disk and
/// job, and the settings object, each mirroring what Core reports. The rules are Core's;
/// this layer reads arguments, authorizes and replies.
public final class ControllerObjects: DiskObserver {
    let context: BusContext
    let manager: ManagerObject
    let managerProperties: [String: DBusValue]
    /// One method table per object type, shared by every exported object of it.
    let tables: HandlerTables

    /// The constant Manager properties come from the configuration the daemon runs with.
    public init(bus: BusConnection, authorizer: Authorizer, disks: DiskService, vms: VMService, jobs: JobManager,
                settings: SettingsAgent, libvirtURI: String, imageDirectory: String, backupDirectory: String, logger: Logger) {
        context = BusContext(bus: bus, authorizer: authorizer, disks: disks, vms: vms, jobs: jobs, settings: settings, logger: logger)
        manager = ManagerObject(context: context)
        tables = HandlerTables(context: context)
        managerProperties = [
            "Version": .string(ControllerVersion.version),
            "APIVersion": .uint32(ControllerVersion.apiVersion),
            "LibvirtURI": .string(libvirtURI),
            "ImageDirectory": .string(imageDirectory),
            "BackupDirectory": .string(backupDirectory),
        ]
    }

    /// Exports every object. Call before requesting the name so no call finds the name
    /// without its objects.
    public func export(libvirtConnected: Bool) async throws {
        let bus = context.bus
        try await bus.addObjectManager(at: ObjectPaths.root)
        // VMs, disks and jobs come and go by the thousand: each kind is one subtree with one
        // registration per interface, not one per object (see BusConnection.serveSubtree).
        for prefix in [ObjectPaths.vmPrefix, ObjectPaths.diskPrefix, ObjectPaths.jobPrefix] {
            try await bus.serveSubtree(prefix)
        }
        var properties = managerProperties
        properties["LibvirtConnected"] = .boolean(libvirtConnected)
        try await bus.export(path: ObjectPaths.root, interfaces: [
            try ManagerInterface.declaration.exported(manager, properties: properties, bindings: ManagerObject.bindings),
        ], announce: false)
        for view in await context.disks.views() {
            try await DiskObject.export(view, context: context, handlers: tables.disk, announce: false)
        }
        for vm in await context.vms.list() {
            try await VMObject.export(vm, context: context, handlers: tables.vm, announce: false)
        }
        try await SettingsObject.export(context: context)
    }

    /// Updates `LibvirtConnected`.
    public func setLibvirtConnected(_ connected: Bool) async {
        await context.bus.setProperties(path: ObjectPaths.root, interface: ManagerInterface.name, ["LibvirtConnected": .boolean(connected)])
    }

    /// Mirrors a change of the disks (``DiskObserver``).
    public func diskChanged(_ event: DiskEvent) async { await DiskObject.mirror(event, context: context, handlers: tables.disk) }

    /// Mirrors a change of the VMs.
    public func vmChanged(_ change: VMChange) async {
        manager.vmsChanged()
        await VMObject.mirror(change, context: context, handlers: tables.vm)
    }

    /// Mirrors a change of the jobs.
    public func jobChanged(_ change: JobChange) async { await JobObject.mirror(change, context: context, handlers: tables.job) }

    /// Mirrors the settings agent's reports.
    public func settingsEvent(_ event: SettingsAgent.Event) async { await SettingsObject.mirror(event, bus: context.bus) }
}

/// The method tables of the interfaces with one object per VM, disk or job: built once,
/// each handler making its object from the call's path.
struct HandlerTables: Sendable {
    let disk: [String: MethodHandler]
    let vm: [String: MethodHandler]
    let job: [String: MethodHandler]

    init(context: BusContext) {
        do {
            disk = try DiskInterface.declaration.handlers(DiskObject.bindings) { call in
                guard let name = ObjectPath.decode(prefix: ObjectPaths.diskPrefix, call.path) else { throw ControllerError.noSuchDisk("no disk at \(call.path)") }
                return DiskObject(name: name, context: context)
            }
            vm = try VMInterface.declaration.handlers(VMObject.bindings) { call in
                guard let uuid = ObjectPath.decode(prefix: ObjectPaths.vmPrefix, call.path) else { throw ControllerError.noSuchVM("no VM at \(call.path)") }
                return VMObject(uuid: uuid, context: context)
            }
            job = try JobInterface.declaration.handlers(JobObject.bindings) { call in
                guard let id = ObjectPaths.jobID(call.path) else { throw ControllerError.invalidArgs("no job at \(call.path)") }
                return JobObject(id: id, context: context)
            }
        } catch {
            // The bindings are static: a declaration without a handler is a programming
            // error every start-up (and every test) would meet at once.
            preconditionFailure("\(error)")
        }
    }
}

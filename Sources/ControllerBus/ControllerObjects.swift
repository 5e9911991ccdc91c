import ControllerAPI
import ControllerCore
import Logging
import SDBus
import Synchronization

/// The D-Bus face of the controller: the root Manager object, one object per VM, disk and
/// job, and the settings object, each mirroring what Core reports. The rules are Core's;
/// this layer reads arguments, authorizes and replies.
public final class ControllerObjects: CoreObserver {
    let context: BusContext
    let manager: ManagerObject
    let managerProperties: [String: DBusValue]
    /// One method table per object type, shared by every exported object of it.
    let tables: HandlerTables
    /// Each VM's name and the networks its NICs are on, for the networks' ConnectedVMs.
    private let nics = Mutex<[String: (name: String, networks: Set<String>)]>([:])

    /// The constant Manager properties come from the configuration Core was made with.
    public init(bus: BusConnection, authorizer: Authorizer, core: CoreServices, logger: Logger) {
        context = BusContext(bus: bus, authorizer: authorizer, disks: core.disks, vms: core.vms, networks: core.networks,
                             jobs: core.jobs, settings: core.settings, logger: logger)
        manager = ManagerObject(context: context)
        tables = HandlerTables(context: context)
        managerProperties = [
            "Version": .string(ControllerVersion.version),
            "APIVersion": .uint32(ControllerVersion.apiVersion),
            "LibvirtURI": .string(core.config.libvirtURI),
            "ImageDirectory": .string(core.config.imageDirectory),
            "BackupDirectory": .string(core.config.backupDirectory),
        ]
    }

    /// Exports every object. Call before requesting the name so no call finds the name
    /// without its objects.
    public func export(libvirtConnected: Bool) async throws {
        let bus = context.bus
        try await bus.addObjectManager(at: ObjectPaths.root)
        // VMs, disks and jobs come and go by the thousand: each kind is one subtree with one
        // registration per interface, not one per object (see BusConnection.serveSubtree).
        for prefix in [ObjectPaths.vmPrefix, ObjectPaths.diskPrefix, ObjectPaths.jobPrefix, ObjectPaths.networkPrefix] {
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
        for view in await context.vms.views() {
            try await VMObject.export(view, context: context, handlers: tables.vm, announce: false)
            _ = noteNICs(of: view.info)
        }
        for network in await context.networks.list() {
            try await NetworkObject.export(network, connected: connectedPaths(network.name), context: context,
                                           handlers: tables.network, announce: false)
        }
        try await SettingsObject.export(context: context)
    }

    /// Mirrors one of Core's events (``CoreObserver``).
    public func coreEvent(_ event: CoreEvent) async {
        switch event {
        case .disk(let change): await DiskObject.mirror(change, context: context, handlers: tables.disk)
        case .job(let change): await JobObject.mirror(change, context: context, handlers: tables.job)
        case .vm(let change): await vmChanged(change)
        case .network(let change): await networkChanged(change)
        case .settings(let change): await SettingsObject.mirror(change, bus: context.bus)
        case .libvirtConnected(let connected):
            await context.bus.setProperties(path: ObjectPaths.root, interface: ManagerInterface.name, ["LibvirtConnected": .boolean(connected)])
        case .appliance: break
        }
    }

    /// Mirrors a change of the VMs.
    private func vmChanged(_ change: VMEvent) async {
        manager.vmsChanged()
        await VMObject.mirror(change, context: context, handlers: tables.vm)
        let affected: Set<String>
        switch change {
        case .added(let view), .updated(let view, _): affected = noteNICs(of: view.info)
        case .removed(let uuid): affected = nics.withLock { $0.removeValue(forKey: uuid)?.networks ?? [] }
        case .ready: affected = []
        }
        guard !affected.isEmpty else { return }
        await context.bus.setProperties(interface: NetworkInterface.name, affected.sorted().map { network in
            (path: ObjectPaths.network(network), changes: ["ConnectedVMs": .objectPaths(connectedPaths(network))])
        })
    }

    /// Mirrors a change of the networks.
    private func networkChanged(_ change: NetworkChange) async {
        let name: String
        switch change {
        case .added(let info), .updated(let info): name = info.name
        case .removed(let removed): name = removed
        }
        await NetworkObject.mirror(change, connected: connectedPaths(name), context: context, handlers: tables.network)
    }

    /// Records the networks of `vm`'s NICs; returns the networks whose ConnectedVMs change.
    private func noteNICs(of vm: VMInfo) -> Set<String> {
        let networks = Set(vm.interfaces.filter { $0.type == "network" }.map(\.source))
        return nics.withLock { table -> Set<String> in
            // Only VMs with a NIC on a network are kept: most VMs of a big host cost nothing here.
            let old = networks.isEmpty ? table.removeValue(forKey: vm.uuid) : table.updateValue((vm.name, networks), forKey: vm.uuid)
            guard let old else { return networks }
            return old.name == vm.name ? old.networks.symmetricDifference(networks) : old.networks.union(networks)
        }
    }

    /// The paths of the VMs with a NIC on `network`, sorted by VM name.
    private func connectedPaths(_ network: String) -> [String] {
        nics.withLock { table in
            table.filter { $0.value.networks.contains(network) }.sorted { ($0.value.name, $0.key) < ($1.value.name, $1.key) }
                .map { ObjectPaths.vm($0.key) }
        }
    }
}

/// The method tables of the interfaces with one object per VM, disk or job: built once,
/// each handler making its object from the call's path.
struct HandlerTables: Sendable {
    let disk: [String: MethodHandler]
    let vm: [String: MethodHandler]
    let job: [String: MethodHandler]
    let network: [String: MethodHandler]

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
            network = try NetworkInterface.declaration.handlers(NetworkObject.bindings) { call in
                guard let name = ObjectPath.decode(prefix: ObjectPaths.networkPrefix, call.path) else { throw ControllerError.noSuchNetwork("no network at \(call.path)") }
                return NetworkObject(name: name, context: context)
            }
        } catch {
            // The bindings are static: a declaration without a handler is a programming
            // error every start-up (and every test) would meet at once.
            preconditionFailure("\(error)")
        }
    }
}

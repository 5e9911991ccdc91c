import ControllerAPI
import ControllerCore
import SDBus

/// `org.multiverse.Controller.Network` at `/org/multiverse/Controller/network/NAME`.
struct NetworkObject: Sendable {
    let name: String
    let context: BusContext

    static let bindings: [MethodBinding<NetworkObject>] = [
        .init(NetworkInterface.start) { try await $0.start($1) },
        .init(NetworkInterface.stop) { try await $0.stop($1) },
        .init(NetworkInterface.undefine) { try await $0.undefine($1) },
        .init(NetworkInterface.setAutostart) { try await $0.setAutostart($1) },
    ]

    var networks: NetworkService { context.networks }

    func start(_ call: BusCall) async throws -> [DBusValue] { try await lifecycle(call) { try await $0.checkStart($1) } }
    func stop(_ call: BusCall) async throws -> [DBusValue] { try await lifecycle(call) { try await $0.checkStop($1) } }
    func undefine(_ call: BusCall) async throws -> [DBusValue] { try await lifecycle(call) { try await $0.checkUndefine($1) } }

    /// Start, Stop and Undefine: no arguments but the options; check, authorize, run.
    private func lifecycle(_ call: BusCall, _ check: (NetworkService, String) async throws -> NetworkService.Plan) async throws -> [DBusValue] {
        try call.options().finish()
        let plan = try await check(networks, name)
        try await context.authorize(call, plan.details)
        try await networks.run(plan)
        return []
    }

    func setAutostart(_ call: BusCall) async throws -> [DBusValue] {
        let enabled = call.bool("enabled")
        try call.options().finish()
        // Nothing changes: no authorization needed, nothing to do.
        if try await networks.existing(name).autostart == enabled { return [] }
        let plan = try await networks.checkSetAutostart(name, enabled: enabled)
        try await context.authorize(call, plan.details)
        try await networks.run(plan)
        return []
    }

    static func properties(_ info: NetworkInfo, connected: [String]) -> [String: DBusValue] {
        ["Name": .string(info.name), "UUID": .string(info.uuid), "Kind": .string(info.kind), "Bridge": .string(info.bridge),
         "Active": .boolean(info.active), "Autostart": .boolean(info.autostart), "HostIsolated": .boolean(info.hostIsolated),
         "ConnectedVMs": .objectPaths(connected)]
    }

    static func export(_ info: NetworkInfo, connected: [String], context: BusContext, handlers: [String: MethodHandler], announce: Bool) async throws {
        try await context.bus.export(path: ObjectPaths.network(info.name), interfaces: [
            NetworkInterface.declaration.exported(properties: properties(info, connected: connected), handlers: handlers),
        ], announce: announce)
    }

    /// Mirrors a change of the network cache.
    static func mirror(_ change: NetworkChange, connected: [String], context: BusContext, handlers: [String: MethodHandler]) async {
        switch change {
        case .added(let info):
            do { try await export(info, connected: connected, context: context, handlers: handlers, announce: true) } catch {
                context.logger.error("cannot export network \(info.name): \(error)")
            }
        case .updated(let info):
            var props = properties(info, connected: connected)
            for key in ["Name", "UUID"] { props[key] = nil }
            await context.bus.setProperties(path: ObjectPaths.network(info.name), interface: NetworkInterface.name, props)
        case .removed(let name):
            await context.bus.unexport(path: ObjectPaths.network(name))
        }
    }
}

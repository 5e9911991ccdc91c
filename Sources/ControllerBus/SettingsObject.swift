import ControllerAPI
import ControllerCore
import SDBus

/// `org.multiverse.Controller.Settings` at `/org/multiverse/Controller/settings`.
struct SettingsObject: Sendable {
    let context: BusContext
    var settings: SettingsAgent { context.settings }

    static let bindings: [MethodBinding<SettingsObject>] = [
        .init(SettingsInterface.check) { try await $0.check($1) },
        .init(SettingsInterface.apply) { try await $0.apply($1) },
        .init(SettingsInterface.setEnforcing) { try await $0.setEnforcing($1) },
        .init(SettingsInterface.addUserToGroups) { try await $0.addUserToGroups($1) },
    ]

    func check(_ call: BusCall) async throws -> [DBusValue] {
        try call.options().finish()
        return [Self.statusArray(await settings.checkAll())]
    }

    func apply(_ call: BusCall) async throws -> [DBusValue] {
        let ids = call.strings("ids")
        try call.options().finish()
        let plan = try settings.checkApply(ids)
        let caller = try await context.authorize(call, plan.details)
        let results = try await settings.runApply(plan, requester: Self.requester(caller), uid: caller.uid)
        return [.array(elementSignature: "(sbs)", results.map { .structure([.string($0.id), .boolean($0.changed), .string($0.detail)]) })]
    }

    func setEnforcing(_ call: BusCall) async throws -> [DBusValue] {
        let on = call.bool("enabled")
        try call.options().finish()
        let caller = try await context.authorize(call, ["setting": "enforcing", "enabled": "\(on)"])
        try await settings.setEnforcing(on, requester: Self.requester(caller))
        return []
    }

    func addUserToGroups(_ call: BusCall) async throws -> [DBusValue] {
        let (user, groups) = (call.string("user"), call.strings("groups"))
        try call.options().finish()
        let plan = try settings.checkAddUser(user, groups: groups)
        let caller = try await context.authorize(call, plan.details)
        try await settings.runAddUser(plan, requester: Self.requester(caller))
        return []
    }

    /// Who asked, for the settings agent's log lines.
    static func requester(_ caller: Caller) -> String { "\(caller.busName) (uid \(caller.uid))" }

    static func export(context: BusContext) async throws {
        let agent = context.settings
        try await context.bus.export(path: ObjectPaths.settings, interfaces: [
            try SettingsInterface.declaration.exported(SettingsObject(context: context), properties: [
                "Enforcing": .boolean(await agent.enforcing),
                "Settings": statusArray(await agent.statuses),
                "LastCheck": .uint64(await agent.lastCheck),
            ], bindings: bindings),
        ], announce: false)
    }

    /// Forwards the agent's reports to the bus.
    static func mirror(_ event: SettingsAgent.Event, bus: BusConnection) async {
        let (path, interface) = (ObjectPaths.settings, SettingsInterface.name)
        switch event {
        case .statuses(let statuses, let lastCheck):
            await bus.setProperties(path: path, interface: interface, ["Settings": statusArray(statuses), "LastCheck": .uint64(lastCheck)])
        case .enforcing(let on):
            await bus.setProperties(path: path, interface: interface, ["Enforcing": .boolean(on)])
        case .drifted(let id, let detail):
            try? await bus.emitSignal(path: path, interface: interface, member: SettingsInterface.drifted.name, [.string(id), .string(detail)])
        case .reverted(let id, let success, let detail):
            try? await bus.emitSignal(path: path, interface: interface, member: SettingsInterface.reverted.name,
                                      [.string(id), .boolean(success), .string(detail)])
        }
    }

    static func statusArray(_ statuses: [SettingsAgent.Status]) -> DBusValue {
        .array(elementSignature: "(ssbs)", statuses.map {
            .structure([.string($0.id), .string($0.description), .boolean($0.compliant), .string($0.detail)])
        })
    }
}

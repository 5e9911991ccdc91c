import ControllerCore
import SDBus

/// The Settings object: `/org/multiverse/Controller/settings`.
extension ControllerService {
    func exportSettings() async throws {
        let agent = settings
        try await bus.export(path: ObjectPaths.settings, interfaces: [
            ExportedInterface(Interfaces.settings, properties: [
                "Enforcing": .boolean(await agent.enforcing),
                "Settings": Self.statusArray(await agent.statuses),
                "LastCheck": .uint64(await agent.lastCheck),
            ], handler: { [self] call in try await handleSettings(call) }),
        ], announce: false)
    }

    /// Forwards the agent's reports to the bus.
    public func settingsEvent(_ event: SettingsAgent.Event) async {
        let path = ObjectPaths.settings
        let interface = Interfaces.settings.name
        switch event {
        case .statuses(let statuses, let lastCheck):
            await bus.setProperties(path: path, interface: interface,
                                    ["Settings": Self.statusArray(statuses), "LastCheck": .uint64(lastCheck)])
        case .enforcing(let on):
            await bus.setProperties(path: path, interface: interface, ["Enforcing": .boolean(on)])
        case .drifted(let id, let detail):
            try? await bus.emitSignal(path: path, interface: interface, member: "Drifted", [.string(id), .string(detail)])
        case .reverted(let id, let success, let detail):
            try? await bus.emitSignal(path: path, interface: interface, member: "Reverted",
                                      [.string(id), .boolean(success), .string(detail)])
        }
    }

    static func statusArray(_ statuses: [SettingsAgent.Status]) -> DBusValue {
        .array(elementSignature: "(ssbs)", statuses.map {
            .structure([.string($0.id), .string($0.description), .boolean($0.compliant), .string($0.detail)])
        })
    }

    private func handleSettings(_ call: MethodCall) async throws -> [DBusValue] {
        let args = Arguments(call: call)
        switch call.member {
        case "Check":
            try args.options(0).finish()
            return [Self.statusArray(await settings.checkAll())]
        case "Apply":
            let ids = args.strings(0)
            try args.options(1).finish()
            let known = settings.settings.map(\.id)
            for id in ids where !known.contains(id) {
                throw ControllerError.invalidArgs("unknown setting \(DiskName.quoted(id)) (known: \(known.joined(separator: ", ")))")
            }
            let caller = try await callers.caller(for: call)
            try await authorizer.authorize(caller, .settingsModify,
                                           details: ["setting": ids.isEmpty ? "all" : ids.joined(separator: ",")])
            let results = try await settings.apply(ids, requester: Self.requester(caller))
            return [.array(elementSignature: "(sbs)", results.map {
                .structure([.string($0.id), .boolean($0.changed), .string($0.detail)])
            })]
        case "SetEnforcing":
            let on = args.bool(0)
            try args.options(1).finish()
            let caller = try await callers.caller(for: call)
            try await authorizer.authorize(caller, .settingsModify, details: ["setting": "enforcing", "enabled": "\(on)"])
            try await settings.setEnforcing(on, requester: Self.requester(caller))
            return []
        case "AddUserToGroups":
            let user = args.string(0)
            let groups = args.strings(1)
            try args.options(2).finish()
            let resolved = try await settings.validateAddUser(user, groups: groups)
            let caller = try await callers.caller(for: call)
            try await authorizer.authorize(caller, .settingsModify,
                                           details: ["user": user, "groups": groups.joined(separator: ",")])
            _ = try await settings.addUser(user, to: resolved, requester: Self.requester(caller))
            return []
        default:
            throw ControllerError.notSupported("\(call.member) is not implemented")
        }
    }

    static func requester(_ caller: Caller) -> String {
        "\(caller.busName) (uid \(caller.uid))"
    }
}

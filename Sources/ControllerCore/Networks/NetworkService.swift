import Logging

/// Every rule of the virtual networks. As in ``VMService``, each operation is a `check…`
/// (every rule, no side effect, a plan whose `details` go to the authorization) and a
/// `run…`. Which VMs use a network comes from the VM cache (their NICs).
public final class NetworkService: Sendable {
    let networks: NetworkManager
    let vms: VMManager
    let logger: Logger

    public init(networks: NetworkManager, vms: VMManager, logger: Logger) {
        self.networks = networks
        self.vms = vms
        self.logger = logger
    }

    // MARK: reading

    public func list() async -> [NetworkInfo] { await networks.list() }

    /// `InvalidArgs` naming the value unless `name` follows the network name rule.
    public static func validateName(_ name: String) throws { try NameRule.network.validate(name) }

    /// The network named `name`: `InvalidArgs` for a bad name, `NoSuchNetwork` when absent.
    public func find(_ name: String) async throws -> NetworkInfo {
        try Self.validateName(name)
        guard let info = await networks.network(named: name) else { throw ControllerError.noSuchNetwork("no network named \(name)") }
        return info
    }

    /// The network of an exported object (`NoSuchNetwork` when it went away meanwhile).
    public func existing(_ name: String) async throws -> NetworkInfo {
        guard let info = await networks.network(named: name) else { throw ControllerError.noSuchNetwork("network \(name) no longer exists") }
        return info
    }

    /// The VMs with a NIC on each network, by network name, sorted by VM name.
    public func connectedVMs() async -> [String: [VMInfo]] {
        var result: [String: [VMInfo]] = [:]
        for vm in await vms.list() {
            for name in Set(vm.interfaces.filter { $0.type == "network" }.map(\.source)) { result[name, default: []].append(vm) }
        }
        return result
    }

    /// Running VMs with a NIC on `name`.
    func activeUsers(of name: String) async -> [VMInfo] {
        await vms.list().filter { vm in vm.state.isActive && vm.interfaces.contains { $0.type == "network" && $0.source == name } }
    }

    // MARK: define

    /// What DefineNetwork asks for, as read from the call.
    public struct DefineRequest: Sendable {
        public var name: String
        public var kind: String
        public var ipv4: String?
        public var dhcp: Bool?
        public var bridge: String?
        public var autostart: Bool?
        public var start: Bool?
        public init(name: String, kind: String) { self.name = name; self.kind = kind }
    }

    public struct DefinePlan: Sendable {
        public let spec: NetworkXML.Spec
        public let autostart: Bool
        public let start: Bool
        public var details: [String: String] { ["network": spec.name, "operation": "define", "kind": spec.kind.rawValue] }
    }

    public func checkDefine(_ request: DefineRequest) async throws -> DefinePlan {
        try Self.validateName(request.name)
        guard let kind = NetworkXML.Kind(rawValue: request.kind) else {
            throw ControllerError.invalidArgs("unknown network kind \(CallerText.quoted(request.kind)) (isolated or nat)")
        }
        var spec = NetworkXML.Spec(name: request.name, kind: kind, ipv4: nil, dhcp: false, bridge: nil)
        switch kind {
        case .isolated:
            // No <ip>: the host has no address on the link, so there is nothing to serve DHCP.
            if let ipv4 = request.ipv4 { throw ControllerError.invalidArgs("ipv4 \(CallerText.quoted(ipv4)) is not allowed on an isolated network: the host has no address on it") }
            if request.dhcp != nil { throw ControllerError.invalidArgs("dhcp is not allowed on an isolated network: it has no host address to serve it from") }
        case .nat:
            guard let text = request.ipv4 else { throw ControllerError.invalidArgs("a nat network needs ipv4 (the host's address and prefix, e.g. 10.10.0.1/24)") }
            guard let cidr = NetworkXML.IPv4CIDR(text) else {
                throw ControllerError.invalidArgs("ipv4 \(CallerText.quoted(text)) is not an IPv4 host address with a prefix of 8 to 30, e.g. 10.10.0.1/24")
            }
            spec.ipv4 = cidr
            spec.dhcp = request.dhcp ?? true
            if spec.dhcp, cidr.dhcpRange == nil { throw ControllerError.invalidArgs("ipv4 \(text) leaves no addresses for DHCP") }
        }
        if let bridge = request.bridge {
            guard Self.isBridgeName(bridge) else {
                throw ControllerError.invalidArgs("invalid bridge name \(CallerText.quoted(bridge)): 1-15 characters of A-Z a-z 0-9 . _ -, not starting with '-' or '.'")
            }
            spec.bridge = bridge
        }
        if await networks.network(named: request.name) != nil {
            throw ControllerError.alreadyExists("a network named \(request.name) exists")
        }
        return DefinePlan(spec: spec, autostart: request.autostart ?? true, start: request.start ?? true)
    }

    /// A Linux interface name: at most 15 bytes, no '/', no spaces; kept to a safe set here.
    static func isBridgeName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...15).contains(bytes.count), bytes[0] != UInt8(ascii: "-"), bytes[0] != UInt8(ascii: ".") else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)) }
    }

    /// Defines the network, sets its autostart flag and starts it. When a step after the
    /// definition fails, the definition is removed again: nothing half-made stays.
    public func runDefine(_ plan: DefinePlan) async throws -> NetworkInfo {
        let spec = plan.spec
        let xml = NetworkXML.build(spec)
        try await networks.perform(spec.name, "define network \(spec.name)") { _ = try $0.defineNetwork(xml: xml) }
        do {
            if plan.autostart {
                try await networks.perform(spec.name, "set autostart of network \(spec.name)") { try $0.network(named: spec.name)?.setAutostart(true) }
            }
            if plan.start {
                try await networks.perform(spec.name, "start network \(spec.name)") { try $0.network(named: spec.name)?.start() }
            }
        } catch {
            logger.warning("network \(spec.name): \(error); removing its definition again")
            _ = try? await networks.perform(spec.name, "undefine network \(spec.name)") { try $0.network(named: spec.name)?.undefine() }
            throw error
        }
        logger.notice("defined network \(spec.name) (\(spec.kind.rawValue)\(spec.bridge.map { ", bridge \($0)" } ?? ""))")
        return try await existing(spec.name)
    }

    // MARK: lifecycle

    /// What a network's lifecycle call does.
    public enum Operation: Sendable, Equatable {
        case start, stop, undefine
        case setAutostart(Bool)

        /// Its name in polkit's details and the log.
        public var name: String {
            switch self {
            case .start: "start"
            case .stop: "stop"
            case .undefine: "undefine"
            case .setAutostart: "autostart"
            }
        }
    }

    /// A checked Start, Stop, Undefine or SetAutostart.
    public struct Plan: Sendable {
        public let network: String
        public let operation: Operation
        public var details: [String: String] {
            var d = ["network": network, "operation": operation.name]
            if case .setAutostart(let enabled) = operation { d["enabled"] = enabled ? "true" : "false" }
            return d
        }
    }

    public func checkStart(_ name: String) async throws -> Plan {
        let info = try await existing(name)
        guard !info.active else { throw ControllerError.invalidState("network \(name) is already active") }
        return Plan(network: name, operation: .start)
    }

    public func checkStop(_ name: String) async throws -> Plan {
        let info = try await existing(name)
        guard info.active else { throw ControllerError.invalidState("network \(name) is not active") }
        try await refuseWhileUsed(name, "stopped")
        return Plan(network: name, operation: .stop)
    }

    public func checkUndefine(_ name: String) async throws -> Plan {
        _ = try await existing(name)
        try await refuseWhileUsed(name, "undefined")
        return Plan(network: name, operation: .undefine)
    }

    public func checkSetAutostart(_ name: String, enabled: Bool) async throws -> Plan {
        _ = try await existing(name)
        return Plan(network: name, operation: .setAutostart(enabled))
    }

    private func refuseWhileUsed(_ name: String, _ what: String) async throws {
        let users = await activeUsers(of: name)
        if !users.isEmpty {
            throw ControllerError.busy("network \(name) cannot be \(what) while running VMs use it: \(users.map(\.name).sorted().joined(separator: ", "))")
        }
    }

    public func run(_ plan: Plan) async throws {
        let name = plan.network
        switch plan.operation {
        case .start:
            try await networks.perform(name, "start network \(name)") { try $0.network(named: name)?.start() }
        case .stop:
            try await networks.perform(name, "stop network \(name)") { try $0.network(named: name)?.stop() }
        case .undefine:
            try await networks.perform(name, "undefine network \(name)") { connection in
                guard let network = try connection.network(named: name) else { return }
                if network.isActive { try network.stop() }
                try network.undefine()
            }
        case .setAutostart(let enabled):
            try await networks.perform(name, "set autostart of network \(name)") { try $0.network(named: name)?.setAutostart(enabled) }
        }
        var said = plan.operation.name
        if case .setAutostart(let enabled) = plan.operation { said += " \(enabled)" }
        logger.notice("network \(name): \(said)")
    }
}

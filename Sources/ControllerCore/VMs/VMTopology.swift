/// What a VM is in the Multiverse topology: a router owns the uplink; interface
/// controllers and app VMs reach the outside only through a router, over the internal
/// network the host has no address on.
public enum VMRole: String, Sendable, CaseIterable {
    /// A network (router) controller: NIC 1 on the uplink, NIC 2 on the internal network.
    case router = "network-controller"
    /// An interface controller: where the person works; one NIC on the internal network.
    case interfaceController = "interface-controller"
    /// An application VM: one NIC on the internal network.
    case app

    /// The role of a VM whose metadata names `profile` (unknown or empty: app).
    public static func of(profile: String, in profiles: [VMProfile]) -> VMRole {
        profiles.first { $0.name == profile }?.role ?? .app
    }
}

/// Where one NIC is connected, as the API and the configuration spell it: `network:NAME`
/// (a libvirt network; a plain `NAME` means the same), `bridge:BR` (a host bridge) or
/// `direct:DEV` (macvtap on a host NIC).
public enum NICSource: Sendable, Equatable, CustomStringConvertible {
    case network(String)
    case bridge(String)
    case direct(String)

    /// Parses `text`; `InvalidArgs` naming it when it is none of the three forms or the
    /// name breaks its rules (network names as disk names, host interface names 1–15
    /// characters of A-Z a-z 0-9 . _ -).
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let (kind, name) = parts.count == 2 ? (parts[0], parts[1]) : ("network", text)
        switch kind {
        case "network":
            guard NameRule.network.isValid(name) else { throw ControllerError.invalidArgs("invalid network name \(CallerText.quoted(name)) in \(CallerText.quoted(text))") }
            self = .network(name)
        case "bridge", "direct":
            guard NetworkService.isBridgeName(name) else {
                throw ControllerError.invalidArgs("invalid host interface \(CallerText.quoted(name)) in \(CallerText.quoted(text)): 1-15 characters of A-Z a-z 0-9 . _ -")
            }
            self = kind == "bridge" ? .bridge(name) : .direct(name)
        default:
            throw ControllerError.invalidArgs("\(CallerText.quoted(text)) is not network:NAME, bridge:BR or direct:DEV")
        }
    }

    /// The source as a VM's `Interfaces` shows it: libvirt's interface type and name.
    public init?(_ nic: VMInterface) {
        switch nic.type {
        case "network": self = .network(nic.source)
        case "bridge": self = .bridge(nic.source)
        case "direct": self = .direct(nic.source)
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .network(let n): return "network:\(n)"
        case .bridge(let b): return "bridge:\(b)"
        case .direct(let d): return "direct:\(d)"
        }
    }

    /// The libvirt network it names, if any.
    public var networkName: String? {
        if case .network(let n) = self { return n }
        return nil
    }
}

/// One NIC the service writes: where it goes and, when the caller gave one, its MAC
/// (otherwise libvirt picks one).
public struct NICSpec: Sendable, Equatable {
    public var source: NICSource
    public var mac: String?

    public init(source: NICSource, mac: String? = nil) {
        self.source = source
        self.mac = mac
    }
}

/// The `[vms]` topology rules: which NICs a VM of each role gets, and which it may have.
public struct VMTopology: Sendable {
    public let uplink: NICSource
    public let internalNetwork: String
    public let enforce: Bool

    public init(_ config: VMConfig) {
        uplink = config.uplink
        internalNetwork = config.internalNetwork
        enforce = config.enforceTopology
    }

    /// The NICs of a new VM. Precedence: DefineVM's `networks` > the profile file's >
    /// the role's wiring from `[vms]` (a router: uplink, then the internal network; the
    /// others: the internal network).
    public func sources(role: VMRole, profileNetworks: [String]?, requested: [String]?) throws -> [NICSource] {
        if let given = requested ?? profileNetworks {
            try Self.checkNICCount(given.count)
            return try given.map(NICSource.init(parsing:))
        }
        switch role {
        case .router: return [uplink, .network(internalNetwork)]
        case .interfaceController, .app: return [.network(internalNetwork)]
        }
    }

    /// `InvalidArgs` naming the NIC when `role` may not have it: with `enforce`, an
    /// interface controller or app VM may only be on isolated networks (no host address,
    /// no forward: nat, routed, bridged and host-only networks are refused) and never on
    /// the uplink or a bridge/direct interface. `kinds` has each libvirt network's kind
    /// (``NetworkInfo/kind``); the internal network may be missing (it is created isolated).
    public func check(_ nics: [NICSource], role: VMRole, vm: String, kinds: [String: String]) throws {
        // A bridge or macvtap names a host device: only a router's uplink may, whatever
        // enforce_topology says (a grant of vm.configure is not a grant of the host's NICs).
        for (index, nic) in nics.enumerated() {
            switch nic {
            case .bridge, .direct:
                guard role == .router, nic == uplink else {
                    throw ControllerError.invalidArgs("""
                        NIC \(index + 1) (\(nic)) of \(role.rawValue) VM \(vm): cannot have a bridge or direct interface (it names a \
                        host device) but a network-controller's uplink ([vms] uplink = \(uplink)) may
                        """)
                }
            case .network: continue
            }
        }
        guard enforce, role != .router else { return }
        for (index, nic) in nics.enumerated() {
            let what = "NIC \(index + 1) (\(nic)) of \(role.rawValue) VM \(vm)"
            let rule = "[vms] enforce_topology: only a network-controller reaches outside"
            switch nic {
            case .bridge, .direct:
                continue   // refused above
            case .network(let name):
                if nic == uplink {
                    throw ControllerError.invalidArgs("\(what): \(name) is the uplink ([vms] uplink); \(rule)")
                }
                if let kind = kinds[name], kind != "isolated" {
                    throw ControllerError.invalidArgs("\(what): network \(name) is of kind \(kind); an interface controller or app VM may only be on isolated networks (\(rule))")
                }
            }
        }
    }

    /// The most NICs a VM may have: bounds the networks looked up for one define.
    public static let maxNICs = 16

    static func checkNICCount(_ count: Int) throws {
        guard count <= maxNICs else { throw ControllerError.limitsExceeded("\(count) NICs given; a VM has at most \(maxNICs)") }
    }

    /// `InvalidArgs` naming the value unless each of `macs` is a unicast MAC `xx:xx:xx:xx:xx:xx`
    /// (not all zeros), no more than `nics` of them, none twice and none another VM's.
    public static func checkMACs(_ macs: [String], nics: Int, others: [VMInfo]) throws -> [String] {
        guard macs.count <= nics else { throw ControllerError.invalidArgs("macs: \(macs.count) MACs for \(nics) NIC(s)") }
        var seen: Set<String> = []
        return try macs.map { text in
            let mac = text.lowercased()
            let octets = mac.split(separator: ":", omittingEmptySubsequences: false)
            guard octets.count == 6, octets.allSatisfy({ $0.utf8.count == 2 && UInt8($0, radix: 16) != nil }) else {
                throw ControllerError.invalidArgs("MAC \(CallerText.quoted(text)) is not six hex octets such as 52:54:00:12:34:56")
            }
            guard let first = UInt8(octets[0], radix: 16), first & 1 == 0, mac != "00:00:00:00:00:00" else {
                throw ControllerError.invalidArgs("MAC \(CallerText.quoted(text)) is a multicast or zero address; a NIC needs a unicast MAC")
            }
            guard seen.insert(mac).inserted else { throw ControllerError.invalidArgs("MAC \(mac) is given twice") }
            if let owner = others.first(where: { $0.interfaces.contains { $0.mac.lowercased() == mac } }) {
                throw ControllerError.invalidArgs("MAC \(mac) is already a NIC of VM \(owner.name)")
            }
            return mac
        }
    }
}

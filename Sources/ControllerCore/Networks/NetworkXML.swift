import HostSystem

/// The network XML the service writes and reads. Built as a tree (``XElement``), never by
/// pasting strings, like the domain XML.
public enum NetworkXML {
    /// An IPv4 address with its prefix length, as in `10.10.0.1/24`.
    public struct IPv4CIDR: Sendable, Equatable {
        public let address: UInt32
        public let prefix: Int

        /// Parses `a.b.c.d/p` with p from 8 to 30 (a subnet with room for guests); the address
        /// must be a host of the subnet (neither its network nor its broadcast address).
        public init?(_ text: String) {
            let parts = text.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[1].isEmpty, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }),
                  let prefix = Int(parts[1]), (8...30).contains(prefix) else { return nil }
            let octets = parts[0].split(separator: ".", omittingEmptySubsequences: false)
            guard octets.count == 4 else { return nil }
            var address: UInt32 = 0
            for octet in octets {
                guard !octet.isEmpty, octet.count <= 3, octet.allSatisfy({ $0.isASCII && $0.isNumber }),
                      let value = UInt32(octet), value <= 255, !(octet.count > 1 && octet.hasPrefix("0")) else { return nil }
                address = address << 8 | value
            }
            let mask: UInt32 = prefix == 0 ? 0 : ~UInt32(0) << (32 - prefix)
            let host = address & ~mask
            guard host != 0, host != ~mask else { return nil }
            self.address = address
            self.prefix = prefix
        }

        var mask: UInt32 { ~UInt32(0) << (32 - prefix) }
        var network: UInt32 { address & mask }
        var broadcast: UInt32 { network | ~mask }

        static func dotted(_ value: UInt32) -> String {
            "\(value >> 24).\(value >> 16 & 255).\(value >> 8 & 255).\(value & 255)"
        }

        /// The DHCP range: every other host address of the subnet, from the first after the
        /// host's own address's network to the last before the broadcast address.
        var dhcpRange: (start: String, end: String)? {
            let first = network + 1 == address ? network + 2 : network + 1
            let last = broadcast - 1 == address ? broadcast - 2 : broadcast - 1
            guard first <= last else { return nil }
            return (Self.dotted(first), Self.dotted(last))
        }
    }

    /// The kinds of network DefineNetwork makes.
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        /// A link among guests only: no address of the host's, no forwarding.
        case isolated
        /// A host address, DHCP and NAT to the host's uplinks.
        case nat
    }

    /// What DefineNetwork writes.
    public struct Spec: Sendable, Equatable {
        public var name: String
        public var kind: Kind
        public var ipv4: IPv4CIDR?
        public var dhcp: Bool
        public var bridge: String?
    }

    static func element(_ name: String, _ attributes: [(String, String)] = [], _ children: [XElement] = []) -> XElement {
        DomainXML.element(name, nil, attributes, children)
    }

    /// The `<network>` document of `spec`: isolated has neither `<forward>` nor `<ip>`.
    public static func build(_ spec: Spec) -> String {
        var children = [DomainXML.element("name", spec.name)]
        if let bridge = spec.bridge {
            children.append(element("bridge", [("name", bridge), ("stp", "on"), ("delay", "0")]))
        }
        if spec.kind == .nat, let ip = spec.ipv4 {
            children.append(element("forward", [("mode", "nat")]))
            var ipChildren: [XElement] = []
            if spec.dhcp, let range = ip.dhcpRange {
                ipChildren.append(element("dhcp", [], [element("range", [("start", range.start), ("end", range.end)])]))
            }
            children.append(element("ip", [("address", IPv4CIDR.dotted(ip.address)), ("prefix", String(ip.prefix))], ipChildren))
        }
        return element("network", [], children).xmlString
    }

    /// The kind and bridge of a network as libvirt describes it.
    public static func read(_ xml: String) throws -> (kind: String, bridge: String) {
        let network = try XElement.parse(xml)
        guard network.name == "network" else { throw ControllerError.invalidArgs("not a <network> document") }
        let bridge = network.first("bridge")?.attribute("name") ?? ""
        if let forward = network.first("forward") {
            return (forward.attribute("mode") ?? "nat", bridge)
        }
        return (network.first("ip") == nil ? "isolated" : "host-only", bridge)
    }
}

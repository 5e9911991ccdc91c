import HostSystem
import FoundationEssentials

/// Keeps the host's own network stack out of an isolated network's bridge.
///
/// A bridge with no address still belongs to the host kernel: with Linux's defaults it
/// answers ARP on it for every address the host has elsewhere (seen from a real guest on
/// the internal link: the uplink's and virbr0's addresses resolved to the bridge's MAC),
/// takes the packets a guest then sends to them, and routes them on when the host forwards
/// (libvirt turns ip_forward on). On the internal link of Multiverse OS nothing may reach
/// the host, so for each running isolated network the service sets, for its bridge:
///
/// - `net.ipv4.conf.BRIDGE.arp_ignore = 8`: no ARP answer for any host address;
/// - `net.ipv4.conf.BRIDGE.forwarding = 0`: nothing arriving on it is routed anywhere;
/// - `net.ipv4.conf.BRIDGE.rp_filter = 1`: strict reverse-path filter (a source the host
///   does not route back over the bridge, i.e. every source, is dropped; the kernel uses the
///   larger of this and `conf.all`, so a host-wide loose `2` weakens it to loose);
/// - `net.ipv6.conf.BRIDGE.disable_ipv6 = 1`: no link-local address, no neighbour answers.
///
/// The values are read back after writing; ``Outcome/held`` says whether all of them hold.
public struct HostBridgeSeal: Sendable {
    /// (path below /proc/sys with BRIDGE for the bridge's name, value).
    public static let settings: [(path: String, value: String)] = [
        ("net/ipv4/conf/BRIDGE/arp_ignore", "8"),
        ("net/ipv4/conf/BRIDGE/forwarding", "0"),
        ("net/ipv4/conf/BRIDGE/rp_filter", "1"),
        ("net/ipv6/conf/BRIDGE/disable_ipv6", "1"),
    ]

    /// What one ``apply(_:)`` did.
    public struct Outcome: Sendable, Equatable {
        /// Every setting has its value now.
        public var held: Bool
        /// The settings written (sysctl names with their new values), empty when all held already.
        public var changed: [String]
        /// Why a setting could not be read or written (empty when none failed).
        public var failures: [String]

        public init(held: Bool, changed: [String], failures: [String]) {
            self.held = held
            self.changed = changed
            self.failures = failures
        }
    }

    /// Where the sysctl tree is (`/proc/sys`).
    public let root: String

    public init(root: String = "/proc/sys") { self.root = root }

    /// The sysctl name of `path` for `bridge` (`net.ipv4.conf.virbr1.arp_ignore`).
    public static func sysctlName(_ path: String, _ bridge: String) -> String { expand(path, bridge, joinedBy: ".") }

    /// `path` with its BRIDGE component replaced by `bridge`, its components joined by `separator`.
    static func expand(_ path: String, _ bridge: String, joinedBy separator: String) -> String {
        path.split(separator: "/").map { $0 == "BRIDGE" ? bridge : String($0) }.joined(separator: separator)
    }

    /// Whether `bridge` is a bridge device of this host (sysfs has its bridge folder).
    public static func isHostBridge(_ bridge: String, sysfs: String = "/sys/class/net") -> Bool {
        guard NetworkService.isBridgeName(bridge) else { return false }
        return Files.status("\(sysfs)/\(bridge)/bridge", followingLinks: true)?.kind == .directory
    }

    /// Sets every value that differs, then reads all back.
    public func apply(_ bridge: String) -> Outcome {
        var outcome = Outcome(held: true, changed: [], failures: [])
        guard NetworkService.isBridgeName(bridge) else {
            return Outcome(held: false, changed: [], failures: ["invalid bridge name \(bridge)"])
        }
        for (path, value) in Self.settings {
            let file = root + "/" + Self.expand(path, bridge, joinedBy: "/")
            let name = Self.sysctlName(path, bridge)
            if Self.read(file) == value { continue }
            if let error = Self.write(file, value) {
                outcome.failures.append("\(name): \(error)")
            } else {
                outcome.changed.append("\(name)=\(value)")
            }
            if Self.read(file) != value { outcome.held = false }
        }
        if !outcome.failures.isEmpty { outcome.held = false }
        return outcome
    }

    static func read(_ file: String) -> String? {
        guard let bytes = Files.head(file, count: 64), !bytes.isEmpty else { return nil }
        return String(decoding: bytes.prefix { $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: " ") }, as: UTF8.self)
    }

    /// nil on success, else the error.
    static func write(_ file: String, _ value: String) -> String? {
        do { try Files.writeInPlace(file, value + "\n") } catch { return systemMessage(error.code) }
        return nil
    }
}

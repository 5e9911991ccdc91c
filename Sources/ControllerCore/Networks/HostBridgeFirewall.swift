import FoundationEssentials
import HostSystem

/// The nftables rules that keep the host out of the running isolated networks' bridges,
/// next to ``HostBridgeSeal``'s sysctls: the sysctls stop ARP answers and routing, the
/// rules drop what still arrives.
///
/// The service owns two tables named ``table``: in `inet`, an input chain that drops
/// everything arriving from an isolated bridge and a forward chain that drops what would
/// leave it for another interface (`iifname BR oifname != BR`: guests on the link still
/// reach each other, also through br_netfilter); in `arp` (ARP is not part of `inet`), an
/// input chain that drops ARP from the bridge. A drop in any base chain is final, so the
/// rules hold next to libvirt's own iptables-nft rules whatever those accept. The tables are
/// replaced in one `nft -f` transaction whenever the set of bridges changes, and re-checked
/// (and re-applied) every ``checkInterval``: Debian's `/etc/nftables.conf` starts with
/// `flush ruleset`, so restarting nftables.service removes them.
public struct HostBridgeFirewall: Sendable {
    public static let table = "multiverse_isolation"
    /// How often the tables are compared with what they should be while any isolated
    /// network runs.
    public static let checkInterval: Duration = .seconds(10)

    /// The `nft` program.
    public let nft: String

    public init(nft: String = "/usr/sbin/nft") { self.nft = nft }

    /// An `nft -f` script that replaces both tables with the rules for `bridges` (valid
    /// bridge names), or removes them when there are none. Creating each table first makes
    /// the deletion succeed whether or not it existed.
    public static func script(_ bridges: [String]) -> String {
        var s = ""
        for family in ["inet", "arp"] { s += "table \(family) \(table)\ndelete table \(family) \(table)\n" }
        guard !bridges.isEmpty else { return s }
        let quoted = bridges.sorted().map { "\"\($0)\"" }
        s += "table inet \(table) {\n"
        s += "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n"
        for b in quoted { s += "\t\tiifname \(b) drop\n" }
        s += "\t}\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n"
        for b in quoted { s += "\t\tiifname \(b) oifname != \(b) drop\n" }
        s += "\t}\n}\n"
        s += "table arp \(table) {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n"
        for b in quoted { s += "\t\tiifname \(b) drop\n" }
        s += "\t}\n}\n"
        return s
    }

    /// The rule lines `nft list table` prints for `bridges`, per family, sorted.
    static func expectedRules(_ bridges: [String]) -> (inet: [String], arp: [String]) {
        let quoted = bridges.sorted().map { "\"\($0)\"" }
        let inet = quoted.map { "iifname \($0) drop" } + quoted.map { "iifname \($0) oifname != \($0) drop" }
        return (inet.sorted(), quoted.map { "iifname \($0) drop" }.sorted())
    }

    /// The rule lines of an `nft list table` listing (what starts with `iifname`), sorted.
    static func rules(inListing listing: String) -> [String] {
        listing.split(separator: "\n").map { String($0.drop { $0 == " " || $0 == "\t" }) }.filter { $0.hasPrefix("iifname ") }.sorted()
    }

    /// Replaces the tables with the rules for `bridges` in one transaction.
    public func apply(_ bridges: [String]) async throws {
        for b in bridges where !NetworkService.isBridgeName(b) {
            throw ControllerError.invalidArgs("invalid bridge name \(CallerText.quoted(b))")
        }
        let r = try await ChildProcess.run(nft, ["-f", "-"], input: Self.script(bridges))
        guard r.status == 0 else {
            throw ControllerError.io("nft -f of table \(Self.table) failed (exit \(r.status)): \(r.stderrExcerpt)")
        }
    }

    /// Whether the host's tables hold exactly the rules for `bridges` now (an absent table
    /// holds for an empty set only).
    public func holds(_ bridges: [String]) async -> Bool {
        let expected = Self.expectedRules(bridges)
        for (family, rules) in [("inet", expected.inet), ("arp", expected.arp)] {
            guard let r = try? await ChildProcess.run(nft, ["list", "table", family, Self.table]) else { return false }
            if r.status != 0 {
                if !rules.isEmpty { return false }
                continue
            }
            if Self.rules(inListing: r.stdout) != rules { return false }
        }
        return true
    }
}

import HostSystem

/// The users and groups of `/etc/passwd` and `/etc/group` below a host root.
public struct GroupDatabase: Sendable {
    public struct Group: Sendable {
        public let name: String
        public let gid: String
        public let members: [String]
    }
    /// user name → primary gid
    public let users: [String: String]
    public let groups: [String: Group]

    public init(passwd: String, group: String) {
        var users: [String: String] = [:]
        for line in passwd.split(separator: "\n") where !line.hasPrefix("#") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            if f.count >= 4 { users[String(f[0])] = String(f[3]) }
        }
        var groups: [String: Group] = [:]
        for line in group.split(separator: "\n") where !line.hasPrefix("#") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count >= 4 else { continue }
            let members = f[3].split(separator: ",").map { String($0) }
            groups[String(f[0])] = Group(name: String(f[0]), gid: String(f[2]), members: members)
        }
        self.users = users
        self.groups = groups
    }

    /// Reads both files below `root`.
    public static func load(_ root: HostRoot) throws -> GroupDatabase {
        guard let passwd = try root.read("/etc/passwd") else { throw SystemError.io("/etc/passwd is missing") }
        guard let group = try root.read("/etc/group") else { throw SystemError.io("/etc/group is missing") }
        return GroupDatabase(passwd: passwd, group: group)
    }

    /// The group actually present for a configured name: `libvirt-dbus` falls back to
    /// Debian's `libvirtdbus`.
    public func resolve(_ name: String) -> Group? {
        if let g = groups[name] { return g }
        if name == "libvirt-dbus" { return groups["libvirtdbus"] }
        return nil
    }

    /// True when `user` is a member of `group`, supplementary or primary.
    public func isMember(_ user: String, of group: Group) -> Bool {
        group.members.contains(user) || users[user] == group.gid
    }
}

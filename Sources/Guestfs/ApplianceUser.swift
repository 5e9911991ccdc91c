import Glibc

/// The unprivileged account appliance helpers run as (the package's `multiverse-guestfs`,
/// in group `kvm` for /dev/kvm), looked up when a helper starts.
public struct ApplianceUser: Sendable, Equatable {
    public let name: String
    public let uid: uid_t
    public let gid: gid_t
    /// Supplementary groups: `kvm` where the host has it.
    public let groups: [gid_t]

    /// Looks `name` up in the user database; nil when there is no such user.
    public static func lookUp(_ name: String) -> ApplianceUser? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16 << 10)
        guard getpwnam_r(name, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        var groups: [gid_t] = []
        var group = Glibc.group()
        var groupResult: UnsafeMutablePointer<Glibc.group>?
        if getgrnam_r("kvm", &group, &buffer, buffer.count, &groupResult) == 0, groupResult != nil {
            groups.append(group.gr_gid)
        }
        return ApplianceUser(name: name, uid: entry.pw_uid, gid: entry.pw_gid, groups: groups)
    }
}

/// The syntax of a name a caller gives something the service keeps (a disk, a VM, a
/// network, a snapshot, a share's tag): 1…`maxLength` bytes of `A-Z a-z 0-9 . _ -`, not
/// starting with `.` or `-`. Such a name is one path component in a directory of the
/// service, carries no XML, shell or option syntax and reads as itself in a log line. Each
/// kind of name has its own rule value (its word in messages, its length), so a change of
/// one kind's rule is made in one place and touches no other kind.
public struct NameRule: Sendable {
    /// What the name names, for messages ("disk", "network").
    public let what: String
    public let maxLength: Int

    init(_ what: String, maxLength: Int) {
        self.what = what
        self.maxLength = maxLength
    }

    /// A managed disk: the regular file `ImageDirectory/NAME`.
    public static let disk = NameRule("disk", maxLength: 64)
    /// A VM (libvirt's domain name).
    public static let vm = NameRule("VM", maxLength: 64)
    /// A libvirt virtual network.
    public static let network = NameRule("network", maxLength: 64)
    /// An internal snapshot of a VM's disks.
    public static let snapshot = NameRule("snapshot", maxLength: 64)
    /// A 9p mount tag (the guest's mount source; virtio-9p allows 31 bytes).
    public static let shareTag = NameRule("share tag", maxLength: 31)

    /// True when `name` follows the rule.
    public func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...maxLength).contains(bytes.count), bytes[0] != UInt8(ascii: "."), bytes[0] != UInt8(ascii: "-") else { return false }
        return bytes.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
                || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
        }
    }

    /// What a valid name looks like, for messages.
    public var description: String {
        "1-\(maxLength) characters of A-Z a-z 0-9 . _ -, not starting with '.' or '-'"
    }

    /// Throws `InvalidArgs` naming the value when `name` does not follow the rule.
    public func validate(_ name: String) throws {
        guard isValid(name) else {
            throw ControllerError.invalidArgs("invalid \(what) name \(CallerText.quoted(name)): use \(description)")
        }
    }
}

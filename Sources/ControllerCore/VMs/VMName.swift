/// Rules for VM names: 1–64 of `[A-Za-z0-9._-]`, not starting with `.` or `-` (the same
/// alphabet as disk names, so no XML or shell metacharacter can appear).
public enum VMName {
    public static func isValid(_ name: String) -> Bool { DiskName.isValid(name) }

    /// Throws `InvalidArgs` naming the value when `name` is not valid.
    public static func validate(_ name: String) throws {
        guard isValid(name) else {
            throw ControllerError.invalidArgs(
                "invalid VM name \(DiskName.quoted(name)): use 1-64 characters of A-Z a-z 0-9 . _ -, not starting with '.' or '-'")
        }
    }

    /// A 9p mount tag: 1–31 of `[A-Za-z0-9._-]`.
    public static func validateTag(_ tag: String) throws {
        guard DiskName.isValid(tag), tag.utf8.count <= 31 else {
            throw ControllerError.invalidArgs("invalid share tag \(DiskName.quoted(tag)): use 1-31 characters of A-Z a-z 0-9 . _ -")
        }
    }
}

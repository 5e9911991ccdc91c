/// Rules for managed disk names (``NameRule/disk``): a disk NAME is the regular file
/// `ImageDirectory/NAME`, so these rules are also what keeps callers inside the image
/// directory.
public enum DiskName {
    public static let maxLength = NameRule.disk.maxLength

    /// True when `name` is a valid managed disk name.
    public static func isValid(_ name: String) -> Bool { NameRule.disk.isValid(name) }

    /// Throws `InvalidArgs` naming the value when `name` is not valid.
    public static func validate(_ name: String) throws { try NameRule.disk.validate(name) }
}

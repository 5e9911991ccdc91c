/// Rules for VM names (``NameRule/vm``) and 9p tags (``NameRule/shareTag``): the same
/// alphabet as disk names, so no XML or shell metacharacter can appear.
public enum VMName {
    public static func isValid(_ name: String) -> Bool { NameRule.vm.isValid(name) }

    /// Throws `InvalidArgs` naming the value when `name` is not valid.
    public static func validate(_ name: String) throws { try NameRule.vm.validate(name) }

    /// A 9p mount tag: 1–31 of `[A-Za-z0-9._-]`.
    public static func validateTag(_ tag: String) throws { try NameRule.shareTag.validate(tag) }
}

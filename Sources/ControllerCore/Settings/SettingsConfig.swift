/// The desired host state: the `[settings]` section of the configuration file.
/// Key names are fixed (administrators' files depend on them); every key is optional.
public struct SettingsConfig: Sendable, Equatable {
    /// The user who must be in `groups`.
    public var user = "user"
    /// Groups `user` must belong to. `libvirt-dbus` also matches Debian's `libvirtdbus`.
    public var groups = ["kvm", "libvirt", "libvirt-dbus"]
    /// Groups `AddUserToGroups` may add anybody to.
    public var allowedGroups = ["kvm", "libvirt", "libvirt-dbus"]
    /// Kernel modules the initramfs (or the boot-time modules list) must load.
    public var initramfsModules = ["9p", "9pnet", "9pnet_virtio"]
    /// The initramfs-tools modules file (host path, below the host root).
    public var initramfsModulesFile = "/etc/initramfs-tools/modules"
    /// Rebuilds the initramfs after the modules file changed (absolute path + arguments).
    public var initramfsUpdateCommand = ["/usr/sbin/update-initramfs", "-u"]
    /// The hardware source rngd must read.
    public var rngDevice = "/dev/hwrng"
    /// The libvirt daemon's service name.
    public var libvirtdService = "libvirtd"
    /// Whether drift is reverted automatically (a SetEnforcing call, kept in the state
    /// directory, overrides this after the first call).
    public var enforcing = true
    /// Seconds between full checks (catches what inotify cannot see).
    public var checkIntervalSeconds = 60
    /// More automatic reverts of one setting than this in a minute stop enforcing it.
    public var flapLimitPerMinute = 5

    public init() {}

    /// A user or group name as shadow's tools accept it: `[a-z_][a-z0-9_.-]*`, ≤ 32 bytes.
    static func isValidName(_ s: String) -> Bool {
        guard let first = s.utf8.first, s.utf8.count <= 32 else { return false }
        guard (first >= 0x61 && first <= 0x7a) || first == 0x5f else { return false }
        return s.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f || $0 == 0x2e || $0 == 0x2d }
    }

    /// Letters, digits and `extra`, 1…`max` bytes.
    static func isToken(_ s: String, extra: String, max: Int) -> Bool {
        !s.isEmpty && s.utf8.count <= max && s.unicodeScalars.allSatisfy {
            ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || extra.unicodeScalars.contains($0)
        }
    }

    /// Reads `[settings]` over the defaults.
    mutating func read(_ section: inout ConfigSectionReader) throws {
        func names(_ key: String, _ values: [String]) throws -> [String] {
            for v in values where !Self.isValidName(v) {
                throw section.error(key, "'\(v)' is not a valid user or group name")
            }
            return values
        }
        if let v = try section.string("user") { user = try names("user", [v])[0] }
        if let v = try section.stringArray("groups") { groups = try names("groups", v) }
        if let v = try section.stringArray("allowed_groups") { allowedGroups = try names("allowed_groups", v) }
        if let v = try section.stringArray("initramfs_modules") {
            for m in v where !Self.isToken(m, extra: "_-", max: 64) {
                throw section.error("initramfs_modules", "'\(m)' is not a kernel module name")
            }
            initramfsModules = v
        }
        if let v = try section.absolutePath("initramfs_modules_file") { initramfsModulesFile = v }
        if let v = try section.stringArray("initramfs_update_command") {
            guard let first = v.first, first.hasPrefix("/") else {
                throw section.error("initramfs_update_command", "the first element must be an absolute program path")
            }
            initramfsUpdateCommand = v
        }
        if let v = try section.absolutePath("rng_device") { rngDevice = v }
        if let v = try section.string("libvirtd_service") {
            guard Self.isToken(v, extra: "_.@-", max: 128) else {
                throw section.error("libvirtd_service", "'\(v)' is not a service name")
            }
            libvirtdService = v
        }
        if let v = try section.bool("enforcing") { enforcing = v }
        if let v = try section.int("check_interval_s", in: 1...86_400) { checkIntervalSeconds = v }
        if let v = try section.int("flap_limit_per_minute", in: 1...100_000) { flapLimitPerMinute = v }
    }
}

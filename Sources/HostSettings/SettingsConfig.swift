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
    public static func isValidName(_ s: String) -> Bool {
        guard let first = s.utf8.first, s.utf8.count <= 32 else { return false }
        guard (first >= 0x61 && first <= 0x7a) || first == 0x5f else { return false }
        return s.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f || $0 == 0x2e || $0 == 0x2d }
    }

    /// Letters, digits and `extra`, 1…`max` bytes.
    public static func isToken(_ s: String, extra: String, max: Int) -> Bool {
        !s.isEmpty && s.utf8.count <= max && s.unicodeScalars.allSatisfy {
            ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || extra.unicodeScalars.contains($0)
        }
    }
}

import HostSettings
import FoundationEssentials
import HostSystem

/// The daemon's configuration: compiled-in defaults, then `/etc/multiverse/controller.toml`,
/// then command-line flags. Every key is documented in `controller.toml.example`.
public struct ControllerConfig: Sendable, Equatable {
    /// Default configuration file.
    public static let defaultPath = "/etc/multiverse/controller.toml"

    // [daemon]
    /// D-Bus address used as the system bus; nil means the real system bus.
    public var busAddress: String?
    public var libvirtURI = "qemu:///system"
    public var imageDirectory = "/var/lib/multiverse/images"
    public var backupDirectory = "/var/lib/multiverse/backups"
    /// Prefix under which host files (`/etc/group`, …) are read and edited.
    public var hostRoot = "/"
    /// Where the daemon keeps state across restarts (the Settings enforcing switch, …).
    public var stateDirectory = "/var/lib/multiverse/state"
    public var logLevel = "info"
    /// How long SIGTERM waits for in-flight calls before closing the bus.
    public var shutdownTimeoutSeconds = 30
    /// Method calls one bus connection may have in flight at once.
    public var maxCallsPerClient = 64

    // [polkit]
    /// Interactive checks one uid may have waiting at once.
    public var polkitMaxInteractivePerUser = 4
    public var polkitMaxPending = 64
    public var polkitTimeoutSeconds = 25
    public var polkitInteractiveTimeoutSeconds = 300

    // [disks]
    public var qemuImgPath = "/usr/bin/qemu-img"
    /// Largest virtual size CreateDisk accepts.
    public var maxDiskSize: UInt64 = 64 << 40
    /// The limit on the daemon's bulk copies of images (`copy_rate_mib_s`).
    public var copyRate = CopyRate.unlimited
    /// How often the bytes changed since the newest backup point of a running VM's disks
    /// are measured (`ChangeTracking`); 0 turns it off.
    public var trackingIntervalSeconds = 60

    // [settings]
    public var settings = SettingsConfig()

    // [guestfs]
    public var guestfs = GuestfsConfig()

    // [vms]
    public var vms = VMConfig()

    // [jobs]
    /// Jobs running at once; more → LimitsExceeded.
    public var maxConcurrentJobs = 4
    /// How long finished jobs stay listed.
    public var jobRetentionSeconds = 600

    public init() {}

    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    /// Reads a configuration file over the defaults. A missing file at the default path is
    /// not an error (defaults apply); a missing file given explicitly is.
    public static func load(path: String, explicit: Bool) throws -> ControllerConfig {
        var config = ControllerConfig()
        guard FileManager.default.fileExists(atPath: path) else {
            if explicit { throw ConfigError(file: path, line: nil, key: nil, problem: "file does not exist") }
            return config
        }
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ConfigError(file: path, line: nil, key: nil, problem: "cannot read: \(errorText(error))")
        }
        try config.apply(ConfigDocument(file: path, text: text))
        return config
    }

    /// Applies every known section of `document`.
    public mutating func apply(_ document: ConfigDocument) throws {
        var doc = document
        var daemon = try doc.section("daemon")
        if let v = try daemon.string("bus_address") { busAddress = v.isEmpty ? nil : v }
        if let v = try daemon.string("libvirt_uri") {
            guard v.contains(":") else { throw daemon.error("libvirt_uri", "'\(v)' is not a libvirt URI") }
            libvirtURI = v
        }
        if let v = try daemon.absolutePath("image_dir") { imageDirectory = v }
        if let v = try daemon.absolutePath("backup_dir") { backupDirectory = v }
        if let v = try daemon.absolutePath("host_root") { hostRoot = v }
        if let v = try daemon.absolutePath("state_dir") { stateDirectory = v }
        if let v = try daemon.string("log_level") {
            guard Self.logLevels.contains(v) else {
                throw daemon.error("log_level", "'\(v)' is not one of \(Self.logLevels.joined(separator: ", "))")
            }
            logLevel = v
        }
        if let v = try daemon.int("shutdown_timeout_s", in: 1...3600) { shutdownTimeoutSeconds = v }
        if let v = try daemon.int("max_calls_per_client", in: 1...100_000) { maxCallsPerClient = v }
        try daemon.finish()

        var polkit = try doc.section("polkit")
        // workers: read for old files' sake; checks no longer run on threads of their own.
        _ = try polkit.int("workers", in: 1...64)
        if let v = try polkit.int("max_interactive_per_user", in: 1...1000) { polkitMaxInteractivePerUser = v }
        if let v = try polkit.int("max_pending", in: 1...10_000) { polkitMaxPending = v }
        if let v = try polkit.int("timeout_s", in: 1...600) { polkitTimeoutSeconds = v }
        if let v = try polkit.int("interactive_timeout_s", in: 1...3600) { polkitInteractiveTimeoutSeconds = v }
        try polkit.finish()

        var disks = try doc.section("disks")
        if let v = try disks.absolutePath("qemu_img") { qemuImgPath = v }
        if let v = try disks.int("max_size", in: 1...Int.max) { maxDiskSize = UInt64(v) }
        if let v = try disks.int("copy_rate_mib_s", in: 0...1_048_576) { copyRate = CopyRate(bytesPerSecond: UInt64(v) << 20) }
        if let v = try disks.int("tracking_interval_s", in: 0...86_400) { trackingIntervalSeconds = v }
        try disks.finish()

        var vmsSection = try doc.section("vms")
        try vms.read(&vmsSection)
        try vmsSection.finish()

        var jobs = try doc.section("jobs")
        if let v = try jobs.int("max_concurrent", in: 1...64) { maxConcurrentJobs = v }
        if let v = try jobs.int("retention_s", in: 1...86_400) { jobRetentionSeconds = v }
        try jobs.finish()

        var guestfsSection = try doc.section("guestfs")
        try guestfs.read(&guestfsSection)
        try guestfsSection.finish()

        var settingsSection = try doc.section("settings")
        try settings.read(&settingsSection)
        try settingsSection.finish()

        try doc.finish()
    }
}

import HostSettings

/// The `[vms]` section of the configuration file.
public struct VMConfig: Sendable, Equatable {
    /// Directory of administrators' profile files (`NAME.toml`, a `[profile]` table).
    public var profilesDirectory = "/etc/multiverse/profiles"
    /// `""`: follow the connection's capabilities (kvm, else qemu, else what it offers).
    public var domainType = ""
    /// `""`: host-passthrough on KVM, qemu64 otherwise; or host-passthrough, host-model,
    /// maximum, or a CPU model name.
    public var cpuMode = ""
    /// Let DefineVMFromXML accept `<qemu:commandline>` and host device passthrough.
    public var allowPassthrough = false
    /// Directories under which 9p share sources may live.
    public var shareRoots = ["/var/multiverse", "/home", "/srv"]
    /// Directories (besides the image directory) under which AttachDisk accepts image paths.
    public var imageRoots: [String] = []
    /// Directories under which a caller's `<os><kernel>` and `<initrd>` may live (each a
    /// regular file owned by root and readable by everyone, and not a managed disk). None by
    /// default: libvirt's DAC driver lends the file to qemu's user while a VM boots from it,
    /// so the host's own /boot must never be one.
    public var kernelRoots: [String] = []
    /// Where DefineVMFromXML's `console_log` option places a VM's serial log
    /// (`DIR/NAME-console.log`); libvirt's own log directory for qemu by default.
    public var consoleLogDirectory = "/var/log/libvirt/qemu"
    /// Let DefineVM's `seclabel = "none"` turn libvirt's confinement of a VM off.
    public var allowUnconfined = false
    /// How long DetachDisk waits for a running guest to release a disk.
    public var detachTimeoutSeconds = 30
    /// Run StartAll once when the daemon first reaches libvirt.
    public var startAllOnBoot = true
    /// How long StartAll waits for each VM to be running.
    public var startTimeoutSeconds = 120
    /// How long StartAll waits for a VM's guest to send `READY=1` (a VM's metadata may say otherwise).
    public var readyTimeoutSeconds = 300
    /// How long StopAll lets each VM shut down before destroying it.
    public var stopTimeoutSeconds = 60
    /// A router's NIC 1: the host's uplink (`network:NAME`, `bridge:BR` or `direct:DEV`).
    public var uplink = NICSource.network("default")
    /// The isolated network between routers and the other VMs (created on first use).
    public var internalNetwork = "multiverse"
    /// Keep interface controllers and app VMs off the uplink and off non-isolated networks.
    public var enforceTopology = true
    /// Memory kept for the host: Start refuses when running VMs would hold more than the
    /// host's memory minus this.
    public var hostReserveMiB: UInt64 = 1024
    /// Let running VMs hold more vCPUs than the host has CPUs.
    public var allowCPUOvercommit = false

    public init() {}

    mutating func read(_ section: inout ConfigSectionReader) throws {
        if let v = try section.absolutePath("profiles_dir") { profilesDirectory = v }
        if let v = try section.string("domain_type") {
            guard ["", "kvm", "qemu", "test"].contains(v) else {
                throw section.error("domain_type", "'\(v)' is not one of \"\", \"kvm\", \"qemu\", \"test\"")
            }
            domainType = v
        }
        if let v = try section.string("cpu_mode") {
            guard v.isEmpty || SettingsConfig.isToken(v, extra: "-_.", max: 64) else {
                throw section.error("cpu_mode", "'\(v)' is not a CPU mode or model name")
            }
            cpuMode = v
        }
        if let v = try section.bool("allow_passthrough") { allowPassthrough = v }
        if let v = try Self.roots(&section, "share_roots") { shareRoots = v }
        if let v = try Self.roots(&section, "image_roots") { imageRoots = v }
        if let v = try Self.roots(&section, "kernel_roots") { kernelRoots = v }
        if let v = try section.absolutePath("console_log_dir") { consoleLogDirectory = v }
        if let v = try section.bool("allow_unconfined") { allowUnconfined = v }
        if let v = try section.int("detach_timeout_s", in: 1...600) { detachTimeoutSeconds = v }
        if let v = try section.bool("start_all_on_boot") { startAllOnBoot = v }
        if let v = try section.int("start_timeout_s", in: 1...3600) { startTimeoutSeconds = v }
        if let v = try section.int("ready_timeout_s", in: 1...86_400) { readyTimeoutSeconds = v }
        if let v = try section.int("stop_timeout_s", in: 1...3600) { stopTimeoutSeconds = v }
        if let v = try section.string("uplink") {
            do { uplink = try NICSource(parsing: v) } catch let error as ControllerError { throw section.error("uplink", error.message) }
            guard v.contains(":") else { throw section.error("uplink", "'\(v)' must say its kind: network:NAME, bridge:BR or direct:DEV") }
        }
        if let v = try section.string("internal_network") {
            guard NameRule.network.isValid(v) else { throw section.error("internal_network", "'\(v)' is not a network name") }
            internalNetwork = v
        }
        if let v = try section.bool("enforce_topology") { enforceTopology = v }
        if let v = try section.int("host_reserve_mib", in: 0...(1 << 30)) { hostReserveMiB = UInt64(v) }
        if let v = try section.bool("allow_cpu_overcommit") { allowCPUOvercommit = v }
        if uplink == .network(internalNetwork) {
            throw section.error("uplink", "the uplink cannot be the internal network \(internalNetwork)")
        }
    }

    /// A list of root directories: each absolute, without `..`.
    static func roots(_ section: inout ConfigSectionReader, _ key: String) throws -> [String]? {
        guard let v = try section.stringArray(key) else { return nil }
        for root in v where !root.hasPrefix("/") || root.split(separator: "/").contains("..") {
            throw section.error(key, "'\(root)' must be an absolute path without '..'")
        }
        return v
    }
}

import Guestfs

/// The `[guestfs]` section: how libguestfs appliances are started and kept.
public struct GuestfsConfig: Sendable, Equatable {
    /// libguestfs backend: `direct` (qemu run by the daemon) or `libvirt`.
    public var backend = "direct"
    /// libguestfs backend settings, e.g. `["force_tcg"]` where KVM is unusable.
    public var backendSettings: [String] = []
    /// Appliance memory in MiB; nil keeps libguestfs' default.
    public var memoryMiB: Int?
    /// Appliances running at once (cached and one-off together).
    public var maxAppliances = 2
    /// How long an appliance opened for file operations stays up for the next one.
    public var idleSeconds = 30
    /// How often the usage sampler inspects every disk; 0 turns it off.
    public var usageIntervalSeconds = 600
    /// The unprivileged user the appliances run as (never root).
    public var user = GuestfsSettings.defaultUser

    public init() {}

    public static let backends = ["direct", "libvirt"]

    mutating func read(_ section: inout ConfigSectionReader) throws {
        if let v = try section.string("backend") {
            guard Self.backends.contains(v) else {
                throw section.error("backend", "'\(v)' is not one of \(Self.backends.joined(separator: ", "))")
            }
            backend = v
        }
        if let v = try section.stringArray("backend_settings") {
            if let bad = v.first(where: { $0.isEmpty || $0.contains(where: { $0.isWhitespace }) }) {
                throw section.error("backend_settings", "'\(bad)' is not a backend setting (no spaces, not empty)")
            }
            backendSettings = v
        }
        if let v = try section.int("memory_mib", in: 256...65_536) { memoryMiB = v }
        if let v = try section.int("max_appliances", in: 1...32) { maxAppliances = v }
        if let v = try section.int("idle_s", in: 1...3600) { idleSeconds = v }
        if let v = try section.int("usage_interval_s", in: 0...604_800) { usageIntervalSeconds = v }
        if let v = try section.string("user") {
            guard !v.isEmpty, v != "root", v.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
                throw section.error("user", "'\(v)' is not an unprivileged user name (the appliances never run as root)")
            }
            user = v
        }
    }
}

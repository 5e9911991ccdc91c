import HostSystem

/// Whether a service starts at boot, read from files under the host root (never from
/// `/run`, so it works on a sandbox root), for systemd, OpenRC and sysv-rc.
public enum InitSystem: String, Sendable, Equatable {
    case systemd, openrc, sysv, unknown

    /// Detects the host's init system from `/sbin/init` and the installed init binaries.
    public static func detect(_ root: HostRoot) -> InitSystem {
        if let target = root.linkTarget("/sbin/init") {
            if target.contains("systemd") { return .systemd }
            if target.contains("openrc") { return .openrc }
        }
        if root.exists("/sbin/openrc") || root.exists("/sbin/openrc-run"), root.kind("/etc/runlevels") == .directory { return .openrc }
        if root.exists("/lib/systemd/systemd") || root.exists("/usr/lib/systemd/systemd") { return .systemd }
        if root.kind("/etc/init.d") == .directory { return .sysv }
        return .unknown
    }

    static let bootTargets = ["multi-user.target", "graphical.target", "default.target"]
    static let unitDirectories = ["/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"]
    static let sysvStart = ["2", "3", "4", "5"]
    static let sysvStop = ["0", "1", "6"]
    static let systemctl = "/usr/bin/systemctl"

    /// The files whose changes can enable or disable `service`.
    public func watchedPaths(_ service: String) -> [String] {
        switch self {
        case .systemd:
            return ["/etc/systemd/system/\(service).service", "/etc/systemd/system/sockets.target.wants/*"]
                + Self.bootTargets.map { "/etc/systemd/system/\($0).wants/*" }
                + Self.sysvStart.map { "/etc/rc\($0).d/*" }
        case .openrc: return ["/etc/runlevels/default/*", "/etc/runlevels/boot/*"]
        case .sysv: return Self.sysvStart.map { "/etc/rc\($0).d/*" }
        case .unknown: return []
        }
    }

    /// Whether `service` starts at boot, with a detail saying why (or why not).
    ///
    /// On systemd the service unit must be wanted by a boot target (or, for a unit that is
    /// only a sysv script, have rc links). An enabled `.socket` alone does not count: the
    /// daemon would start on the first connection, not at boot.
    public func isEnabled(_ service: String, _ root: HostRoot) -> (enabled: Bool, detail: String) {
        switch self {
        case .systemd:
            let unit = "\(service).service"
            if root.linkTarget("/etc/systemd/system/\(unit)") == "/dev/null" {
                return (false, "\(unit) is masked")
            }
            for target in Self.bootTargets where root.kind("/etc/systemd/system/\(target).wants/\(unit)") != .missing {
                return (true, "\(unit) enabled (wanted by \(target))")
            }
            let native = Self.unitDirectories.contains { root.kind("\($0)/\(unit)") != .missing }
            if !native, root.kind("/etc/init.d/\(service)") != .missing {
                return InitSystem.sysv.isEnabled(service, root)
            }
            guard native else { return (false, "\(unit) is not installed") }
            if root.kind("/etc/systemd/system/sockets.target.wants/\(service).socket") != .missing {
                return (false, "only \(service).socket is enabled: \(service) would start on first use, not at boot")
            }
            return (false, "\(unit) is not enabled")
        case .openrc:
            for level in ["default", "boot"] where root.kind("/etc/runlevels/\(level)/\(service)") != .missing {
                return (true, "\(service) is in runlevel \(level)")
            }
            guard root.kind("/etc/init.d/\(service)") != .missing else { return (false, "/etc/init.d/\(service) is not installed") }
            return (false, "\(service) is not in runlevel default (rc-update add \(service) default)")
        case .sysv:
            for level in Self.sysvStart {
                if root.list("/etc/rc\(level).d").contains(where: { Self.isStartLink($0, service) }) {
                    return (true, "\(service) starts in runlevel \(level)")
                }
            }
            guard root.kind("/etc/init.d/\(service)") != .missing else { return (false, "/etc/init.d/\(service) is not installed") }
            return (false, "\(service) has no start link in /etc/rc2.d…rc5.d")
        case .unknown:
            return (false, "no supported init system (systemd, OpenRC, sysv-rc) found under the host root")
        }
    }

    /// Makes `service` start at boot. Returns whether anything changed.
    public func enable(_ service: String, _ context: SettingsContext) async throws -> Bool {
        let root = context.root
        guard !isEnabled(service, root).enabled else { return false }
        switch self {
        case .systemd:
            let unit = "\(service).service"
            let native = Self.unitDirectories.contains { root.kind("\($0)/\(unit)") != .missing }
            if !native, root.kind("/etc/init.d/\(service)") != .missing {
                return try await InitSystem.sysv.enable(service, context)
            }
            guard native else { throw SettingError.missingOnHost("\(unit) is not installed") }
            let rootArgs = root.isRealRoot ? [] : ["--root=\(root.path)"]
            if root.linkTarget("/etc/systemd/system/\(unit)") == "/dev/null" {
                try await context.run(Self.systemctl, rootArgs + ["unmask", unit])
            }
            try await context.run(Self.systemctl, rootArgs + ["enable", unit])
            return true
        case .openrc:
            guard root.kind("/etc/init.d/\(service)") != .missing else { throw SettingError.missingOnHost("/etc/init.d/\(service) is not installed") }
            try root.symlink("/etc/runlevels/default/\(service)", to: "/etc/init.d/\(service)")
            return true
        case .sysv:
            guard root.kind("/etc/init.d/\(service)") != .missing else { throw SettingError.missingOnHost("/etc/init.d/\(service) is not installed") }
            for level in Self.sysvStart { try root.symlink("/etc/rc\(level).d/S01\(service)", to: "../init.d/\(service)") }
            for level in Self.sysvStop where !root.list("/etc/rc\(level).d").contains(where: { $0.hasPrefix("K") && $0.dropFirst(3) == service }) {
                try root.symlink("/etc/rc\(level).d/K01\(service)", to: "../init.d/\(service)")
            }
            return true
        case .unknown:
            throw SettingError.unsupported("no supported init system found under the host root")
        }
    }

    static func isStartLink(_ name: String, _ service: String) -> Bool {
        name.hasPrefix("S") && name.count == service.count + 3 && name.dropFirst(3) == service
    }
}

/// `libvirtd-enabled`: libvirtd starts at boot.
public struct LibvirtdEnabledSetting: HostSetting {
    public let id = "libvirtd-enabled"
    public let description = "libvirtd starts at boot"

    public init() {}

    public func watchedPaths(_ context: SettingsContext) -> [String] {
        InitSystem.detect(context.root).watchedPaths(context.config.libvirtdService)
    }

    public func check(_ context: SettingsContext) async -> SettingCheck {
        let init_ = InitSystem.detect(context.root)
        let (enabled, detail) = init_.isEnabled(context.config.libvirtdService, context.root)
        return SettingCheck(enabled, "\(init_.rawValue): \(detail)")
    }

    public func apply(_ context: SettingsContext) async throws -> SettingChange {
        let init_ = InitSystem.detect(context.root)
        let service = context.config.libvirtdService
        let changed = try await init_.enable(service, context)
        return SettingChange(changed: changed, changed ? "enabled \(service) (\(init_.rawValue))" : "\(service) already enabled")
    }
}

import FoundationEssentials
import HostSystem

/// `entropy-rngd`: rngd feeds `/dev/random` from the configured hardware source and its
/// service starts at boot. Supports Debian's two packagings, detected at run time:
/// `rng-tools-debian` (`/etc/default/rng-tools-debian`, `HRNGDEVICE=`, sysv script) and
/// `rng-tools5` (`rngd.service` running `rngd -f`; its defaults are `-r /dev/hwrng -o
/// /dev/random`, changed through a drop-in).
public struct EntropyRngdSetting: HostSetting {
    public let id = "entropy-rngd"
    public let description = "rngd feeds /dev/random from the hardware RNG"

    public init() {}

    enum Packaging: Equatable {
        case rngToolsDebian, rngTools5, unknownRngd, none
    }

    static let debianDefaults = "/etc/default/rng-tools-debian"
    static let dropInDirectory = "/etc/systemd/system/rngd.service.d"
    static let ownDropIn = dropInDirectory + "/zz-multiverse.conf"

    static func packaging(_ root: HostRoot) -> Packaging {
        if root.kind("/etc/init.d/rng-tools-debian") != .missing || root.kind(debianDefaults) != .missing { return .rngToolsDebian }
        if InitSystem.unitDirectories.contains(where: { root.kind("\($0)/rngd.service") != .missing }) || root.kind("/etc/init.d/rngd") != .missing {
            return .rngTools5
        }
        if root.exists("/usr/sbin/rngd") || root.exists("/sbin/rngd") { return .unknownRngd }
        return .none
    }

    public func watchedPaths(_ context: SettingsContext) -> [String] {
        let init_ = InitSystem.detect(context.root)
        switch Self.packaging(context.root) {
        case .rngToolsDebian:
            return [Self.debianDefaults, "/etc/init.d/rng-tools-debian"] + init_.watchedPaths("rng-tools-debian")
        case .rngTools5:
            return [Self.dropInDirectory + "/*", "/etc/systemd/system/rngd.service"] + init_.watchedPaths("rngd")
        case .unknownRngd, .none:
            return ["/usr/sbin/rngd", "/etc/init.d/*", "/etc/default/*"]
        }
    }

    public func check(_ context: SettingsContext) async -> SettingCheck {
        let root = context.root
        let device = context.config.rngDevice
        let init_ = InitSystem.detect(root)
        switch Self.packaging(root) {
        case .none:
            return SettingCheck(false, "rngd not installed (install rng-tools-debian or rng-tools5)")
        case .unknownRngd:
            return SettingCheck(false, "rngd is installed but neither rng-tools-debian nor rng-tools5 packaging was found")
        case .rngToolsDebian:
            let configured = Self.shellVariable("HRNGDEVICE", in: (try? root.read(Self.debianDefaults)) ?? nil)
            guard configured == device else {
                return SettingCheck(false, configured.map { "rng-tools-debian reads \($0), not \(device)" }
                    ?? "HRNGDEVICE is not set in \(Self.debianDefaults) (rngd would auto-detect its source)")
            }
            let (enabled, detail) = init_.isEnabled("rng-tools-debian", root)
            return SettingCheck(enabled, enabled ? "rng-tools-debian feeds /dev/random from \(device); \(detail)" : detail)
        case .rngTools5:
            let (source, output) = Self.rngd5Devices(root)
            guard source == device else { return SettingCheck(false, "rngd.service reads \(source), not \(device)") }
            guard output == "/dev/random" else { return SettingCheck(false, "rngd.service feeds \(output), not /dev/random") }
            let (enabled, detail) = init_.isEnabled("rngd", root)
            return SettingCheck(enabled, enabled ? "rngd feeds /dev/random from \(device); \(detail)" : detail)
        }
    }

    public func apply(_ context: SettingsContext) async throws -> SettingChange {
        let root = context.root
        let device = context.config.rngDevice
        let init_ = InitSystem.detect(root)
        var done: [String] = []
        switch Self.packaging(root) {
        case .none, .unknownRngd:
            throw SettingError.missingOnHost((await check(context)).detail + "; the agent does not install packages")
        case .rngToolsDebian:
            let text = try root.read(Self.debianDefaults) ?? ""
            if Self.shellVariable("HRNGDEVICE", in: text) != device {
                try root.write(Self.debianDefaults, Self.settingVariable("HRNGDEVICE", to: device, in: text))
                done.append("set HRNGDEVICE=\(device) in \(Self.debianDefaults)")
            }
            if try await init_.enable("rng-tools-debian", context) { done.append("enabled rng-tools-debian") }
        case .rngTools5:
            let (source, output) = Self.rngd5Devices(root)
            if source != device || output != "/dev/random" {
                guard init_ == .systemd else {
                    throw SettingError.unsupported("changing rngd's source is supported through systemd drop-ins only")
                }
                let dropIn = """
                    # Written by multiverse-controllerd (setting entropy-rngd): feed /dev/random from \(device).
                    [Service]
                    ExecStart=
                    ExecStart=/usr/sbin/rngd -f -r \(device) -o /dev/random

                    """
                try root.write(Self.ownDropIn, dropIn)
                done.append("wrote \(Self.ownDropIn)")
            }
            if try await init_.enable("rngd", context) { done.append("enabled rngd") }
        }
        return done.isEmpty ? SettingChange(changed: false, "already compliant") : SettingChange(changed: true, done.joined(separator: "; "))
    }

    /// The last uncommented `NAME=value` of a shell fragment, quotes removed.
    static func shellVariable(_ name: String, in text: String?) -> String? {
        guard let text else { return nil }
        var value: String?
        for line in text.split(separator: "\n") {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            guard trimmed.hasPrefix(name + "=") else { continue }
            var v = trimmed.dropFirst(name.count + 1).trimmed
            if let hash = v.firstIndex(of: "#"), v.first != "\"" && v.first != "'" { v = String(v[..<hash]).trimmed }
            if v.count >= 2, let f = v.first, f == "\"" || f == "'", v.last == f { v = String(v.dropFirst().dropLast()) }
            value = v
        }
        return value
    }

    /// `text` with every uncommented `NAME=` line replaced by `NAME=value` (or the line
    /// appended); every other line and comment is kept.
    static func settingVariable(_ name: String, to value: String, in text: String) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        var replaced = false
        for i in lines.indices where lines[i].drop(while: { $0 == " " || $0 == "\t" }).hasPrefix(name + "=") {
            lines[i] = "\(name)=\(value)"
            replaced = true
        }
        if !replaced {
            lines.append("# Set by multiverse-controllerd (setting entropy-rngd)")
            lines.append("\(name)=\(value)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// rngd 5's effective source and output: the unit's last `ExecStart=` after drop-ins.
    static func rngd5Devices(_ root: HostRoot) -> (source: String, output: String) {
        var execStart: String?
        var files: [String] = []
        if let base = ["/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"].first(where: { root.kind("\($0)/rngd.service") != .missing }) {
            files.append("\(base)/rngd.service")
        }
        for name in root.list(dropInDirectory) where name.hasSuffix(".conf") { files.append("\(dropInDirectory)/\(name)") }
        for file in files {
            let text = (try? String(contentsOfFile: root.real(file), encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") where line.hasPrefix("ExecStart=") {
                let v = String(line.dropFirst("ExecStart=".count))
                execStart = v.isEmpty ? nil : v
            }
        }
        var source = "/dev/hwrng"
        var output = "/dev/random"
        let words = (execStart ?? "").split(separator: " ").map(String.init)
        var i = 0
        while i < words.count {
            let w = words[i]
            let next = i + 1 < words.count ? words[i + 1] : ""
            switch w {
            case "-r", "--rng-device": source = next; i += 1
            case "-o", "--random-device": output = next; i += 1
            default:
                if w.hasPrefix("--rng-device=") { source = String(w.dropFirst("--rng-device=".count)) }
                if w.hasPrefix("--random-device=") { output = String(w.dropFirst("--random-device=".count)) }
            }
            i += 1
        }
        return (source, output)
    }
}

import FoundationEssentials
import HostSystem

/// "Once per host boot" for the daemon's own StartAll. Under systemd the marker lives in
/// the unit's runtime directory (`$RUNTIME_DIRECTORY`, /run/multiverse-controller, kept
/// across restarts by `RuntimeDirectoryPreserve=yes`): /run is a new tmpfs at every boot,
/// a container's reboot included. Without one (a daemon started by hand, the tests) it is
/// a file of the state directory. Either way it holds the kernel's boot ID
/// (`/proc/sys/kernel/random/boot_id`), so a marker that outlived its boot (a /run that is
/// not a tmpfs) does not count.
public struct BootOnce: Sendable {
    public let file: String
    public let bootIDFile: String

    /// `runtimeDirectory`: `$RUNTIME_DIRECTORY` as systemd sets it (the first of its
    /// colon-separated paths is used); nil or empty: the state directory.
    public init(stateDirectory: String, runtimeDirectory: String? = nil,
                bootIDFile: String = "/proc/sys/kernel/random/boot_id") {
        let run = runtimeDirectory?.split(separator: ":").first.map(String.init) ?? ""
        file = (run.hasPrefix("/") ? run : stateDirectory) + "/start-all.boot"
        self.bootIDFile = bootIDFile
    }

    /// Whether this boot has not claimed it yet; claims it (writes the boot ID). Without a
    /// readable boot ID it answers true and writes nothing.
    public func claim() throws -> Bool {
        guard let boot = Self.read(bootIDFile), !boot.isEmpty else { return true }
        if Self.read(file) == boot { return false }
        try? FileManager.default.createDirectory(atPath: parentDirectory(of: file), withIntermediateDirectories: true)
        try HostRoot("/").write(file, boot + "\n", newFileMode: 0o600)
        return true
    }

    /// The current boot's ID, if readable.
    public var bootID: String? { Self.read(bootIDFile) }

    static func read(_ path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmed
    }
}

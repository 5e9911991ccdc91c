import FoundationEssentials
import Glibc

/// "Once per host boot" for the daemon's own StartAll: the kernel's boot ID
/// (`/proc/sys/kernel/random/boot_id`, new at every boot) is kept in a file of the state
/// directory. Unlike a marker under `/run`, it needs no runtime directory kept across unit
/// restarts, and it still works when `/run` is not a fresh tmpfs.
public struct BootOnce: Sendable {
    public let file: String
    public let bootIDFile: String

    public init(stateDirectory: String, bootIDFile: String = "/proc/sys/kernel/random/boot_id") {
        file = stateDirectory + "/start-all.boot"
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

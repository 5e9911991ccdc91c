import FoundationEssentials
import HostSystem

/// SetAutoGrow's policy: grow the disk and its filesystem by `step` when a usage sample
/// reaches `threshold`, never past `max` bytes.
public struct AutoGrowPolicy: Codable, Sendable, Equatable {
    public var enabled = false
    public var threshold = 0.9
    public var step: UInt64 = 1 << 30
    public var max: UInt64 = 0

    public init() {}
}

/// SetVersioning's policy: an `auto-<UTC time>` snapshot every `intervalSeconds` while no
/// running VM uses the disk (0: none), one at each stop of the VM using it (`onStop`), the
/// oldest `auto-*` pruned down to `keep`.
public struct VersioningPolicy: Codable, Sendable, Equatable {
    public var enabled = false
    public var intervalSeconds: UInt32 = 3600
    public var keep: UInt32 = 10
    public var onStop = false

    public init() {}
}

/// What the daemon keeps about one disk across restarts.
public struct DiskRecord: Codable, Sendable, Equatable {
    public var autoGrow = AutoGrowPolicy()
    public var versioning = VersioningPolicy()
    /// The last usage sample and when it was taken (seconds since the epoch; 0 = never).
    public var usage: [FilesystemUsage] = []
    public var sampled: UInt64 = 0
    /// The last Inspect's findings (nil: never inspected, or formatted since). Like `usage`,
    /// guest-written values: served only through `disk.inspect`-gated methods.
    public var inspection: InspectionReport?
    /// When the last automatic snapshot was taken, and the image's size+mtime right after:
    /// an unchanged image gets no new version.
    public var lastAutoSnapshot: UInt64 = 0
    public var lastAutoStamp = ""
    /// A sample crossed the AutoGrow threshold while a VM used the disk: grow at its stop.
    public var growPending = false
    /// SetBackupPolicy's policy, and when the schedule last made a point.
    public var backup = BackupPolicy()
    public var lastScheduledBackup: UInt64 = 0

    public init() {}

    private enum CodingKeys: String, CodingKey {
        case autoGrow, versioning, usage, sampled, inspection, lastAutoSnapshot, lastAutoStamp, growPending, backup, lastScheduledBackup
    }

    /// Every key may be missing (files written before it existed): its default.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        autoGrow = try c.decodeIfPresent(AutoGrowPolicy.self, forKey: .autoGrow) ?? AutoGrowPolicy()
        versioning = try c.decodeIfPresent(VersioningPolicy.self, forKey: .versioning) ?? VersioningPolicy()
        usage = try c.decodeIfPresent([FilesystemUsage].self, forKey: .usage) ?? []
        sampled = try c.decodeIfPresent(UInt64.self, forKey: .sampled) ?? 0
        inspection = try c.decodeIfPresent(InspectionReport.self, forKey: .inspection)
        lastAutoSnapshot = try c.decodeIfPresent(UInt64.self, forKey: .lastAutoSnapshot) ?? 0
        lastAutoStamp = try c.decodeIfPresent(String.self, forKey: .lastAutoStamp) ?? ""
        growPending = try c.decodeIfPresent(Bool.self, forKey: .growPending) ?? false
        backup = try c.decodeIfPresent(BackupPolicy.self, forKey: .backup) ?? BackupPolicy()
        lastScheduledBackup = try c.decodeIfPresent(UInt64.self, forKey: .lastScheduledBackup) ?? 0
    }
}

/// Per-disk policies and samples, in `state_dir/disk-policies.json`, written atomically
/// (temporary file, fsync, rename) on every change so a `kill -9` at any point leaves the
/// old or the new file, never a torn one.
public actor DiskPolicyStore {
    public nonisolated let file: String
    private var records: [String: DiskRecord] = [:]

    public init(stateDirectory: String) {
        file = stateDirectory + "/disk-policies.json"
    }

    /// Reads the file; a missing file is an empty store, an unreadable one an `Io` error
    /// naming it.
    public func load() throws {
        guard FileManager.default.fileExists(atPath: file) else { return }
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: file))
            records = try JSONDecoder().decode([String: DiskRecord].self, from: data)
        } catch {
            throw ControllerError.io("cannot read \(file): \(error)")
        }
    }

    public func record(_ name: String) -> DiskRecord { records[name] ?? DiskRecord() }
    public func all() -> [String: DiskRecord] { records }

    /// Changes one disk's record and saves the file.
    @discardableResult
    public func update(_ name: String, _ change: (inout DiskRecord) -> Void) throws -> DiskRecord {
        var r = records[name] ?? DiskRecord()
        change(&r)
        let old = records[name]
        records[name] = r
        do { try save() } catch {
            records[name] = old
            throw error
        }
        return r
    }

    /// Forgets a deleted disk.
    public func remove(_ name: String) throws {
        guard records.removeValue(forKey: name) != nil else { return }
        try save()
    }

    /// Drops records of disks that no longer exist (after a scan).
    public func retain(only names: Set<String>) throws {
        let before = records.count
        records = records.filter { names.contains($0.key) }
        if records.count != before { try save() }
    }

    private func save() throws {
        let directory = parentDirectory(of: file)
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(records)
        try HostRoot("/").write(file, String(decoding: data, as: UTF8.self) + "\n", newFileMode: 0o600)
    }
}

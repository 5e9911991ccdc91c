import FoundationEssentials
import HostSystem
import Logging

/// One backup of a disk: the image `BACKUP_DIR/ID.img` and its manifest `ID.json`.
public struct BackupInfo: Sendable, Equatable, Codable {
    public var id: String
    public var disk: String
    public var format: String
    /// Seconds since the epoch.
    public var created: UInt64
    public var size: UInt64
    public var sha256: String
    public var compressed: Bool
    /// True when the backup is a byte copy of a qcow2 image with internal snapshots (they
    /// come back on Restore); backups through `qemu-img convert` (compressed, or of an
    /// overlay) do not carry them.
    public var internalSnapshots: Bool
}

/// Backups in the backup directory. Images are written under a temporary name, checksummed,
/// synced to disk and renamed; manifests are written atomically (synced, directory synced)
/// after the image, so a backup without a manifest is unfinished and removed at start-up,
/// and one with a manifest survives a power cut.
public actor BackupStore {
    public nonisolated let directory: String
    let qemuImg: QemuImg
    let logger: Logger
    /// The limit on a backup's copy.
    let copyRate: CopyRate
    private var backups: [String: BackupInfo] = [:]
    /// The points of backup chains (``BackupPoint``), by id.
    var points: [String: BackupPoint] = [:]
    /// Disks a point is being made of (one at a time per disk).
    var pointsInProgress: Set<String> = []
    /// Disks whose points are being deleted, and how many restores or verifications read
    /// each disk's points (a deletion waits for none).
    var deletingDisks: Set<String> = []
    var pointReaders: [String: Int] = [:]
    /// Room of the backup filesystem reserved by running live backups
    /// (``reserveSpace(_:files:key:for:)``), by their VM key.
    var spaceReservations: [String: SpaceReservation] = [:]
    /// Ids of points being made (their files do not exist yet).
    var reservedIDs: Set<String> = []
    /// The storage daemon a backup runs (tests point it elsewhere).
    var storageDaemon = StorageDaemon.program

    public init(directory: String, qemuImg: QemuImg, copyRate: CopyRate = .unlimited, logger: Logger) {
        self.directory = directory
        self.qemuImg = qemuImg
        self.copyRate = copyRate
        self.logger = logger
    }

    func imagePath(_ id: String) -> String { "\(directory)/\(id).img" }
    func manifestPath(_ id: String) -> String { "\(directory)/\(id).json" }

    /// Reads the manifests; removes unfinished backups (after stopping the storage daemons
    /// a daemon that died left running, which still hold their files and disks).
    public func scan() throws {
        StorageDaemon.sweepOrphans()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
        // Searchable, not readable, by others: qemu (libvirt's user) writes a running VM's
        // point into a file libvirt hands it here (``BackupStore/draftPoint``); every file in
        // it is root's, 0640 at most, and nobody else can list the names.
        if let mode = Files.status(directory)?.permissions, mode & 0o777 != 0o711 {
            try Files.setPermissions(directory, 0o711)
            logger.notice("backup directory \(directory): mode set to 0711 (was \(String(mode & 0o777, radix: 8))) so qemu can write running VMs' points")
        }
        // Files a run with a looser umask left: no one but root reads them.
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            let path = "\(directory)/\(name)"
            if let status = Files.status(path), status.kind == .file, status.permissions & 0o037 != 0 {
                try Files.setPermissions(path, status.permissions & 0o740)
            }
        }
        var found: [String: BackupInfo] = [:]
        for name in (try FileManager.default.contentsOfDirectory(atPath: directory)).sorted() {
            if name.hasPrefix("."), name.contains(".partial") {
                Files.discard("\(directory)/\(name)")
                logger.notice("removed unfinished backup file \(directory)/\(name)")
                continue
            }
            guard name.hasSuffix(".json") else { continue }
            guard let data = FileManager.default.contents(atPath: "\(directory)/\(name)"),
                  let info = try? JSONDecoder().decode(BackupInfo.self, from: data), DiskName.isValid(info.id) else {
                logger.warning("skipping unreadable backup manifest \(directory)/\(name)")
                continue
            }
            found[info.id] = info
        }
        for name in (try FileManager.default.contentsOfDirectory(atPath: directory)) where name.hasSuffix(".img") {
            let id = String(name.dropLast(4))
            if found[id] == nil {
                Files.discard("\(directory)/\(name)")
                logger.notice("removed backup image without a manifest \(directory)/\(name)")
            }
        }
        backups = found
        points = try scanPoints()
    }

    /// The disk's image backups and the points of its chain (a point's `sha256` is its
    /// digest), oldest first.
    public func list(disk: String) -> [BackupInfo] {
        // Points in the order they were made; image backups by time (points of the same
        // second after them).
        let chain = points(of: disk).map {
            (BackupInfo(id: $0.id, disk: $0.disk, format: $0.format, created: $0.created, size: $0.size, sha256: $0.digest,
                        compressed: false, internalSnapshots: false), $0.serial)
        }
        let images = backups.values.filter { $0.disk == disk }.map { ($0, UInt64(0)) }
        return (images + chain).sorted { ($0.0.created, $0.1, $0.0.id) < ($1.0.created, $1.1, $1.0.id) }.map(\.0)
    }
    public func backup(_ id: String) -> BackupInfo? { backups[id] }

    /// Copies `disk` into a new backup (sparse; `compress` for qcow2 compression) and
    /// records its checksum.
    ///
    /// A standalone image backed up uncompressed is copied byte for byte (sparse, internal
    /// snapshots included) by the daemon itself, which hashes each block it has read before
    /// writing it (`FileDigest.sha256(_:copyingTo:)`): every byte is read once, and copying
    /// and hashing run on separate cores. The source must not change meanwhile: a running VM
    /// is refused before the job starts (its lease), and the source is locked the way qemu
    /// checks (``ImageLock``) so a VM started with virsh meanwhile fails to open it; one that
    /// wrote anyway is caught by the source's inode, size and mtime (`Busy`). An overlay
    /// (flattened) or a compressed backup goes through `qemu-img convert`, then the written
    /// file is checksummed; progress then covers copying (90 %) and checksumming.
    public func backup(_ disk: DiskInfo, compress: Bool, progress: @escaping @Sendable (Double?) -> Void) async throws -> BackupInfo {
        let id = newID(disk.name)
        reservedIDs.insert(id)
        defer { reservedIDs.remove(id) }
        let format = compress ? "qcow2" : disk.format
        let temporary = "\(directory)/.\(id).img.partial"
        let byteCopy = !compress && disk.backingFile == nil
        let lock = try DiskStore.lockAgainstWriters(disk, "back up")
        defer { lock.release() }
        do {
            let sum: String
            if byteCopy {
                sum = try await Self.copyAndChecksum(disk.path, to: temporary, rate: copyRate, progress: progress)
            } else {
                try await qemuImg.convert(source: disk.path, format: disk.format, outputFormat: format, compress: compress,
                                          rate: copyRate, to: temporary) { progress($0 * 0.9) }
                try await FileSync.file(temporary)
                sum = try await FileDigest.sha256(temporary) { progress(0.9 + $0 * 0.1) }
            }
            try Task.checkCancellation()
            // The directory is searchable by qemu's user (live points): no backup file is
            // readable by anyone but root.
            try Files.setPermissions(temporary, 0o640)
            do { try Files.rename(temporary, to: imagePath(id)) } catch {
                throw ControllerError.io("cannot store backup \(id): \(systemMessage(error.code))")
            }
            let info = BackupInfo(id: id, disk: disk.name, format: format, created: UInt64(Date().timeIntervalSince1970),
                                  size: Files.status(imagePath(id))?.size ?? 0, sha256: sum, compressed: compress,
                                  internalSnapshots: byteCopy && !disk.snapshots.isEmpty)
            do {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try HostRoot("/").write(manifestPath(id), String(decoding: try encoder.encode(info), as: UTF8.self) + "\n", newFileMode: 0o640)
            } catch {
                Files.discard(imagePath(id))
                throw error
            }
            backups[id] = info
            logger.notice("backup \(id) of disk \(disk.name): \(info.size) bytes, sha256 \(sum)")
            return info
        } catch {
            Files.discard(temporary)
            if error is CancellationError || Task.isCancelled { throw ControllerError.cancelled("backup of \(disk.name) was cancelled") }
            throw DiskStore.naming(error, "backing up \(disk.name) into \(directory) failed")
        }
    }

    /// A fresh backup id for a disk: its name and the time.
    func newID(_ disk: String) -> String {
        let stamp = TextFormat.compactUTCNow()
        var id = "\(disk.prefix(40))-\(stamp)"
        while backups[id] != nil || points[id] != nil || reservedIDs.contains(id) || Files.exists(imagePath(id)) || Files.exists(pointImage(id))
                || Files.exists("\(directory)/.\(id).qcow2.partial") || Files.exists("\(directory)/.\(id).img.partial") {
            id = "\(disk.prefix(40))-\(stamp)-\(UInt16.random(in: 0...9999))"
        }
        return id
    }

    /// A new id for a VM point (VM.Backup): unused by any backup, point or VM point.
    func newGroupID(_ vm: String) -> String {
        var id = newID(vm)
        while points.values.contains(where: { $0.group == id }) { id = newID(vm + "-\(UInt16.random(in: 0...9999))") }
        return id
    }

    /// The disk points of VM point `id` (none: no such VM point), and the disks the VM point
    /// names that have no point in it (a daemon stopped while it was made, or a point
    /// deleted since): a VM point missing some is no VM point (its disks' points stay theirs).
    public func vmPoint(_ id: String) -> (points: [BackupPoint], missing: [String]) {
        let members = points.values.filter { $0.group == id && $0.deleting != true }.sorted { $0.disk < $1.disk }
        return (members, Self.missingMembers(members))
    }

    /// The disks VM point members `members` name that have none of them.
    static func missingMembers(_ members: [BackupPoint]) -> [String] {
        Set(members.compactMap(\.groupDisks).joined()).subtracting(members.map(\.disk)).sorted()
    }

    /// Deletes an image backup: its manifest first (from then on it does not exist), then
    /// its image.
    public func deleteImageBackup(_ id: String) async throws {
        guard backups[id] != nil else { throw ControllerError.noSuchBackup("no backup \(id)") }
        try Files.remove(manifestPath(id))
        backups[id] = nil
        Files.discard(imagePath(id))
        try? await FileSync.directory(of: manifestPath(id))
        logger.notice("deleted backup \(id)")
    }

    /// Verifies a backup's checksum (`Io` naming it when it does not match); `progress`
    /// gets the fraction checked.
    public func verify(_ id: String, progress: (@Sendable (Double) -> Void)? = nil) async throws -> BackupInfo {
        guard let info = backups[id] else { throw ControllerError.noSuchBackup("no backup \(id)") }
        let sum = try await FileDigest.sha256(imagePath(id), progress: progress)
        guard sum == info.sha256 else {
            throw ControllerError.io("backup \(id) is corrupted: sha256 \(sum) does not match the manifest's \(info.sha256); the disk was not touched")
        }
        return info
    }

    /// The path of a verified backup's image.
    public nonisolated func image(of id: String) -> String { "\(directory)/\(id).img" }

    /// A sparse copy of `source` to the new file `destination`, hashed on the way
    /// (`FileDigest`); returns the hash. Throws `Busy` if the source changed during the copy
    /// (then neither the copy nor the hash could be trusted).
    static func copyAndChecksum(_ source: String, to destination: String, rate: CopyRate,
                                progress: @escaping @Sendable (Double?) -> Void) async throws -> String {
        let before = try FileStamp(existing: source)
        let hash = try await FileDigest.sha256(source, copyingTo: destination, rate: rate) { progress($0) }
        guard FileStamp(source) == before else {
            throw ControllerError.busy("\(source) changed while it was being backed up (did a VM start on it?); the backup was discarded")
        }
        return hash
    }

}

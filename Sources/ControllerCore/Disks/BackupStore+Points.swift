import FoundationEssentials
import HostSystem
import Logging

/// Backup chains of stopped disks: points made by a private `qemu-storage-daemon`, indexed
/// block by block, verified and restored bit-exact.
///
/// The order of a point's steps makes each crash harmless (the manifest is the commit
/// point and the records are the truth):
/// 1. stale bitmaps of the service are removed from the disk (left by a point that was never
///    recorded, or tracking since an older point);
/// 2. the point's image is created as `.ID.qcow2.partial` (an overlay of the parent point);
/// 3. the storage daemon opens the disk read-write (qemu's write lock: a VM started
///    meanwhile fails to open it) and, in **one transaction**, adds the bitmap that will
///    track writes after this point and starts the backup (full, or of what the parent's
///    bitmap marks); it quits when the job ends, writing the bitmaps back;
/// 4. the blocks the point holds are hashed (one read of what qemu wrote) into
///    `.ID.index.partial`; both files are synced and renamed; the manifest `ID.point` is
///    written atomically — from here the point exists;
/// 5. the parent's bitmap is removed from the disk.
///
/// A crash before 4 leaves `.partial` files (removed at start-up) and a bitmap no record
/// names (removed before the next point); the parent's bitmap still tracks every write since
/// the parent, so the next point can still be incremental. A crash after 4 leaves the
/// parent's bitmap, removed before the next point. A storage daemon killed while it had the
/// disk open leaves every bitmap `in-use`: the next point is full, and says why.
extension BackupStore {
    nonisolated func pointImage(_ id: String) -> String { "\(directory)/\(id).qcow2" }
    nonisolated func pointIndex(_ id: String) -> String { "\(directory)/\(id).index" }
    nonisolated func pointManifest(_ id: String) -> String { "\(directory)/\(id).point" }

    /// Reads the points' manifests; removes point files whose manifest does not exist (an
    /// unreadable manifest keeps its files: other points may be built on them).
    func scanPoints() throws -> [String: BackupPoint] {
        var found: [String: BackupPoint] = [:]
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
        for name in names.sorted() where name.hasSuffix(".point") && !name.hasPrefix(".") {
            guard let data = FileManager.default.contents(atPath: "\(directory)/\(name)"),
                  let point = try? JSONDecoder().decode(BackupPoint.self, from: data), DiskName.isValid(point.id),
                  name == "\(point.id).point" else {
                logger.warning("skipping unreadable backup point manifest \(directory)/\(name) (its files are kept)")
                continue
            }
            found[point.id] = point
        }
        for name in names where !name.hasPrefix(".") && (name.hasSuffix(".qcow2") || name.hasSuffix(".index")) {
            let id = String(name[..<name.lastIndex(of: ".")!])
            if !Files.exists(pointManifest(id)) {
                Files.discard("\(directory)/\(name)")
                logger.notice("removed backup point file without a manifest \(directory)/\(name)")
            }
        }
        let grouped = found.values.filter { $0.group != nil && $0.deleting != true }
        for (group, members) in Dictionary(grouping: grouped, by: { $0.group! }).sorted(by: { $0.key < $1.key }) {
            let missing = Self.missingMembers(members)
            if !missing.isEmpty {
                let kept = members.map(\.disk).sorted().joined(separator: ", ")
                logger.info("VM point \(group) is incomplete (no point of \(missing.joined(separator: ", "))): it is no VM point; the points of \(kept) stay those disks' own")
            }
        }
        return found
    }

    /// The disk's chain points, oldest first.
    public func points(of disk: String) -> [BackupPoint] {
        points.values.filter { $0.disk == disk && $0.deleting != true }.sorted { ($0.serial, $0.created, $0.id) < ($1.serial, $1.created, $1.id) }
    }

    /// A point that exists and is not being deleted.
    public func point(_ id: String) -> BackupPoint? { points[id].flatMap { $0.deleting == true ? nil : $0 } }

    /// Whether `id` is a backup (image or point) of disk `disk`; with `deleting`, a point
    /// whose deletion is unfinished counts too (DeleteBackup finishes it).
    public func belongs(_ id: String, to disk: String, deleting: Bool = false) -> Bool {
        (backup(id)?.disk ?? (deleting ? points[id] : point(id))?.disk) == disk
    }

    /// Whether `id` is a point, one being deleted included.
    public func isPoint(_ id: String) -> Bool { points[id] != nil }

    /// The chain from the full point up to `point`, oldest first (nil: a point is missing).
    func chain(to point: BackupPoint) -> [BackupPoint]? {
        var chain = [point]
        var seen: Set<String> = [point.id]
        while let parent = chain[0].parent {
            guard let p = points[parent], !seen.contains(parent) else { return nil }
            seen.insert(parent)
            chain.insert(p, at: 0)
        }
        return chain
    }

    /// The newest point of the disk: the one a new incremental point builds on.
    func head(of disk: String) -> BackupPoint? { points(of: disk).last }

    /// Makes the next point of `disk` (stopped: the caller holds a consistent-reader lease).
    /// Returns the point (its `reason` says why it is full when `mode` allowed
    /// incremental).
    ///
    /// `isBase`: other disks are built on this one. It cannot change while they exist, and a
    /// VM running on one of them holds it open, so it is opened read-only and gets full
    /// points without tracking.
    public func makePoint(_ disk: DiskInfo, mode: BackupMode, isBase: Bool = false, policy: BackupPolicy = BackupPolicy(), group: String? = nil,
                          groupDisks: [String]? = nil, progress: @escaping @Sendable (Double?) -> Void) async throws -> BackupPoint {
        try claim([disk.name])
        defer { pointsInProgress.remove(disk.name) }
        let image = try await qemuImg.info(path: disk.path, format: disk.format)
        let tracking = disk.format == "qcow2" && image.compat != "0.10" && !isBase
        let draft: PointDraft
        do { draft = try await draftPoint(disk, mode: mode, image: image, isBase: isBase, policy: policy, tracking: tracking) } catch {
            throw pointError(error, disk.name)
        }
        defer { reservedIDs.remove(draft.id) }
        do {
            if tracking {
                for stale in BackupChain.staleBitmaps(image, keep: draft.parent?.bitmap) {
                    try await qemuImg.removeBitmap(stale, path: disk.path)
                    logger.info("removed bitmap \(stale) from disk \(disk.name): no recorded point needs it")
                }
            }
            try await runBackupJob(source: disk, target: draft.temporary, newBitmap: draft.bitmap, since: draft.parent?.bitmap,
                                   readOnly: draft.bitmap == nil) { progress($0 * 0.8) }
            CrashPoints.reach("backup.copied")
            let point = try await finishPoint(draft, group: group, groupDisks: groupDisks, live: false) { progress($0) }
            CrashPoints.reach("backup.recorded")
            if let old = draft.parent?.bitmap {
                do { try await qemuImg.removeBitmap(old, path: disk.path) } catch {
                    logger.warning("could not remove bitmap \(old) from disk \(disk.name) (removed before the next point): \(error)")
                }
            }
            return point
        } catch {
            discard(draft)
            throw pointError(error, disk.name)
        }
    }

    /// Runs the backup job in a storage daemon: adds `newBitmap` (persistent) on the source
    /// and starts the copy, in one QMP transaction; copies all (`since` nil) or what bitmap
    /// `since` marks. On failure the new bitmap is removed again.
    /// `readOnly`: the source is opened read-only (no bitmap to add); a VM still cannot open
    /// it for writing meanwhile (qemu's locks).
    func runBackupJob(source disk: DiskInfo, target: String, newBitmap: String?, since: String?, readOnly: Bool,
                      progress: @escaping @Sendable (Double) -> Void) async throws {
        let nodes = [StorageDaemon.Blockdev(disk.path, format: disk.format, node: "source", readOnly: readOnly),
                     StorageDaemon.Blockdev(target, format: "qcow2", node: "target")]
        let daemon: StorageDaemon
        do { daemon = try await StorageDaemon.start(blockdevs: nodes, program: storageDaemon) } catch let e as SystemError where e.kind == .inUse {
            throw ControllerError.busy("disk \(disk.name) is open for writing by another process (a VM started outside the service?); qemu: \(e.message)")
        }
        let speed = copyRate.bytesPerSecond
        do {
            try await daemon.session { qmp in
                var actions: [QMPAction] = []
                if let newBitmap { actions.append(.bitmapAdd(node: "source", name: newBitmap)) }
                actions.append(.backup(device: "source", target: "target", bitmap: since, speed: speed))
                try qmp.execute("transaction", QMPTransaction(actions: actions))
                do {
                    try Self.waitForJob(qmp, progress: progress)
                } catch {
                    if let newBitmap { try? qmp.execute("block-dirty-bitmap-remove", BitmapName(node: "source", name: newBitmap)) }
                    throw error
                }
                try? qmp.execute("quit")
            }
        } catch {
            await daemon.stop(grace: 5)
            throw error
        }
        await daemon.stop()
    }

    /// Waits for the job "backup" to end, reporting its progress every half second.
    static func waitForJob(_ qmp: QMPConnection, progress: (Double) -> Void) throws {
        struct Completed: Decodable {
            let device: String
            let error: String?
        }
        struct JobInfo: Decodable {
            let device: String
            let len: UInt64
            let offset: UInt64
        }
        while true {
            if let event = try qmp.nextEvent(timeout: 0.5) {
                switch event.name {
                case "BLOCK_JOB_COMPLETED":
                    guard let data = QMPConnection.data(of: event, as: Completed.self), data.device == "backup" else { continue }
                    if let error = data.error { throw SystemError.io(error) }
                    progress(1)
                    return
                case "BLOCK_JOB_CANCELLED":
                    throw SystemError.io("the backup job was cancelled")
                default:
                    continue
                }
            }
            if let jobs = try? qmp.execute("query-block-jobs", Empty?.none, returning: [JobInfo].self, timeout: 5),
               let job = jobs.first(where: { $0.device == "backup" }), job.len > 0 {
                progress(Double(job.offset) / Double(job.len))
            }
        }
    }

    /// The index of the image `files[0]` (an overlay of `files[1]`, and so on): with
    /// `parent`'s digests only the blocks `files[0]` holds are read.
    func computeIndex(files: [String], virtualSize: UInt64, parent: [UInt8]?) async throws -> [UInt8] {
        let map = try await qemuImg.map(path: files[0], format: "qcow2")
        let runs = try BackupChain.runsToHash(map: map, virtualSize: virtualSize, inheriting: parent != nil)
        let digests = try await BlockHasher.hash(files: files, runs: runs, blockSize: BackupChain.blockSize, virtualSize: virtualSize, base: parent)
        return BackupChain.index(virtualSize: virtualSize, digests: digests)
    }

    /// The index of a whole standalone image of `format` (a restored disk).
    func computeIndex(image path: String, format: String, virtualSize: UInt64) async throws -> [UInt8] {
        let map = try await qemuImg.map(path: path, format: format)
        let runs = try BackupChain.runsToHash(map: map, virtualSize: virtualSize, inheriting: false)
        let digests = try await BlockHasher.hash(files: [path], runs: runs, blockSize: BackupChain.blockSize, virtualSize: virtualSize, base: nil)
        return BackupChain.index(virtualSize: virtualSize, digests: digests)
    }

    /// A point's stored block digests, checked against its manifest's digest.
    func storedDigests(_ point: BackupPoint) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: pointIndex(point.id)) else {
            throw ControllerError.io("backup point \(point.id) has no index \(pointIndex(point.id))")
        }
        let bytes = [UInt8](data)
        guard try BlockHasher.sha256Hex(bytes) == point.digest, let digests = BackupChain.digests(in: bytes, virtualSize: point.virtualSize) else {
            throw ControllerError.io("the index of backup point \(point.id) does not match its manifest's digest \(point.digest)")
        }
        return digests
    }

    /// Re-checks the chain up to point `id`: each point's stored index against its manifest,
    /// and the blocks each point holds against its index (every point file read once).
    /// `Io` naming the first point that does not match. `progress` gets the fraction of
    /// points checked.
    public func verifyPoint(_ id: String, progress: @escaping @Sendable (Double) -> Void = { _ in }) async throws -> (point: BackupPoint, checked: Int) {
        guard let point = point(id) else { throw ControllerError.noSuchBackup("no backup \(id)") }
        guard let chain = chain(to: point) else { throw ControllerError.io("backup point \(id) misses a point of its chain") }
        try beginReading(point.disk)
        defer { endReading(point.disk) }
        var parentDigests: [UInt8]?
        for (n, p) in chain.enumerated() {
            let stored = try storedDigests(p)
            let files = chain[...n].reversed().map { pointImage($0.id) }
            let index: [UInt8]
            do { index = try await computeIndex(files: files, virtualSize: p.virtualSize, parent: parentDigests) } catch {
                throw DiskStore.naming(error, "reading backup point \(p.id) failed")
            }
            guard let computed = BackupChain.digests(in: index, virtualSize: p.virtualSize), computed == stored else {
                throw ControllerError.io("backup point \(p.id) is corrupted: its data does not match its index (digest \(p.digest))")
            }
            parentDigests = computed
            progress(Double(n + 1) / Double(chain.count))
        }
        return (point, chain.count)
    }

    /// Checks that the image at `path` (of `format`) holds exactly point `point`'s content.
    func checkRestored(_ path: String, format: String, against point: BackupPoint) async throws {
        let index = try await computeIndex(image: path, format: format, virtualSize: point.virtualSize)
        let digest = try BlockHasher.sha256Hex(index)
        guard digest == point.digest else {
            throw ControllerError.io("the image restored from backup point \(point.id) does not match its index (digest \(digest), expected \(point.digest)); the disk was not touched")
        }
    }

    func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o640]) else {
            throw ControllerError.io("cannot write \(path)")
        }
    }

    func writeManifest(_ point: BackupPoint) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try HostRoot("/").write(pointManifest(point.id), String(decoding: try encoder.encode(point), as: UTF8.self) + "\n", newFileMode: 0o640)
    }
}

private struct Empty: Encodable {}

private struct BitmapName: Encodable {
    let node: String
    let name: String
}

private struct QMPTransaction: Encodable {
    let actions: [QMPAction]
}

/// One action of a QMP `transaction`.
private enum QMPAction: Encodable {
    case bitmapAdd(node: String, name: String)
    case backup(device: String, target: String, bitmap: String?, speed: UInt64?)

    private enum Keys: String, CodingKey {
        case type, data
    }
    private struct BitmapAdd: Encodable {
        let node: String
        let name: String
        let persistent = true
    }
    private struct Backup: Encodable {
        let device: String
        let target: String
        let sync: String
        let bitmap: String?
        let bitmapMode: String?
        let speed: UInt64?
        let jobID = "backup"
        enum CodingKeys: String, CodingKey {
            case device, target, sync, bitmap, speed
            case bitmapMode = "bitmap-mode", jobID = "job-id"
        }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        switch self {
        case .bitmapAdd(let node, let name):
            try c.encode("block-dirty-bitmap-add", forKey: .type)
            try c.encode(BitmapAdd(node: node, name: name), forKey: .data)
        case .backup(let device, let target, let bitmap, let speed):
            try c.encode("blockdev-backup", forKey: .type)
            // "bitmap" with mode "never": the copy leaves the bitmap as it is (the service
            // removes it once the new point is recorded).
            try c.encode(Backup(device: device, target: target, sync: bitmap == nil ? "full" : "bitmap", bitmap: bitmap,
                                bitmapMode: bitmap == nil ? nil : "never", speed: speed), forKey: .data)
        }
    }
}

import FoundationEssentials
import HostSystem
import Logging

/// Deleting points of a chain without losing what later points need.
///
/// A point is first marked `deleting` in its manifest (from then on it is neither listed
/// nor restorable, and a restart finishes the deletion); then the point built on it (its
/// child) takes over its data:
/// - a middle point: the child is rebased onto the point's parent with a safe
///   `qemu-img rebase`, which copies into the child what it read through the point; the
///   child's content never changes, so a crash at any moment leaves it restorable, and the
///   rebase is simply run again;
/// - a full point: the child's blocks are committed into it (`qemu-img commit -d`; the
///   child still reads the same bytes through it meanwhile), and the merged image is
///   renamed over the child's file, which becomes the chain's full point; a restart commits
///   again if the rename had not happened (committing the same blocks twice changes
///   nothing);
/// - the newest point: nothing depends on it.
/// Last the point's files and manifest go. A child's index never changes: a merge keeps
/// what it holds, and `VerifyBackup` proves it.
extension BackupStore {
    /// Deletes point `id` (one marked `deleting` already is finished). `Busy` while a backup,
    /// a restore or a verification of the disk's points runs. A deletion of the disk's points
    /// that an error or a restart left unfinished is finished first, so at most one point of
    /// a disk is ever marked `deleting` (a merge never meets another half-done one).
    public func deletePoint(_ id: String) async throws {
        guard let found = points[id] else { throw ControllerError.noSuchBackup("no backup \(id)") }
        for pending in points.values.filter({ $0.disk == found.disk && $0.deleting == true && $0.id != id }) {
            try await deleteOne(pending)
        }
        guard let point = points[id] else { return }
        try await deleteOne(point)
    }

    private func deleteOne(_ found: BackupPoint) async throws {
        var point = found
        let id = point.id
        let disk = point.disk
        guard !pointsInProgress.contains(disk) else { throw ControllerError.busy("a backup or deletion of disk \(disk)'s points is running") }
        guard (pointReaders[disk] ?? 0) == 0 else { throw ControllerError.busy("a restore or verification of disk \(disk)'s points is running") }
        pointsInProgress.insert(disk)
        deletingDisks.insert(disk)
        defer {
            pointsInProgress.remove(disk)
            deletingDisks.remove(disk)
        }
        if point.deleting != true {
            point.deleting = true
            try writeManifest(point)
            points[id] = point
            CrashPoints.reach("delete-backup.marked")
        }
        try await finishDeletion(point)
    }

    /// Finishes the deletions a restart interrupted (points still marked `deleting`; at most
    /// one per disk). A failure is logged and the point stays marked (the next start, or the
    /// next DeleteBackup on the disk, tries again).
    public func resumeDeletions() async {
        for point in points.values.filter({ $0.deleting == true }).sorted(by: { ($0.serial, $0.id) < ($1.serial, $1.id) }) {
            do {
                try await deletePoint(point.id)
                logger.notice("finished the deletion of backup point \(point.id) of disk \(point.disk)")
            } catch {
                logger.warning("could not finish the deletion of backup point \(point.id): \(error)")
            }
        }
    }

    /// Deletes the oldest points of `disk` until `keepLast` are left (0: keeps all).
    /// Returns the ids deleted.
    public func prune(_ disk: String, keepLast: UInt32) async throws -> [String] {
        guard keepLast > 0 else { return [] }
        var deleted: [String] = []
        while true {
            let listed = points(of: disk)
            guard listed.count > Int(keepLast), let oldest = listed.first else { break }
            try await deletePoint(oldest.id)
            deleted.append(oldest.id)
            logger.notice("backup point \(oldest.id) of disk \(disk) pruned (keep_last \(keepLast))")
        }
        return deleted
    }

    private func finishDeletion(_ point: BackupPoint) async throws {
        let id = point.id
        if var child = points.values.first(where: { $0.parent == id }) {
            let childImage = pointImage(child.id)
            let childDigests = try storedDigests(child)
            if let parent = point.parent {
                guard let grandparent = points[parent], let chain = chain(to: grandparent) else {
                    throw ControllerError.io("backup point \(id) cannot be deleted: its parent \(parent) is missing")
                }
                try await qemuImg.rebase(childImage, backing: "\(parent).qcow2", backingFormat: "qcow2")
                // The child must read what its index says before anything of the point goes.
                try await requireIndex(of: [childImage] + chain.reversed().map { pointImage($0.id) }, equals: childDigests, child)
                CrashPoints.reach("delete-backup.merged")
                child.parent = parent
            } else {
                let backing = try await qemuImg.info(path: childImage, format: "qcow2").backingFile
                if backing == "\(id).qcow2" {
                    try await qemuImg.commit(childImage)
                    // The full point's file now holds what the child holds: checked before it
                    // takes the child's place.
                    try await requireIndex(of: [pointImage(id)], equals: childDigests, child)
                    CrashPoints.reach("delete-backup.merged")
                    try await FileSync.file(pointImage(id))
                    try Files.rename(pointImage(id), to: childImage)
                    try? await FileSync.directory(of: childImage)
                    CrashPoints.reach("delete-backup.renamed")
                } else if backing != nil {
                    throw ControllerError.io("backup point \(child.id) is built on \(backing!), not on point \(id): its deletion was stopped")
                }
                child.parent = nil
                child.kind = .full
            }
            try await FileSync.file(childImage)
            child.size = Files.status(childImage)?.size ?? child.size
            try writeManifest(child)
            points[child.id] = child
            logger.info("backup point \(child.id) took over the data of point \(id)")
        }
        Files.discard(pointImage(id))
        Files.discard(pointIndex(id))
        if Files.exists(pointManifest(id)) { try Files.remove(pointManifest(id)) }
        try? await FileSync.directory(of: pointManifest(id))
        points[id] = nil
        logger.notice("deleted backup point \(id) of disk \(point.disk)")
    }

    /// Throws unless the image `files[0]` (on the chain `files`) reads exactly what `point`'s
    /// index says.
    private func requireIndex(of files: [String], equals digests: [UInt8], _ point: BackupPoint) async throws {
        let index = try await computeIndex(files: files, virtualSize: point.virtualSize, parent: nil)
        guard BackupChain.digests(in: index, virtualSize: point.virtualSize) == digests else {
            throw ControllerError.io("after the merge, backup point \(point.id) no longer reads what its index says; the deletion was stopped")
        }
    }

    /// Runs `body` (a restore of one of `disk`'s points) with the disk's points held
    /// against deletions.
    public func whileReading<T: Sendable>(_ disk: String, _ body: @Sendable () async throws -> T) async throws -> T {
        try beginReading(disk)
        defer { endReading(disk) }
        return try await body()
    }

    /// Marks a restore or verification of `disk`'s points as running (deletions wait);
    /// `Busy` while a deletion runs.
    func beginReading(_ disk: String) throws {
        guard !deletingDisks.contains(disk) else { throw ControllerError.busy("a deletion of disk \(disk)'s backup points is running") }
        pointReaders[disk, default: 0] += 1
    }

    func endReading(_ disk: String) {
        pointReaders[disk, default: 1] -= 1
        if pointReaders[disk] == 0 { pointReaders[disk] = nil }
    }
}

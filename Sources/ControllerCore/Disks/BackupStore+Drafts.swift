import FoundationEssentials
import HostSystem

/// A point being made, whichever copy makes it (the storage daemon of a stopped disk, or a
/// running VM's qemu): the claim on its disks, its plan and temporary files, the space a
/// live copy reserves, and the finish that indexes it and writes its manifest.
extension BackupStore {
    /// Marks `disks` as having a point made (one at a time per disk); `Busy` when one has.
    func claim(_ disks: [String]) throws {
        if let busy = disks.first(where: { pointsInProgress.contains($0) }) {
            if busy.hasPrefix("vm ") {
                throw ControllerError.busy("a backup of this VM's disks is running, or the backup job it was left with is being aborted")
            }
            throw ControllerError.busy("a backup or deletion of disk \(busy)'s points is already running")
        }
        pointsInProgress.formUnion(disks)
    }

    /// Gives back what ``claim(_:)`` took, when no draft was made.
    func unclaim(_ disks: [String]) {
        pointsInProgress.subtract(disks)
    }

    /// A point being made: its plan, its reserved id and its temporary files.
    struct PointDraft: Sendable {
        let disk: DiskInfo
        let id: String
        let parent: BackupPoint?
        let reason: String?
        /// The bitmap that tracks writes after the point (nil: the disk is not tracked).
        let bitmap: String?
        var temporary: String
        var temporaryIndex: String
    }

    /// Plans the next point of `disk` from the records and `image` (what qemu-img, or for a
    /// running VM libvirt's checkpoints, say of its bitmaps), reserves its id and creates its
    /// image as an overlay of the parent point (`.ID.qcow2.partial`). The caller removes the
    /// id from ``reservedIDs`` when it is done.
    /// `bitmap`: the name of the bitmap that tracks writes after the point (default
    /// `mv-ID`; a VM point names all its disks' bitmaps after itself, as libvirt's
    /// checkpoints require).
    func draftPoint(_ disk: DiskInfo, mode: BackupMode, image: ImageInfo, isBase: Bool, policy: BackupPolicy, tracking: Bool,
                    bitmap: String? = nil) async throws -> PointDraft {
        let head = head(of: disk.name)
        let headUsable = head.map { h in chain(to: h) != nil && Files.exists(pointImage(h.id)) && Files.exists(pointIndex(h.id)) } ?? false
        let plan = try BackupChain.plan(mode: mode, disk: disk, image: image, head: head, headUsable: headUsable, isBase: isBase,
                                        policy: policy, chainLength: head.flatMap { chain(to: $0)?.count } ?? 0)
        let parent: BackupPoint? = if case .incremental(let p) = plan { p } else { nil }
        let reason: String? = if case .full(let r) = plan { r } else { nil }
        let id = newID(disk.name)
        reservedIDs.insert(id)
        let draft = PointDraft(disk: disk, id: id, parent: parent, reason: reason, bitmap: tracking ? bitmap ?? BackupChain.bitmapName(id) : nil,
                               temporary: "\(directory)/.\(id).qcow2.partial", temporaryIndex: "\(directory)/.\(id).index.partial")
        do {
            try await qemuImg.create(path: draft.temporary, format: "qcow2", size: disk.virtualSize,
                                     backing: parent.map { ("\($0.id).qcow2", "qcow2") },
                                     options: ["cluster_size": String(BackupChain.blockSize)])
        } catch {
            reservedIDs.remove(id)
            discard(draft)
            throw error
        }
        return draft
    }

    /// Indexes the copied point (one read of what the copy wrote), syncs and renames its
    /// files and writes its manifest: from then on the point exists. A point of VM point
    /// `group` names the VM point's disks (`groupDisks`): the VM point exists once each of
    /// them has its manifest.
    func finishPoint(_ draft: PointDraft, group: String?, groupDisks: [String]?, live: Bool, progress: @escaping @Sendable (Double) -> Void) async throws -> BackupPoint {
        let (disk, id, parent) = (draft.disk, draft.id, draft.parent)
        try Task.checkCancellation()
        let files = [draft.temporary] + (parent.flatMap { chain(to: $0) }?.reversed().map { pointImage($0.id) } ?? [])
        let parentDigests = try parent.map { try storedDigests($0) }
        let index = try await computeIndex(files: files, virtualSize: disk.virtualSize, parent: parentDigests)
        let digest = try BlockHasher.sha256Hex(index)
        progress(0.95)
        try writeFile(draft.temporaryIndex, index)
        // Root's, whatever libvirt's relabelling left (qemu wrote a live point).
        try Files.setOwner(draft.temporary, uid: 0, gid: 0)
        try Files.setPermissions(draft.temporary, 0o640)
        try await FileSync.file(draft.temporary)
        try await FileSync.file(draft.temporaryIndex)
        try Task.checkCancellation()
        let point = BackupPoint(id: id, disk: disk.name, kind: parent == nil ? .full : .incremental, parent: parent?.id,
                                created: UInt64(Date().timeIntervalSince1970), size: Files.status(draft.temporary)?.size ?? 0,
                                virtualSize: disk.virtualSize, format: disk.format, blockSize: BackupChain.blockSize,
                                digest: digest, bitmap: draft.bitmap, reason: draft.reason, sequence: (parent?.sequence ?? -1) + 1,
                                serial: (points.values.map(\.serial).max() ?? 0) + 1, group: group, groupDisks: groupDisks, live: live ? true : nil)
        try Files.rename(draft.temporary, to: pointImage(id))
        try Files.rename(draft.temporaryIndex, to: pointIndex(id))
        do {
            try writeManifest(point)
        } catch {
            Files.discard(pointImage(id))
            Files.discard(pointIndex(id))
            throw error
        }
        points[id] = point
        let on = parent.map { " on \($0.id)" } ?? ""
        let why = point.reason.map { " (full: \($0))" } ?? ""
        logger.notice("backup point \(id) of disk \(disk.name): \(point.kind.rawValue)\(on)\(live ? ", live" : ""), \(point.size) bytes, digest \(point.digest)\(why)")
        progress(1)
        return point
    }

    /// Ends drafts made or abandoned: their ids, their disks' claim and the space
    /// reservation under `key` are released.
    func endDrafts(_ drafts: [PointDraft], names: [String], key: String) {
        for draft in drafts { reservedIDs.remove(draft.id) }
        pointsInProgress.subtract(names)
        spaceReservations[key] = nil
    }

    /// Releases the space reservation under `key` (its push targets are written).
    func releaseSpace(key: String) {
        spaceReservations[key] = nil
    }

    /// Room a running live backup reserved: at most `bytes` in `files` (its push targets).
    struct SpaceReservation: Sendable {
        let bytes: UInt64
        let files: [String]

        /// What the files may still grow by: the reservation less what they hold.
        var remaining: UInt64 {
            let written = files.reduce(UInt64(0)) { $0 + (Files.status($1)?.allocated ?? 0) }
            return bytes > written ? bytes - written : 0
        }
    }

    /// What every running live backup may still write (their reservations less what
    /// their files hold): the room the free-space watch keeps.
    func spaceStillNeeded() -> UInt64 {
        spaceReservations.values.reduce(0) { $0 + $1.remaining }
    }

    /// Reserves `bytes` of the backup filesystem for a running backup (`key`) whose push
    /// targets are `files`, beside what the others running may still write;
    /// `LimitsExceeded` naming the figures when the filesystem does not have them (qemu
    /// fails the guest's writes when a push target cannot grow, so the space is checked
    /// before the backup begins).
    func reserveSpace(_ bytes: UInt64, files: [String], key: String, for disks: String) throws {
        let available = (try? Files.availableBytes(directory)) ?? 0
        let others = spaceStillNeeded()
        guard available >= others + bytes + DiskContext.backupSpaceFloor else {
            throw ControllerError.limitsExceeded("a backup of \(disks) needs up to \(bytes) bytes on \(directory), which has \(available) free "
                + "(\(others) still needed by other backups, \(DiskContext.backupSpaceFloor) kept free)")
        }
        spaceReservations[key] = SpaceReservation(bytes: bytes, files: files)
    }

    /// Removes a draft's temporary files.
    func discard(_ draft: PointDraft) {
        Files.discard(draft.temporary)
        Files.discard(draft.temporaryIndex)
    }

    /// A failed point's error as the caller sees it.
    func pointError(_ error: any Error, _ disk: String) -> any Error {
        if error is CancellationError || Task.isCancelled { return ControllerError.cancelled("backup of \(disk) was cancelled") }
        return DiskStore.naming(error, "backing up \(disk) into \(directory) failed")
    }
}

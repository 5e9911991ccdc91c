import FoundationEssentials
import HostSystem

/// Disks made from a copy of something else: Clone (of another disk), Restore over a disk
/// and Restore as a new disk (from a backup).
extension DiskStore {
    /// Copies `source` to a new disk `name`: a full copy keeping sparseness (a byte copy of
    /// a standalone image, `qemu-img convert` flattening an overlay) or, `linked`, a qcow2
    /// overlay on it. Progress is the bytes copied so far. The new image
    /// appears only when complete; cancellation kills the copy and leaves nothing behind.
    public func clone(_ source: String, to name: String, linked: Bool, progress: @escaping @Sendable (Double?) -> Void) async throws -> DiskInfo {
        guard let src = disk(named: source) else { throw ControllerError.noSuchDisk("no disk named \(source)") }
        // A full copy holds its source still: no qemu may open it for writing meanwhile.
        let lock = linked ? nil : try Self.lockAgainstWriters(src, "clone")
        defer { lock?.release() }
        let (qemuImg, rate) = (self.qemuImg, copyRate)
        let info = try await makeDisk(name, format: linked ? "qcow2" : src.format, what: "clone of \(source) to \(name)") { temporary in
            try src.requireUsable()
            if linked {
                try await qemuImg.create(path: temporary, format: "qcow2", size: src.virtualSize, backing: (src.path, src.format))
            } else if src.backingFile == nil {
                // A standalone image: a sparse byte copy (reflinked where the filesystem
                // can, written back as it goes) is the fastest full copy and keeps its
                // internal snapshots.
                try await Self.sparseCopy(src.path, to: temporary, rate: rate, progress: { progress($0) })
            } else {
                // An overlay: qemu-img flattens the chain into a standalone image.
                try await qemuImg.convert(source: src.path, format: src.format, rate: rate, to: temporary) { progress(min(0.99, $0)) }
            }
        }
        logger.info("cloned disk \(source) to \(name)\(linked ? " (linked)" : "")")
        return info
    }

    /// Replaces disk `name` with the image at `source` (a verified backup) in a temporary
    /// file first: a sparse byte copy when the backup is an uncompressed image of the
    /// disk's format (internal snapshots come back with it), otherwise converted to the
    /// disk's format; `commit` runs right before the atomic rename over the disk
    /// (cancelling after it is refused).
    /// With `flatten` the source is an overlay whose chain is converted (a backup point);
    /// `check` then looks at the written temporary image before anything is committed.
    public func restore(_ name: String, from source: String, format: String, compressed: Bool, flatten: Bool = false,
                        check: (@Sendable (String) async throws -> Void)? = nil,
                        commit: @escaping @Sendable () -> Void) async throws -> DiskInfo {
        let (qemuImg, rate) = (self.qemuImg, copyRate)
        let (_, info) = try await transform(name, start: .nothing, progress: { _ in }, commit: commit) { temporary, disk in
            try await Self.copyBackup(source, format: format, compressed: compressed, flatten: flatten, to: temporary,
                                      as: disk.format, qemuImg: qemuImg, rate: rate)
            try await check?(temporary)
        }
        logger.notice("restored disk \(name) from \(source)")
        return info
    }

    /// Makes the new disk `name` of format `outputFormat` from the backup image at
    /// `source` (as ``restore(_:from:format:compressed:flatten:check:commit:)`` writes it),
    /// `check`ed before it gets its name; nothing is left behind on failure or cancellation.
    public func restoreAsNew(_ name: String, from source: String, format: String, compressed: Bool, flatten: Bool,
                             outputFormat: String, check: (@Sendable (String) async throws -> Void)? = nil) async throws -> DiskInfo {
        let (qemuImg, rate) = (self.qemuImg, copyRate)
        let info = try await makeDisk(name, format: outputFormat, what: "restore of \(source) as disk \(name)") { temporary in
            try await Self.copyBackup(source, format: format, compressed: compressed, flatten: flatten, to: temporary,
                                      as: outputFormat, qemuImg: qemuImg, rate: rate)
            try await check?(temporary)
        }
        logger.notice("restored \(source) as new disk \(name)")
        return info
    }

    /// Writes a backup image into `temporary` in `outputFormat`: a sparse byte copy when it
    /// already is an uncompressed standalone image of that format, else `qemu-img convert`.
    private static func copyBackup(_ source: String, format: String, compressed: Bool, flatten: Bool, to temporary: String,
                                   as outputFormat: String, qemuImg: QemuImg, rate: CopyRate) async throws {
        if format == outputFormat && !compressed && !flatten {
            try await sparseCopy(source, to: temporary, rate: rate)
        } else {
            try await qemuImg.convert(source: source, format: format, outputFormat: outputFormat, rate: rate, to: temporary)
        }
    }

    /// Makes the new disk `name`: `write` fills a private temporary image in the image
    /// directory, which gets `format` recorded, is synced and linked to its name (never
    /// replacing a file put there meanwhile), and is then described and listed. A failure
    /// or cancellation removes the temporary.
    private func makeDisk(_ name: String, format: String, what: String,
                          _ write: @Sendable (_ temporary: String) async throws -> Void) async throws -> DiskInfo {
        if disks[name] != nil || creating.contains(name) { throw ControllerError.alreadyExists("disk \(name) already exists") }
        creating.insert(name)
        defer { creating.remove(name) }
        let temporary = path(of: ".\(name).creating-\(UUID().uuidString.prefix(8))")
        let final = path(of: name)
        do {
            try await write(temporary)
            try Task.checkCancellation()
            try ImageFormatRecord.write(temporary, format: format)
            try await linkIntoPlace(temporary, final, name: name)
        } catch {
            Files.discard(temporary)
            if error is CancellationError || Task.isCancelled { throw ControllerError.cancelled("the \(what) was cancelled") }
            throw Self.naming(error, "the \(what) in \(directory) failed")
        }
        let info: DiskInfo
        do { info = try await describe(name) } catch {
            Files.discard(final)
            throw error
        }
        disks[name] = info
        return info
    }
}

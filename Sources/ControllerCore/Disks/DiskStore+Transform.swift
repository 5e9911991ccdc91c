import FoundationEssentials
import Guestfs
import HostSystem

extension DiskStore {
    /// Where a disk changed in place (Resize, Format, AutoGrow) starts from.
    public enum TransformStart: Sendable {
        /// A sparse copy of the disk (keeps internal snapshots; costs a full copy).
        case copy
        /// An empty image of the same format and virtual size (Format of a disk without
        /// snapshots: nothing of the old contents is needed).
        case fresh
        /// Nothing: the body writes the temporary image itself (Restore).
        case nothing
    }

    /// Changes disk `name` safely (the caller holds a ``LeaseKind/writer`` lease on it, and
    /// the image is locked against writers the way qemu checks, ``ImageLock``, so a VM
    /// started with virsh meanwhile fails to open the image instead of writing into the file
    /// about to be replaced): `body` works on a private temporary image (a copy, or a
    /// fresh one) in the image directory; only when it succeeds is the temporary synced to
    /// disk, `commit` called and the temporary renamed over the disk (atomic; the directory
    /// synced after). A failure or cancellation before that
    /// removes the temporary and leaves the disk byte-for-byte as it was. Progress of the
    /// copy is reported as 0…`copyShare`.
    public func transform<T: Sendable>(_ name: String, start: TransformStart, copyShare: Double = 0.4,
                                       progress: @escaping @Sendable (Double) -> Void,
                                       commit: @escaping @Sendable () -> Void,
                                       _ body: @escaping @Sendable (_ temporary: String, _ disk: DiskInfo) async throws -> T) async throws -> (T, DiskInfo) {
        guard let disk = disk(named: name) else { throw ControllerError.noSuchDisk("no disk named \(name)") }
        try disk.requireUsable()
        let lock = try Self.lockAgainstWriters(disk, "change")
        defer { lock.release() }
        let temporary = path(of: ".\(name).creating-\(UUID().uuidString.prefix(8))")
        let result: T
        do {
            switch start {
            case .copy:
                try await Self.sparseCopy(disk.path, to: temporary, rate: copyRate, progress: { progress($0 * copyShare) })
            case .fresh:
                var backing: (path: String, format: String)?
                if let b = disk.backingFile, let base = disks.values.first(where: { $0.path == b }) { backing = (b, base.format) }
                try await qemuImg.create(path: temporary, format: disk.format, size: disk.virtualSize, backing: backing)
            case .nothing:
                break
            }
            progress(copyShare)
            try Task.checkCancellation()
            result = try await body(temporary, disk)
            try Task.checkCancellation()
            try Files.setPermissions(temporary, 0o600)
            try ImageFormatRecord.write(temporary, format: disk.format)
            try await FileSync.file(temporary)
            commit()
            try Files.rename(temporary, to: disk.path)
            try? await FileSync.directory(of: disk.path)
        } catch {
            Files.discard(temporary)
            if error is CancellationError || Task.isCancelled { throw ControllerError.cancelled("the change to disk \(name) was cancelled; the disk is unchanged") }
            if let g = error as? GuestfsError { throw ControllerError.guestfs("disk \(name): \(g); the disk is unchanged") }
            throw Self.naming(error, "changing disk \(name) in \(directory) failed")
        }
        let info = try await describe(name)
        disks[name] = info
        return (result, info)
    }

    /// Locks `disk`'s image against writers for the time of a copy or replacement
    /// (``ImageLock``): a process that has it open for writing already is `Busy`.
    static func lockAgainstWriters(_ disk: DiskInfo, _ what: String) throws -> ImageLock {
        do { return try ImageLock.againstWriters(disk.path) } catch {
            let mapped = ControllerError(error)
            if case .busy(let message) = mapped { throw ControllerError.busy("cannot \(what) disk \(disk.name): \(message)") }
            throw mapped
        }
    }

    /// A byte-identical copy of `source` (snapshots, backing reference and all) in the new
    /// file `destination` that keeps holes, reflinked where the file system can, on disk
    /// when this returns (`FileDigest.copy`), read at most at `rate`; progress by the bytes
    /// copied, up to 0.99.
    /// Cancellation stops it between two blocks (the caller removes what was written).
    static func sparseCopy(_ source: String, to destination: String, rate: CopyRate,
                           progress: (@Sendable (Double) -> Void)? = nil) async throws {
        var capped: (@Sendable (Double) -> Void)?
        if let progress { capped = { progress(min(0.99, $0)) } }
        try await FileDigest.copy(source, to: destination, rate: rate, progress: capped)
        try Task.checkCancellation()
    }
}

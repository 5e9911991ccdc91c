import FoundationEssentials
import HostSystem
import Logging

/// A managed disk: the regular file `ImageDirectory/NAME`.
public struct DiskInfo: Sendable, Equatable {
    public var name: String
    public var path: String
    /// The recorded format (``ImageFormatRecord``); "" when the image has no record yet.
    public var format: String
    public var virtualSize: UInt64
    public var allocatedSize: UInt64
    /// Absolute path of the backing file, if the image has one.
    public var backingFile: String?
    /// Internal snapshots (qcow2).
    public var snapshots: [DiskSnapshot] = []
    /// The backing file name exactly as the header has it.
    public var backingHeader: String?
    /// The backing file's format as the header names it.
    public var backingFormat: String?
    /// A qcow2 image's external data file.
    public var dataFile: String?
    /// Why the disk cannot be used (``DiskChain``); empty when it can.
    public var problems: [String] = []
    /// A qcow2 image's version (`0.10` for v2, `1.1` for v3), as last read.
    public var compat: String?
    /// A qcow2 image's persistent dirty bitmaps as last read: name, and whether qemu marked
    /// it in use (a running VM's, or one a qemu did not close cleanly).
    public var bitmaps: [DiskBitmap] = []

    /// `InvalidState` naming the problems, unless there are none.
    public func requireUsable() throws {
        guard problems.isEmpty else {
            throw ControllerError.invalidState(problems.joined(separator: "; ") + " (only Delete works on it)")
        }
    }
}

/// A persistent dirty bitmap of a qcow2 image.
public struct DiskBitmap: Sendable, Equatable {
    public var name: String
    public var inUse: Bool
}

/// An internal snapshot of a disk image.
public struct DiskSnapshot: Sendable, Equatable {
    public var name: String
    /// Seconds since the epoch.
    public var created: UInt64
}

/// A validated CreateDisk request.
public struct CreateDiskRequest: Sendable, Equatable {
    public var name: String
    public var size: UInt64
    public var format: String
    /// Managed disk to overlay (qcow2 only).
    public var backing: String?
    public var preallocation: String?

    public init(name: String, size: UInt64, format: String, backing: String? = nil, preallocation: String? = nil) {
        self.name = name
        self.size = size
        self.format = format
        self.backing = backing
        self.preallocation = preallocation
    }

    public static let formats = ["qcow2", "raw"]
    public static let preallocations = ["qcow2": ["off", "metadata", "falloc", "full"], "raw": ["off", "falloc", "full"]]

    /// Checks every argument; errors are `InvalidArgs` naming the bad value.
    public func validate(maxSize: UInt64) throws {
        try DiskName.validate(name)
        guard Self.formats.contains(format) else {
            throw ControllerError.invalidArgs("invalid format \(CallerText.quoted(format)): use qcow2 or raw")
        }
        guard size > 0, size <= maxSize else {
            throw ControllerError.invalidArgs("invalid size \(size): must be between 1 and \(maxSize) bytes")
        }
        guard size % 512 == 0 else {
            throw ControllerError.invalidArgs("invalid size \(size): must be a multiple of 512 bytes")
        }
        if let preallocation, !(Self.preallocations[format] ?? []).contains(preallocation) {
            throw ControllerError.invalidArgs(
                "invalid preallocation \(CallerText.quoted(preallocation)) for \(format): use \(Self.preallocations[format]!.joined(separator: ", "))")
        }
        if let backing {
            try DiskName.validate(backing)
            guard format == "qcow2" else { throw ControllerError.invalidArgs("backing needs format qcow2, not \(format)") }
            guard backing != name else { throw ControllerError.invalidArgs("disk \(name) cannot be its own backing disk") }
        }
    }
}

/// The managed disks of the image directory.
///
/// Names are validated before they reach here, so `directory/NAME` never leaves the
/// directory; entries that are symlinks, not regular files or badly named are skipped and
/// never followed. New images are written under a hidden temporary name and linked into
/// place only when complete, so a failed or interrupted create leaves nothing behind.
public actor DiskStore {
    public nonisolated let directory: String
    let qemuImg: QemuImg
    let logger: Logger
    /// The limit on Clone's, Restore's and the in-place changes' copies.
    let copyRate: CopyRate
    var disks: [String: DiskInfo] = [:]
    /// Names of disks being made (CreateDisk, Clone): taken, though no image has them yet.
    var creating: Set<String> = []
    /// Who holds each disk (see ``LeaseKind``).
    var leases = DiskLeases()
    /// VMs the service is starting or attaching a disk to: their leases only grow meanwhile.
    var starting: [String: Int] = [:]
    /// True once the VMs' leases were rebuilt from libvirt (``vmLeasesKnown()``).
    var vmLeasesReady = false
    var vmLeaseWaiters: [UInt64: CheckedContinuation<Bool, Never>] = [:]
    var nextLeaseWaiter: UInt64 = 0

    public init(directory: String, qemuImg: QemuImg, copyRate: CopyRate = .unlimited, logger: Logger) {
        self.directory = directory
        self.qemuImg = qemuImg
        self.copyRate = copyRate
        self.logger = logger
    }

    /// Path of disk `name` (which must be valid).
    public nonisolated func path(of name: String) -> String { directory + "/" + name }

    /// Reads the image directory (creating it if missing) and returns the disks found.
    @discardableResult
    public func scan() async throws -> [DiskInfo] {
        if let st = Files.status(directory, followingLinks: true) {
            guard st.kind == .directory else { throw ControllerError.io("image directory \(directory) is not a directory") }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o711])
                logger.notice("created image directory \(directory)")
            } catch {
                throw ControllerError.io("cannot create image directory \(directory): \(errorText(error))")
            }
        }
        let entries: [String]
        do { entries = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw ControllerError.io("cannot list image directory \(directory): \(errorText(error))")
        }
        var found: [String: DiskInfo] = [:]
        for name in entries.sorted() {
            if Self.isTemporary(name) {
                // Left by a create that was interrupted (crash, kill -9): never a complete image.
                Files.discard(path(of: name))
                logger.notice("removed unfinished image \(path(of: name))")
                continue
            }
            guard DiskName.isValid(name) else {
                logger.warning("skipping \(CallerText.quoted(name)) in \(directory): not a valid disk name")
                continue
            }
            guard Files.kind(path(of: name)) == .file else {
                logger.warning("skipping \(path(of: name)): not a regular file (symlinks are never followed)")
                continue
            }
            do {
                found[name] = try await describe(name)
            } catch {
                logger.warning("skipping \(path(of: name)): \(error)")
            }
        }
        disks = found
        logger.info("image directory \(directory): \(found.count) disk(s)")
        return list()
    }

    /// Every disk, sorted by name, with its ``DiskInfo/problems``.
    public func list() -> [DiskInfo] { disks.keys.sorted().compactMap { disk(named: $0) } }

    /// Disk `name` with its ``DiskInfo/problems``.
    public func disk(named name: String) -> DiskInfo? {
        guard var disk = disks[name] else { return nil }
        disk.problems = DiskChain.problems(of: name, in: disks, directory: directory)
        return disk
    }

    /// Throws the error CreateDisk would hit on existing state (before authorization).
    public func precheckCreate(_ request: CreateDiskRequest) throws {
        if disks[request.name] != nil || creating.contains(request.name) {
            throw ControllerError.alreadyExists("disk \(request.name) already exists")
        }
        if let backing = request.backing {
            guard let base = disk(named: backing) else { throw ControllerError.noSuchDisk("backing disk \(backing) does not exist") }
            try base.requireUsable()
            guard DiskChain.depth(of: backing, in: disks, directory: directory) < DiskChain.maxDepth else {
                throw ControllerError.invalidArgs("disk \(backing) already has \(DiskChain.maxDepth) images below it; an overlay on it would exceed the backing chain limit")
            }
        }
    }

    /// Creates a disk with qemu-img. The image appears under its name only once complete.
    public func create(_ request: CreateDiskRequest) async throws -> DiskInfo {
        try precheckCreate(request)
        creating.insert(request.name)
        defer { creating.remove(request.name) }

        let temporary = path(of: ".\(request.name).creating-\(UUID().uuidString.prefix(8))")
        let final = path(of: request.name)
        var options: [String: String] = [:]
        if let p = request.preallocation { options["preallocation"] = p }
        var backing: (path: String, format: String)?
        if let name = request.backing, let b = disks[name] { backing = (b.path, b.format) }
        do {
            try await qemuImg.create(path: temporary, format: request.format, size: request.size,
                                     backing: backing, options: options)
            try Task.checkCancellation()
            try ImageFormatRecord.write(temporary, format: request.format)
            try await linkIntoPlace(temporary, final, name: request.name)
        } catch {
            Files.discard(temporary)
            if error is CancellationError { throw ControllerError.cancelled("creation of disk \(request.name) was cancelled") }
            throw Self.naming(error, "creating disk \(request.name) in \(directory) failed")
        }
        let info: DiskInfo
        do { info = try await describe(request.name) } catch {
            Files.discard(final)
            throw error
        }
        disks[request.name] = info
        logger.info("created disk \(request.name): \(request.format), \(request.size) bytes")
        return info
    }

    /// Deletes a disk's image file (the caller holds a ``LeaseKind/writer`` lease on it,
    /// which no disk built on it allows).
    public func delete(_ name: String) throws {
        guard disks[name] != nil else { throw ControllerError.noSuchDisk("no disk named \(name)") }
        let p = path(of: name)
        if let st = Files.status(p), st.kind != .file {
            throw ControllerError.io("\(p) is no longer a regular file; not deleting it")
        }
        do { try Files.remove(p) } catch { throw ControllerError.io("cannot delete \(p): \(systemMessage(error.code))") }
        disks[name] = nil
        logger.info("deleted disk \(name)")
    }

    /// Reads disk `name` as its format record says (qemu-img never probes it). An image
    /// without a record, or with a format the service does not manage, is described from
    /// its file alone (sizes of the file) and is not opened.
    func describe(_ name: String) async throws -> DiskInfo {
        let p = path(of: name)
        guard let format = ImageFormatRecord.read(p), ImageFormatRecord.managed.contains(format) else {
            let st = try Files.existingStatus(p)
            return DiskInfo(name: name, path: p, format: ImageFormatRecord.read(p) ?? "", virtualSize: st.size,
                            allocatedSize: st.allocated)
        }
        let info = try await qemuImg.info(path: p, format: format)
        var backingFile = info.backingFile
        if let b = backingFile, case .success(let n) = DiskChain.backingName(b, directory: directory) { backingFile = path(of: n) }
        return DiskInfo(name: name, path: p, format: format, virtualSize: info.virtualSize,
                        allocatedSize: info.allocatedSize, backingFile: backingFile,
                        snapshots: info.snapshots.map { DiskSnapshot(name: $0.name, created: $0.created) },
                        backingHeader: info.backingFile, backingFormat: info.backingFormat, dataFile: info.dataFile,
                        compat: info.compat, bitmaps: info.bitmaps.map { DiskBitmap(name: $0.name, inUse: $0.flags.contains("in-use")) })
    }

    /// Records `format` for disk `name` (AdoptDisk, or what the service already knew at an
    /// upgrade) and re-reads it. A qcow2 image whose header names its backing disk without
    /// a format gets that disk's recorded format written into the header (`qemu-img rebase
    /// -u -F`), so qemu never probes it.
    @discardableResult
    public func record(_ name: String, format: String) async throws -> DiskInfo {
        guard disks[name] != nil else { throw ControllerError.noSuchDisk("no disk named \(name)") }
        try ImageFormatRecord.write(path(of: name), format: format)
        var info = try await describe(name)
        if format == "qcow2", let header = info.backingHeader, info.backingFormat == nil,
           case .success(let below) = DiskChain.backingName(header, directory: directory),
           let base = disks[below], ImageFormatRecord.managed.contains(base.format) {
            try await qemuImg.rebaseUnsafe(path(of: name), backing: header, backingFormat: base.format)
            info = try await describe(name)
        }
        disks[name] = info
        return disk(named: name) ?? info
    }

    /// Removes the format record of disk `name` (an adoption that failed its checks).
    func unrecord(_ name: String) async throws {
        ImageFormatRecord.remove(path(of: name))
        disks[name] = try await describe(name)
    }

    /// Re-reads a disk after it changed (snapshots, revert, resize) and returns it.
    @discardableResult
    public func refresh(_ name: String) async throws -> DiskInfo {
        let info = try await describe(name)
        disks[name] = info
        return info
    }

    /// Gives a complete temporary image its final name, synced to disk first. link(2)
    /// refuses to replace an existing file, so nothing put there meanwhile is clobbered.
    func linkIntoPlace(_ temporary: String, _ final: String, name: String) async throws {
        try Files.setPermissions(temporary, 0o600)
        try await FileSync.file(temporary)
        do { try Files.link(temporary, as: final) } catch {
            if error.alreadyExists { throw ControllerError.alreadyExists("disk \(name) already exists") }
            throw error
        }
        Files.discard(temporary)
        try? await FileSync.directory(of: final)
    }

    /// An `Io` error with the operation and directory in front (e.g. a full disk).
    static func naming(_ error: Error, _ what: String) -> Error {
        let error = ControllerError.mapped(error)
        guard let e = error as? ControllerError, case .io(let message) = e else { return error }
        return ControllerError.io("\(what): \(message)")
    }

    static func isTemporary(_ name: String) -> Bool {
        name.hasPrefix(".") && name.contains(".creating-")
    }
}

import FoundationEssentials
import Guestfs

/// An entry of ListFiles.
public struct GuestFileEntry: Sendable, Equatable {
    public let name: String
    /// `file`, `directory`, `symlink`, …
    public let type: String
    public let size: UInt64
    /// Full `st_mode` (type and permission bits).
    public let mode: UInt32
    /// Seconds since the epoch.
    public let mtime: UInt64
    /// Where a symlink points, as stored in the link (empty for anything else).
    public let target: String
}

/// A filesystem's usage: device, size, used and available bytes.
public struct FilesystemUsage: Sendable, Equatable, Codable {
    public let device: String
    public let size: UInt64
    public let used: UInt64
    public let available: UInt64

    public init(device: String, size: UInt64, used: UInt64, available: UInt64) {
        self.device = device
        self.size = size
        self.used = used
        self.available = available
    }

    /// used / size (0 for an empty filesystem).
    public var fraction: Double { size == 0 ? 0 : Double(used) / Double(size) }
}

/// A filesystem Inspect found: its device and type (as libguestfs names them).
public struct GuestFilesystem: Sendable, Equatable, Codable {
    public let device: String
    public let type: String

    public init(device: String, type: String) {
        self.device = device
        self.type = type
    }
}

/// What Inspect found: values read from inside a guest image, kept with the disk's record
/// and served only to callers allowed `disk.inspect` (`Disk.GetInspection`).
public struct InspectionReport: Sendable, Equatable, Codable {
    /// Empty when no operating system was recognised.
    public var osType = ""
    public var distro = ""
    public var version = ""
    public var productName = ""
    public var hostname = ""
    /// Every filesystem.
    public var filesystems: [GuestFilesystem] = []
    /// Usage of the mounted ones.
    public var usage: [FilesystemUsage] = []
    /// When the inspection ended (seconds since the epoch).
    public var inspected: UInt64 = 0

    public init() {}

    /// The report as `Disk.GetInspection` returns it.
    public var values: [String: JobValue] {
        ["os_type": .string(osType), "distro": .string(distro), "version": .string(version), "product_name": .string(productName),
         "hostname": .string(hostname), "filesystems": .pairs(filesystems.map { [$0.device, $0.type] }), "usage": .usage(usage),
         "inspected": .uint64(inspected)]
    }
}

/// File operations, inspection and usage sampling inside disk images, through cached
/// libguestfs appliances (see ``ApplianceCache``). Writers get a read-write appliance;
/// readers a read-only one (a throw-away overlay in front of the image) unless a
/// read-write one is already up.
public actor GuestImages {
    /// ReadFile's and WriteFile's cap.
    public static let maxFileBytes = 16 << 20
    /// ListFiles' cap on entries.
    public static let maxEntries = 100_000
    /// Bytes per libguestfs message when reading and writing.
    static let chunk = 2 << 20

    public nonisolated let cache: ApplianceCache

    public init(cache: ApplianceCache) { self.cache = cache }

    private func withGuest<T: Sendable>(_ disk: DiskInfo, readonly: Bool,
                                        _ body: @escaping @Sendable (GuestfsSession) throws -> T) async throws -> T {
        do {
            return try await cache.withCached(path: disk.path, format: disk.format, readonly: readonly,
                                              prepare: { s, ro in try GuestMount.mountAll(s, readonly: ro) }, body)
        } catch let error as GuestfsError {
            throw Self.translate(error, disk: disk)
        }
    }

    /// ENOENT and friends become the errors a caller expects; the rest is `Guestfs`.
    static func translate(_ error: GuestfsError, disk: DiskInfo) -> ControllerError {
        ControllerError.guestfs("disk \(disk.name): \(error)")
    }

    /// Entries of directory `path` (normalised), sorted by name.
    public func listFiles(_ disk: DiskInfo, _ path: String, readonly: Bool) async throws -> [GuestFileEntry] {
        let name = disk.name
        return try await withGuest(disk, readonly: readonly) { s in
            guard try s.isDir(path) else {
                throw ControllerError.invalidArgs("\(path) is not a directory in disk \(name)")
            }
            let names = try s.ls(path).sorted()
            guard names.count <= Self.maxEntries else {
                throw ControllerError.limitsExceeded("\(path) in disk \(name) has \(names.count) entries (more than \(Self.maxEntries))")
            }
            let stats = try s.lstatList(path, names: names)
            let links = zip(names, stats).filter { $0.1.type == "symlink" }.map(\.0)
            let targets = Dictionary(uniqueKeysWithValues: zip(links, try s.readlinkList(path, names: links)))
            return zip(names, stats).map { n, st in
                GuestFileEntry(name: n, type: st.type, size: st.size, mode: st.mode, mtime: UInt64(max(0, st.mtime)),
                               target: targets[n] ?? "")
            }
        }
    }

    /// The bytes of regular file `path` (a symlink followed inside the guest); more than
    /// 16 MiB is `LimitsExceeded`.
    public func readFile(_ disk: DiskInfo, _ path: String, readonly: Bool) async throws -> [UInt8] {
        let name = disk.name
        return try await withGuest(disk, readonly: readonly) { s in
            guard let (target, st) = try Self.lookUp(s, path, disk: name) else {
                throw ControllerError.invalidArgs("\(path) does not exist in disk \(name)")
            }
            try Self.requireRegularFile(st, at: target, requested: path, disk: name)
            guard st.size <= UInt64(Self.maxFileBytes) else {
                throw ControllerError.limitsExceeded("\(path) in disk \(name) has \(st.size) bytes; ReadFile returns at most \(Self.maxFileBytes)")
            }
            var out: [UInt8] = []
            out.reserveCapacity(Int(st.size))
            while out.count < Int(st.size) {
                let piece = try s.pread(target, count: min(Self.chunk, Int(st.size) - out.count), offset: Int64(out.count))
                if piece.isEmpty { break } // the file shrank meanwhile (live disk)
                out += piece
            }
            return out
        }
    }

    /// Replaces (or creates) `path` atomically: the bytes go to a temporary file in the
    /// same directory, which then gets the old file's owner and mode (or `mode` for a new
    /// file) and is renamed over `path`. The directory must exist. A symlink is followed
    /// inside the guest (as ReadFile does) and its target is replaced; the link stays.
    public func writeFile(_ disk: DiskInfo, _ requested: String, content: [UInt8], mode: UInt32?) async throws {
        let name = disk.name
        try await withGuest(disk, readonly: false) { s in
            let found = try Self.lookUp(s, requested, disk: name)
            let path = found?.path ?? requested
            let old = found?.stat
            let directory = GuestPath.directory(of: path)
            guard path != "/", try s.isDir(directory) else {
                throw ControllerError.invalidArgs("directory \(directory) does not exist in disk \(name)")
            }
            if let old { try Self.requireRegularFile(old, at: path, requested: requested, disk: name) }
            let temporary = directory + (directory == "/" ? "" : "/") + ".\(GuestPath.baseName(of: path)).mvtmp-\(UInt32.random(in: 0...UInt32.max))"
            do {
                try s.write(temporary, content.prefix(Self.chunk))
                var offset = Self.chunk
                while offset < content.count {
                    try s.writeAppend(temporary, content[offset..<min(content.count, offset + Self.chunk)])
                    offset += Self.chunk
                }
                if let old { try s.lchown(Int32(old.uid), Int32(old.gid), temporary) }
                let permissions = mode ?? ((old?.mode ?? 0o644) & 0o7777)
                try s.chmod(Int32(permissions), temporary)
                try s.rename(temporary, to: path)
                try s.sync()
            } catch {
                try? s.rm(temporary)
                throw error
            }
        }
    }

    /// What is at `path` as the guest would open it, with its lstat: a symlink is followed
    /// inside the guest only (guestfs realpath, chrooted in the guest's root); nil when
    /// nothing is there. A link that leads nowhere (or loops) is `InvalidArgs`.
    static func lookUp(_ s: GuestfsSession, _ path: String, disk name: String) throws -> (path: String, stat: FileStat)? {
        let st: FileStat
        do { st = try s.lstat(path) } catch let e as GuestfsError where e.notFound { return nil }
        guard st.type == "symlink" else { return (path, st) }
        do {
            let target = try s.realpath(path)
            return (target, try s.lstat(target))
        } catch let e as GuestfsError where e.notFound || e.loops {
            throw ControllerError.invalidArgs("\(path) in disk \(name) is a symlink that leads to nothing inside the guest")
        }
    }

    /// `InvalidArgs` naming `requested` (and the link's target) unless `st` is a regular file.
    static func requireRegularFile(_ st: FileStat, at target: String, requested: String, disk name: String) throws {
        guard st.type != "file" else { return }
        let via = target == requested ? "" : " (via its symlink, \(target))"
        throw ControllerError.invalidArgs("\(requested) in disk \(name) is a \(st.type)\(via), not a regular file")
    }

    /// Recognises the operating system and measures the mounted filesystems.
    public func inspect(_ disk: DiskInfo, readonly: Bool) async throws -> InspectionReport {
        try await withGuest(disk, readonly: readonly) { s in
            var report = InspectionReport()
            report.usage = try Self.usage(s)
            report.filesystems = try s.listFilesystems().map { GuestFilesystem(device: $0.device, type: $0.type) }
            // Inspection unmounts everything; mount again for the file operations that follow.
            defer { try? GuestMount.mountAll(s, readonly: s.driveReadonly) }
            if let root = try s.inspectOS().first {
                let os = try s.inspectInfo(root)
                report.osType = os.type
                report.distro = os.distro
                report.version = os.minorVersion > 0 ? "\(os.majorVersion).\(os.minorVersion)" : "\(os.majorVersion)"
                report.productName = os.productName
                report.hostname = os.hostname
            }
            return report
        }
    }

    /// Usage of the mounted filesystems only (a sample for FilesystemUsage).
    public func sampleUsage(_ disk: DiskInfo) async throws -> [FilesystemUsage] {
        try await withGuest(disk, readonly: true) { s in try Self.usage(s) }
    }

    static func usage(_ s: GuestfsSession) throws -> [FilesystemUsage] {
        try s.mounts().sorted { $0.mountpoint < $1.mountpoint }.map { m in
            let st = try s.statvfs(m.mountpoint)
            return FilesystemUsage(device: m.device, size: st.size, used: st.used, available: st.available)
        }
    }

    /// Kills the appliance of `disk` (a cancelled Inspect).
    public func release(_ disk: DiskInfo) async { await cache.release(disk.path) }
}

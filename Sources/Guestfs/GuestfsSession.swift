import Glibc

/// The libguestfs calls, valid only inside ``GuestfsHandle/run(_:)`` on the handle's
/// thread (the type is not `Sendable`, so it cannot escape to another one). Each call is a
/// request to the handle's helper process, which makes the libguestfs call as the
/// unprivileged appliance user; a failing call throws a ``GuestfsError`` carrying
/// libguestfs' message.
public final class GuestfsSession {
    private unowned let owner: GuestfsHandle
    private let socket: Int32
    private var progress: ((UInt64, UInt64) -> Void)?
    /// The images this session serves to its helper; stopped at ``shutdown()``.
    private var exports: [NBDExport] = []
    /// Whether the last drive was added read-only (behind a throw-away overlay).
    public private(set) var driveReadonly = false

    init(socket: Int32, owner: GuestfsHandle) {
        self.socket = socket
        self.owner = owner
    }

    /// Sends one request and waits for its reply, passing progress frames on.
    private func call(_ call: GuestfsCall, _ arguments: (inout WireWriter) -> Void = { _ in }) throws -> WireReader {
        var w = WireWriter()
        w.string(call.rawValue)
        arguments(&w)
        guard GuestfsWire.send(socket, w.bytes) else { throw stopped(call) }
        while true {
            guard let frame = GuestfsWire.receive(socket), !frame.isEmpty else { throw stopped(call) }
            var r = WireReader(Array(frame.dropFirst()))
            switch GuestfsWire.ReplyKind(rawValue: frame[0]) {
            case .result: return r
            case .progress:
                let position = try r.uint64(), total = try r.uint64()
                progress?(position, total)
            case .error:
                throw GuestfsError(function: try r.string(), message: try r.string(), errno: try r.int32())
            case nil: throw GuestfsError(function: call.rawValue, message: "the appliance helper sent a malformed reply")
            }
        }
    }

    private func stopped(_ call: GuestfsCall) -> GuestfsError {
        if owner.wasKilled { return GuestfsError(function: call.rawValue, message: "the appliance was stopped (cancelled)") }
        return GuestfsError(function: call.rawValue, message: "the appliance helper \(owner.settings.helper) stopped (see the service's log)")
    }

    /// Called with (position, total) while long calls run; nil stops reporting.
    public func onProgress(_ handler: ((UInt64, UInt64) -> Void)?) { progress = handler }

    // MARK: appliance

    /// Adds a disk image, opened by the daemon with its recorded `format` and served to the
    /// helper over NBD; `readonly` opens it read-only, sharing it with a VM that runs on it,
    /// and puts a throw-away overlay in front of it in the appliance.
    public func addDrive(_ path: String, format: String, readonly: Bool) throws {
        guard let user = owner.user else { throw GuestfsError(function: "add_drive", message: "the appliance helper is not running") }
        let export = try NBDExport.start(path: path, format: format, readonly: readonly, for: user)
        exports.append(export)
        _ = try call(.addDrive) { w in
            w.string(export.socket)
            w.string(NBDExport.exportName)
            w.bool(readonly)
        }
        driveReadonly = readonly
    }

    /// Starts the appliance (seconds; tens of seconds under TCG).
    public func launch() throws {
        _ = try call(.launch)
    }

    /// Syncs and stops the appliance (errors are ignored: used on close), then stops
    /// serving its images.
    public func shutdown() {
        if !owner.wasKilled { _ = try? call(.shutdown) }
        for export in exports { export.stop() }
        exports.removeAll()
    }

    public func sync() throws { _ = try call(.sync) }

    // MARK: devices and filesystems

    public func listDevices() throws -> [String] {
        var r = try call(.listDevices)
        return try r.strings()
    }

    /// (device, filesystem type) of everything that looks like a filesystem.
    public func listFilesystems() throws -> [(device: String, type: String)] {
        var r = try call(.listFilesystems)
        return pairs(try r.strings()).map { (device: $0.0, type: $0.1) }
    }

    /// Partitions of a whole device, in table order.
    public func partList(_ device: String) throws -> [Partition] {
        var r = try call(.partList) { $0.string(device) }
        let n = try r.int()
        return try (0..<max(0, n)).map { _ in try Partition(from: &r) }
    }

    /// `gpt`, `msdos`, … (`unknown` when there is no table).
    public func partGetParttype(_ device: String) throws -> String {
        var r = try call(.partGetParttype) { $0.string(device) }
        return try r.string()
    }

    /// Writes a new partition table with one partition over the whole device.
    public func partDisk(_ device: String, type: String) throws {
        _ = try call(.partDisk) { $0.string(device); $0.string(type) }
    }

    /// Moves the GPT backup header to the end of a grown device.
    public func partExpandGPT(_ device: String) throws { _ = try call(.partExpandGPT) { $0.string(device) } }

    /// Moves the end of partition `number` to sector `endSector` (start unchanged).
    public func partResize(_ device: String, number: Int32, endSector: Int64) throws {
        _ = try call(.partResize) { $0.string(device); $0.int(number); $0.int(endSector) }
    }

    /// Moves the end of partition `number` inwards. parted refuses to shrink in script
    /// mode, so the entry is removed and added again with the same start and every
    /// identity kept (GPT type, GUID, name, attributes; MBR id and boot flag). The data in
    /// the partition is not touched. Returns the partition's number afterwards.
    @discardableResult
    public func partShrink(_ device: String, _ part: Partition, table: String, endSector: Int64, sectorSize: UInt64) throws -> Int32 {
        var r = try call(.partShrink) { w in
            w.string(device)
            part.write(to: &w)
            w.string(table)
            w.int(endSector)
            w.int(sectorSize)
        }
        return try r.int32()
    }

    public func blockdevSize(_ device: String) throws -> UInt64 {
        var r = try call(.blockdevSize) { $0.string(device) }
        return try r.uint64()
    }

    public func blockdevSectorSize(_ device: String) throws -> UInt64 {
        var r = try call(.blockdevSectorSize) { $0.string(device) }
        return try r.uint64()
    }

    /// Filesystem type on `device` (`ext4`, `xfs`, …; empty when none).
    public func vfsType(_ device: String) throws -> String {
        var r = try call(.vfsType) { $0.string(device) }
        return try r.string()
    }

    /// Smallest size the filesystem on `device` can be shrunk to (ext*, btrfs, ntfs).
    public func vfsMinimumSize(_ device: String) throws -> UInt64 {
        var r = try call(.vfsMinimumSize) { $0.string(device) }
        return try r.uint64()
    }

    public func mkfs(_ fstype: String, device: String, label: String?) throws {
        _ = try call(.mkfs) { w in
            w.string(fstype)
            w.string(device)
            w.bool(label != nil)
            w.string(label ?? "")
        }
    }

    public func e2fsckForce(_ device: String) throws { _ = try call(.e2fsckForce) { $0.string(device) } }
    /// Grows an ext2/3/4 filesystem to fill its device.
    public func resize2fs(_ device: String) throws { _ = try call(.resize2fs) { $0.string(device) } }
    /// Resizes an ext2/3/4 filesystem to `size` bytes.
    public func resize2fs(_ device: String, size: UInt64) throws {
        _ = try call(.resize2fsSize) { $0.string(device); $0.int(size) }
    }
    /// Grows a mounted XFS filesystem to fill its device.
    public func xfsGrow(_ mountpoint: String) throws { _ = try call(.xfsGrow) { $0.string(mountpoint) } }
    /// Resizes a mounted btrfs filesystem to `size` bytes, or to fill its device.
    public func btrfsResize(_ mountpoint: String, size: UInt64?) throws {
        _ = try call(.btrfsResize) { w in
            w.string(mountpoint)
            w.bool(size != nil)
            w.int(size ?? 0)
        }
    }

    // MARK: inspection

    /// Root filesystems of operating systems found on the disks. Unmounts everything.
    public func inspectOS() throws -> [String] {
        var r = try call(.inspectOS)
        return try r.strings()
    }

    public func inspectInfo(_ root: String) throws -> OSInfo {
        var r = try call(.inspectInfo) { $0.string(root) }
        let s = try r.strings()
        guard s.count == 4 else { throw GuestfsError(function: "inspect", message: "the appliance helper sent a malformed reply") }
        return OSInfo(type: s[0], distro: s[1], majorVersion: try r.int32(), minorVersion: try r.int32(),
                      productName: s[2], hostname: s[3])
    }

    /// (mountpoint, device) pairs of an inspected OS.
    public func inspectMountpoints(_ root: String) throws -> [(mountpoint: String, device: String)] {
        var r = try call(.inspectMountpoints) { $0.string(root) }
        return pairs(try r.strings()).map { (mountpoint: $0.0, device: $0.1) }
    }

    // MARK: mounting

    public func mount(_ device: String, at mountpoint: String, readonly: Bool) throws {
        _ = try call(.mount) { $0.string(device); $0.string(mountpoint); $0.bool(readonly) }
    }

    public func umountAll() throws { _ = try call(.umountAll) }

    /// Mounted filesystems as (device, mountpoint).
    public func mounts() throws -> [(device: String, mountpoint: String)] {
        var r = try call(.mounts)
        return pairs(try r.strings()).map { (device: $0.0, mountpoint: $0.1) }
    }

    public func statvfs(_ path: String) throws -> FilesystemStats {
        var r = try call(.statvfs) { $0.string(path) }
        return FilesystemStats(size: try r.uint64(), free: try r.uint64(), available: try r.uint64())
    }

    // MARK: files

    public func lstat(_ path: String) throws -> FileStat {
        var r = try call(.lstat) { $0.string(path) }
        return try FileStat(from: &r)
    }

    /// The canonical form of `path` inside the guest: every symlink followed, as the guest
    /// would, within the guest's root (the appliance resolves it chrooted into the guest's
    /// filesystem, so an absolute or `../..` link never leads out of it).
    public func realpath(_ path: String) throws -> String {
        var r = try call(.realpath) { $0.string(path) }
        return try r.string()
    }

    /// Names in a directory (without `.` and `..`).
    public func ls(_ directory: String) throws -> [String] {
        var r = try call(.ls) { $0.string(directory) }
        return try r.strings()
    }

    /// `lstat` of many names in one directory.
    public func lstatList(_ directory: String, names: [String]) throws -> [FileStat] {
        try Self.inChunks(names) { chunk in
            var r = try call(.lstatList) { $0.string(directory); $0.strings(chunk) }
            let n = try r.int()
            return try (0..<max(0, n)).map { _ in try FileStat(from: &r) }
        }
    }

    /// The targets of many symlinks in one directory, in the order of `names` (a name that
    /// is not a link reads as an empty string).
    public func readlinkList(_ directory: String, names: [String]) throws -> [String] {
        try Self.inChunks(names) { chunk in
            var r = try call(.readlinkList) { $0.string(directory); $0.strings(chunk) }
            return try r.strings()
        }
    }

    /// `body` over `names` 1000 at a time (a libguestfs message's comfortable size), joined.
    static func inChunks<T>(_ names: [String], _ body: ([String]) throws -> [T]) throws -> [T] {
        var out: [T] = []
        var start = 0
        while start < names.count {
            let chunk = Array(names[start..<min(names.count, start + 1000)])
            out += try body(chunk)
            start += chunk.count
        }
        return out
    }

    /// Reads up to `count` bytes at `offset` (one message; keep `count` ≤ 2 MiB).
    public func pread(_ path: String, count: Int, offset: Int64) throws -> [UInt8] {
        var r = try call(.pread) { $0.string(path); $0.int(count); $0.int(offset) }
        return try r.bytes()
    }

    /// Creates or truncates `path` with `bytes`.
    public func write(_ path: String, _ bytes: ArraySlice<UInt8>) throws {
        _ = try call(.write) { $0.string(path); $0.bytes(bytes) }
    }

    public func writeAppend(_ path: String, _ bytes: ArraySlice<UInt8>) throws {
        _ = try call(.writeAppend) { $0.string(path); $0.bytes(bytes) }
    }

    public func rename(_ from: String, to: String) throws { _ = try call(.rename) { $0.string(from); $0.string(to) } }
    public func rm(_ path: String) throws { _ = try call(.rm) { $0.string(path) } }
    public func chmod(_ mode: Int32, _ path: String) throws { _ = try call(.chmod) { $0.int(mode); $0.string(path) } }
    public func lchown(_ uid: Int32, _ gid: Int32, _ path: String) throws {
        _ = try call(.lchown) { $0.int(uid); $0.int(gid); $0.string(path) }
    }
    public func isDir(_ path: String) throws -> Bool {
        var r = try call(.isDir) { $0.string(path) }
        return try r.bool()
    }

    private func pairs(_ flat: [String]) -> [(String, String)] {
        stride(from: 0, to: flat.count - 1, by: 2).map { (flat[$0], flat[$0 + 1]) }
    }
}

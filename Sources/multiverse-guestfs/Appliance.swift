import CGuestfs
import Glibc
import Guestfs

/// The libguestfs handle of this helper and the calls the daemon asks for, made on the
/// helper's main thread only (the type is not `Sendable`). Each failing call throws a
/// ``GuestfsError`` carrying libguestfs' message.
final class Appliance {
    private var g: OpaquePointer?
    private let progressBox = ProgressBox()
    /// Set by the reader thread when the daemon has gone (the appliance is being killed).
    let killed: @Sendable () -> Bool

    init(_ g: OpaquePointer, killed: @escaping @Sendable () -> Bool) {
        self.g = g
        self.killed = killed
        let opaque = Unmanaged.passUnretained(progressBox).toOpaque()
        _ = guestfs_set_event_callback(g, guestfsProgressCallback, UInt64(GUESTFS_EVENT_PROGRESS), 0, opaque)
    }

    private func handle(_ function: String) throws -> OpaquePointer {
        guard let g else { throw GuestfsError(function: function, message: "the handle is closed") }
        return g
    }

    private func failure(_ function: String) -> GuestfsError {
        guard let g else { return GuestfsError(function: function, message: "the handle is closed") }
        if killed() { return GuestfsError(function: function, message: "the appliance was stopped (cancelled)") }
        let text = guestfs_last_error(g).map { String(cString: $0) } ?? "unknown libguestfs error"
        return GuestfsError(function: function, message: text, errno: guestfs_last_errno(g))
    }

    private func check(_ result: Int32, _ function: String) throws {
        if result == -1 { throw failure(function) }
    }

    private func string(_ result: UnsafeMutablePointer<CChar>?, _ function: String) throws -> String {
        guard let result else { throw failure(function) }
        defer { free(result) }
        return String(cString: result)
    }

    private func strings(_ result: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ function: String) throws -> [String] {
        guard let result else { throw failure(function) }
        var out: [String] = []
        var i = 0
        while let s = result[i] {
            out.append(String(cString: s))
            free(s)
            i += 1
        }
        free(result)
        return out
    }

    /// Called with (position, total) while long calls run; nil stops reporting.
    func onProgress(_ handler: ((UInt64, UInt64) -> Void)?) { progressBox.handler = handler }

    // MARK: appliance

    /// Adds the image the daemon exports on the NBD unix socket `socket` (export `name`,
    /// the guest-visible bytes, so `raw`); `readonly` puts a throw-away overlay in front.
    func addDrive(socket: String, name: String, readonly: Bool) throws {
        let g = try handle("add_drive")
        try withCStringArray(["unix:" + socket]) { servers in
            try "nbd".withCString { protocolName in
                try "raw".withCString { fmt in
                    var opts = guestfs_add_drive_opts_argv()
                    opts.bitmask = mv_add_drive_readonly | mv_add_drive_format | mv_add_drive_protocol | mv_add_drive_server
                    opts.readonly = readonly ? 1 : 0
                    opts.format = fmt
                    opts.protocol = protocolName
                    opts.server = UnsafePointer(servers)
                    try check(guestfs_add_drive_opts_argv(g, name, &opts), "add_drive")
                }
            }
        }
    }

    /// Starts the appliance (seconds; tens of seconds under TCG); returns qemu's pid.
    func launch() throws -> Int32 {
        let g = try handle("launch")
        try check(guestfs_launch(g), "launch")
        return guestfs_get_pid(g)
    }

    /// Syncs and stops the appliance; errors are ignored (used on close).
    func shutdown() {
        guard let g else { return }
        if !killed() { _ = guestfs_sync(g) }
        _ = guestfs_shutdown(g)
    }

    /// Frees the handle (after ``shutdown()``).
    func close() {
        guard let g else { return }
        guestfs_close(g)
        self.g = nil
    }

    func sync() throws { try check(guestfs_sync(try handle("sync")), "sync") }

    // MARK: devices and filesystems

    func listDevices() throws -> [String] { try strings(guestfs_list_devices(try handle("list_devices")), "list_devices") }

    /// (device, filesystem type) of everything that looks like a filesystem.
    func listFilesystems() throws -> [(device: String, type: String)] {
        let flat = try strings(guestfs_list_filesystems(try handle("list_filesystems")), "list_filesystems")
        return stride(from: 0, to: flat.count - 1, by: 2).map { (flat[$0], flat[$0 + 1]) }
    }

    /// Partitions of a whole device, in table order.
    func partList(_ device: String) throws -> [Partition] {
        let g = try handle("part_list")
        guard let list = guestfs_part_list(g, device) else { throw failure("part_list") }
        defer { guestfs_free_partition_list(list) }
        return (0..<Int(list.pointee.len)).map { i in
            let p = list.pointee.val[i]
            return Partition(number: p.part_num, start: p.part_start, end: p.part_end, size: p.part_size)
        }
    }

    /// `gpt`, `msdos`, … (`unknown` when there is no table).
    func partGetParttype(_ device: String) throws -> String {
        try string(guestfs_part_get_parttype(try handle("part_get_parttype"), device), "part_get_parttype")
    }

    /// Writes a new partition table with one partition over the whole device.
    func partDisk(_ device: String, type: String) throws {
        try check(guestfs_part_disk(try handle("part_disk"), device, type), "part_disk")
    }

    /// Moves the GPT backup header to the end of a grown device.
    func partExpandGPT(_ device: String) throws {
        try check(guestfs_part_expand_gpt(try handle("part_expand_gpt"), device), "part_expand_gpt")
    }

    /// Moves the end of partition `number` to sector `endSector` (start unchanged).
    func partResize(_ device: String, number: Int32, endSector: Int64) throws {
        try check(guestfs_part_resize(try handle("part_resize"), device, number, endSector), "part_resize")
    }

    /// Moves the end of partition `number` inwards. parted refuses to shrink in script
    /// mode, so the entry is removed and added again with the same start and every
    /// identity kept (GPT type, GUID, name, attributes; MBR id and boot flag). The data in
    /// the partition is not touched. Returns the partition's number afterwards.
    @discardableResult
    func partShrink(_ device: String, _ part: Partition, table: String, endSector: Int64, sectorSize: UInt64) throws -> Int32 {
        let g = try handle("part_shrink")
        let n = part.number
        var gptType: String?, gptGUID: String?, name: String?, attributes: Int64 = -1
        var bootable: Int32 = -1, mbrID: Int32 = -1
        if table == "gpt" {
            gptType = try string(guestfs_part_get_gpt_type(g, device, n), "part_get_gpt_type")
            gptGUID = try string(guestfs_part_get_gpt_guid(g, device, n), "part_get_gpt_guid")
            name = try? string(guestfs_part_get_name(g, device, n), "part_get_name")
            attributes = guestfs_part_get_gpt_attributes(g, device, n)
        } else {
            bootable = guestfs_part_get_bootable(g, device, n)
            mbrID = guestfs_part_get_mbr_id(g, device, n)
        }
        try check(guestfs_part_del(g, device, n), "part_del")
        try check(guestfs_part_add(g, device, "p", Int64(part.start / sectorSize), endSector), "part_add")
        guard let added = try partList(device).first(where: { $0.start == part.start }) else {
            throw GuestfsError(function: "part_add", message: "the re-added partition at \(part.start) is missing")
        }
        let m = added.number
        if let gptType { try check(guestfs_part_set_gpt_type(g, device, m, gptType), "part_set_gpt_type") }
        if let gptGUID { try check(guestfs_part_set_gpt_guid(g, device, m, gptGUID), "part_set_gpt_guid") }
        if let name, !name.isEmpty { try check(guestfs_part_set_name(g, device, m, name), "part_set_name") }
        if attributes >= 0 { try check(guestfs_part_set_gpt_attributes(g, device, m, attributes), "part_set_gpt_attributes") }
        if mbrID >= 0 { try check(guestfs_part_set_mbr_id(g, device, m, mbrID), "part_set_mbr_id") }
        if bootable == 1 { try check(guestfs_part_set_bootable(g, device, m, 1), "part_set_bootable") }
        return m
    }

    func blockdevSize(_ device: String) throws -> UInt64 {
        let v = guestfs_blockdev_getsize64(try handle("blockdev_getsize64"), device)
        if v < 0 { throw failure("blockdev_getsize64") }
        return UInt64(v)
    }

    func blockdevSectorSize(_ device: String) throws -> UInt64 {
        let v = guestfs_blockdev_getss(try handle("blockdev_getss"), device)
        if v < 0 { throw failure("blockdev_getss") }
        return UInt64(v)
    }

    /// Filesystem type on `device` (`ext4`, `xfs`, …; empty when none).
    func vfsType(_ device: String) throws -> String {
        try string(guestfs_vfs_type(try handle("vfs_type"), device), "vfs_type")
    }

    /// Smallest size the filesystem on `device` can be shrunk to (ext*, btrfs, ntfs).
    func vfsMinimumSize(_ device: String) throws -> UInt64 {
        let v = guestfs_vfs_minimum_size(try handle("vfs_minimum_size"), device)
        if v < 0 { throw failure("vfs_minimum_size") }
        return UInt64(v)
    }

    func mkfs(_ fstype: String, device: String, label: String?) throws {
        let g = try handle("mkfs")
        var opts = guestfs_mkfs_opts_argv()
        if let label {
            try label.withCString { l in
                opts.bitmask = mv_mkfs_label
                opts.label = l
                try check(guestfs_mkfs_opts_argv(g, fstype, device, &opts), "mkfs")
            }
        } else {
            try check(guestfs_mkfs_opts_argv(g, fstype, device, &opts), "mkfs")
        }
    }

    func e2fsckForce(_ device: String) throws { try check(guestfs_e2fsck_f(try handle("e2fsck_f"), device), "e2fsck_f") }
    /// Grows an ext2/3/4 filesystem to fill its device.
    func resize2fs(_ device: String) throws { try check(guestfs_resize2fs(try handle("resize2fs"), device), "resize2fs") }
    /// Resizes an ext2/3/4 filesystem to `size` bytes.
    func resize2fs(_ device: String, size: UInt64) throws {
        try check(guestfs_resize2fs_size(try handle("resize2fs_size"), device, Int64(size)), "resize2fs_size")
    }
    /// Grows a mounted XFS filesystem to fill its device.
    func xfsGrow(_ mountpoint: String) throws {
        let g = try handle("xfs_growfs")
        var opts = guestfs_xfs_growfs_argv()
        opts.bitmask = mv_xfs_growfs_datasec
        opts.datasec = 1
        try check(guestfs_xfs_growfs_argv(g, mountpoint, &opts), "xfs_growfs")
    }
    /// Resizes a mounted btrfs filesystem to `size` bytes, or to fill its device.
    func btrfsResize(_ mountpoint: String, size: UInt64?) throws {
        let g = try handle("btrfs_filesystem_resize")
        var opts = guestfs_btrfs_filesystem_resize_argv()
        if let size {
            opts.bitmask = mv_btrfs_resize_size
            opts.size = Int64(size)
        }
        try check(guestfs_btrfs_filesystem_resize_argv(g, mountpoint, &opts), "btrfs_filesystem_resize")
    }

    // MARK: inspection

    /// Root filesystems of operating systems found on the disks. Unmounts everything.
    func inspectOS() throws -> [String] { try strings(guestfs_inspect_os(try handle("inspect_os")), "inspect_os") }

    func inspectInfo(_ root: String) throws -> OSInfo {
        let g = try handle("inspect")
        return OSInfo(
            type: try string(guestfs_inspect_get_type(g, root), "inspect_get_type"),
            distro: try string(guestfs_inspect_get_distro(g, root), "inspect_get_distro"),
            majorVersion: guestfs_inspect_get_major_version(g, root),
            minorVersion: guestfs_inspect_get_minor_version(g, root),
            productName: try string(guestfs_inspect_get_product_name(g, root), "inspect_get_product_name"),
            hostname: (try? string(guestfs_inspect_get_hostname(g, root), "inspect_get_hostname")) ?? "unknown")
    }

    /// (mountpoint, device) pairs of an inspected OS.
    func inspectMountpoints(_ root: String) throws -> [(mountpoint: String, device: String)] {
        let flat = try strings(guestfs_inspect_get_mountpoints(try handle("inspect_get_mountpoints"), root), "inspect_get_mountpoints")
        return stride(from: 0, to: flat.count - 1, by: 2).map { (flat[$0], flat[$0 + 1]) }
    }

    // MARK: mounting

    func mount(_ device: String, at mountpoint: String, readonly: Bool) throws {
        let g = try handle("mount")
        if readonly {
            try check(guestfs_mount_ro(g, device, mountpoint), "mount_ro")
        } else {
            try check(guestfs_mount(g, device, mountpoint), "mount")
        }
    }

    func umountAll() throws { try check(guestfs_umount_all(try handle("umount_all")), "umount_all") }

    /// Mounted filesystems as (device, mountpoint).
    func mounts() throws -> [(device: String, mountpoint: String)] {
        let flat = try strings(guestfs_mountpoints(try handle("mountpoints")), "mountpoints")
        return stride(from: 0, to: flat.count - 1, by: 2).map { (flat[$0], flat[$0 + 1]) }
    }

    func statvfs(_ path: String) throws -> FilesystemStats {
        let g = try handle("statvfs")
        guard let s = guestfs_statvfs(g, path) else { throw failure("statvfs") }
        defer { guestfs_free_statvfs(s) }
        let unit = UInt64(max(s.pointee.frsize, 1))
        return FilesystemStats(size: UInt64(s.pointee.blocks) * unit, free: UInt64(s.pointee.bfree) * unit,
                               available: UInt64(max(0, s.pointee.bavail)) * unit)
    }

    // MARK: files

    func lstat(_ path: String) throws -> FileStat {
        let g = try handle("lstatns")
        guard let s = guestfs_lstatns(g, path) else { throw failure("lstatns") }
        defer { guestfs_free_statns(s) }
        return FileStat(s.pointee)
    }

    /// The canonical form of `path` inside the guest: every symlink followed, as the guest
    /// would, within the guest's root (the appliance resolves it chrooted into the guest's
    /// filesystem, so an absolute or `../..` link never leads out of it).
    func realpath(_ path: String) throws -> String { try string(guestfs_realpath(try handle("realpath"), path), "realpath") }

    /// Names in a directory (without `.` and `..`).
    func ls(_ directory: String) throws -> [String] { try strings(guestfs_ls(try handle("ls"), directory), "ls") }

    /// `lstat` of many names in one directory (the daemon sends at most 1000 at a time).
    func lstatList(_ directory: String, names: [String]) throws -> [FileStat] {
        let g = try handle("lstatnslist")
        guard let list = withCStringArray(names, { guestfs_lstatnslist(g, directory, $0) }) else { throw failure("lstatnslist") }
        defer { guestfs_free_statns_list(list) }
        return (0..<Int(list.pointee.len)).map { FileStat(list.pointee.val[$0]) }
    }

    /// The targets of many symlinks in one directory, in the order of `names` (a name that
    /// is not a link reads as an empty string).
    func readlinkList(_ directory: String, names: [String]) throws -> [String] {
        let g = try handle("readlinklist")
        return try strings(withCStringArray(names) { guestfs_readlinklist(g, directory, $0) }, "readlinklist")
    }

    /// Reads up to `count` bytes at `offset` (one message; keep `count` ≤ 2 MiB).
    func pread(_ path: String, count: Int, offset: Int64) throws -> [UInt8] {
        let g = try handle("pread")
        var size = 0
        guard let buffer = guestfs_pread(g, path, Int32(count), offset, &size) else { throw failure("pread") }
        defer { free(buffer) }
        return buffer.withMemoryRebound(to: UInt8.self, capacity: size) { Array(UnsafeBufferPointer(start: $0, count: size)) }
    }

    /// Creates or truncates `path` with `bytes`.
    func write(_ path: String, _ bytes: ArraySlice<UInt8>) throws {
        let g = try handle("write")
        try check(Self.withChars(bytes) { guestfs_write(g, path, $0, $1) }, "write")
    }

    func writeAppend(_ path: String, _ bytes: ArraySlice<UInt8>) throws {
        let g = try handle("write_append")
        try check(Self.withChars(bytes) { guestfs_write_append(g, path, $0, $1) }, "write_append")
    }

    /// `body` with the bytes as a C buffer and its length (an empty one as "" and 0).
    private static func withChars(_ bytes: ArraySlice<UInt8>, _ body: (UnsafePointer<CChar>, Int) -> Int32) -> Int32 {
        bytes.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress else { return body("", 0) }
            return base.withMemoryRebound(to: CChar.self, capacity: b.count) { body($0, b.count) }
        }
    }

    func rename(_ from: String, to: String) throws { try check(guestfs_rename(try handle("rename"), from, to), "rename") }
    func rm(_ path: String) throws { try check(guestfs_rm(try handle("rm"), path), "rm") }
    func chmod(_ mode: Int32, _ path: String) throws { try check(guestfs_chmod(try handle("chmod"), mode, path), "chmod") }
    func lchown(_ uid: Int32, _ gid: Int32, _ path: String) throws {
        try check(guestfs_lchown(try handle("lchown"), uid, gid, path), "lchown")
    }
    func isDir(_ path: String) throws -> Bool {
        let v = guestfs_is_dir(try handle("is_dir"), path)
        if v < 0 { throw failure("is_dir") }
        return v == 1
    }
}

/// Calls `body` with a NULL-terminated `char *const *` for `strings`.
func withCStringArray<R>(_ strings: [String], _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) throws -> R) rethrows -> R {
    let pointers = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: strings.count + 1)
    for (i, s) in strings.enumerated() { pointers[i] = strdup(s) }
    pointers[strings.count] = nil
    defer {
        for i in 0..<strings.count { free(pointers[i]) }
        pointers.deallocate()
    }
    return try body(pointers)
}

extension FileStat {
    init(_ s: guestfs_statns) {
        self.init(mode: UInt32(truncatingIfNeeded: s.st_mode), uid: s.st_uid, gid: s.st_gid,
                  size: UInt64(max(0, s.st_size)), mtime: s.st_mtime_sec)
    }
}

/// Holds the progress closure for the C callback; touched only on the helper's main thread.
final class ProgressBox {
    var handler: ((UInt64, UInt64) -> Void)?
}

/// libguestfs progress events: array = [proc, serial, position, total].
private let guestfsProgressCallback: guestfs_event_callback = { _, opaque, _, _, _, _, _, array, count in
    guard let opaque, let array, count >= 4 else { return }
    let box = Unmanaged<ProgressBox>.fromOpaque(opaque).takeUnretainedValue()
    box.handler?(array[2], array[3])
}

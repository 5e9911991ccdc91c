import Glibc

/// What a path is.
public enum FileKind: Sendable, Equatable {
    case missing, file, directory, symlink, characterDevice, socket, other

    init(mode: mode_t) {
        switch mode & S_IFMT {
        case S_IFREG: self = .file
        case S_IFDIR: self = .directory
        case S_IFLNK: self = .symlink
        case S_IFCHR: self = .characterDevice
        case S_IFSOCK: self = .socket
        default: self = .other
        }
    }
}

/// The facts of one file that Core's rules look at (from `lstat`/`stat`).
public struct FileStatus: Sendable, Equatable {
    public let kind: FileKind
    /// The permission bits (`0o640`), with set-id and sticky bits.
    public let permissions: UInt32
    public let owner: UInt32
    public let group: UInt32
    /// The length in bytes.
    public let size: UInt64
    /// The bytes the file occupies on its file system (holes excluded).
    public let allocated: UInt64
    public let device: UInt64
    public let inode: UInt64
    /// The last modification, in seconds since 1970.
    public let modifiedSeconds: Int

    init(_ st: stat) {
        kind = FileKind(mode: st.st_mode)
        permissions = UInt32(st.st_mode & 0o7777)
        owner = st.st_uid
        group = st.st_gid
        size = UInt64(max(0, st.st_size))
        allocated = UInt64(max(0, st.st_blocks)) * 512
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        modifiedSeconds = st.st_mtim.tv_sec
    }

    /// Group or others may write it.
    public var writableByOthers: Bool { permissions & UInt32(S_IWGRP | S_IWOTH) != 0 }
    /// Others (not owner, not group) may read it.
    public var readableByOthers: Bool { permissions & UInt32(S_IROTH) != 0 }
}

/// The file calls Core's rules make, each on an absolute path, each error naming it.
public enum Files {
    /// The status of `path`; a final symlink is described, not followed, unless
    /// `followingLinks`. Nil when there is nothing there (or it cannot be read).
    public static func status(_ path: String, followingLinks: Bool = false) -> FileStatus? {
        var st = stat()
        let result = followingLinks ? stat(path, &st) : lstat(path, &st)
        return result == 0 ? FileStatus(st) : nil
    }

    /// The status of `path` (not following a final symlink), or an error naming it.
    public static func existingStatus(_ path: String) throws(SystemError) -> FileStatus {
        var st = stat()
        guard lstat(path, &st) == 0 else { throw .failed("cannot stat \(path)") }
        return FileStatus(st)
    }

    /// The kind of file at `path`, not following a final symlink.
    public static func kind(_ path: String) -> FileKind { status(path)?.kind ?? .missing }

    /// Removes the file `path`; nothing there is not an error.
    public static func remove(_ path: String) throws(SystemError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw .failed("cannot remove \(path)") }
    }

    /// Removes `path` if it is there, for clean-up after a failure (whose own error is the
    /// one to report).
    public static func discard(_ path: String) { unlink(path) }

    /// Renames `source` to `destination`, replacing it atomically.
    public static func rename(_ source: String, to destination: String) throws(SystemError) {
        guard Glibc.rename(source, destination) == 0 else { throw .failed("cannot rename \(source) to \(destination)") }
    }

    /// Bytes an unprivileged writer may still write on the filesystem holding `path`.
    public static func availableBytes(_ path: String) throws(SystemError) -> UInt64 {
        // (`statvfs` names both the call and its struct in Swift: through a descriptor.)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .failed("cannot open \(path)") }
        defer { close(fd) }
        var s = statvfs()
        guard fstatvfs(fd, &s) == 0 else { throw .failed("cannot read the free space of \(path)") }
        return UInt64(s.f_bavail) * UInt64(s.f_frsize)
    }

    /// Gives `path` (not a link it is) to `uid` and `gid`.
    public static func setOwner(_ path: String, uid: UInt32, gid: UInt32) throws(SystemError) {
        guard lchown(path, uid, gid) == 0 else { throw .failed("cannot set the owner of \(path)") }
    }

    /// Gives `path` the permission bits `permissions`.
    public static func setPermissions(_ path: String, _ permissions: UInt32) throws(SystemError) {
        guard chmod(path, mode_t(permissions)) == 0 else { throw .failed("cannot set the mode of \(path)") }
    }

    /// Makes `newPath` a second name of `existing`; an existing `newPath` is never replaced
    /// (the error's `code` is `EEXIST`, see `alreadyExists`).
    public static func link(_ existing: String, as newPath: String) throws(SystemError) {
        guard Glibc.link(existing, newPath) == 0 else { throw .failed("cannot create \(newPath)") }
    }

    /// `realpath(3)`: the absolute path with every symlink resolved, or nil.
    public static func resolved(_ path: String) -> String? {
        guard let r = realpath(path, nil) else { return nil }
        defer { free(r) }
        return String(cString: r)
    }

    /// The caller (the daemon) may read `path`.
    public static func isReadable(_ path: String) -> Bool { access(path, R_OK) == 0 }

    /// Something is at `path` (following symlinks, as a program opening it would).
    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Writes `text` into the existing file `path` (a kernel setting under `/proc/sys` or
    /// `/sys`): no create, no temporary file, one `write(2)`.
    public static func writeInPlace(_ path: String, _ text: String) throws(SystemError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .failed("cannot open \(path)") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count else { throw .failed("cannot write \(path)", code: n < 0 ? errno : EIO) }
    }

    /// The first `count` bytes of the regular file `path` (fewer when it is shorter),
    /// never following a final symlink; nil when it cannot be opened.
    public static func head(_ path: String, count: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, count - filled) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            filled += n
        }
        return Array(bytes[..<filled])
    }
}

extension SystemError {
    /// The call failed because the path it would create exists.
    public var alreadyExists: Bool { code == EEXIST }
    /// The call failed because the path does not exist.
    public var notFound: Bool { code == ENOENT }
}

/// Facts of the running system.
public enum HostFacts {
    /// The kernel release (`uname -r`: `6.1.0-28-amd64`).
    public static var kernelRelease: String {
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
    }

    /// The effective user of this process is root.
    public static var runsAsRoot: Bool { geteuid() == 0 }

    /// The user and group ids of account `name`, or nil when there is none.
    public static func account(_ name: String) -> (uid: UInt32, gid: UInt32)? {
        guard let pw = getpwnam(name) else { return nil }
        return (pw.pointee.pw_uid, pw.pointee.pw_gid)
    }

    /// Seconds since 1970 (UTC), with nanoseconds.
    public static func wallClock() -> (seconds: Int, nanoseconds: Int) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (ts.tv_sec, ts.tv_nsec)
    }

    /// A UTC time as `20261202T013005Z` (ISO 8601 basic format).
    public static func compactUTC(secondsSince1970 time: Int) -> String {
        var t = time_t(time)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(parts.tm_year + 1900)\(two(parts.tm_mon + 1))\(two(parts.tm_mday))T\(two(parts.tm_hour))\(two(parts.tm_min))\(two(parts.tm_sec))Z"
    }
}

/// The directory part of a path as `dirname(1)` gives it: `/a/b` → `/a`, `b` → `.`, `/b` → `/`.
public func parentDirectory(of path: String) -> String {
    var trimmed = Substring(path)
    while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed.removeLast() }
    guard let slash = trimmed.lastIndex(of: "/") else { return "." }
    if slash == trimmed.startIndex { return "/" }
    var parent = trimmed[..<slash]
    while parent.count > 1, parent.hasSuffix("/") { parent.removeLast() }
    return String(parent)
}

extension StringProtocol {
    /// The text without leading and trailing whitespace and newlines.
    public var trimmed: String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}

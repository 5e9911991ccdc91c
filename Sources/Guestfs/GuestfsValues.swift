import CGuestfs
import FoundationEssentials

/// A partition as `part_list` reports it (bytes).
public struct Partition: Sendable, Equatable {
    public let number: Int32
    public let start: UInt64
    public let end: UInt64
    public let size: UInt64
}

/// What inspection says about an operating system.
public struct OSInfo: Sendable, Equatable {
    public let type: String
    public let distro: String
    public let majorVersion: Int32
    public let minorVersion: Int32
    public let productName: String
    public let hostname: String
}

/// Size, free and available bytes of a mounted filesystem.
public struct FilesystemStats: Sendable, Equatable {
    public let size: UInt64
    public let free: UInt64
    public let available: UInt64
    public var used: UInt64 { size - free }
}

/// The part of `lstat` the service reports.
public struct FileStat: Sendable, Equatable {
    public let mode: UInt32
    public let uid: Int64
    public let gid: Int64
    public let size: UInt64
    public let mtime: Int64

    init(_ s: guestfs_statns) {
        mode = UInt32(truncatingIfNeeded: s.st_mode)
        uid = s.st_uid
        gid = s.st_gid
        size = UInt64(max(0, s.st_size))
        mtime = s.st_mtime_sec
    }

    /// `file`, `directory`, `symlink`, `fifo`, `socket`, `char`, `block`.
    public var type: String {
        switch mode & 0o170000 {
        case 0o040000: return "directory"
        case 0o100000: return "file"
        case 0o120000: return "symlink"
        case 0o010000: return "fifo"
        case 0o140000: return "socket"
        case 0o020000: return "char"
        case 0o060000: return "block"
        default: return "unknown"
        }
    }
}


/// A partition as `part_list` reports it (bytes).
public struct Partition: Sendable, Equatable {
    public let number: Int32
    public let start: UInt64
    public let end: UInt64
    public let size: UInt64

    public init(number: Int32, start: UInt64, end: UInt64, size: UInt64) {
        self.number = number
        self.start = start
        self.end = end
        self.size = size
    }
}

/// What inspection says about an operating system.
public struct OSInfo: Sendable, Equatable {
    public let type: String
    public let distro: String
    public let majorVersion: Int32
    public let minorVersion: Int32
    public let productName: String
    public let hostname: String

    public init(type: String, distro: String, majorVersion: Int32, minorVersion: Int32, productName: String, hostname: String) {
        self.type = type
        self.distro = distro
        self.majorVersion = majorVersion
        self.minorVersion = minorVersion
        self.productName = productName
        self.hostname = hostname
    }
}

/// Size, free and available bytes of a mounted filesystem.
public struct FilesystemStats: Sendable, Equatable {
    public let size: UInt64
    public let free: UInt64
    public let available: UInt64
    public var used: UInt64 { size - free }

    public init(size: UInt64, free: UInt64, available: UInt64) {
        self.size = size
        self.free = free
        self.available = available
    }
}

/// The part of `lstat` the service reports.
public struct FileStat: Sendable, Equatable {
    public let mode: UInt32
    public let uid: Int64
    public let gid: Int64
    public let size: UInt64
    public let mtime: Int64

    public init(mode: UInt32, uid: Int64, gid: Int64, size: UInt64, mtime: Int64) {
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.mtime = mtime
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

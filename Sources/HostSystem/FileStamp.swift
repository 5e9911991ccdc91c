import FoundationEssentials
import Glibc

/// What a file is and when it last changed: inode, size and modification time. Two equal
/// stamps taken before and after some work mean nobody wrote the file in between (a
/// Backup's source); `persisted` is the form kept in state files (automatic versions: has
/// the image changed since the last one?).
public struct FileStamp: Equatable, Sendable {
    public let inode: UInt64
    public let size: Int64
    public let seconds: Int
    public let nanoseconds: Int

    /// The file's stamp, or nil when it cannot be read (errno tells why).
    public init?(_ path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        seconds = st.st_mtim.tv_sec
        nanoseconds = st.st_mtim.tv_nsec
    }

    /// The file's stamp, or an error naming it.
    public init(existing path: String) throws(SystemError) {
        guard let stamp = FileStamp(path) else { throw .failed("cannot stat \(path)") }
        self = stamp
    }

    /// "size:seconds.nanoseconds" (the format disk-policies.json has always used).
    public var persisted: String { "\(size):\(seconds).\(nanoseconds)" }
}

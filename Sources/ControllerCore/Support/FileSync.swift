import FoundationEssentials
import Glibc

/// Durability of the images the service writes: a file's data is on disk before a name
/// points at it (a new disk, a backup, a disk replaced by Resize, Format or Restore), and the
/// name itself once given. Without it a power cut in the seconds after a job succeeded could
/// leave a disk or backup whose name exists but whose data never reached the disk.
enum FileSync {
    /// `fsync(2)` of the file at `path`; `Io` naming it when that fails.
    static func file(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ControllerError.io("cannot open \(path) to sync it: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw ControllerError.io("cannot sync \(path) to disk: \(String(cString: strerror(errno)))") }
    }

    /// `fsync(2)` of the directory holding `path`, after a rename or link into it.
    static func directory(of path: String) throws {
        try file(parentDirectory(of: path))
    }
}

import BlockingThreads
import FoundationEssentials
import Glibc

/// Durability of the images the service writes: a file's data is on disk before a name
/// points at it (a new disk, a backup, a disk replaced by Resize, Format or Restore), and the
/// name itself once given. Without it a power cut in the seconds after a job succeeded could
/// leave a disk or backup whose name exists but whose data never reached the disk.
///
/// The syncs run on threads of their own, never on the cooperative threads the actors run
/// on: while the host writes back gigabytes (after a large copy), one `fsync` can take
/// seconds, and the daemon has as many cooperative threads as cores (two here) — a CI run
/// saw every call of LoadTests stall for ~17 s at once after the image-heavy suites.
public enum FileSync {
    private static let threads = ThreadPool(name: "fsync", threads: 2)

    /// `fsync(2)` of the file at `path`; `Io` naming it when that fails.
    public static func file(_ path: String) async throws {
        try await threads.run { try now(path) }
    }

    /// `fsync(2)` of the directory holding `path`, after a rename or link into it.
    public static func directory(of path: String) async throws {
        let directory = parentDirectory(of: path)
        try await threads.run { try now(directory) }
    }

    /// `fsync(2)` on the calling thread (a blocking thread's own work).
    private static func now(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError.io("cannot open \(path) to sync it: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw SystemError.io("cannot sync \(path) to disk: \(String(cString: strerror(errno)))") }
    }
}

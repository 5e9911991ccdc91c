import BlockingThreads
import FoundationEssentials
import Glibc
import Synchronization

/// Watches directories with inotify and reports `(directory, name)` for every entry
/// created, written, removed, renamed or re-permissioned in them.
///
/// Directories are watched rather than files: tools such as `gpasswd`, `usermod`, `sed -i`
/// and most editors replace a file by renaming a new one over it, which ends a watch on the
/// file itself. One thread blocks in `poll` on the inotify descriptor and a stop pipe.
public final class InotifyWatcher: Sendable {
    /// One change in a watched directory.
    public struct Event: Sendable, Equatable {
        public let directory: String
        public let name: String
    }

    public let events: AsyncStream<Event>
    private let continuation: AsyncStream<Event>.Continuation
    private let fd: Int32
    private let stopPipe: (read: Int32, write: Int32)
    private let watches = Mutex<[Int32: String]>([:])

    public init() throws {
        fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard fd >= 0 else { throw SystemError.io("inotify_init1 failed: \(String(cString: strerror(errno)))") }
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw SystemError.io("pipe failed: \(String(cString: strerror(errno)))") }
        for pipeFD in pipeFDs { _ = fcntl(pipeFD, F_SETFD, FD_CLOEXEC) }
        stopPipe = (pipeFDs[0], pipeFDs[1])
        (events, continuation) = AsyncStream<Event>.makeStream(bufferingPolicy: .bufferingNewest(4096))
        NamedThread.start("inotify") { [self] in readLoop() }
    }

    /// Replaces the set of watched directories (real paths). Missing directories are skipped.
    public func watch(directories: Set<String>) {
        let mask = UInt32(IN_CREATE | IN_DELETE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_ATTRIB
                          | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
        watches.withLock { current in
            for (wd, directory) in current where !directories.contains(directory) {
                inotify_rm_watch(fd, wd)
                current[wd] = nil
            }
            let have = Set(current.values)
            for directory in directories where !have.contains(directory) {
                let wd = inotify_add_watch(fd, directory, mask)
                if wd >= 0 { current[wd] = directory }
            }
        }
    }

    /// The directories currently watched.
    public var watchedDirectories: Set<String> { watches.withLock { Set($0.values) } }

    /// Stops the reader thread and closes the descriptors.
    public func stop() {
        var byte: UInt8 = 1
        _ = Glibc.write(stopPipe.write, &byte, 1)
    }

    private func readLoop() {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: stopPipe.read, events: Int16(POLLIN), revents: 0)]
        loop: while true {
            let ready = poll(&fds, 2, -1)
            if ready < 0 { if errno == EINTR { continue }; break }
            if fds[1].revents != 0 { break }
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }; break }
            var offset = 0
            while offset + 16 <= n {
                let (wd, mask, length) = buffer.withUnsafeBytes { raw in
                    (raw.loadUnaligned(fromByteOffset: offset, as: Int32.self),
                     raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self),
                     Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)))
                }
                let nameBytes = buffer[(offset + 16)..<min(n, offset + 16 + length)].prefix { $0 != 0 }
                offset += 16 + length
                if mask & UInt32(IN_Q_OVERFLOW) != 0 {
                    continuation.yield(Event(directory: "", name: ""))
                    continue
                }
                let directory: String? = watches.withLock { current in
                    if mask & UInt32(IN_IGNORED) != 0 { return current.removeValue(forKey: wd) }
                    return current[wd]
                }
                guard let directory else { continue }
                continuation.yield(Event(directory: directory, name: String(decoding: nameBytes, as: UTF8.self)))
            }
        }
        continuation.finish()
        close(fd)
        close(stopPipe.read)
        close(stopPipe.write)
    }
}

import BlockingThreads
import CLinux
import FoundationEssentials
import Glibc
import Synchronization

/// A private `qemu-storage-daemon` driven over QMP: it opens images (with their recorded
/// formats, given in each `--blockdev`; nothing is probed) and runs block jobs on them, such
/// as a backup, with qemu's own image locks held meanwhile.
///
/// Its QMP socket lives in a directory of its own (mode 0700) under the unit's
/// `RuntimeDirectory` (`$RUNTIME_DIRECTORY`, else `/tmp`), named for the daemon's pid so a
/// later daemon can stop the storage daemons of one that died (``sweepOrphans()``).
public struct StorageDaemon: Sendable {
    public static let program = "/usr/bin/qemu-storage-daemon"
    static let prefix = "multiverse-qsd-"

    public let directory: String
    public let pid: Int32
    /// A pidfd for the storage daemon, opened while it was known to be ours: signals go
    /// through it, never to a pid that may have been reused.
    let pidfd: Int32
    var socket: String { directory + "/qmp.sock" }

    /// Where the storage daemons' directories are: the unit's RuntimeDirectory, else /tmp.
    static var base: String {
        ProcessInfo.processInfo.environment["RUNTIME_DIRECTORY"].flatMap { $0.split(separator: ":").first.map(String.init) } ?? "/tmp"
    }

    /// Starts a storage daemon with the `--blockdev` nodes `blockdevs` (qemu's JSON syntax).
    /// It is ready (images open) when this returns; an image that cannot be opened is an
    /// `Io` error with qemu's message (another process holding the image's write lock:
    /// `inUse`). Cancelled while it starts, the storage daemon is stopped again.
    public static func start(blockdevs: [Blockdev], program: String = StorageDaemon.program) async throws -> StorageDaemon {
        sweepOrphans()
        var template = Array("\(base)/\(prefix)\(getpid())-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemError.failed("mkdtemp in \(base) for a storage daemon") }
        let directory = String(cString: made)
        var arguments = ["--daemonize", "--pidfile", directory + "/pid",
                         "--chardev", "socket,id=qmp,path=\(directory)/qmp.sock,server=on,wait=off", "--monitor", "chardev=qmp"]
        for node in blockdevs { arguments += ["--blockdev", node.argument] }
        let result: ChildResult
        do { result = try await ChildProcess.run(program, arguments) } catch {
            // Cancelled: the launcher is gone, but the daemon it detached may be running.
            killRecorded(in: directory)
            removeFiles(directory)
            throw error
        }
        guard result.status == 0, let pid = recordedPid(in: directory) else {
            killRecorded(in: directory)
            removeFiles(directory)
            let reason = result.stderrExcerpt.isEmpty ? "exit status \(result.status)" : result.stderrExcerpt
            if reason.contains("Failed to get") && reason.contains("lock") { throw SystemError.inUse(reason) }
            throw SystemError.io("qemu-storage-daemon did not start: \(reason)")
        }
        let pidfd = mv_pidfd_open(pid)
        guard pidfd >= 0, commandLine(of: pid)?.contains(directory + "/") == true else {
            if pidfd >= 0 { close(pidfd) }
            removeFiles(directory)
            throw SystemError.io("qemu-storage-daemon \(pid) exited right after it started")
        }
        return StorageDaemon(directory: directory, pid: pid, pidfd: pidfd)
    }

    /// The pid in a storage daemon's pid file.
    static func recordedPid(in directory: String) -> Int32? {
        (try? String(contentsOfFile: directory + "/pid", encoding: .utf8)).flatMap { Int32($0.filter { $0.isNumber }) }
    }

    static func commandLine(of pid: Int32) -> String? {
        try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)
    }

    /// Kills the storage daemon a directory's pid file names, if its command line names the
    /// directory (so never an unrelated process that reused the pid).
    static func killRecorded(in directory: String) {
        guard let pid = recordedPid(in: directory) else { return }
        let pidfd = mv_pidfd_open(pid)
        guard pidfd >= 0 else { return }
        defer { close(pidfd) }
        if commandLine(of: pid)?.contains(directory + "/") == true { _ = mv_pidfd_send_signal(pidfd, SIGKILL) }
    }

    /// Runs `body` with a QMP connection on a thread of its own. Task cancellation makes
    /// the connection's waits throw `CancellationError`.
    public func session<T: Sendable>(_ body: @escaping @Sendable (QMPConnection) throws -> T) async throws -> T {
        let flag = StopFlag()
        let socket = self.socket
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
                NamedThread.start("qmp") {
                    continuation.resume(with: Result {
                        let connection = try QMPConnection(path: socket, what: "qemu-storage-daemon", stop: { flag.isSet })
                        return try body(connection)
                    })
                }
            }
        } onCancel: {
            flag.set()
        }
    }

    /// Stops the storage daemon: SIGTERM (it closes the images, writing persistent bitmaps
    /// back; one asked to `quit` is already on its way out), SIGKILL if it has not exited
    /// within `grace` seconds. Signals go through its pidfd.
    public func stop(grace: Int32 = 10) async {
        let (pidfd, directory) = (self.pidfd, self.directory)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            NamedThread.start("qsd-stop") {
                _ = mv_pidfd_send_signal(pidfd, SIGTERM)
                var p = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, grace * 1000) == 0 {
                    _ = mv_pidfd_send_signal(pidfd, SIGKILL)
                    _ = poll(&p, 1, 5_000)
                }
                close(pidfd)
                Self.removeFiles(directory)
                continuation.resume()
            }
        }
    }

    /// Kills the storage daemons of daemons that are gone: a directory of ours (a real
    /// directory, root's, not a symlink) named for a pid that no longer exists, whose storage
    /// daemon's command line names that directory.
    public static func sweepOrphans() {
        let base = self.base
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: base) else { return }
        for name in names where name.hasPrefix(prefix) {
            guard let owner = Int32(name.dropFirst(prefix.count).prefix(while: { $0.isNumber })), kill(owner, 0) != 0, errno == ESRCH else { continue }
            let directory = base + "/" + name
            var st = stat()
            guard lstat(directory, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == geteuid() else { continue }
            killRecorded(in: directory)
            removeFiles(directory)
        }
    }

    static func removeFiles(_ directory: String) {
        unlink(directory + "/qmp.sock")
        unlink(directory + "/pid")
        rmdir(directory)
    }

    /// A `--blockdev` node in qemu's JSON syntax (no comma escaping of paths): a format
    /// driver over a file, with the format given, never probed.
    public struct Blockdev: Encodable, Sendable {
        struct File: Encodable, Sendable {
            let driver = "file"
            let filename: String
        }
        let driver: String
        let nodeName: String
        let readOnly: Bool?
        let file: File

        enum CodingKeys: String, CodingKey {
            case driver, file
            case nodeName = "node-name"
            case readOnly = "read-only"
        }

        /// `path` opened as `format` under the name `node`. Read-only or not, qemu's locks
        /// keep writers out while it is open (no force-share).
        public init(_ path: String, format: String, node: String, readOnly: Bool = false) {
            driver = format
            nodeName = node
            self.readOnly = readOnly ? true : nil
            file = File(filename: path)
        }

        /// The node as the `--blockdev` argument.
        public var argument: String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
            return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
        }
    }

    /// A flag set from the cancellation handler, read by the QMP thread.
    final class StopFlag: Sendable {
        private let flag = Atomic<Bool>(false)
        var isSet: Bool { flag.load(ordering: .relaxed) }
        func set() { flag.store(true, ordering: .relaxed) }
    }
}

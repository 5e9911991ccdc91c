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
    var socket: String { directory + "/qmp.sock" }

    /// Starts a storage daemon with the `--blockdev` nodes `blockdevs` (qemu's JSON syntax).
    /// It is ready (images open) when this returns; an image that cannot be opened is an
    /// `Io` error with qemu's message (a VM holding the image's write lock: `inUse`).
    public static func start(blockdevs: [Blockdev], program: String = StorageDaemon.program) async throws -> StorageDaemon {
        sweepOrphans()
        let base = ProcessInfo.processInfo.environment["RUNTIME_DIRECTORY"].flatMap { $0.split(separator: ":").first.map(String.init) } ?? "/tmp"
        var template = Array("\(base)/\(prefix)\(getpid())-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemError.failed("mkdtemp in \(base) for a storage daemon") }
        let directory = String(cString: made)
        var arguments = ["--daemonize", "--pidfile", directory + "/pid",
                         "--chardev", "socket,id=qmp,path=\(directory)/qmp.sock,server=on,wait=off", "--monitor", "chardev=qmp"]
        for node in blockdevs { arguments += ["--blockdev", node.argument] }
        let result: ChildResult
        do { result = try await ChildProcess.run(program, arguments) } catch {
            removeFiles(directory)
            throw error
        }
        guard result.status == 0, let text = try? String(contentsOfFile: directory + "/pid", encoding: .utf8),
              let pid = Int32(text.filter { $0.isNumber }) else {
            removeFiles(directory)
            let reason = result.stderrExcerpt.isEmpty ? "exit status \(result.status)" : result.stderrExcerpt
            if reason.contains("Failed to get") && reason.contains("lock") { throw SystemError.inUse(reason) }
            throw SystemError.io("qemu-storage-daemon did not start: \(reason)")
        }
        return StorageDaemon(directory: directory, pid: pid)
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

    /// Stops the storage daemon: asks it to quit (it closes the images, writing persistent
    /// bitmaps back), and kills it if it has not exited within `grace` seconds.
    public func stop(grace: Int32 = 10) async {
        let pid = self.pid
        let directory = self.directory
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            NamedThread.start("qsd-stop") {
                let pidfd = mv_pidfd_open(pid)
                kill(pid, SIGTERM)
                if pidfd >= 0 {
                    var p = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
                    if poll(&p, 1, grace * 1000) == 0 {
                        kill(pid, SIGKILL)
                        _ = poll(&p, 1, 5_000)
                    }
                    close(pidfd)
                }
                Self.removeFiles(directory)
                continuation.resume()
            }
        }
    }

    /// Kills the storage daemons of daemons that are gone (a directory named for a pid that
    /// no longer exists, whose storage daemon's command line names that directory).
    public static func sweepOrphans() {
        let base = ProcessInfo.processInfo.environment["RUNTIME_DIRECTORY"].flatMap { $0.split(separator: ":").first.map(String.init) } ?? "/tmp"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: base) else { return }
        for name in names where name.hasPrefix(prefix) {
            guard let owner = Int32(name.dropFirst(prefix.count).prefix(while: { $0.isNumber })), kill(owner, 0) != 0, errno == ESRCH else { continue }
            let directory = base + "/" + name
            if let text = try? String(contentsOfFile: directory + "/pid", encoding: .utf8), let pid = Int32(text.filter { $0.isNumber }),
               let cmdline = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8), cmdline.contains(directory + "/") {
                kill(pid, SIGKILL)
            }
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
        let forceShare: Bool?
        let file: File

        enum CodingKeys: String, CodingKey {
            case driver, file
            case nodeName = "node-name"
            case readOnly = "read-only"
            case forceShare = "force-share"
        }

        /// `path` opened as `format` under the name `node`; `readOnly` also shares the
        /// image with writers (qemu's force-share), as a read-only export beside a VM needs.
        public init(_ path: String, format: String, node: String, readOnly: Bool = false) {
            driver = format
            nodeName = node
            self.readOnly = readOnly ? true : nil
            forceShare = readOnly ? true : nil
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

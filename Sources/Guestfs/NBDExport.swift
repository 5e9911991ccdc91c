import CLinux
import Dispatch
import FoundationEssentials
import Glibc
import Subprocess
import Synchronization
import SystemPackage

/// One disk image served to an appliance helper: a root-side `qemu-storage-daemon` opens
/// the image with its recorded format (never probed) and exports the guest-visible bytes
/// on an NBD unix socket that only the appliance user may connect to. The helper, which
/// cannot open any image itself, reaches the image only through that socket.
///
/// Read-only exports open the image read-only with qemu's `force-share`, so a VM running
/// on the disk keeps its write lock and the appliance reads alongside it (as libguestfs'
/// own read-only drives do); writable ones take qemu's write lock until ``stop()``.
struct NBDExport: Sendable {
    static let storageDaemon = "/usr/bin/qemu-storage-daemon"
    /// The export's name on the socket (the NBD URI's path).
    static let exportName = "image"

    /// The directory holding the socket and the pid file (root's, mode 0711).
    let directory: String
    /// The NBD socket, owned by the appliance user, mode 0600.
    var socket: String { directory + "/nbd.sock" }
    private let pid: Int32

    /// Starts serving `path`. Throws a ``GuestfsError`` with qemu's message when the image
    /// cannot be opened (missing, locked by a VM for a writable export, not `format`).
    static func start(path: String, format: String, readonly: Bool, for user: ApplianceUser) throws -> NBDExport {
        guard ["raw", "qcow2"].contains(format) else {
            throw GuestfsError(function: "add_drive", message: "'\(format)' is not a managed image format")
        }
        sweepOrphans()
        var template = Array("/tmp/\(prefix)\(getpid())-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw GuestfsError(function: "add_drive", message: "cannot create a directory for the NBD socket", errno: errno)
        }
        let directory = String(cString: made)
        chmod(directory, 0o711)
        let node = BlockdevNode(driver: format, nodeName: exportName, readOnly: readonly ? true : nil,
                                forceShare: readonly ? true : nil, file: .init(driver: "file", filename: path))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        let json = String(decoding: (try? encoder.encode(node)) ?? Data(), as: UTF8.self)
        let arguments = [
            "--daemonize", "--pidfile", directory + "/pid",
            "--blockdev", json,
            "--nbd-server", "addr.type=unix,addr.path=\(directory)/nbd.sock",
            "--export", "type=nbd,id=export,node-name=\(exportName),name=\(exportName),writable=\(readonly ? "off" : "on")",
        ]
        let (status, stderr) = runToEnd(storageDaemon, arguments)
        guard status == 0,
              let text = try? String(contentsOfFile: directory + "/pid", encoding: .utf8),
              let pid = Int32(text.filter { $0.isNumber }) else {
            removeFiles(directory)
            let reason = stderr.split(separator: "\n").last.map(String.init) ?? "exit status \(status)"
            throw GuestfsError(function: "add_drive", message: "cannot serve \(path) to the appliance: \(reason)")
        }
        let export = NBDExport(directory: directory, pid: pid)
        guard chown(export.socket, user.uid, user.gid) == 0, chmod(export.socket, 0o600) == 0 else {
            let e = errno
            export.stop()
            throw GuestfsError(function: "add_drive", message: "cannot hand the NBD socket to \(user.name)", errno: e)
        }
        return export
    }

    /// The directories' names start with this and the daemon's pid.
    static let prefix = "multiverse-nbd-"

    /// Stops the storage daemons a daemon that died left behind (outside systemd, which
    /// kills the unit's processes itself): directories named for a process that is gone.
    /// A storage daemon is killed only if its command line names that directory.
    static func sweepOrphans() {
        guard let dir = opendir("/tmp") else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            // The name read in place: a copy of the whole `d_name` array reads past the end of
            // a short entry, and past the end of readdir's buffer when it is the last one
            // (the daemon died of a segfault there once, with many entries in /tmp).
            let name = String(cString: (UnsafeRawPointer(entry) + MemoryLayout<dirent>.offset(of: \dirent.d_name)!).assumingMemoryBound(to: CChar.self))
            guard name.hasPrefix(prefix), let owner = Int32(name.dropFirst(prefix.count).prefix(while: { $0.isNumber })),
                  kill(owner, 0) != 0, errno == ESRCH else { continue }
            let directory = "/tmp/" + name
            if let text = try? String(contentsOfFile: directory + "/pid", encoding: .utf8), let pid = Int32(text.filter { $0.isNumber }),
               let cmdline = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8), cmdline.contains(directory + "/") {
                kill(pid, SIGKILL)
            }
            removeFiles(directory)
        }
    }

    /// Stops the storage daemon (waiting for it to close the image) and removes the socket.
    func stop() {
        let pidfd = mv_pidfd_open(pid)
        kill(pid, SIGTERM)
        if pidfd >= 0 {
            var p = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 10_000) == 0 {
                kill(pid, SIGKILL)
                _ = poll(&p, 1, 5_000)
            }
            close(pidfd)
        }
        Self.removeFiles(directory)
    }

    private static func removeFiles(_ directory: String) {
        unlink(directory + "/nbd.sock")
        unlink(directory + "/pid")
        rmdir(directory)
    }

    /// Runs a child to its end from a blocking thread (the handle's), returning its exit
    /// status and the end of its standard error.
    private static func runToEnd(_ path: String, _ arguments: [String]) -> (Int32, String) {
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<(Int32, String)>((-1, ""))
        Task.detached {
            do {
                let result = try await Subprocess.run(.path(FilePath(path)), arguments: Arguments(arguments),
                                                      output: .discarded, error: .string(limit: 64 << 10))
                let code: Int32 = switch result.terminationStatus {
                case .exited(let c): Int32(c)
                case .signaled(let s): 128 + Int32(s)
                }
                outcome.withLock { $0 = (code, result.standardError ?? "") }
            } catch {
                outcome.withLock { $0 = (-1, "\(path): \(error)") }
            }
            done.signal()
        }
        done.wait()
        return outcome.withLock { $0 }
    }
}

/// A `--blockdev` node as qemu's JSON syntax spells it (no comma escaping of paths).
private struct BlockdevNode: Encodable {
    struct File: Encodable {
        let driver: String
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
}

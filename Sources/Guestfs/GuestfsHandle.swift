import BlockingThreads
import Dispatch
import FoundationEssentials
import Glibc
import Subprocess
import Synchronization
import SystemPackage

/// One appliance: a helper process (``GuestfsSettings/helper``) that owns the libguestfs
/// handle as the unprivileged appliance user, and a thread of this process that talks to it.
///
/// Every libguestfs call blocks (a launch takes seconds, a resize2fs minutes), so the calls
/// are made from this handle's thread, each a request to the helper over a stream socket
/// and a wait for its reply. Work reaches the thread as closures (``run(_:)``). The only
/// cross-thread action is ``kill()``, which shuts the socket down: the helper then kills
/// its qemu and exits, and the call in progress fails.
public final class GuestfsHandle: Sendable {
    /// What the handle is for, in logs (`disk NAME (read-only)`).
    public let label: String
    public let settings: GuestfsSettings
    /// The helper's account; nil when it could not be started.
    let user: ApplianceUser?
    private let queue = Mutex<[@Sendable (GuestfsSession?) -> Void]>([])
    private let wake = DispatchSemaphore(value: 0)
    private let closing = Mutex(false)
    private let killed = Mutex(false)
    /// The daemon's end of the helper's socket (-1 when the helper could not start).
    private let socket: Int32
    /// Whether `socket` is still open: `kill()` and `close()` shut it down only then, so
    /// they never touch a descriptor number the thread has closed and the process reused.
    private let socketOpen = Mutex(false)
    private let startFailure: String?
    /// Ends when the helper process has exited.
    private let helperExited: Task<Void, Never>?

    /// Starts the helper with `settings`; no appliance yet.
    public init(settings: GuestfsSettings, label: String) {
        self.label = label
        self.settings = settings
        var failure: String?
        var user: ApplianceUser?
        var fds: [Int32] = [-1, -1]
        if geteuid() != 0 {
            // A developer's unprivileged daemon: the helper runs as that user.
            user = ApplianceUser(name: getpwuid(geteuid()).map { String(cString: $0.pointee.pw_name) } ?? "uid \(geteuid())",
                                 uid: geteuid(), gid: getegid(), groups: [])
        } else if let found = ApplianceUser.lookUp(settings.user) {
            user = found
        } else {
            failure = "the appliance user '\(settings.user)' does not exist (the package creates it with systemd-sysusers)"
        }
        if failure == nil, Glibc.socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) != 0 {
            failure = "socketpair failed (errno \(errno))"
        }
        self.user = failure == nil ? user : nil
        self.socket = failure == nil ? fds[0] : -1
        self.startFailure = failure
        socketOpen.withLock { $0 = failure == nil }
        if failure == nil, let user {
            helperExited = Self.startHelper(settings, user: user, end: fds[1], ours: fds[0])
        } else {
            helperExited = nil
        }
        NamedThread.start("guestfs") { [self] in self.threadMain() }
    }

    /// True once ``kill()`` ran: the appliance is gone and calls fail.
    public var wasKilled: Bool { killed.withLock { $0 } }

    /// Runs `body` on the handle's thread. Calls queue behind each other, so a sequence of
    /// calls in one body is never interleaved with another body's.
    public func run<T: Sendable>(_ body: @escaping @Sendable (GuestfsSession) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let accepted = closing.withLock { closed -> Bool in
                guard !closed else { return false }
                queue.withLock { q in
                    q.append { [startFailure] session in
                        guard let session else {
                            let reason = startFailure ?? "the appliance helper is not running"
                            continuation.resume(throwing: GuestfsError(function: "create", message: reason))
                            return
                        }
                        continuation.resume(with: Result { try body(session) })
                    }
                }
                return true
            }
            if accepted { wake.signal() } else {
                continuation.resume(throwing: GuestfsError(function: "run", message: "handle for \(label) is closed"))
            }
        }
    }

    /// Like ``run(_:)``, but task cancellation kills the appliance (the running call then
    /// fails at once). For jobs whose work is disposable: the caller discards the image.
    public func runCancellable<T: Sendable>(_ body: @escaping @Sendable (GuestfsSession) throws -> T) async throws -> T {
        try await withTaskCancellationHandler {
            try await run(body)
        } onCancel: {
            self.kill()
        }
    }

    /// Kills the appliance: the helper sees its socket shut down, kills qemu and exits. Any
    /// call in progress fails; the handle is useless afterwards and should be closed.
    public func kill() {
        killed.withLock { $0 = true }
        shutdownSocket()
    }

    private func shutdownSocket() {
        socketOpen.withLock { open in if open { Glibc.shutdown(socket, Int32(SHUT_RDWR)) } }
    }

    /// Shuts the appliance down (syncing the disks unless it was killed), stops serving its
    /// images and waits for the helper to exit; the handle's thread ends.
    public func close() async {
        _ = try? await run { session in session.shutdown() }
        closing.withLock { $0 = true }
        shutdownSocket()
        wake.signal()
        await helperExited?.value
    }

    private func threadMain() {
        let session = socket >= 0 ? GuestfsSession(socket: socket, owner: self) : nil
        while true {
            wake.wait()
            let job = queue.withLock { $0.isEmpty ? nil : $0.removeFirst() }
            if let job { job(session); continue }
            if closing.withLock({ $0 }) { break }
        }
        // Anything queued after close was requested fails rather than hangs.
        for job in queue.withLock({ q in defer { q.removeAll() }; return q }) { job(nil) }
        session?.shutdown()
        socketOpen.withLock { open in
            if open { Glibc.close(socket) }
            open = false
        }
    }

    /// Starts the helper as `user` with `end` as its standard input and output; the task
    /// ends when the helper has exited. If it cannot start, `ours` is shut down so the
    /// first call fails instead of waiting.
    private static func startHelper(_ settings: GuestfsSettings, user: ApplianceUser, end: Int32, ours: Int32) -> Task<Void, Never> {
        var arguments = ["--backend", settings.backend]
        for s in settings.backendSettings { arguments += ["--backend-setting", s] }
        if let memory = settings.memoryMiB { arguments += ["--memsize", String(memory)] }
        var environment: [Environment.Key: String] = [
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/nonexistent", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
        ]
        // The appliance's cache (its kernel and root built by supermin) and libguestfs'
        // debugging switches pass through; nothing else of the daemon's environment does.
        for (key, value) in ProcessInfoEnvironment.current where key.hasPrefix("LIBGUESTFS_") {
            environment[Environment.Key(rawValue: key)!] = value
        }
        if let cache = ProcessInfoEnvironment.current["LIBGUESTFS_CACHEDIR"] { prepareCache(cache, for: user) }
        // The helper drops to the user itself, as its first act: swift-subprocess' own user
        // switch runs setgroups/setuid in a child that was cloned without glibc's fork
        // bookkeeping, where glibc waits for the parent's threads and the child hangs.
        if geteuid() == 0 {
            arguments += ["--uid", String(user.uid), "--gid", String(user.gid)]
            for group in user.groups { arguments += ["--group", String(group)] }
        }
        // Close-on-exec like `end`: no other child may inherit the helper's socket (the
        // helper's standard input is a dup2 of it, which clears the flag there only).
        let input = fcntl(end, F_DUPFD_CLOEXEC, 0)
        return Task.detached {
            do {
                _ = try await Subprocess.run(
                    .path(FilePath(settings.helper)), arguments: Arguments(arguments),
                    environment: .custom(environment),
                    input: .fileDescriptor(FileDescriptor(rawValue: input), closeAfterSpawningProcess: true),
                    output: .fileDescriptor(FileDescriptor(rawValue: end), closeAfterSpawningProcess: true),
                    error: .fileDescriptor(.standardError, closeAfterSpawningProcess: false))
            } catch {
                let line = "multiverse-controllerd: cannot start the appliance helper \(settings.helper): \(error)\n"
                _ = line.utf8CString.withUnsafeBufferPointer { Glibc.write(2, $0.baseAddress, $0.count - 1) }
                Glibc.shutdown(ours, Int32(SHUT_RDWR))
            }
        }
    }

    /// libguestfs keeps the appliance in `CACHEDIR/.guestfs-UID`, which must belong to the
    /// user; the daemon's cache directory is root's, so the daemon makes that one entry.
    private static func prepareCache(_ cache: String, for user: ApplianceUser) {
        let directory = "\(cache)/.guestfs-\(user.uid)"
        var st = stat()
        if lstat(directory, &st) != 0 { mkdir(directory, 0o755) }
        guard lstat(directory, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return }
        if st.st_uid != user.uid || st.st_gid != user.gid { lchown(directory, user.uid, user.gid) }
        chmod(directory, 0o755)
    }
}

/// The daemon's environment as a dictionary.
enum ProcessInfoEnvironment {
    static var current: [String: String] {
        var out: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let text = String(cString: entry)
            if let eq = text.firstIndex(of: "=") { out[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
            p += 1
        }
        return out
    }
}

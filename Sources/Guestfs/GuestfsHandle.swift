import BlockingThreads
import CGuestfs
import CLinux
import Dispatch
import Glibc
import Synchronization

/// One libguestfs handle and its appliance, owned by a thread of its own.
///
/// Every libguestfs call blocks (a launch takes seconds, a resize2fs minutes), so the
/// `guestfs_h` is created, used and closed only on this handle's thread and never leaves
/// it: the pointer lives in that thread's stack frame, not in this object. Work reaches the
/// thread as closures (``run(_:)``); the only cross-thread action is ``kill()``, which
/// sends SIGKILL to the appliance's qemu by pid.
public final class GuestfsHandle: Sendable {
    /// What the handle is for, in logs (`disk NAME (read-only)`).
    public let label: String
    private let queue = Mutex<[@Sendable (GuestfsSession?) -> Void]>([])
    private let wake = DispatchSemaphore(value: 0)
    private let closing = Mutex(false)
    private let appliancePID = Mutex<Int32>(0)
    private let killed = Mutex(false)
    /// The kernel thread id of the handle's thread: libguestfs forks the appliance (qemu
    /// and its recovery process) from it, so they are listed in its `children` file.
    private let threadID = Mutex<Int32>(0)

    /// Creates the handle (on its new thread) with `settings`; no appliance yet.
    public init(settings: GuestfsSettings, label: String) {
        self.label = label
        NamedThread.start("guestfs") { [self] in self.threadMain(settings) }
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
                    q.append { session in
                        guard let session else {
                            continuation.resume(throwing: GuestfsError(function: "create", message: "could not create a libguestfs handle"))
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

    /// Kills the appliance (SIGKILL to its qemu). Any call in progress fails; the handle is
    /// useless afterwards and should be closed.
    public func kill() {
        killed.withLock { $0 = true }
        let pid = appliancePID.withLock { $0 }
        if pid > 0 {
            Glibc.kill(pid, SIGKILL)
            return
        }
        // Still launching (the pid is not known yet): kill what the handle's thread forked.
        let tid = threadID.withLock { $0 }
        guard tid > 0, let list = try? String(contentsOfFile: "/proc/self/task/\(tid)/children", encoding: .utf8) else { return }
        for child in list.split(separator: " ").compactMap({ Int32($0) }) { Glibc.kill(child, SIGKILL) }
    }

    /// Shuts the appliance down (syncing the disks unless it was killed) and frees the
    /// handle; its thread ends.
    public func close() async {
        _ = try? await run { session in session.shutdown() }
        closing.withLock { $0 = true }
        wake.signal()
    }

    func noteLaunched(pid: Int32) {
        appliancePID.withLock { $0 = pid }
        // A kill that arrived during the launch applies now.
        if killed.withLock({ $0 }), pid > 0 { Glibc.kill(pid, SIGKILL) }
    }

    private func threadMain(_ settings: GuestfsSettings) {
        threadID.withLock { $0 = mv_gettid() }
        let g = guestfs_create()
        var session: GuestfsSession?
        if let g {
            guestfs_set_error_handler(g, nil, nil)
            _ = guestfs_set_backend(g, settings.backend)
            withCStringArray(settings.backendSettings) { _ = guestfs_set_backend_settings(g, $0) }
            if let memory = settings.memoryMiB { _ = guestfs_set_memsize(g, Int32(memory)) }
            session = GuestfsSession(g, owner: self)
        }
        while true {
            wake.wait()
            let job = queue.withLock { $0.isEmpty ? nil : $0.removeFirst() }
            if let job { job(session); continue }
            if closing.withLock({ $0 }) { break }
        }
        // Anything queued after close was requested fails rather than hangs.
        for job in queue.withLock({ q in defer { q.removeAll() }; return q }) { job(nil) }
        session?.invalidate()
        if let g { guestfs_close(g) }
    }
}

/// Calls `body` with a NULL-terminated `char *const *` for `strings`.
func withCStringArray<R>(_ strings: [String], _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    let pointers = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: strings.count + 1)
    for (i, s) in strings.enumerated() { pointers[i] = strdup(s) }
    pointers[strings.count] = nil
    defer {
        for i in 0..<strings.count { free(pointers[i]) }
        pointers.deallocate()
    }
    return body(pointers)
}

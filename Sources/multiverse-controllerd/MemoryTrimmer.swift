import CLinux
import Synchronization

/// Gives memory that bursts of work freed back to the system once the burst is over.
///
/// glibc keeps freed memory in its arenas for reuse; after a burst (jobs, a libguestfs
/// appliance, a thousand VM changes) the idle daemon would keep holding it. `request()`
/// after such work runs `malloc_trim(0)` a little later, once for all requests that came
/// in meanwhile; nothing runs while the daemon is idle. Measured after the disk benchmark
/// (copies, backups, ten guest reads): anonymous memory 11.3 MB before a trim, 5.5 MB after.
final class MemoryTrimmer: Sendable {
    private let pending = Mutex(false)
    private let delay: Duration

    init(delay: Duration = .seconds(2)) {
        self.delay = delay
    }

    /// Schedules one trim `delay` from now unless one is already scheduled.
    func request() {
        let start = pending.withLock { pending -> Bool in
            if pending { return false }
            pending = true
            return true
        }
        guard start else { return }
        Task { [self] in
            try? await Task.sleep(for: delay)
            pending.withLock { $0 = false }
            _ = mv_trim_malloc()
        }
    }
}

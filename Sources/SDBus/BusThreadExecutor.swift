import CLinux
import CSystemd
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A serial executor backed by one dedicated thread, which also runs the sd-event loop
/// that dispatches the bus. Jobs of the ``BusConnection`` actor run on that thread, so the
/// compiler's actor isolation guarantees that every `sd_bus*` call happens there.
///
/// `@unchecked Sendable` is safe here: the job queue and the thread id are guarded by
/// `Mutex`es; `event` is written once by the loop thread before it processes any job and
/// read only by that thread afterwards (all readers run as jobs or callbacks on it).
public final class BusThreadExecutor: SerialExecutor, @unchecked Sendable {
    private let jobs = Mutex<[UnownedJob]>([])
    private let thread = Mutex<pthread_t?>(nil)
    private let wakeFD: Int32
    private let onExit: @Sendable (Int32) -> Void
    /// The sd-event loop of the thread. Only touched on the thread.
    var event: OpaquePointer?
    /// The thread's name, given to the kernel when it starts.
    private let name: String

    /// Starts the thread. `onExit` runs on it when the loop ends (with sd-event's exit code).
    public init(name: String, onExit: @escaping @Sendable (Int32) -> Void = { _ in }) {
        wakeFD = mv_eventfd()
        precondition(wakeFD >= 0, "eventfd failed")
        self.onExit = onExit
        self.name = name
        var tid = pthread_t()
        let box = Unmanaged.passRetained(self).toOpaque()
        let r = pthread_create(&tid, nil, { arg in
            let executor = Unmanaged<BusThreadExecutor>.fromOpaque(arg!).takeRetainedValue()
            _ = mv_set_thread_name(executor.name)
            executor.run()
            return nil
        }, box)
        precondition(r == 0, "pthread_create failed")
        pthread_detach(tid)
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        jobs.withLock { $0.append(unowned) }
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// True when called on the executor's thread.
    public var isCurrentThread: Bool {
        guard let t = thread.withLock({ $0 }) else { return false }
        return pthread_equal(t, pthread_self()) != 0
    }

    public func checkIsolated() {
        precondition(isCurrentThread, "not on the sd-bus thread")
    }

    /// Ends the loop; must run on the thread (for example from an actor method).
    func stop(code: Int32) {
        if let event { sd_event_exit(event, code) }
    }

    private func run() {
        thread.withLock { $0 = pthread_self() }
        var ev: OpaquePointer?
        precondition(sd_event_new(&ev) >= 0, "sd_event_new failed")
        event = ev
        let me = Unmanaged.passUnretained(self).toOpaque()
        let added = sd_event_add_io(ev, nil, wakeFD, UInt32(EPOLLIN.rawValue), { _, fd, _, userdata in
            let executor = Unmanaged<BusThreadExecutor>.fromOpaque(userdata!).takeUnretainedValue()
            var counter: UInt64 = 0
            _ = read(fd, &counter, 8)
            executor.drain()
            return 0
        }, me)
        precondition(added >= 0, "sd_event_add_io failed")
        var exitCode: Int32 = 0
        while true {
            let r = sd_event_run(ev, UInt64.max)
            if r < 0 { exitCode = r; break }
            if sd_event_get_state(ev) == Int32(SD_EVENT_FINISHED) {
                _ = sd_event_get_exit_code(ev, &exitCode)
                break
            }
        }
        // Run whatever is still queued so no awaiting task is left hanging forever.
        drain()
        onExit(exitCode)
    }

    private func drain() {
        let batch = jobs.withLock { queue -> [UnownedJob] in
            let b = queue
            queue.removeAll(keepingCapacity: true)
            return b
        }
        for job in batch { job.runSynchronously(on: asUnownedSerialExecutor()) }
    }
}

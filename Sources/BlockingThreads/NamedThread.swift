import CLinux
import Glibc

/// Dedicated threads that carry their name in the kernel (`top -H`, `ps -L`, gdb, and
/// core dumps show it). Plain pthreads: Foundation's `Thread` is not in FoundationEssentials
/// (the daemon links no ICU-backed Foundation), and its `name` set before `start()` did not
/// reach the kernel on Linux anyway.
public enum NamedThread {
    /// Starts a detached thread named `name` (the kernel keeps the first 15 bytes) that
    /// runs `body`.
    public static func start(_ name: String, _ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(ThreadBody { setCurrentName(name); body() })
        var thread = pthread_t()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        let status = pthread_create(&thread, &attributes, { raw in
            let body = Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue()
            body.run()
            return nil
        }, box.toOpaque())
        pthread_attr_destroy(&attributes)
        // Only when the process is out of threads or memory; nothing could run without it.
        precondition(status == 0, "pthread_create for thread \(name) failed: \(status)")
    }

    /// Names the calling thread (the shim cuts it to the kernel's 15 bytes).
    public static func setCurrentName(_ name: String) {
        _ = mv_set_thread_name(name)
    }
}

/// The closure a new thread runs, carried through `pthread_create`'s pointer argument.
private final class ThreadBody: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

import CLinux
import Foundation

/// Dedicated threads that carry their name in the kernel (`top -H`, `ps -L`, gdb, and
/// core dumps show it). Foundation's `Thread.name` set before `start()` does not reach the
/// kernel on Linux: the thread kept the name of the thread that made it (typically a
/// libdispatch worker, "com.apple.root.default-qos").
public enum NamedThread {
    /// Starts a detached thread named `name` (the kernel keeps the first 15 bytes) that
    /// runs `body`.
    public static func start(_ name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread {
            setCurrentName(name)
            body()
        }
        thread.name = name
        thread.start()
    }

    /// Names the calling thread (the shim cuts it to the kernel's 15 bytes).
    public static func setCurrentName(_ name: String) {
        _ = mv_set_thread_name(name)
    }
}

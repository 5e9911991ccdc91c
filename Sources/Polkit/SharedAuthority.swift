import BlockingThreads
import CPolkit
import Dispatch
import Synchronization

/// The process's one `PolkitAuthority` object (polkit's singleton), made and kept current
/// by a thread of its own ("polkit-events").
///
/// The object's proxy follows polkitd's name owner through signals, which GLib delivers to
/// the main context of the thread that made it; that thread runs its context for as long
/// as the daemon lives, so a restarted polkitd is known within milliseconds, with no check
/// in flight. Checks on other threads use the object concurrently (GDBusProxy calls are
/// thread-safe) but start under `startLock` (see `PolkitAuthority`).
final class SharedAuthority: Sendable {
    /// Held while a check is started (polkit's cancellation-id counter is not guarded).
    let startLock = Mutex<Void>(())
    private struct State {
        /// The object's address once made (it is never released).
        var address = 0
        /// Why it could not be made yet.
        var failure: String?
        var attempted = false
    }
    private let state = Mutex(State())
    /// Signalled once the first attempt to make the object has ended.
    private let firstAttempt = DispatchSemaphore(value: 0)

    init() {
        NamedThread.start("polkit-events") { [self] in run() }
    }

    /// The shared object, or `PolkitUnavailable` while it cannot be made (no system bus).
    /// The first callers wait for the first attempt (a few milliseconds at start-up).
    func authority() throws -> OpaquePointer {
        if !state.withLock({ $0.attempted }) {
            firstAttempt.wait()
            firstAttempt.signal()   // for the next waiter
        }
        let (address, failure) = state.withLock { ($0.address, $0.failure) }
        guard let object = OpaquePointer(bitPattern: address) else {
            throw PolkitUnavailable(message: "cannot reach polkit: \(failure ?? "no authority object")")
        }
        return object
    }

    /// Makes the object (once a second until that works), then runs this thread's context.
    private func run() {
        let context = g_main_context_new()
        g_main_context_push_thread_default(context)
        while true {
            var error: UnsafeMutablePointer<GError>?
            let object = polkit_authority_get_sync(nil, &error)
            let message = PolkitAuthority.take(error)
            let first = state.withLock { state -> Bool in
                defer { state.attempted = true }
                if let object { state.address = Int(bitPattern: UnsafeMutableRawPointer(object)) } else { state.failure = message }
                return !state.attempted
            }
            if first { firstAttempt.signal() }
            if object != nil { break }
            sleep(1)
        }
        let loop = g_main_loop_new(context, 0)
        g_main_loop_run(loop)
    }
}

/// A check in flight on one thread: filled in by `polkitCheckFinished` on that thread.
final class PendingCheck {
    var finished = false
    var result: OpaquePointer?
    var error: UnsafeMutablePointer<GError>?
    /// The error says the call never reached a polkitd.
    var undelivered = false
}

/// Completion of `polkit_authority_check_authorization`, run on the thread that started it
/// (its thread-default context) while that thread iterates the context.
func polkitCheckFinished(_ source: UnsafeMutablePointer<GObject>?, _ result: OpaquePointer?, _ data: gpointer?) {
    guard let data else { return }
    let pending = Unmanaged<PendingCheck>.fromOpaque(data).takeRetainedValue()
    var error: UnsafeMutablePointer<GError>?
    pending.result = polkit_authority_check_authorization_finish(OpaquePointer(source), result, &error)
    if let error {
        let code = Int(error.pointee.code)
        pending.undelivered = error.pointee.domain == g_dbus_error_quark()
            && (code == Int(G_DBUS_ERROR_SERVICE_UNKNOWN.rawValue) || code == Int(G_DBUS_ERROR_NAME_HAS_NO_OWNER.rawValue))
        pending.error = error
    }
    pending.finished = true
}

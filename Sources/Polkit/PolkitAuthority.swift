import BlockingThreads
import CPolkit
import Dispatch
import Synchronization

/// What polkit answered.
public enum PolkitDecision: Sendable, Equatable {
    /// The subject is authorized.
    case authorized
    /// polkit wants the user to authenticate and the request did not allow interaction
    /// (or no agent answered).
    case challenge
    /// The subject is not authorized.
    case notAuthorized
}

/// polkit could not be asked (not running, timed out, protocol error). Callers deny.
public struct PolkitUnavailable: Error, Sendable, CustomStringConvertible {
    public let message: String
    /// The check never reached a polkitd (no owner of its name, or a gone one).
    let undelivered: Bool
    public var description: String { message }

    init(message: String, undelivered: Bool = false) {
        self.message = message
        self.undelivered = undelivered
    }
}

/// Too many checks are waiting.
public struct PolkitBusy: Error, Sendable {
    public let limit: Int
}

/// Asks polkitd over the system bus whether a D-Bus caller may perform an action.
///
/// Checks run on a small pool of dedicated threads; each pushes its own GLib main context,
/// so nothing runs on (or needs) GLib's global default context, which libvirt's event loop
/// may use. All checks share one `PolkitAuthority` object (``SharedAuthority``): it keeps
/// the system bus connection open between checks (taking a fresh object per check, as
/// before, opened a new connection each time — authentication, Hello, match rules, property
/// load: measured 3.1 ms of a 4.8 ms DefineVMFromXML, against 1.0–1.7 ms for the check
/// itself), and its cancellation ids ("cancellation-id-N", counted per object, sent from
/// the one shared connection) stay unique: polkitd refuses a second check in flight with
/// the same id from the same sender, which per-thread objects would send.
public final class PolkitAuthority: Sendable {
    private let pool: ThreadPool
    private let shared = SharedAuthority()
    private let timeout: Duration
    private let interactiveTimeout: Duration

    /// - Parameters:
    ///   - workers: threads doing checks in parallel.
    ///   - maxPending: checks allowed to wait for a thread; more fail with ``PolkitBusy``.
    ///   - timeout: limit for a check without user interaction.
    ///   - interactiveTimeout: limit when the user may be asked for a password.
    public init(workers: Int = 4, maxPending: Int = 64, timeout: Duration = .seconds(25), interactiveTimeout: Duration = .seconds(300)) {
        pool = ThreadPool(name: "polkit", threads: workers, maxQueued: maxPending) {
            // A private thread-default context: the check's reply is dispatched here, never
            // to the global default context.
            let context = g_main_context_new()
            g_main_context_push_thread_default(context)
        }
        self.timeout = timeout
        self.interactiveTimeout = interactiveTimeout
    }

    /// Checks `action` for the caller with unique bus name `busName`.
    /// - Parameter details: key/value pairs rules can read with `action.lookup(key)`.
    public func check(busName: String, action: String, details: [String: String], allowInteraction: Bool) async throws -> PolkitDecision {
        let limit = allowInteraction ? interactiveTimeout : timeout
        let shared = self.shared
        do {
            return try await pool.run {
                defer { Self.drainThreadContext() }
                return try Self.checkSync(shared, busName: busName, action: action, details: details,
                                          allowInteraction: allowInteraction, timeout: limit)
            }
        } catch let full as ThreadPoolFull {
            throw PolkitBusy(limit: full.limit)
        }
    }

    /// One check; when it never reached polkitd because the proxy still named a polkitd
    /// that has gone (restarted a moment ago, its name-owner change not yet applied), once
    /// more after 100 ms. Such a failure happens before anything is shown to the user, so
    /// the retry cannot ask for a password twice.
    private static func checkSync(_ shared: SharedAuthority, busName: String, action: String, details: [String: String],
                                  allowInteraction: Bool, timeout: Duration) throws -> PolkitDecision {
        do {
            return try checkOnce(shared, busName: busName, action: action, details: details,
                                 allowInteraction: allowInteraction, timeout: timeout)
        } catch let failure as PolkitUnavailable where failure.undelivered {
            usleep(100_000)
            return try checkOnce(shared, busName: busName, action: action, details: details,
                                 allowInteraction: allowInteraction, timeout: timeout)
        }
    }

    private static func checkOnce(_ shared: SharedAuthority, busName: String, action: String, details: [String: String],
                                  allowInteraction: Bool, timeout: Duration) throws -> PolkitDecision {
        let authority = try shared.authority()
        guard let subject = polkit_system_bus_name_new(busName) else {
            throw PolkitUnavailable(message: "invalid bus name \(busName)")
        }
        defer { unref(subject) }
        let polkitDetails = polkit_details_new()
        defer { unref(polkitDetails) }
        for (key, value) in details.sorted(by: { $0.key < $1.key }) {
            polkit_details_insert(polkitDetails, key, value)
        }
        let cancellable = g_cancellable_new()
        defer { g_object_unref(cancellable) }
        let canceller = CancelOnTimeout(cancellable: cancellable)
        // A timer source, cancelled when the check ends: it is freed at once instead of
        // staying queued for the whole timeout (an asyncAfter per check piles up under load).
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + timeout.timeInterval)
        timer.setEventHandler { canceller.fire() }
        timer.resume()
        defer {
            timer.cancel()
            canceller.disarm()
        }

        let flags = allowInteraction ? POLKIT_CHECK_AUTHORIZATION_FLAGS_ALLOW_USER_INTERACTION : POLKIT_CHECK_AUTHORIZATION_FLAGS_NONE
        let pending = PendingCheck()
        let box = Unmanaged.passRetained(pending).toOpaque()
        // Started under the lock: polkit numbers the cancellation ids of an object with an
        // unguarded counter. The reply comes to this thread's context, run until it is in.
        shared.startLock.withLock { _ in
            polkit_authority_check_authorization(authority, subject, action, polkitDetails, flags, cancellable,
                                                 { polkitCheckFinished($0, $1, $2) }, box)
        }
        let context = g_main_context_get_thread_default()
        while !pending.finished { g_main_context_iteration(context, 1) }
        guard let result = pending.result else {
            let message = Self.take(pending.error)
            if canceller.fired { throw PolkitUnavailable(message: "polkit did not answer within \(timeout)") }
            throw PolkitUnavailable(message: "polkit check failed: \(message)", undelivered: pending.undelivered)
        }
        defer { unref(result) }
        if polkit_authorization_result_get_is_authorized(result) != 0 { return .authorized }
        if polkit_authorization_result_get_is_challenge(result) != 0 { return .challenge }
        return .notAuthorized
    }

    /// Runs what a check left on this thread's private main context (the idle callbacks of
    /// its finished call and cancellable, a late reply to a timed-out one). Nothing else
    /// iterates that context between checks, so without this they would pile up.
    private static func drainThreadContext() {
        let context = g_main_context_get_thread_default()
        while g_main_context_iteration(context, 0) != 0 {}
    }

    /// The message of `error` ("unknown error" without one); frees it.
    static func take(_ error: UnsafeMutablePointer<GError>?) -> String {
        guard let error else { return "unknown error" }
        defer { g_error_free(error) }
        return error.pointee.message.map { String(cString: $0) } ?? "unknown error"
    }
}

/// Cancels a polkit check from a timer thread.
///
/// The `GCancellable` is held as its address so the state is plain `Sendable` data behind
/// a `Mutex`: `g_cancellable_cancel` is documented as thread-safe; `disarm` (called before
/// the check's own reference is dropped) makes a late timer a no-op, and this object holds
/// a reference of its own until then.
private final class CancelOnTimeout: Sendable {
    private struct State {
        var cancellable: UInt = 0
        var didFire = false
    }
    private let state = Mutex(State())

    init(cancellable: UnsafeMutablePointer<GCancellable>?) {
        guard let cancellable else { return }
        g_object_ref(cancellable)
        let address = UInt(bitPattern: cancellable)
        state.withLock { $0.cancellable = address }
    }

    var fired: Bool { state.withLock { $0.didFire } }

    func fire() {
        state.withLock {
            guard let c = UnsafeMutablePointer<GCancellable>(bitPattern: $0.cancellable) else { return }
            $0.didFire = true
            g_cancellable_cancel(c)
        }
    }

    func disarm() {
        state.withLock {
            if let c = UnsafeMutableRawPointer(bitPattern: $0.cancellable) { g_object_unref(c) }
            $0.cancellable = 0
        }
    }

    deinit { disarm() }
}

/// Drops a reference to a GObject that Swift sees as an opaque pointer.
private func unref(_ object: OpaquePointer?) {
    if let object { g_object_unref(UnsafeMutableRawPointer(object)) }
}

extension Duration {
    var timeInterval: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

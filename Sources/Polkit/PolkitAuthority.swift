import SDBus
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
    public var description: String { message }
}

/// Too many checks are waiting: all of them (`perUser` false), or one user's interactive
/// ones (`perUser` true).
public struct PolkitBusy: Error, Sendable {
    public let limit: Int
    public let perUser: Bool
}

/// The caller went away while polkit was deciding: the check was cancelled.
public struct PolkitCancelled: Error, Sendable {}

/// Asks polkitd whether a D-Bus caller may perform an action, as systemd's daemons do
/// (`bus_verify_polkit_async`): `CheckAuthorization` is sent on the service's own bus
/// connection and the method resumes when polkitd answers. No thread waits, so checks
/// held open by an authentication dialog cost nothing but a slot: at most `maxPending` in
/// all and `maxInteractivePerUser` interactive ones per uid (one user's unanswered dialogs
/// cannot hold everyone else's calls). When the caller disconnects first, the check is
/// cancelled (`CancelCheckAuthorization`).
public final class PolkitAuthority: Sendable {
    static let service = "org.freedesktop.PolicyKit1"
    static let path = "/org/freedesktop/PolicyKit1/Authority"
    static let interface = "org.freedesktop.PolicyKit1.Authority"

    private let bus: BusConnection
    private let timeout: Duration
    private let interactiveTimeout: Duration
    private let maxPending: Int
    private let maxInteractivePerUser: Int

    private struct State {
        var pending = 0
        var interactive: [UInt32: Int] = [:]
        var nextID: UInt64 = 0
    }
    private let state = Mutex(State())

    /// - Parameters:
    ///   - bus: the service's connection (to the bus whose polkitd decides).
    ///   - maxPending: checks waiting at once; more fail with ``PolkitBusy``.
    ///   - maxInteractivePerUser: interactive checks (which may wait for a password) one uid
    ///     may have waiting at once.
    ///   - timeout: limit for a check without user interaction.
    ///   - interactiveTimeout: limit when the user may be asked for a password.
    public init(bus: BusConnection, maxPending: Int = 64, maxInteractivePerUser: Int = 4,
                timeout: Duration = .seconds(25), interactiveTimeout: Duration = .seconds(300)) {
        self.bus = bus
        self.maxPending = maxPending
        self.maxInteractivePerUser = maxInteractivePerUser
        self.timeout = timeout
        self.interactiveTimeout = interactiveTimeout
    }

    /// Checks `action` for the caller with unique bus name `busName` (whose uid is `uid`).
    /// - Parameter details: key/value pairs rules can read with `action.lookup(key)`.
    public func check(busName: String, uid: UInt32, action: String, details: [String: String],
                      allowInteraction: Bool) async throws -> PolkitDecision {
        let id = try reserve(uid: uid, interactive: allowInteraction)
        defer { release(uid: uid, interactive: allowInteraction) }
        // Cancelled when the caller leaves the bus before polkit answers.
        let cancellation = "mv-\(id)"
        let callerGone = Atomic<Bool>(false)
        let watch = try? await bus.subscribe(match: Self.ownerLost(busName)) { [bus] signal in
            guard signal.arguments.count == 3, signal.arguments[2].string == "" else { return }
            callerGone.store(true, ordering: .releasing)
            Task { try? await bus.call(destination: Self.service, path: Self.path, interface: Self.interface,
                                       member: "CancelCheckAuthorization", [.string(cancellation)], timeout: .seconds(5)) }
        }
        defer { if let watch { Task { await bus.unsubscribe(watch) } } }
        let subject = DBusValue.structure([.string("system-bus-name"), .vardict(["name": .string(busName)])])
        let pairs = details.keys.sorted().map { DBusDictEntry(.string($0), .string(details[$0]!)) }
        let reply: [DBusValue]
        do {
            reply = try await bus.call(destination: Self.service, path: Self.path, interface: Self.interface, member: "CheckAuthorization",
                                       [subject, .string(action), .dictionary(keySignature: "s", valueSignature: "s", pairs),
                                        .uint32(allowInteraction ? 1 : 0), .string(cancellation)],
                                       timeout: allowInteraction ? interactiveTimeout : timeout)
        } catch let error as DBusError {
            if callerGone.load(ordering: .acquiring) { throw PolkitCancelled() }
            switch error.name {
            case "org.freedesktop.PolicyKit1.Error.Cancelled": throw PolkitCancelled()
            case "org.freedesktop.DBus.Error.Timeout", "org.freedesktop.DBus.Error.NoReply":
                throw PolkitUnavailable(message: "polkit did not answer within \(allowInteraction ? interactiveTimeout : timeout)")
            default: throw PolkitUnavailable(message: "polkit check failed: \(error.name): \(error.message)")
            }
        }
        // Whatever polkit says once the caller has gone (a cancelled check answers "not
        // authorized"), nobody is there to act for.
        if callerGone.load(ordering: .acquiring) { throw PolkitCancelled() }
        guard case .structure(let fields)? = reply.first, fields.count == 3, let authorized = fields[0].bool, let challenge = fields[1].bool else {
            throw PolkitUnavailable(message: "polkit sent an unexpected reply to CheckAuthorization")
        }
        return authorized ? .authorized : challenge ? .challenge : .notAuthorized
    }

    /// The match for `NameOwnerChanged` of `busName` (a unique name: `:1.42`, which needs
    /// no quoting in a match rule).
    static func ownerLost(_ busName: String) -> String {
        "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='\(busName)'"
    }

    private func reserve(uid: UInt32, interactive: Bool) throws -> UInt64 {
        try state.withLock { s in
            guard s.pending < maxPending else { throw PolkitBusy(limit: maxPending, perUser: false) }
            if interactive {
                guard s.interactive[uid, default: 0] < maxInteractivePerUser else { throw PolkitBusy(limit: maxInteractivePerUser, perUser: true) }
                s.interactive[uid, default: 0] += 1
            }
            s.pending += 1
            s.nextID += 1
            return s.nextID
        }
    }

    private func release(uid: UInt32, interactive: Bool) {
        state.withLock { s in
            s.pending -= 1
            if interactive {
                s.interactive[uid, default: 1] -= 1
                if s.interactive[uid] == 0 { s.interactive[uid] = nil }
            }
        }
    }
}

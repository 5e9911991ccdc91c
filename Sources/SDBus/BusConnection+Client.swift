import CSystemd

#if canImport(Glibc)
import Glibc
#endif

/// Waits for the reply of one asynchronous call.
final class CallBox {
    let continuation: CheckedContinuation<[DBusValue], any Error>
    init(_ continuation: CheckedContinuation<[DBusValue], any Error>) { self.continuation = continuation }
}

/// A signal subscription's handler.
final class SignalSubscription {
    let handler: @Sendable (ReceivedSignal) -> Void
    var slot: OpaquePointer?
    init(_ handler: @escaping @Sendable (ReceivedSignal) -> Void) { self.handler = handler }
}

/// Decodes a reply message into values, or the D-Bus error it carries.
func decodeReply(_ m: OpaquePointer?) -> Result<[DBusValue], any Error> {
    guard let m else { return .failure(DBusError.failed("no reply")) }
    if let e = sd_bus_message_get_error(m), sd_bus_error_is_set(e) != 0 {
        let name = e.pointee.name.map { String(cString: $0) } ?? "org.freedesktop.DBus.Error.Failed"
        let message = e.pointee.message.map { String(cString: $0) } ?? ""
        return .failure(DBusError(name: name, message: message))
    }
    return Result { try MessageCodec.readAll(from: m) }
}

private let replyTrampoline: sd_bus_message_handler_t = { m, userdata, _ in
    let box = Unmanaged<CallBox>.fromOpaque(userdata!).takeRetainedValue()
    box.continuation.resume(with: decodeReply(m))
    return 1
}

private let signalTrampoline: sd_bus_message_handler_t = { m, userdata, _ in
    let sub = Unmanaged<SignalSubscription>.fromOpaque(userdata!).takeUnretainedValue()
    guard let m, let args = try? MessageCodec.readAll(from: m) else { return 0 }
    func str(_ p: UnsafePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }
    sub.handler(ReceivedSignal(sender: str(sd_bus_message_get_sender(m)), path: str(sd_bus_message_get_path(m)),
                               interface: str(sd_bus_message_get_interface(m)), member: str(sd_bus_message_get_member(m)),
                               arguments: args))
    return 0
}

extension BusConnection {
    /// Calls a method and waits for its reply.
    /// - Parameters:
    ///   - timeout: reply timeout; `nil` uses sd-bus's default (25 s).
    ///   - allowInteractiveAuthorization: sets the message flag so the service may let polkit ask for a password.
    public func call(destination: String, path: String, interface: String, member: String,
                     _ arguments: [DBusValue] = [], timeout: Duration? = nil,
                     allowInteractiveAuthorization: Bool = false) async throws -> [DBusValue] {
        var m: OpaquePointer?
        let r = sd_bus_message_new_method_call(bus, &m, destination, path, interface, member)
        if r < 0 { throw DBusError.errno(r, "cannot create call \(interface).\(member)") }
        defer { sd_bus_message_unref(m) }
        try MessageCodec.append(arguments, to: m!)
        if allowInteractiveAuthorization { _ = sd_bus_message_set_allow_interactive_authorization(m, 1) }
        let usec: UInt64 = timeout.map { UInt64($0.components.seconds) * 1_000_000 + UInt64($0.components.attoseconds / 1_000_000_000_000) } ?? 0
        return try await withCheckedThrowingContinuation { continuation in
            let box = Unmanaged.passRetained(CallBox(continuation)).toOpaque()
            let s = sd_bus_call_async(bus, nil, m, replyTrampoline, box, usec)
            if s < 0 {
                Unmanaged<CallBox>.fromOpaque(box).release()
                continuation.resume(throwing: DBusError.errno(s, "cannot send call \(interface).\(member)"))
            }
        }
    }

    /// Reads one property (`org.freedesktop.DBus.Properties.Get`).
    public func getProperty(destination: String, path: String, interface: String, name: String) async throws -> DBusValue {
        let reply = try await call(destination: destination, path: path, interface: "org.freedesktop.DBus.Properties",
                                   member: "Get", [.string(interface), .string(name)])
        guard let first = reply.first else { throw DBusError.failed("empty reply to Get") }
        return first.unwrapped
    }

    /// Reads all properties of an interface (`org.freedesktop.DBus.Properties.GetAll`).
    public func getAllProperties(destination: String, path: String, interface: String) async throws -> [String: DBusValue] {
        let reply = try await call(destination: destination, path: path, interface: "org.freedesktop.DBus.Properties",
                                   member: "GetAll", [.string(interface)])
        return reply.first?.stringKeyedDictionary ?? [:]
    }

    /// Subscribes to signals matching a D-Bus match rule; returns a token for ``unsubscribe(_:)``.
    /// The handler runs on the bus thread: keep it short (e.g. yield into an AsyncStream).
    public func subscribe(match: String, _ handler: @escaping @Sendable (ReceivedSignal) -> Void) throws -> UInt64 {
        let sub = SignalSubscription(handler)
        var slot: OpaquePointer?
        let r = sd_bus_add_match(bus, &slot, match, signalTrampoline, Unmanaged.passUnretained(sub).toOpaque())
        if r < 0 { throw DBusError.errno(r, "cannot add match \(match)") }
        sub.slot = slot
        let token = nextToken
        nextToken += 1
        subscriptions[token] = sub
        return token
    }

    /// Ends a subscription made by ``subscribe(match:_:)``.
    public func unsubscribe(_ token: UInt64) {
        guard let sub = subscriptions.removeValue(forKey: token) else { return }
        sd_bus_slot_unref(sub.slot)
        sub.slot = nil
    }
}

import ControllerCore
import SDBus

/// Finds the uid and pid behind a unique bus name (for the audit log and job ownership),
/// asking the bus driver asynchronously. Unique names are never reused on a bus, so answers
/// are cached (bounded).
actor CallerResolver {
    private let bus: BusConnection
    private var cache: [String: (uid: UInt32, pid: UInt32)] = [:]

    init(bus: BusConnection) { self.bus = bus }

    func caller(for call: MethodCall) async throws -> Caller {
        let ids = try await credentials(call.sender)
        return Caller(busName: call.sender, uid: ids.uid, pid: ids.pid, allowInteraction: call.allowInteractiveAuthorization)
    }

    private func credentials(_ name: String) async throws -> (uid: UInt32, pid: UInt32) {
        if let hit = cache[name] { return hit }
        let reply: [DBusValue]
        do {
            reply = try await bus.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                                       interface: "org.freedesktop.DBus", member: "GetConnectionCredentials",
                                       [.string(name)], timeout: .seconds(10))
        } catch {
            throw ControllerError.accessDenied("cannot identify caller \(name): \(error)")
        }
        let dict = reply.first?.stringKeyedDictionary ?? [:]
        guard let uid = dict["UnixUserID"]?.uint32 else {
            throw ControllerError.accessDenied("cannot identify caller \(name): no uid")
        }
        let ids = (uid: uid, pid: dict["ProcessID"]?.uint32 ?? 0)
        if cache.count > 4096 { cache.removeAll() }
        cache[name] = ids
        return ids
    }
}

import CSystemd

#if canImport(Glibc)
import Glibc
#endif

/// One bus connection, owned by a dedicated thread that runs its event loop.
///
/// The actor's executor is that thread, so every method of this actor — and therefore every
/// `sd_bus*` call — runs there. C callbacks from sd-bus also arrive on it and enter the
/// actor with `assumeIsolated`.
public actor BusConnection {
    private let executor: BusThreadExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    var bus: OpaquePointer?
    private var objects: [String: [InterfaceRegistration]] = [:]
    private var vtables: [String: VTableStorage] = [:]
    private var managerSlots: [OpaquePointer] = []
    /// Subtrees served by fallback vtables (``serveSubtree(_:)``): prefix → its state.
    private var subtrees: [String: Subtree] = [:]
    private var pending: [UInt64: PendingCall] = [:]
    /// Calls in flight per sender, and the most one sender may have (0: no limit).
    private var inFlightBySender: [String: Int] = [:]
    private var maxInFlightPerSender = 0
    var nextToken: UInt64 = 1
    private var draining = false
    /// The reply to calls that arrive while draining (see ``drainAndClose(timeout:reply:)``).
    private var drainingReply = DBusError(name: "org.freedesktop.DBus.Error.Failed", message: "the service is shutting down")
    var subscriptions: [UInt64: SignalSubscription] = [:]

    private init(executor: BusThreadExecutor) {
        self.executor = executor
    }

    /// Opens the system bus. When `address` is given it first becomes this process's system
    /// bus (`DBUS_SYSTEM_BUS_ADDRESS`), so sd-bus applies system-bus access checks and every
    /// other library in the process (polkit, GLib) talks to the same bus.
    /// `onDisconnect` runs when the bus connection is lost.
    public static func openSystemBus(address: String? = nil,
                                     onDisconnect: @escaping @Sendable (Int32) -> Void = { _ in }) async throws -> BusConnection {
        if let address { setenv("DBUS_SYSTEM_BUS_ADDRESS", address, 1) }
        let executor = BusThreadExecutor(name: "sd-bus", onExit: onDisconnect)
        let connection = BusConnection(executor: executor)
        try await connection.start()
        return connection
    }

    private func start() throws {
        var b: OpaquePointer?
        let r = sd_bus_open_system(&b)
        if r < 0 { throw DBusError.errno(r, "cannot connect to the system bus") }
        bus = b
        _ = sd_bus_set_exit_on_disconnect(b, 1)
        let a = sd_bus_attach_event(b, executor.event, 0)
        if a < 0 { throw DBusError.errno(a, "cannot attach the bus to its event loop") }
    }

    /// The unique name of this connection (`:1.N`).
    public func uniqueName() -> String {
        var name: UnsafePointer<CChar>?
        guard sd_bus_get_unique_name(bus, &name) >= 0, let name else { return "" }
        return String(cString: name)
    }

    // MARK: Names

    /// Requests a well-known name; throws when it is taken or the bus policy refuses it.
    public func requestName(_ name: String) throws {
        let r = sd_bus_request_name(bus, name, 0)
        switch r {
        case let r where r >= 0: return
        case -EEXIST: throw DBusError(name: "org.freedesktop.DBus.Error.AddressInUse", message: "the name \(name) is already owned by another process")
        case -EACCES, -EPERM: throw DBusError.accessDenied("the bus policy does not allow this process to own \(name)")
        default: throw DBusError.errno(r, "cannot request the name \(name)")
        }
    }

    /// Releases a well-known name.
    public func releaseName(_ name: String) {
        _ = sd_bus_release_name(bus, name)
    }

    // MARK: Objects

    /// Makes `path` answer with the `org.freedesktop.DBus.ObjectManager` interface.
    public func addObjectManager(at path: String) throws {
        var slot: OpaquePointer?
        let r = sd_bus_add_object_manager(bus, &slot, path)
        if r < 0 { throw DBusError.errno(r, "cannot add object manager at \(path)") }
        if let slot { managerSlots.append(slot) }
    }

    /// Serves the objects directly below `prefix` (`prefix/NAME`) the way systemd serves its
    /// units: one fallback vtable per interface for the whole subtree, a find callback that
    /// looks the object up, and a node enumerator that lists them for introspection and
    /// `GetManagedObjects`. ``export(path:interfaces:announce:)`` of such an object then
    /// registers nothing with sd-bus, which otherwise keeps a vtable node and a hash-table
    /// entry per member for every object (about 2 KB per object with 40 members).
    public func serveSubtree(_ prefix: String) throws {
        guard subtrees[prefix] == nil else { return }
        guard sd_bus_object_path_is_valid(prefix) != 0 else { throw DBusError.invalidArgs("invalid object path '\(prefix)'") }
        let subtree = Subtree(connection: self, prefix: prefix)
        var slot: OpaquePointer?
        let r = sd_bus_add_node_enumerator(bus, &slot, prefix, nodeEnumeratorTrampoline, Unmanaged.passUnretained(subtree).toOpaque())
        if r < 0 { throw DBusError.errno(r, "cannot add a node enumerator at \(prefix)") }
        subtree.slots.append(slot)
        subtrees[prefix] = subtree
    }

    /// The subtree `path` is a direct child of, if it is served as one.
    private func subtree(of path: String) -> Subtree? {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return nil }
        return subtrees[String(path[..<slash])]
    }

    /// Paths of the objects of a subtree, for its node enumerator.
    func children(of subtree: Subtree) -> [String] {
        subtree.children.sorted()
    }

    /// The registration of `interface` at `path`, for a subtree's find callback.
    func registration(path: String, interface: String) -> InterfaceRegistration? {
        objects[path]?.first { $0.interface.name == interface }
    }

    /// Exports an object with its interfaces. With `announce`, `InterfacesAdded` is emitted.
    public func export(path: String, interfaces: [ExportedInterface], announce: Bool = true) throws {
        guard objects[path] == nil else { throw DBusError.failed("an object is already exported at \(path)") }
        guard sd_bus_object_path_is_valid(path) != 0 else { throw DBusError.invalidArgs("invalid object path '\(path)'") }
        for exported in interfaces {
            // A property without a value would make Get, GetAll and InterfacesAdded fail for the whole object.
            if let missing = exported.interface.properties.first(where: { exported.properties[$0.name] == nil }) {
                throw DBusError.failed("\(exported.interface.name) at \(path) has no value for property \(missing.name)")
            }
            if let stray = exported.methods.keys.sorted().first(where: { exported.interface.method(named: $0) == nil }) {
                throw DBusError.failed("\(exported.interface.name) at \(path) has a handler for \(stray), which it does not declare")
            }
            if let wrong = exported.interface.properties.first(where: { exported.properties[$0.name]?.signature != $0.signature }) {
                throw DBusError.failed("\(exported.interface.name).\(wrong.name) at \(path) must be of type \(wrong.signature)")
            }
        }
        if let subtree = subtree(of: path) {
            var regs = [InterfaceRegistration]()
            for exported in interfaces {
                try subtree.serve(exported.interface, with: vtable(for: exported.interface), on: bus)
                regs.append(InterfaceRegistration(connection: self, path: path, exported: exported))
            }
            objects[path] = regs
            subtree.children.insert(path)
            if announce { _ = sd_bus_emit_object_added(bus, path) }
            return
        }
        var regs = [InterfaceRegistration]()
        for exported in interfaces {
            let table = try vtable(for: exported.interface)
            let reg = InterfaceRegistration(connection: self, path: path, exported: exported)
            var slot: OpaquePointer?
            let r = sd_bus_add_object_vtable(bus, &slot, path, exported.interface.name, table.entries,
                                             Unmanaged.passUnretained(reg).toOpaque())
            if r < 0 {
                for done in regs { sd_bus_slot_unref(done.slot) }
                throw DBusError.errno(r, "cannot export \(exported.interface.name) at \(path)")
            }
            reg.slot = slot
            regs.append(reg)
        }
        objects[path] = regs
        if announce { _ = sd_bus_emit_object_added(bus, path) }
    }

    /// Removes an object; with `announce`, `InterfacesRemoved` is emitted first.
    public func unexport(path: String, announce: Bool = true) {
        guard let regs = objects[path] else { return }
        if announce { _ = sd_bus_emit_object_removed(bus, path) }
        for reg in regs where reg.slot != nil { sd_bus_slot_unref(reg.slot); reg.slot = nil }
        objects[path] = nil
        subtree(of: path)?.children.remove(path)
    }

    /// Interfaces registered with sd-bus object by object (not through a subtree).
    var perObjectRegistrations: Int { objects.values.reduce(0) { $0 + $1.filter { $0.slot != nil }.count } }

    /// Paths of every exported object.
    public func exportedPaths() -> [String] { Array(objects.keys) }

    /// Current value of a property as served.
    public func property(path: String, interface: String, name: String) -> DBusValue? {
        objects[path]?.first { $0.interface.name == interface }?.properties[name]
    }

    /// Updates properties and emits `PropertiesChanged` for those that changed and announce it.
    public func setProperties(path: String, interface: String, _ changes: [String: DBusValue]) {
        guard let reg = objects[path]?.first(where: { $0.interface.name == interface }) else { return }
        var announce = [String]()
        for (name, value) in changes.sorted(by: { $0.key < $1.key }) {
            // An unknown name or a value of the wrong type would break Get and PropertiesChanged
            // for the whole object: such an update is a programming error and is dropped.
            guard let desc = reg.interface.property(named: name), value.signature == desc.signature else {
                assertionFailure("bad property update \(interface).\(name) at \(path)")
                continue
            }
            if reg.properties[name] == value { continue }
            reg.properties[name] = value
            if desc.change == .emitsChange || desc.change == .emitsInvalidation { announce.append(name) }
        }
        guard !announce.isEmpty else { return }
        withStrv(announce) { strv in
            _ = sd_bus_emit_properties_changed_strv(bus, path, interface, strv)
        }
    }

    /// Updates the properties of many objects in one step (one hop to the bus thread):
    /// `setProperties(path:interface:_:)` for each entry, in order.
    public func setProperties(interface: String, _ updates: [(path: String, changes: [String: DBusValue])]) {
        for update in updates { setProperties(path: update.path, interface: interface, update.changes) }
    }

    /// Emits a signal from `path`.
    public func emitSignal(path: String, interface: String, member: String, _ arguments: [DBusValue]) throws {
        var m: OpaquePointer?
        let r = sd_bus_message_new_signal(bus, &m, path, interface, member)
        if r < 0 { throw DBusError.errno(r, "cannot create signal \(interface).\(member)") }
        defer { sd_bus_message_unref(m) }
        try MessageCodec.append(arguments, to: m!)
        let s = sd_bus_send(bus, m, nil)
        if s < 0 { throw DBusError.errno(s, "cannot send signal \(interface).\(member)") }
    }

    // MARK: Incoming calls

    /// At most `limit` method calls of one sender (unique name) in flight at once; one
    /// more is answered `LimitsExceeded` before its handler runs (0: no limit).
    public func limitCallsInFlight(perSender limit: Int) { maxInFlightPerSender = limit }

    /// Called on the bus thread by the vtable trampoline.
    func handleMethod(_ m: OpaquePointer, _ reg: InterfaceRegistration) -> Int32 {
        if draining {
            replyError(m, drainingReply)
            return 1
        }
        let member = sd_bus_message_get_member(m).map { String(cString: $0) } ?? ""
        guard let method = reg.interface.method(named: member), let handler = reg.methods[member] else {
            replyError(m, .unknownMethod("\(reg.interface.name) has no method \(member)"))
            return 1
        }
        let arguments: [DBusValue]
        do { arguments = try MessageCodec.readAll(from: m) } catch {
            replyError(m, DBusError.from(error))
            return 1
        }
        let sender = sd_bus_message_get_sender(m).map { String(cString: $0) } ?? ""
        if maxInFlightPerSender > 0, inFlightBySender[sender, default: 0] >= maxInFlightPerSender {
            replyError(m, .limitsExceeded("\(sender) has \(maxInFlightPerSender) calls in flight, the most one connection may have; wait for their replies"))
            return 1
        }
        inFlightBySender[sender, default: 0] += 1
        let call = MethodCall(
            sender: sender,
            path: reg.path, interface: reg.interface.name, member: member, arguments: arguments,
            allowInteractiveAuthorization: sd_bus_message_get_allow_interactive_authorization(m) > 0)
        sd_bus_message_ref(m)
        let token = nextToken
        nextToken += 1
        pending[token] = PendingCall(message: m, sender: sender, outSignature: method.outSignature, description: "\(reg.interface.name).\(member)")
        Task.detached { [self] in
            let result: Result<[DBusValue], DBusError>
            do { result = .success(try await handler(call)) } catch { result = .failure(DBusError.from(error)) }
            await self.complete(token, result)
        }
        return 1
    }

    private func complete(_ token: UInt64, _ result: Result<[DBusValue], DBusError>) {
        guard let call = pending.removeValue(forKey: token) else { return }
        defer { sd_bus_message_unref(call.message) }
        if let n = inFlightBySender[call.sender] { inFlightBySender[call.sender] = n > 1 ? n - 1 : nil }
        guard sd_bus_message_get_expect_reply(call.message) > 0 else { return }
        switch result {
        case .success(let values):
            let sig = values.map(\.signature).joined()
            guard sig == call.outSignature else {
                replyError(call.message, .failed("internal error: \(call.description) produced '\(sig)', expected '\(call.outSignature)'"))
                return
            }
            var reply: OpaquePointer?
            guard sd_bus_message_new_method_return(call.message, &reply) >= 0, let reply else { return }
            defer { sd_bus_message_unref(reply) }
            do { try MessageCodec.append(values, to: reply) } catch {
                replyError(call.message, .failed("internal error encoding reply of \(call.description): \(error)"))
                return
            }
            _ = sd_bus_send(bus, reply, nil)
        case .failure(let error):
            replyError(call.message, error)
        }
    }

    func replyError(_ m: OpaquePointer, _ error: DBusError) {
        guard sd_bus_message_get_expect_reply(m) > 0 else { return }
        var e = sd_bus_error()
        _ = sd_bus_error_set(&e, error.name, error.message)
        _ = sd_bus_reply_method_error(m, &e)
        sd_bus_error_free(&e)
    }

    /// Number of calls whose reply has not been sent yet.
    public func inFlightCalls() -> Int { pending.count }

    /// Stops taking calls (new ones are answered with `reply`, by default
    /// `org.freedesktop.DBus.Error.Failed`), waits up to `timeout` for in-flight calls to be
    /// answered, then flushes and closes the connection.
    public func drainAndClose(timeout: Duration, reply: DBusError? = nil) async {
        if let reply { drainingReply = reply }
        draining = true
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while !pending.isEmpty && clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        _ = sd_bus_flush(bus)
        for reg in objects.values.flatMap({ $0 }) where reg.slot != nil { sd_bus_slot_unref(reg.slot); reg.slot = nil }
        objects.removeAll()
        for subtree in subtrees.values { subtree.close() }
        subtrees.removeAll()
        for slot in managerSlots { sd_bus_slot_unref(slot) }
        managerSlots.removeAll()
        _ = sd_bus_set_exit_on_disconnect(bus, 0)
        sd_bus_flush_close_unref(bus)
        bus = nil
        executor.stop(code: 0)
    }

    // MARK: vtables

    private func vtable(for interface: DBusInterface) throws -> VTableStorage {
        if let existing = vtables[interface.name] {
            guard existing.interface == interface else {
                throw DBusError.failed("interface \(interface.name) registered twice with different descriptions")
            }
            return existing
        }
        try interface.validate()
        let table = VTableStorage(interface)
        vtables[interface.name] = table
        return table
    }
}

/// A call waiting for its reply.
struct PendingCall {
    let message: OpaquePointer
    let sender: String
    let outSignature: String
    let description: String
}

/// One interface of one exported object. Lives on the bus thread only.
final class InterfaceRegistration {
    let connection: BusConnection
    let path: String
    let interface: DBusInterface
    var properties: [String: DBusValue]
    let methods: [String: MethodHandler]
    let setter: PropertySetter?
    var slot: OpaquePointer?

    init(connection: BusConnection, path: String, exported: ExportedInterface) {
        self.connection = connection
        self.path = path
        self.interface = exported.interface
        self.properties = exported.properties
        self.methods = exported.methods
        self.setter = exported.setter
    }
}

/// Runs `body` with a NULL-terminated C string array.
func withStrv<R>(_ strings: [String], _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var ptrs: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    ptrs.append(nil)
    defer { for p in ptrs { free(p) } }
    return ptrs.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
}

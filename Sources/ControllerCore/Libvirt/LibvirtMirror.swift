import Libvirt
import Logging

/// What each libvirt cache (domains in ``VMManager``, networks in ``NetworkManager``) is
/// made of, written once: the objects by key, the one event path (libvirt's callbacks feed
/// a stream that a task hands to the cache's actor one event at a time) and the one resync
/// (register the callbacks on a new connection, read every object, say which cached ones
/// are gone). The cache's actor owns its mirror and adds its own rules around `put` and
/// `remove` (readiness, isolation): the mirror holds values only, so those rules are tested
/// without libvirt.
struct LibvirtMirror<Object: Sendable & Equatable, Event: Sendable>: Sendable {
    /// The kind of object, for logs (`domain`, `network`).
    let kind: String
    let calls: LibvirtCalls
    private let key: @Sendable (Object) -> String
    private(set) var objects: [String: Object] = [:]
    /// The last stamp handed out by ``beginReading()``.
    private var stamps: UInt64 = 0
    /// For each key, the stamp of the newest reading of libvirt cached for it (or of the
    /// re-read that found it gone: kept until a resync begun later has settled).
    private var readAt: [String: UInt64] = [:]

    /// A stamp for a reading of libvirt about to begin (a resync's listing, a re-read of one
    /// object). Readings run side by side on the pool and may end in any order: one that
    /// began before a reading already cached for the same object may have asked libvirt
    /// before it too, so it gives way (``isNewer(_:than:)``); a later change brings its own
    /// event and re-read, so the newest state is never lost.
    mutating func beginReading() -> UInt64 {
        stamps += 1
        return stamps
    }
    private var continuation: AsyncStream<Event>.Continuation?
    private var task: Task<Void, Never>?

    init(_ kind: String, calls: LibvirtCalls, key: @escaping @Sendable (Object) -> String) {
        self.kind = kind
        self.calls = calls
        self.key = key
    }

    /// Starts the event path: each event libvirt reports is handed to `handle`, in order.
    mutating func start(_ handle: @escaping @Sendable (Event) async -> Void) {
        let (stream, continuation) = AsyncStream<Event>.makeStream()
        self.continuation = continuation
        task = Task {
            for await event in stream { await handle(event) }
        }
    }

    /// Ends the event path.
    func stop() {
        task?.cancel()
        continuation?.finish()
    }

    /// The change a new reading of an object makes.
    enum Change: Sendable {
        case added(Object)
        case updated(old: Object, new: Object)
    }

    /// What a resync read: the connection, whether it is new (its callbacks were registered
    /// now: the cache reads what it keeps per connection) and every object libvirt has (nil
    /// when the listing failed, logged).
    struct Reading: Sendable {
        let connection: LibvirtConnection
        let newConnection: Bool
        let fresh: [Object]?
    }

    /// Reads every object (`list`, on the cache's pool) after registering the cache's
    /// callbacks on a new connection (`register` is given the function that feeds the event
    /// path). Nil while libvirt is unreachable.
    func resync(logger: Logger,
                register: @escaping @Sendable (LibvirtConnection, @escaping @Sendable (Event) -> Void) throws -> Void,
                list: @escaping @Sendable (LibvirtConnection) throws -> [Object]) async -> Reading? {
        guard let connection = try? await calls.connection() else { return nil }
        let continuation = self.continuation
        var newConnection: Bool
        do {
            newConnection = try await calls.registerEvents(on: connection) { try register($0) { continuation?.yield($0) } }
        } catch {
            logger.error("cannot register for libvirt \(kind) events: \(error)")
            newConnection = true
        }
        var fresh: [Object]?
        do {
            fresh = try await calls.read(connection, list)
            logger.info("libvirt: \(fresh?.count ?? 0) \(kind)(s)")
        } catch {
            logger.error("cannot list libvirt \(kind)s: \(error)")
        }
        return Reading(connection: connection, newConnection: newConnection, fresh: fresh)
    }

    /// The keys of the cached objects that `fresh`, a complete listing stamped `stamp`,
    /// does not have and that no later reading found (an object defined while libvirt listed
    /// is not in the listing but is no less there), sorted.
    func keys(notIn fresh: [Object], since stamp: UInt64) -> [String] {
        let seen = Set(fresh.map(key))
        return objects.keys.filter { !seen.contains($0) && !isNewer($0, than: stamp) }.sorted()
    }

    /// Whether what the cache holds for `key` comes from a reading begun after the one
    /// stamped `stamp`, which must then not replace or remove it.
    func isNewer(_ key: String, than stamp: UInt64) -> Bool { (readAt[key] ?? 0) > stamp }

    /// Forgets the removals recorded by readings up to `stamp` (a resync stamped so is done).
    mutating func settle(since stamp: UInt64) {
        readAt = readAt.filter { objects[$0.key] != nil || $0.value > stamp }
    }

    subscript(key: String) -> Object? { objects[key] }

    /// Caches `object`: nil when it equals what is cached. `reading`: the stamp of the
    /// reading of libvirt it comes from (nil for a change of the cache's own, such as a
    /// guest's readiness, which says nothing about libvirt's state).
    mutating func put(_ object: Object, reading stamp: UInt64?) -> Change? {
        let k = key(object)
        if let stamp { readAt[k] = max(readAt[k] ?? 0, stamp) }
        let old = objects[k]
        guard old != object else { return nil }
        objects[k] = object
        return old.map { .updated(old: $0, new: object) } ?? .added(object)
    }

    /// Drops the object under `key`, found gone by the reading stamped `stamp`; the object
    /// it was, if any.
    @discardableResult
    mutating func remove(_ key: String, reading stamp: UInt64) -> Object? {
        readAt[key] = max(readAt[key] ?? 0, stamp)
        return objects.removeValue(forKey: key)
    }
}

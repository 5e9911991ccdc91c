import BlockingThreads
import Libvirt
import Synchronization

/// The blocking libvirt calls of one cache (domains, networks): on a pool of threads of
/// its own, so a slow call of one never delays the other, with libvirt's errors mapped to
/// the API's in one place (``ControllerError/libvirt(_:_:)``). It also remembers which
/// connection the cache's event callbacks were registered on: a reconnect needs them
/// registered again.
final class LibvirtCalls: Sendable {
    let monitor: LibvirtMonitor
    private let pool: ThreadPool
    private let registeredOn = Mutex<ObjectIdentifier?>(nil)

    init(monitor: LibvirtMonitor, pool: String, threads: Int, maxQueued: Int) {
        self.monitor = monitor
        self.pool = ThreadPool(name: pool, threads: threads, maxQueued: maxQueued)
    }

    /// The connection, or at once a clear error while libvirt is unreachable.
    func connection() async throws -> LibvirtConnection {
        guard let connection = await monitor.current else {
            throw ControllerError.libvirt("not connected to libvirt at \(monitor.uri); the service keeps reconnecting")
        }
        return connection
    }

    /// Runs `body` with the connection on the pool. libvirt's errors become the API's, with
    /// `what` (the operation and its object) in the message; a full queue is
    /// `LimitsExceeded`.
    func call<T: Sendable>(_ what: String, _ body: @escaping @Sendable (LibvirtConnection) throws -> T) async throws -> T {
        let connection = try await connection()
        do {
            return try await pool.run { try body(connection) }
        } catch let error as LibvirtError {
            throw ControllerError.libvirt(error, what)
        } catch is ThreadPoolFull {
            throw ControllerError.limitsExceeded("too many libvirt calls queued; try again")
        }
    }

    /// The cache's own reads: `body` with `connection` on the pool, libvirt's errors as
    /// libvirt raised them (the cache decides what a missing object means).
    func read<T: Sendable>(_ connection: LibvirtConnection, _ body: @escaping @Sendable (LibvirtConnection) throws -> T) async throws -> T {
        try await pool.run { try body(connection) }
    }

    /// Registers the cache's event callbacks with `register` unless that was done on this
    /// connection already: true when it ran now, false when it had. Throws libvirt's
    /// refusal (the next call tries again).
    func registerEvents(on connection: LibvirtConnection,
                        _ register: @escaping @Sendable (LibvirtConnection) throws -> Void) async throws -> Bool {
        let id = ObjectIdentifier(connection)
        guard registeredOn.withLock({ $0 }) != id else { return false }
        try await pool.run { try register(connection) }
        registeredOn.withLock { $0 = id }
        return true
    }
}

import BlockingThreads
import CLibvirt
import FoundationEssentials
import Glibc
import Synchronization

/// libvirt's default event loop, required for keepalives and domain events.
public enum LibvirtEventLoop {
    private static let started: Bool = {
        // Quiet libvirt's default printing of errors to stderr; errors are reported by us.
        virSetErrorFunc(nil, { _, _ in })
        guard virEventRegisterDefaultImpl() == 0 else { return false }
        NamedThread.start("libvirt-events") {
            while true { _ = virEventRunDefaultImpl() }
        }
        return true
    }()

    /// Registers the default event implementation and starts the thread that runs it.
    /// Call before opening any connection; later calls do nothing.
    @discardableResult
    public static func start() -> Bool { started }
}

/// A libvirt connection. Every call blocks: use it from a dedicated thread.
///
/// `@unchecked Sendable` is safe: libvirt documents `virConnectPtr` as usable from several
/// threads at once; the pointer itself is immutable after `init` until `close()`, which the
/// owner calls once no other call can be running.
public final class LibvirtConnection: @unchecked Sendable {
    public let uri: String
    private var pointer: virConnectPtr?
    /// Event sinks and their callback ids, deregistered on close.
    private let sinks = Mutex<[(Int32, EventSink)]>([])
    private let networkSinks = Mutex<[(Int32, NetworkEventSink)]>([])

    /// Opens `uri` (blocking). Throws ``LibvirtError`` when libvirt refuses.
    public init(uri: String) throws {
        LibvirtEventLoop.start()
        self.uri = uri
        guard let conn = virConnectOpen(uri) else { throw LibvirtError.last("cannot connect to \(uri)") }
        pointer = conn
        // Keepalive lets a dead libvirtd be noticed within ~15 s even when idle.
        _ = virConnectSetKeepAlive(conn, 5, 3)
    }

    /// True while the connection works.
    public var isAlive: Bool {
        guard let pointer else { return false }
        return virConnectIsAlive(pointer) == 1
    }

    /// The hypervisor's version string, e.g. for logs.
    public func hostname() throws -> String {
        guard let pointer, let name = virConnectGetHostname(pointer) else { throw LibvirtError.last("cannot read hostname") }
        defer { free(name) }
        return String(cString: name)
    }

    /// The live handle, or an error when the connection is closed.
    func handle() throws -> virConnectPtr {
        guard let pointer else { throw LibvirtError(code: LibvirtError.noConnect, domain: 0, message: "the libvirt connection is closed") }
        return pointer
    }

    func keep(_ sink: EventSink, callbackID: Int32) {
        sinks.withLock { $0.append((callbackID, sink)) }
    }

    func keepNetworkSink(_ sink: NetworkEventSink, callbackID: Int32) {
        networkSinks.withLock { $0.append((callbackID, sink)) }
    }

    /// Closes the connection.
    public func close() {
        if let pointer {
            for (id, _) in sinks.withLock({ $0 }) { _ = virConnectDomainEventDeregisterAny(pointer, id) }
            for (id, _) in networkSinks.withLock({ $0 }) { _ = virConnectNetworkEventDeregisterAny(pointer, id) }
            virConnectClose(pointer)
        }
        pointer = nil
    }

    deinit { close() }
}

import CLibvirt
import Glibc

/// A libvirt virtual network handle. Every call blocks: use it from a dedicated thread.
///
/// `@unchecked Sendable` is safe for the same reason as ``LibvirtDomain``: libvirt's
/// network objects are reference-counted and thread-safe; the pointer is immutable and
/// freed once, in `deinit`, when no call can be running.
public final class LibvirtNetwork: @unchecked Sendable {
    let pointer: virNetworkPtr

    init(_ pointer: virNetworkPtr) { self.pointer = pointer }

    deinit { virNetworkFree(pointer) }

    public var uuid: String {
        libvirtUUID { virNetworkGetUUIDString(pointer, $0) }
    }

    public var name: String { virNetworkGetName(pointer).map { String(cString: $0) } ?? "" }
    public var isActive: Bool { virNetworkIsActive(pointer) == 1 }
    public var isPersistent: Bool { virNetworkIsPersistent(pointer) == 1 }

    /// libvirt's own autostart flag of the network.
    public func autostart() throws -> Bool {
        var value: Int32 = 0
        guard virNetworkGetAutostart(pointer, &value) == 0 else { throw LibvirtError.last("cannot read the autostart flag of network \(name)") }
        return value != 0
    }

    public func setAutostart(_ on: Bool) throws {
        try check(virNetworkSetAutostart(pointer, on ? 1 : 0), "set the autostart flag of")
    }

    /// The network XML (the persistent definition with `inactive`).
    public func xml(inactive: Bool = false) throws -> String {
        let flags = inactive ? UInt32(VIR_NETWORK_XML_INACTIVE.rawValue) : 0
        guard let text = virNetworkGetXMLDesc(pointer, flags) else { throw LibvirtError.last("cannot read the XML of network \(name)") }
        defer { free(text) }
        return String(cString: text)
    }

    public func start() throws { try check(virNetworkCreate(pointer), "start") }
    public func stop() throws { try check(virNetworkDestroy(pointer), "stop") }
    public func undefine() throws { try check(virNetworkUndefine(pointer), "undefine") }

    private func check(_ result: Int32, _ what: String) throws {
        guard result == 0 else { throw LibvirtError.last("cannot \(what) network \(name)") }
    }
}

/// A network lifecycle event (`VIR_NETWORK_EVENT_ID_LIFECYCLE`): 0 defined, 1 undefined,
/// 2 started, 3 stopped.
public struct NetworkLifecycleEvent: Sendable {
    public let uuid: String
    public let name: String
    public let event: Int32
}

final class NetworkEventSink: Sendable {
    let handler: @Sendable (NetworkLifecycleEvent) -> Void
    init(_ handler: @escaping @Sendable (NetworkLifecycleEvent) -> Void) { self.handler = handler }
}

private let networkLifecycleTrampoline: @convention(c) (virConnectPtr?, virNetworkPtr?, Int32, Int32, UnsafeMutableRawPointer?) -> Void = {
    _, network, event, _, opaque in
    guard let network, let opaque else { return }
    let sink = Unmanaged<NetworkEventSink>.fromOpaque(opaque).takeUnretainedValue()
    let uuid = libvirtUUID { virNetworkGetUUIDString(network, $0) }
    let name = virNetworkGetName(network).map { String(cString: $0) } ?? ""
    sink.handler(NetworkLifecycleEvent(uuid: uuid, name: name, event: event))
}

extension LibvirtConnection {
    /// Every virtual network, active and inactive.
    public func allNetworks() throws -> [LibvirtNetwork] {
        var list: UnsafeMutablePointer<virNetworkPtr?>?
        let count = virConnectListAllNetworks(try handle(), &list, 0)
        guard count >= 0, let list else { throw LibvirtError.last("cannot list networks") }
        defer { free(list) }
        return (0..<Int(count)).compactMap { list[$0].map(LibvirtNetwork.init) }
    }

    /// The network named `name`, or nil when libvirt has none.
    public func network(named name: String) throws -> LibvirtNetwork? {
        let conn = try handle()
        guard let n = virNetworkLookupByName(conn, name) else {
            let error = LibvirtError.last("no network named \(name)")
            if error.code == LibvirtError.noNetwork { return nil }
            throw error
        }
        return LibvirtNetwork(n)
    }

    /// Defines a persistent network from XML.
    public func defineNetwork(xml: String) throws -> LibvirtNetwork {
        guard let n = virNetworkDefineXML(try handle(), xml) else { throw LibvirtError.last("cannot define the network") }
        return LibvirtNetwork(n)
    }

    /// Calls `handler` (on libvirt's event thread) for every lifecycle event of every
    /// network of this connection, until the connection is closed.
    public func onNetworkLifecycleEvents(_ handler: @escaping @Sendable (NetworkLifecycleEvent) -> Void) throws {
        let sink = NetworkEventSink(handler)
        let generic = unsafeBitCast(networkLifecycleTrampoline, to: virConnectNetworkEventGenericCallback.self)
        let id = virConnectNetworkEventRegisterAny(try handle(), nil, Int32(VIR_NETWORK_EVENT_ID_LIFECYCLE.rawValue), generic,
                                                   Unmanaged.passUnretained(sink).toOpaque(), nil)
        guard id >= 0 else { throw LibvirtError.last("cannot register for network events") }
        keepNetworkSink(sink, callbackID: id)
    }
}

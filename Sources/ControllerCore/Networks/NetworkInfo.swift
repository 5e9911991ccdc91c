/// What the service shows about one libvirt network.
public struct NetworkInfo: Sendable, Equatable {
    public var name: String
    public var uuid: String
    /// `isolated` (no forward, no host address), `host-only` (no forward, a host address),
    /// or the forward mode (`nat`, `route`, `open`, `bridge`, ...).
    public var kind: String
    public var bridge: String
    public var active: Bool
    public var autostart: Bool
    /// An isolated network whose running bridge the host takes no part in (see
    /// ``HostBridgeSeal``); false for every other network.
    public var hostIsolated = false

    public init(name: String, uuid: String, kind: String, bridge: String, active: Bool, autostart: Bool) {
        self.name = name
        self.uuid = uuid
        self.kind = kind
        self.bridge = bridge
        self.active = active
        self.autostart = autostart
    }
}

/// A change of the network cache, for the bus layer.
public enum NetworkChange: Sendable {
    case added(NetworkInfo)
    case updated(NetworkInfo)
    case removed(name: String)
}

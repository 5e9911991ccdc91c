/// A domain's state as libvirt reports it, under the API's names.
public enum VMState: String, Sendable, CaseIterable {
    case nostate, running, blocked, paused, shutdown, shutoff, crashed, pmsuspended

    /// The state of libvirt's `virDomainState` code.
    public init(code: Int32) {
        let all = Self.allCases
        self = all.indices.contains(Int(code)) ? all[Int(code)] : .nostate
    }

    /// Whether qemu runs for the VM, holding its disks open: running, paused, blocked,
    /// shutting down or suspended to memory.
    public var isActive: Bool {
        switch self {
        case .running, .paused, .blocked, .shutdown, .pmsuspended: return true
        case .nostate, .shutoff, .crashed: return false
        }
    }

    /// Whether devices can be changed live (the guest runs or is paused).
    public var acceptsLiveChanges: Bool { self == .running || self == .paused || self == .blocked }

    /// Whether the VM can be started (shut off, or crashed and stopped).
    public var canStart: Bool { self == .shutoff || self == .crashed }
}

/// A launchable kind of VM ("one server, several profiles that can be launched").
public struct VMProfile: Sendable, Equatable {
    public var name: String
    public var description: String
    public var memoryMiB: UInt64
    public var vcpus: UInt32
    /// What VMs of the profile are in the topology (which NICs they get and may have).
    public var role: VMRole
    /// NICs (`network:NAME`, `bridge:BR`, `direct:DEV`), one each, from a profile file;
    /// nil: the role's wiring from `[vms]` (``VMTopology``).
    public var networks: [String]?
    /// SPICE display (local only) and a virtio video device.
    public var graphics: Bool
    /// Serial console on a pty.
    public var serialConsole: Bool
    /// 9p shares (host path, tag) every VM of the profile gets.
    public var shares: [VMShare]
    /// Start order in StartAll: lower first (network controllers 0, interface controllers 1, others 2).
    public var bootOrder: Int

    public init(name: String, description: String, role: VMRole, memoryMiB: UInt64, vcpus: UInt32, networks: [String]? = nil,
                graphics: Bool, serialConsole: Bool, shares: [VMShare], bootOrder: Int) {
        self.name = name
        self.role = role
        self.description = description
        self.memoryMiB = memoryMiB
        self.vcpus = vcpus
        self.networks = networks
        self.graphics = graphics
        self.serialConsole = serialConsole
        self.shares = shares
        self.bootOrder = bootOrder
    }

    /// The profiles every installation has; files in the profiles directory may override them.
    public static let builtIn: [VMProfile] = [
        VMProfile(name: "network-controller",
                  description: "Router controller: owns the uplink and routes the other VMs (small, 1 vCPU, NIC 1 on the uplink and NIC 2 on the internal network, serial console, no graphics)",
                  role: .router, memoryMiB: 512, vcpus: 1, graphics: false, serialConsole: true,
                  shares: [], bootOrder: 0),
        VMProfile(name: "interface-controller",
                  description: "User interface controller: the desktop the person works in (graphics, more memory, one NIC on the internal network, /var/multiverse shared as 'Multiverse')",
                  role: .interfaceController, memoryMiB: 4096, vcpus: 2, graphics: true, serialConsole: true,
                  shares: [VMShare(hostPath: "/var/multiverse", tag: "Multiverse", readonly: false)], bootOrder: 1),
        VMProfile(name: "app",
                  description: "Application VM: small, one NIC on the internal network, meant for ephemeral launches on an overlay of a base disk",
                  role: .app, memoryMiB: 1024, vcpus: 1, graphics: true, serialConsole: true,
                  shares: [], bootOrder: 2),
    ]
}

/// A 9p filesystem share.
public struct VMShare: Sendable, Equatable {
    public var hostPath: String
    public var tag: String
    public var readonly: Bool

    public init(hostPath: String, tag: String, readonly: Bool) {
        self.hostPath = hostPath
        self.tag = tag
        self.readonly = readonly
    }
}

/// A launchable kind of VM ("one server, several profiles that can be launched").
public struct VMProfile: Sendable, Equatable {
    public var name: String
    public var description: String
    public var memoryMiB: UInt64
    public var vcpus: UInt32
    /// libvirt networks, one NIC each.
    public var networks: [String]
    /// SPICE display (local only) and a virtio video device.
    public var graphics: Bool
    /// Serial console on a pty.
    public var serialConsole: Bool
    /// 9p shares (host path, tag) every VM of the profile gets.
    public var shares: [VMShare]
    /// Start order in StartAll: lower first (network controllers 0, interface controllers 1, others 2).
    public var bootOrder: Int

    public init(name: String, description: String, memoryMiB: UInt64, vcpus: UInt32, networks: [String],
                graphics: Bool, serialConsole: Bool, shares: [VMShare], bootOrder: Int) {
        self.name = name
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
                  description: "Router controller: owns the uplinks and routes the other VMs (small, 1 vCPU, two NICs, serial console, no graphics)",
                  memoryMiB: 512, vcpus: 1, networks: ["default", "default"], graphics: false, serialConsole: true,
                  shares: [], bootOrder: 0),
        VMProfile(name: "interface-controller",
                  description: "User interface controller: the desktop the person works in (graphics, more memory, /var/multiverse shared as 'Multiverse')",
                  memoryMiB: 4096, vcpus: 2, networks: ["default"], graphics: true, serialConsole: true,
                  shares: [VMShare(hostPath: "/var/multiverse", tag: "Multiverse", readonly: false)], bootOrder: 1),
        VMProfile(name: "app",
                  description: "Application VM: small, meant for ephemeral launches on an overlay of a base disk",
                  memoryMiB: 1024, vcpus: 1, networks: ["default"], graphics: true, serialConsole: true,
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

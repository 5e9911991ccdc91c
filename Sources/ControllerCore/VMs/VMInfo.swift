import Readiness

/// What the service shows about one VM (a libvirt domain).
public struct VMInfo: Sendable, Equatable {
    public var uuid: String
    public var name: String
    public var state: VMState
    public var stateReason: String
    /// What the service keeps in the domain's `<metadata>`.
    public var metadata: VMMetadata
    public var vcpus: UInt32
    public var memoryMiB: UInt64
    public var persistent: Bool
    public var disks: [VMDisk]
    public var shares: [VMShare]
    /// The VM's NICs, in the order of its definition.
    public var interfaces: [VMInterface] = []
    /// libvirt's ID of the running domain (new at every start); -1 when not running.
    public var domainID: Int32 = -1
    /// Whether the definition carries the readiness channel.
    public var hasReadinessChannel = false
    /// The readiness channel's socket as the live definition names it ("" when not running,
    /// or on drivers that make no socket, such as libvirt's test driver).
    public var readinessSocket = ""
    /// What the guest reported on the channel during this boot.
    public var guest = GuestReadiness()
    /// How many of the VM's jobs libvirt reported ended (job-completed events) since the
    /// cache knew it: waits for a job's end watch it change.
    public var jobsEnded: UInt64 = 0

    public init(uuid: String, name: String) {
        self.uuid = uuid
        self.name = name
        state = .nostate
        stateReason = "unknown"
        metadata = VMMetadata()
        vcpus = 0
        memoryMiB = 0
        persistent = true
        disks = []
        shares = []
    }
}

extension VMInfo {
    /// Profile name from the service's metadata, `""` for VMs defined elsewhere.
    public var profile: String { metadata.profile }
    /// The service's own autostart flag (metadata), not libvirt's.
    public var autostart: Bool { metadata.autostart }
    public var ephemeral: Bool { metadata.ephemeral }
    public var bootOrder: Int { metadata.bootOrder }
    /// Whether the VM is running (or paused) with a readiness socket the daemon can read.
    public var readinessReachable: Bool { domainID >= 0 && !readinessSocket.isEmpty }
}

/// The service's knowledge about a VM, kept in the domain XML's `<metadata>` under
/// `https://multiverse-os.org/controller/1` so it survives restarts and shows in `virsh dumpxml`.
public struct VMMetadata: Sendable, Equatable {
    public var profile = ""
    public var autostart = false
    public var ephemeral = false
    public var baseDisk = ""
    public var overlay = ""
    /// StartAll order: lower first; VMs without metadata start last.
    public var bootOrder = 3
    /// The VM StartAll starts in this one's place when it does not become ready in time.
    public var fallback = ""
    /// How long StartAll waits for this VM's `READY=1`; 0: `[vms] ready_timeout_s`.
    public var readyTimeoutSeconds: UInt32 = 0

    public init(profile: String = "", autostart: Bool = false, ephemeral: Bool = false, baseDisk: String = "",
                overlay: String = "", bootOrder: Int = 3, fallback: String = "", readyTimeoutSeconds: UInt32 = 0) {
        self.fallback = fallback
        self.readyTimeoutSeconds = readyTimeoutSeconds
        self.profile = profile
        self.autostart = autostart
        self.ephemeral = ephemeral
        self.baseDisk = baseDisk
        self.overlay = overlay
        self.bootOrder = bootOrder
    }
}

/// A disk of a VM as the domain XML has it.
public struct VMDisk: Sendable, Equatable {
    public var target: String
    public var source: String
    public var format: String
    /// `<readonly/>`: the VM never writes the image.
    public var readonly: Bool = false
}

/// libvirt's state reason codes as the API's strings.
public enum DomainStateNames {
    static let reasons: [[String]] = [
        ["unknown"],
        ["unknown", "booted", "migrated", "restored", "from-snapshot", "unpaused", "migration-canceled", "save-canceled", "wakeup", "crashed", "postcopy", "postcopy-failed"],
        ["unknown"],
        ["unknown", "user", "migration", "save", "dump", "ioerror", "watchdog", "from-snapshot", "shutting-down", "snapshot", "crashed", "starting-up", "postcopy", "postcopy-failed", "api-error"],
        ["unknown", "user"],
        ["unknown", "shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from-snapshot", "daemon"],
        ["unknown", "panicked"],
        ["unknown"],
    ]

    public static func reason(state: Int32, reason: Int32) -> String {
        guard reasons.indices.contains(Int(state)) else { return "unknown" }
        let list = reasons[Int(state)]
        return list.indices.contains(Int(reason)) ? list[Int(reason)] : "unknown"
    }
}

/// One NIC of a VM: how it is connected and its MAC.
public struct VMInterface: Sendable, Equatable {
    /// libvirt's interface type: `network`, `bridge`, `direct`, `user`, …
    public var type: String
    /// The network's name (type `network`), the bridge (`bridge`) or the host device (`direct`).
    public var source: String
    public var mac: String
    public var model: String
}

import SDBus

/// The well-known names of API version 1: bus name, error names and polkit action ids.
/// The daemon, mvctl and the tests take them from here instead of retyping them.
public enum ControllerNames {
    /// The name the service owns on the system bus.
    public static let busName = "org.multiverse.Controller"
    /// The prefix of every interface name.
    public static let interfacePrefix = "org.multiverse.Controller."
    /// The prefix of the service's own error names.
    public static let errorPrefix = "org.multiverse.Controller.Error."
    /// The API version, as the `APIVersion` property reports it.
    public static let apiVersion: UInt32 = 1
}

/// Object paths of API version 1.
public enum ObjectPaths {
    public static let root = "/org/multiverse/Controller"
    public static let diskPrefix = root + "/disk"
    public static let settings = root + "/settings"
    public static let vmPrefix = root + "/vm"
    public static let jobPrefix = root + "/job"
    public static let networkPrefix = root + "/network"

    /// `/org/multiverse/Controller/job/<n>`.
    public static func job(_ id: UInt64) -> String { "\(jobPrefix)/\(id)" }

    /// `/org/multiverse/Controller/vm/<escaped UUID>`.
    public static func vm(_ uuid: String) -> String { ObjectPath.encode(prefix: vmPrefix, uuid) }

    /// `/org/multiverse/Controller/disk/<escaped name>`.
    public static func disk(_ name: String) -> String { ObjectPath.encode(prefix: diskPrefix, name) }

    /// `/org/multiverse/Controller/network/NAME` (the name escaped as for disks).
    public static func network(_ name: String) -> String { ObjectPath.encode(prefix: networkPrefix, name) }

    /// The number of a job path, or nil when `path` is not one.
    public static func jobID(_ path: String) -> UInt64? {
        guard path.hasPrefix(jobPrefix + "/") else { return nil }
        return UInt64(path.dropFirst(jobPrefix.count + 1))
    }
}

/// The D-Bus error names the service replies with: the standard ones it uses and its own.
public enum ErrorName: String, Sendable, CaseIterable {
    case invalidArgs = "org.freedesktop.DBus.Error.InvalidArgs"
    case accessDenied = "org.freedesktop.DBus.Error.AccessDenied"
    case interactiveAuthorizationRequired = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
    case limitsExceeded = "org.freedesktop.DBus.Error.LimitsExceeded"
    case noSuchVM = "org.multiverse.Controller.Error.NoSuchVM"
    case noSuchDisk = "org.multiverse.Controller.Error.NoSuchDisk"
    case noSuchSnapshot = "org.multiverse.Controller.Error.NoSuchSnapshot"
    case noSuchBackup = "org.multiverse.Controller.Error.NoSuchBackup"
    case noSuchNetwork = "org.multiverse.Controller.Error.NoSuchNetwork"
    case alreadyExists = "org.multiverse.Controller.Error.AlreadyExists"
    case busy = "org.multiverse.Controller.Error.Busy"
    case invalidState = "org.multiverse.Controller.Error.InvalidState"
    case libvirt = "org.multiverse.Controller.Error.Libvirt"
    case guestfs = "org.multiverse.Controller.Error.Guestfs"
    case io = "org.multiverse.Controller.Error.Io"
    case cancelled = "org.multiverse.Controller.Error.Cancelled"
    case notSupported = "org.multiverse.Controller.Error.NotSupported"

    /// Whether the name is the service's own (under ``ControllerNames/errorPrefix``).
    public var isOwn: Bool { rawValue.hasPrefix(ControllerNames.errorPrefix) }
    /// The last component: `Busy`, `InvalidArgs`.
    public var shortName: String { String(rawValue.split(separator: ".").last ?? "") }
}

/// The polkit action ids of API version 1 (declared in `polkit/org.multiverse.controller.policy`).
public enum PolkitAction: String, Sendable, CaseIterable {
    case vmControl = "org.multiverse.controller.vm.control"
    case vmConfigure = "org.multiverse.controller.vm.configure"
    case diskManage = "org.multiverse.controller.disk.manage"
    case diskInspect = "org.multiverse.controller.disk.inspect"
    case diskWrite = "org.multiverse.controller.disk.write"
    case settingsModify = "org.multiverse.controller.settings.modify"
    case jobCancelOther = "org.multiverse.controller.job.cancel-other"
    case networkManage = "org.multiverse.controller.network.manage"

    /// What a holder of the action can do to the host, in one line (the API reference's
    /// POLKIT ACTIONS section): every grant is scoped, none is host root.
    public var hostReach: String {
        switch self {
        case .vmControl:
            return """
                Starts and stops the service's VMs and their libvirt networks; uses host memory and CPUs up to the service's \
                budget ([vms] host_reserve_mib, allow_cpu_overcommit); no host path.
                """
        case .vmConfigure:
            return """
                Defines VMs whose host paths are only managed disks, directories under [vms] share_roots (what the VM's qemu \
                user may read or write there), kernels under [vms] kernel_roots (world-readable files) and libvirt's emulator, \
                confined by libvirt's dynamic labels; NICs only on libvirt networks or a router's [vms] uplink; qemu \
                passthrough only with [vms] allow_passthrough.
                """
        case .diskManage:
            return """
                Creates, copies, resizes, formats and deletes images inside the image directory and backups inside the backup \
                directory (space up to [disks] max_size each); nothing outside them.
                """
        case .diskInspect:
            return "Reads files inside guest images (what a guest wrote); nothing of the host's."
        case .diskWrite:
            return "Writes files inside guest images (a guest then runs them); nothing of the host's."
        case .settingsModify:
            return """
                Changes the host settings of [settings]: adds the configured user to the configured groups (kvm, libvirt: \
                libvirt membership is host root by itself), rebuilds the initramfs with the 9p modules, enables rngd and \
                libvirtd. Grant it to administrators only.
                """
        case .jobCancelOther:
            return "Cancels other users' jobs (their copies and backups are left as before); nothing on the host."
        case .networkManage:
            return """
                Defines, starts and stops libvirt networks of kind isolated or nat (a nat network gives guests the host's \
                uplink through libvirt's NAT; bridges named by the caller or libvirt).
                """
        }
    }
}

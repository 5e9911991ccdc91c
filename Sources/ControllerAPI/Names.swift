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
}

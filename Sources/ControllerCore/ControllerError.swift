/// Errors of the controller, each with the D-Bus error name it is sent as.
/// Messages name the object and value concerned.
public enum ControllerError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidArgs(String)
    case accessDenied(String)
    case interactiveAuthorizationRequired(String)
    case limitsExceeded(String)
    case noSuchVM(String)
    case noSuchDisk(String)
    case noSuchSnapshot(String)
    case noSuchBackup(String)
    case alreadyExists(String)
    case busy(String)
    case invalidState(String)
    case libvirt(String)
    case guestfs(String)
    case io(String)
    case cancelled(String)
    case notSupported(String)

    /// The D-Bus error name.
    public var dbusName: String {
        let own = "org.multiverse.Controller.Error."
        switch self {
        case .invalidArgs: return "org.freedesktop.DBus.Error.InvalidArgs"
        case .accessDenied: return "org.freedesktop.DBus.Error.AccessDenied"
        case .interactiveAuthorizationRequired: return "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
        case .limitsExceeded: return "org.freedesktop.DBus.Error.LimitsExceeded"
        case .noSuchVM: return own + "NoSuchVM"
        case .noSuchDisk: return own + "NoSuchDisk"
        case .noSuchSnapshot: return own + "NoSuchSnapshot"
        case .noSuchBackup: return own + "NoSuchBackup"
        case .alreadyExists: return own + "AlreadyExists"
        case .busy: return own + "Busy"
        case .invalidState: return own + "InvalidState"
        case .libvirt: return own + "Libvirt"
        case .guestfs: return own + "Guestfs"
        case .io: return own + "Io"
        case .cancelled: return own + "Cancelled"
        case .notSupported: return own + "NotSupported"
        }
    }

    /// The human-readable message.
    public var message: String {
        switch self {
        case .invalidArgs(let m), .accessDenied(let m), .interactiveAuthorizationRequired(let m),
             .limitsExceeded(let m), .noSuchVM(let m), .noSuchDisk(let m), .noSuchSnapshot(let m),
             .noSuchBackup(let m), .alreadyExists(let m), .busy(let m), .invalidState(let m),
             .libvirt(let m), .guestfs(let m), .io(let m), .cancelled(let m), .notSupported(let m):
            return m
        }
    }

    public var description: String { "\(dbusName): \(message)" }
}

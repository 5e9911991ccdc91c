import ControllerAPI
import ControllerCore
import SDBus

extension ControllerError: DBusErrorConvertible {
    /// The API's name for the error's kind: one case each and no default, so a new kind
    /// does not compile until it has its name (ErrorNameTests checks the names agree).
    public var errorName: ErrorName {
        switch self {
        case .invalidArgs: return .invalidArgs
        case .accessDenied: return .accessDenied
        case .interactiveAuthorizationRequired: return .interactiveAuthorizationRequired
        case .limitsExceeded: return .limitsExceeded
        case .noSuchVM: return .noSuchVM
        case .noSuchDisk: return .noSuchDisk
        case .noSuchSnapshot: return .noSuchSnapshot
        case .noSuchBackup: return .noSuchBackup
        case .noSuchNetwork: return .noSuchNetwork
        case .alreadyExists: return .alreadyExists
        case .busy: return .busy
        case .invalidState: return .invalidState
        case .libvirt: return .libvirt
        case .guestfs: return .guestfs
        case .io: return .io
        case .cancelled: return .cancelled
        case .notSupported: return .notSupported
        }
    }

    /// The error as the bus sends it: the API's name for its kind, and its message.
    public var dbusError: DBusError { DBusError(name: errorName.rawValue, message: message) }
}

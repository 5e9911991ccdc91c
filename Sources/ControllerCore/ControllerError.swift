import HostSettings
import HostSystem

/// Errors of the controller, each of a kind the API names.
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
    case noSuchNetwork(String)
    case alreadyExists(String)
    case busy(String)
    case invalidState(String)
    case libvirt(String)
    case guestfs(String)
    case io(String)
    case cancelled(String)
    case notSupported(String)

    /// The kind of error, as the API names it (`Busy`, `InvalidArgs`); the bus layer sends
    /// it under the matching D-Bus error name.
    public var kind: String {
        switch self {
        case .invalidArgs: return "InvalidArgs"
        case .accessDenied: return "AccessDenied"
        case .interactiveAuthorizationRequired: return "InteractiveAuthorizationRequired"
        case .limitsExceeded: return "LimitsExceeded"
        case .noSuchVM: return "NoSuchVM"
        case .noSuchDisk: return "NoSuchDisk"
        case .noSuchSnapshot: return "NoSuchSnapshot"
        case .noSuchBackup: return "NoSuchBackup"
        case .noSuchNetwork: return "NoSuchNetwork"
        case .alreadyExists: return "AlreadyExists"
        case .busy: return "Busy"
        case .invalidState: return "InvalidState"
        case .libvirt: return "Libvirt"
        case .guestfs: return "Guestfs"
        case .io: return "Io"
        case .cancelled: return "Cancelled"
        case .notSupported: return "NotSupported"
        }
    }

    /// The human-readable message.
    public var message: String {
        switch self {
        case .invalidArgs(let m), .accessDenied(let m), .interactiveAuthorizationRequired(let m),
             .limitsExceeded(let m), .noSuchVM(let m), .noSuchDisk(let m), .noSuchSnapshot(let m),
             .noSuchBackup(let m), .noSuchNetwork(let m), .alreadyExists(let m), .busy(let m), .invalidState(let m),
             .libvirt(let m), .guestfs(let m), .io(let m), .cancelled(let m), .notSupported(let m):
            return m
        }
    }

    public var description: String { "\(kind): \(message)" }
}

extension ControllerError {
    /// The API's error for a failure in the system module: one error per kind, no default.
    public init(_ error: SystemError) {
        switch error.kind {
        case .io: self = .io(error.message)
        case .invalidInput: self = .invalidArgs(error.message)
        case .tooLarge: self = .limitsExceeded(error.message)
        case .inUse: self = .busy(error.message)
        }
    }

    /// The API's error for a setting that cannot be made to hold: one per kind, no default.
    public init(_ error: SettingError) {
        switch error.kind {
        case .missingOnHost: self = .invalidState(error.message)
        case .unsupported: self = .notSupported(error.message)
        case .busy: self = .busy(error.message)
        }
    }

    /// `error` as the API names it: a ``SystemError`` or ``SettingError`` becomes its
    /// ``ControllerError``; any other error is returned as it is.
    public static func mapped(_ error: any Error) -> any Error {
        if let e = error as? SystemError { return ControllerError(e) }
        if let e = error as? SettingError { return ControllerError(e) }
        return error
    }
}

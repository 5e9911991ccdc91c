/// A named D-Bus error, as sent in an error reply or received from a call.
public struct DBusError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The error name, e.g. `org.freedesktop.DBus.Error.InvalidArgs`.
    public var name: String
    /// The human-readable message.
    public var message: String

    public init(name: String, message: String) {
        self.name = name
        self.message = message
    }

    public var description: String { "\(name): \(message)" }

    public static func invalidArgs(_ message: String) -> DBusError {
        DBusError(name: "org.freedesktop.DBus.Error.InvalidArgs", message: message)
    }
    public static func accessDenied(_ message: String) -> DBusError {
        DBusError(name: "org.freedesktop.DBus.Error.AccessDenied", message: message)
    }
    public static func interactiveAuthorizationRequired(_ message: String) -> DBusError {
        DBusError(name: "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired", message: message)
    }
    public static func limitsExceeded(_ message: String) -> DBusError {
        DBusError(name: "org.freedesktop.DBus.Error.LimitsExceeded", message: message)
    }
    public static func failed(_ message: String) -> DBusError {
        DBusError(name: "org.freedesktop.DBus.Error.Failed", message: message)
    }
    public static func unknownMethod(_ message: String) -> DBusError {
        DBusError(name: "org.freedesktop.DBus.Error.UnknownMethod", message: message)
    }
}

/// Errors that know their D-Bus name; anything else is sent as `org.freedesktop.DBus.Error.Failed`.
public protocol DBusErrorConvertible: Error {
    var dbusError: DBusError { get }
}

extension DBusError: DBusErrorConvertible {
    public var dbusError: DBusError { self }
}

extension DBusError {
    /// Maps any Swift error to a D-Bus error.
    public static func from(_ error: any Error) -> DBusError {
        if let convertible = error as? any DBusErrorConvertible { return convertible.dbusError }
        if error is CancellationError { return DBusError(name: "org.freedesktop.DBus.Error.Failed", message: "cancelled") }
        return .failed(String(describing: error))
    }

    /// A D-Bus error from a negative errno returned by sd-bus.
    static func errno(_ code: Int32, _ what: String) -> DBusError {
        let text = String(cString: strerror(-code))
        return .failed("\(what): \(text)")
    }
}

#if canImport(Glibc)
import Glibc
#endif

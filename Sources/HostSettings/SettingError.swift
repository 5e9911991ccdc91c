/// Why a setting cannot be made to hold, beyond a failed file or program (those are
/// HostSystem's `SystemError`s). Core maps each kind to one of the API's errors.
public struct SettingError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The host lacks what the setting needs and the agent does not make (a user, a
        /// group, a package, a service's unit): the API's `InvalidState`.
        case missingOnHost
        /// The host is set up in a way the agent does not change (`NotSupported`).
        case unsupported
        /// Another program holds what the setting must change (`Busy`).
        case busy
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public static func missingOnHost(_ message: String) -> SettingError { SettingError(.missingOnHost, message) }
    public static func unsupported(_ message: String) -> SettingError { SettingError(.unsupported, message) }
    public static func busy(_ message: String) -> SettingError { SettingError(.busy, message) }

    public var description: String { message }
}

import Glibc

/// A failure of a system call or a C library, with a message that names the file or object
/// concerned and the system's reason (`cannot read /etc/group: Permission denied`).
///
/// Core maps each kind to one of the API's errors (`ControllerError(_:)`): the module knows
/// files and descriptors, not the service's error names.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, as far as a caller may act on it.
    public enum Kind: Sendable, Equatable {
        /// The system refused or failed (a full disk, a missing file, a permission).
        case io
        /// The input cannot be read as what it claims to be (XML that does not parse).
        case invalidInput
        /// The input is larger than the module accepts.
        case tooLarge
        /// Another process holds the file (an image lock qemu checks).
        case inUse
    }

    public let kind: Kind
    public let message: String
    /// The `errno` value behind it, or 0.
    public let code: Int32

    public init(_ kind: Kind, _ message: String, code: Int32 = 0) {
        self.kind = kind
        self.message = message
        self.code = code
    }

    public static func io(_ message: String, code: Int32 = 0) -> SystemError { SystemError(.io, message, code: code) }
    public static func invalidInput(_ message: String) -> SystemError { SystemError(.invalidInput, message) }
    public static func tooLarge(_ message: String) -> SystemError { SystemError(.tooLarge, message) }
    public static func inUse(_ message: String, code: Int32 = 0) -> SystemError { SystemError(.inUse, message, code: code) }

    /// An `io` error for a failed call: `what` (`cannot read /a/b`), then the system's text
    /// for `code` (the current `errno` unless told).
    public static func failed(_ what: String, code: Int32 = errno) -> SystemError {
        SystemError(.io, "\(what): \(systemMessage(code))", code: code)
    }

    public var description: String { message }
}

/// The system's text for an `errno` value (`No such file or directory`).
public func systemMessage(_ code: Int32) -> String { String(cString: strerror(code)) }

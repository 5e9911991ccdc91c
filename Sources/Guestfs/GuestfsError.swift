/// A failed libguestfs call: the function and libguestfs' own message.
public struct GuestfsError: Error, Sendable, CustomStringConvertible {
    /// The libguestfs function that failed (`mount`, `launch`, …).
    public let function: String
    /// `guestfs_last_error`'s text, or a description when libguestfs gave none.
    public let message: String
    /// errno of the failure inside the appliance (`ENOENT`, …), 0 when unknown.
    public let errno: Int32

    public init(function: String, message: String, errno: Int32 = 0) {
        self.function = function
        self.message = message
        self.errno = errno
    }

    public var description: String { message.hasPrefix(function + ":") ? message : "\(function): \(message)" }
}

/// How handles are created: the backend and its settings come from the configuration,
/// never hard-coded (this machine needs `force_tcg`, real hosts do not).
public struct GuestfsSettings: Sendable, Equatable {
    /// `direct` or `libvirt` (libguestfs' `set_backend`).
    public var backend: String
    /// Strings for `set_backend_settings`, e.g. `["force_tcg"]`.
    public var backendSettings: [String]
    /// Appliance memory in MiB; nil keeps libguestfs' default.
    public var memoryMiB: Int?

    public init(backend: String = "direct", backendSettings: [String] = [], memoryMiB: Int? = nil) {
        self.backend = backend
        self.backendSettings = backendSettings
        self.memoryMiB = memoryMiB
    }
}

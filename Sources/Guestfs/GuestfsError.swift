import Glibc

/// A failed libguestfs call: the function and libguestfs' own message.
public struct GuestfsError: Error, Sendable, CustomStringConvertible {
    /// The libguestfs function that failed (`mount`, `launch`, …).
    public let function: String
    /// `guestfs_last_error`'s text, or a description when libguestfs gave none.
    public let message: String
    /// errno of the failure inside the appliance (`ENOENT`, …), 0 when unknown.
    public let errno: Int32

    /// The path did not exist in the guest (`ENOENT`).
    public var notFound: Bool { errno == ENOENT }
    /// A symlink loop in the guest (`ELOOP`).
    public var loops: Bool { errno == ELOOP }

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
    /// The unprivileged user the appliance helper runs as (never root).
    public var user: String
    /// The appliance helper's absolute path.
    public var helper: String

    /// The helper's name: installed beside the daemon (`/usr/libexec`), built beside it.
    public static let helperName = "multiverse-guestfs"
    /// The user the package creates for the appliances.
    public static let defaultUser = "multiverse-guestfs"

    public init(backend: String = "direct", backendSettings: [String] = [], memoryMiB: Int? = nil,
                user: String = GuestfsSettings.defaultUser, helper: String = GuestfsSettings.besideExecutable()) {
        self.backend = backend
        self.backendSettings = backendSettings
        self.memoryMiB = memoryMiB
        self.user = user
        self.helper = helper
    }

    /// The helper's path in the directory of the running executable (`/proc/self/exe`).
    public static func besideExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return "/usr/libexec/\(helperName)" }
        let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let directory = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return "\(directory)/\(helperName)"
    }
}

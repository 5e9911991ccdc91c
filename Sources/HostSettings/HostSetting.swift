import HostSystem
import Logging

/// One piece of desired host state. Adding a setting means adding one type that conforms
/// to this protocol and listing it in ``SettingsAgent/standardSettings(context:)``.
public protocol HostSetting: Sendable {
    /// Stable identifier used on the bus (`user-groups`, …).
    var id: String { get }
    /// One line for humans.
    var description: String { get }
    /// Host paths whose changes may break the setting. A path ending in `/*` stands for
    /// every entry of that directory. Parent directories are watched, so files replaced by
    /// rename are still seen.
    func watchedPaths(_ context: SettingsContext) -> [String]
    /// Reads the host and says whether the setting holds. Never changes anything.
    func check(_ context: SettingsContext) async -> SettingCheck
    /// Makes the setting hold. Returns whether anything changed and what was done.
    /// Applying a compliant setting changes nothing.
    func apply(_ context: SettingsContext) async throws -> SettingChange
}

/// The outcome of a check.
public struct SettingCheck: Sendable, Equatable {
    public var compliant: Bool
    public var detail: String
    public init(_ compliant: Bool, _ detail: String) {
        self.compliant = compliant
        self.detail = detail
    }
}

/// The outcome of an apply.
public struct SettingChange: Sendable, Equatable {
    public var changed: Bool
    public var detail: String
    public init(changed: Bool, _ detail: String) {
        self.changed = changed
        self.detail = detail
    }
}

/// What settings need to read and change the host.
public struct SettingsContext: Sendable {
    public let root: HostRoot
    public let config: SettingsConfig
    public let rebuilder: InitramfsRebuilder
    public let logger: Logger

    public init(root: HostRoot, config: SettingsConfig, rebuilder: InitramfsRebuilder, logger: Logger) {
        self.root = root
        self.config = config
        self.rebuilder = rebuilder
        self.logger = logger
    }

    /// Runs a host tool (absolute path, argv) and turns a failure into an `Io` error with
    /// an excerpt of its stderr.
    @discardableResult
    func run(_ path: String, _ arguments: [String]) async throws -> ChildResult {
        let result: ChildResult
        do {
            result = try await ChildProcess.run(path, arguments)
        } catch {
            throw SystemError.io("cannot run \(path): \(error)")
        }
        guard result.status == 0 else {
            throw SystemError.io("\(([path] + arguments).joined(separator: " ")) failed (exit \(result.status)): \(result.stderrExcerpt)")
        }
        return result
    }
}

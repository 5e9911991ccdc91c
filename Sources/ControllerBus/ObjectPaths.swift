import SDBus

/// Object paths of API version 1.
public enum ObjectPaths {
    public static let root = "/org/multiverse/Controller"
    public static let diskPrefix = root + "/disk"
    public static let settings = root + "/settings"
    public static let vmPrefix = root + "/vm"
    public static let jobPrefix = root + "/job"

    /// `/org/multiverse/Controller/job/<n>`.
    public static func job(_ id: UInt64) -> String { "\(jobPrefix)/\(id)" }

    /// `/org/multiverse/Controller/vm/<escaped UUID>`.
    public static func vm(_ uuid: String) -> String { ObjectPath.encode(prefix: vmPrefix, uuid) }

    /// `/org/multiverse/Controller/disk/<escaped name>`.
    public static func disk(_ name: String) -> String { ObjectPath.encode(prefix: diskPrefix, name) }
}

import SDBus

/// Object paths of API version 1.
public enum ObjectPaths {
    public static let root = "/org/multiverse/Controller"
    public static let diskPrefix = root + "/disk"
    public static let settings = root + "/settings"

    /// `/org/multiverse/Controller/disk/<escaped name>`.
    public static func disk(_ name: String) -> String { ObjectPath.encode(prefix: diskPrefix, name) }
}

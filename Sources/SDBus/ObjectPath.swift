import CSystemd

#if canImport(Glibc)
import Glibc
#endif

/// Object path helpers using sd-bus's escaping, so any string can be one path segment.
public enum ObjectPath {
    /// `prefix/escaped(external)`, as `sd_bus_path_encode` makes it.
    public static func encode(prefix: String, _ external: String) -> String {
        var out: UnsafeMutablePointer<CChar>?
        guard sd_bus_path_encode(prefix, external, &out) >= 0, let out else { return prefix }
        defer { free(out) }
        return String(cString: out)
    }

    /// The external string of a path made by ``encode(prefix:_:)``, or nil when `path` is not below `prefix`.
    public static func decode(prefix: String, _ path: String) -> String? {
        var out: UnsafeMutablePointer<CChar>?
        guard sd_bus_path_decode(path, prefix, &out) > 0, let out else { return nil }
        defer { free(out) }
        return String(cString: out)
    }

    /// True when `path` is a syntactically valid object path.
    public static func isValid(_ path: String) -> Bool { sd_bus_object_path_is_valid(path) != 0 }
}

/// A path inside a guest image, as callers give it to ListFiles, ReadFile and WriteFile.
public enum GuestPath {
    /// Longest accepted path (Linux' PATH_MAX).
    public static let maxLength = 4096

    /// Returns the normalised form of `path` (single slashes, no `.` components, no
    /// trailing slash). Throws `InvalidArgs` naming the path when it is not absolute,
    /// contains NUL or a `..` component, or is too long. `..` is refused rather than
    /// resolved: the caller means a fixed place inside the guest.
    public static func normalize(_ path: String) throws -> String {
        let shown = CallerText.quoted(String(path.prefix(200)))
        guard path.utf8.count <= maxLength else {
            throw ControllerError.invalidArgs("guest path \(shown)… is longer than \(maxLength) bytes")
        }
        guard !path.utf8.contains(0) else { throw ControllerError.invalidArgs("guest path \(shown) contains a NUL byte") }
        guard path.hasPrefix("/") else { throw ControllerError.invalidArgs("guest path \(shown) is not absolute") }
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { throw ControllerError.invalidArgs("guest path \(shown) contains '..'") }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// The directory part of a normalised path (`/` for `/x`).
    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    /// The last component of a normalised path.
    public static func baseName(of path: String) -> String {
        String(path[path.index(after: path.lastIndex(of: "/")!)...])
    }
}

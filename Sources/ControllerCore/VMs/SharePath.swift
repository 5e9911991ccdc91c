import FoundationEssentials
import Glibc

/// Host paths callers give (9p share sources, image paths): absolute, no `..`, resolved
/// with realpath (so a symlink cannot lead out) and required to lie under an allowed root.
enum RootedPath {
    /// The real path of `path` when it is a `kind` under one of `roots` (`equalRootAllowed`:
    /// the root itself counts); `InvalidArgs` naming the value otherwise.
    static func resolve(_ path: String, what: String, roots: [String], rootsName: String, equalRootAllowed: Bool,
                        isKind: (mode_t) -> Bool, kindName: String) throws -> String {
        guard path.hasPrefix("/"), !path.split(separator: "/").contains("..") else {
            throw ControllerError.invalidArgs("\(what) \(DiskName.quoted(path)) must be absolute, without '..'")
        }
        guard let resolved = realpath(path, nil) else {
            throw ControllerError.invalidArgs("\(what) \(DiskName.quoted(path)) does not exist")
        }
        let real = String(cString: resolved)
        free(resolved)
        var st = stat()
        guard stat(real, &st) == 0, isKind(st.st_mode & S_IFMT) else {
            throw ControllerError.invalidArgs("\(what) \(DiskName.quoted(path)) is not \(kindName)")
        }
        let allowed = roots.contains { root in
            let r = root.hasSuffix("/") ? String(root.dropLast()) : root
            return (equalRootAllowed && real == r) || real.hasPrefix(r + "/")
        }
        guard allowed else {
            throw ControllerError.invalidArgs("\(what) \(DiskName.quoted(path)) (\(real)) is not under an allowed \(rootsName) (\(roots.joined(separator: ", ")))")
        }
        return real
    }
}

/// Host directories given for 9p shares: existing directories under the share roots.
public enum SharePath {
    public static func validate(_ path: String, roots: [String]) throws -> String {
        try RootedPath.resolve(path, what: "share path", roots: roots, rootsName: "share root", equalRootAllowed: true,
                               isKind: { $0 == S_IFDIR }, kindName: "a directory")
    }
}

/// Image paths given to AttachDisk: regular files under the image roots.
public enum ImagePath {
    public static func validate(_ path: String, roots: [String]) throws -> String {
        try RootedPath.resolve(path, what: "disk path", roots: roots, rootsName: "image root", equalRootAllowed: false,
                               isKind: { $0 == S_IFREG }, kindName: "a regular file")
    }
}

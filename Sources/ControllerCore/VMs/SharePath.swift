import Foundation

/// Host directories given for 9p shares: absolute, existing directories whose real path
/// (symlinks resolved) lies under one of the configured share roots.
public enum SharePath {
    public static func validate(_ path: String, roots: [String]) throws -> String {
        guard path.hasPrefix("/"), !path.split(separator: "/").contains("..") else {
            throw ControllerError.invalidArgs("share path \(DiskName.quoted(path)) must be absolute, without '..'")
        }
        guard let resolved = realpath(path, nil) else {
            throw ControllerError.invalidArgs("share path \(DiskName.quoted(path)) does not exist")
        }
        let real = String(cString: resolved)
        free(resolved)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: real, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ControllerError.invalidArgs("share path \(DiskName.quoted(path)) is not a directory")
        }
        let allowed = roots.contains { root in
            let r = root.hasSuffix("/") ? String(root.dropLast()) : root
            return real == r || real.hasPrefix(r + "/")
        }
        guard allowed else {
            throw ControllerError.invalidArgs("share path \(DiskName.quoted(path)) (\(real)) is not under an allowed share root (\(roots.joined(separator: ", ")))")
        }
        return real
    }
}

/// Image paths given to AttachDisk: absolute, a regular file whose real path (symlinks
/// resolved, so a link cannot lead out) lies under one of the allowed image roots.
public enum ImagePath {
    public static func validate(_ path: String, roots: [String]) throws -> String {
        guard path.hasPrefix("/"), !path.split(separator: "/").contains("..") else {
            throw ControllerError.invalidArgs("disk path \(DiskName.quoted(path)) must be absolute, without '..'")
        }
        guard let resolved = realpath(path, nil) else {
            throw ControllerError.invalidArgs("disk path \(DiskName.quoted(path)) does not exist")
        }
        let real = String(cString: resolved)
        free(resolved)
        var st = stat()
        guard stat(real, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            throw ControllerError.invalidArgs("disk path \(DiskName.quoted(path)) is not a regular file")
        }
        let allowed = roots.contains { root in
            let r = root.hasSuffix("/") ? String(root.dropLast()) : root
            return real.hasPrefix(r + "/")
        }
        guard allowed else {
            throw ControllerError.invalidArgs("disk path \(DiskName.quoted(path)) (\(real)) is not under an allowed image root (\(roots.joined(separator: ", ")))")
        }
        return real
    }
}

import HostSystem
import FoundationEssentials

/// Host paths callers give (9p share sources, image paths): absolute, no `..`, resolved
/// with realpath (so a symlink cannot lead out) and required to lie under an allowed root.
enum RootedPath {
    /// The syntax check made before authorization: absolute, no `..`, no NUL, and under one
    /// of `roots` as written. It looks at nothing on the host, so its answer is the same
    /// whether the path exists or not; ``resolve`` follows links after authorization.
    static func lexical(_ path: String, what: String, roots: [String], rootsName: String) throws -> String {
        guard path.hasPrefix("/"), !path.split(separator: "/").contains(".."), !path.utf8.contains(0) else {
            throw ControllerError.invalidArgs("\(what) \(CallerText.quoted(path)) must be absolute, without '..'")
        }
        let within = roots.contains { root in
            let r = root.hasSuffix("/") ? String(root.dropLast()) : root
            return path == r || path.hasPrefix(r + "/")
        }
        guard within else {
            throw ControllerError.invalidArgs("\(what) \(CallerText.quoted(path)) is not under an allowed \(rootsName) (\(roots.joined(separator: ", ")))")
        }
        return path
    }

    /// The real path of `path` when it is a `kind` under one of `roots` (`equalRootAllowed`:
    /// the root itself counts); `InvalidArgs` naming the value otherwise.
    static func resolve(_ path: String, what: String, roots: [String], rootsName: String, equalRootAllowed: Bool,
                        kind: FileKind, kindName: String) throws -> String {
        _ = try lexical(path, what: what, roots: roots, rootsName: rootsName)
        guard let real = Files.resolved(path) else {
            throw ControllerError.invalidArgs("\(what) \(CallerText.quoted(path)) does not exist")
        }
        guard Files.status(real, followingLinks: true)?.kind == kind else {
            throw ControllerError.invalidArgs("\(what) \(CallerText.quoted(path)) is not \(kindName)")
        }
        let allowed = roots.contains { root in
            let r = root.hasSuffix("/") ? String(root.dropLast()) : root
            return (equalRootAllowed && real == r) || real.hasPrefix(r + "/")
        }
        guard allowed else {
            throw ControllerError.invalidArgs("\(what) \(CallerText.quoted(path)) (\(real)) is not under an allowed \(rootsName) (\(roots.joined(separator: ", ")))")
        }
        return real
    }
}

/// Host directories given for 9p shares: existing directories under the share roots.
public enum SharePath {
    /// The check before authorization (``RootedPath/lexical``).
    public static func checkSyntax(_ path: String, roots: [String]) throws {
        _ = try RootedPath.lexical(path, what: "share path", roots: roots, rootsName: "share root")
    }

    /// The real directory, after authorization.
    public static func validate(_ path: String, roots: [String]) throws -> String {
        try RootedPath.resolve(path, what: "share path", roots: roots, rootsName: "share root", equalRootAllowed: true,
                               kind: .directory, kindName: "a directory")
    }
}

/// Image paths given to AttachDisk: regular files under the image roots.
public enum ImagePath {
    /// The check before authorization (``RootedPath/lexical``).
    public static func checkSyntax(_ path: String, roots: [String]) throws {
        _ = try RootedPath.lexical(path, what: "disk path", roots: roots, rootsName: "image root")
    }

    /// The real file, after authorization.
    public static func validate(_ path: String, roots: [String]) throws -> String {
        try RootedPath.resolve(path, what: "disk path", roots: roots, rootsName: "image root", equalRootAllowed: false,
                               kind: .file, kindName: "a regular file")
    }
}

/// A caller's `<os><kernel>` or `<initrd>`: a regular file under the kernel roots, owned by
/// root (or lent by libvirt to qemu's user), writable by no one else and readable by everyone (so naming it reveals nothing a user could not read), and
/// not a managed disk (a guest writes those).
public enum KernelPath {
    public static func validate(_ path: String, roots: [String], imageDirectory: String) throws -> String {
        let real = try RootedPath.resolve(path, what: "kernel file", roots: roots, rootsName: "kernel root", equalRootAllowed: false,
                                          kind: .file, kindName: "a regular file")
        // libvirt's DAC driver lends the file to qemu's user while a VM boots from it (and
        // gives it back to root after): that owner counts as root's.
        let qemuUser = HostFacts.account("libvirt-qemu")?.uid
        guard let st = Files.status(real, followingLinks: true), st.owner == 0 || st.owner == qemuUser, st.readableByOthers, !st.writableByOthers else {
            throw ControllerError.invalidArgs("kernel file \(CallerText.quoted(path)) must be owned by root, readable by everyone and writable by no one else")
        }
        let images = imageDirectory.hasSuffix("/") ? imageDirectory : imageDirectory + "/"
        guard !real.hasPrefix(images) else {
            throw ControllerError.invalidArgs("kernel file \(CallerText.quoted(path)) is in the image directory; a guest-written file is no kernel")
        }
        return real
    }
}

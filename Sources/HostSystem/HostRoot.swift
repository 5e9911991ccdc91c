import FoundationEssentials
import Glibc

/// Host files seen below a root prefix (`/` on a real host, a sandbox copy in tests).
///
/// Reads never follow a symlink in the last component; edits are atomic (temporary file in
/// the same directory, fsync, rename, directory fsync), keep owner and mode, refuse to write
/// through symlinks anywhere below the root, and are skipped when nothing would change.
public struct HostRoot: Sendable {
    /// The prefix, without a trailing slash ("" for `/`).
    public let prefix: String

    public init(_ root: String) {
        var r = root
        while r.hasSuffix("/") { r.removeLast() }
        prefix = r
    }

    /// True on the real host.
    public var isRealRoot: Bool { prefix.isEmpty }

    /// The root as given to tools' `--prefix`/`--root` options.
    public var path: String { prefix.isEmpty ? "/" : prefix }

    /// The real path of host path `hostPath` (absolute, as seen on the host).
    public func real(_ hostPath: String) -> String { prefix + hostPath }

    /// The kind of file at `hostPath`, without following a final symlink.
    public func kind(_ hostPath: String) -> FileKind { Files.kind(real(hostPath)) }

    /// True when something exists at `hostPath` (following symlinks, as a program would).
    public func exists(_ hostPath: String) -> Bool { access(real(hostPath), F_OK) == 0 }

    /// The contents of a regular file, or nil when it does not exist. A symlink or other
    /// non-regular file in the last component is an error.
    public func read(_ hostPath: String) throws -> String? {
        let fd = open(real(hostPath), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        if fd < 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            if errno == ELOOP { throw SystemError.io("\(hostPath) is a symlink; refusing to follow it") }
            throw SystemError.io("cannot read \(hostPath): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            throw SystemError.io("\(hostPath) is not a regular file")
        }
        var bytes = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError.io("cannot read \(hostPath): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            bytes.append(contentsOf: buffer[0..<n])
            if bytes.count > 16 << 20 { throw SystemError.io("\(hostPath) is larger than 16 MiB") }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The names in a directory (empty when it does not exist), sorted.
    public func list(_ hostDirectory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: real(hostDirectory))) ?? []).sorted()
    }

    /// The target of the symlink at `hostPath`, or nil.
    public func linkTarget(_ hostPath: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink(real(hostPath), &buffer, buffer.count - 1)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Replaces (or creates) the file at `hostPath` with `contents` atomically.
    /// Returns false, touching nothing, when the file already has exactly these contents.
    @discardableResult
    public func write(_ hostPath: String, _ contents: String, newFileMode: mode_t = 0o644) throws -> Bool {
        if let current = try read(hostPath), current == contents { return false }
        let (directory, name) = try checkedParent(hostPath, create: true)
        var st = stat()
        let exists = lstat(real(hostPath), &st) == 0
        if exists, st.st_mode & S_IFMT != S_IFREG {
            throw SystemError.io("\(hostPath) is not a regular file; refusing to replace it")
        }
        var template = Array("\(directory)/.\(name).mvtmp-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw SystemError.io("cannot create a temporary file in \(directory): \(String(cString: strerror(errno)))") }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        let temporary = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        var committed = false
        defer {
            if !committed { unlink(temporary) }
        }
        do {
            defer { close(fd) }
            let bytes = Array(contents.utf8)
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw SystemError.io("cannot write \(hostPath): \(String(cString: strerror(errno)))")
                }
                offset += n
            }
            if exists {
                guard fchown(fd, st.st_uid, st.st_gid) == 0 else { throw SystemError.io("cannot keep the owner of \(hostPath): \(String(cString: strerror(errno)))") }
                guard fchmod(fd, st.st_mode & 0o7777) == 0 else { throw SystemError.io("cannot keep the mode of \(hostPath)") }
            } else {
                guard fchmod(fd, newFileMode) == 0 else { throw SystemError.io("cannot set the mode of \(hostPath)") }
            }
            guard fsync(fd) == 0 else { throw SystemError.io("cannot sync \(hostPath): \(String(cString: strerror(errno)))") }
        }
        guard rename(temporary, real(hostPath)) == 0 else {
            throw SystemError.io("cannot replace \(hostPath): \(String(cString: strerror(errno)))")
        }
        committed = true
        syncDirectory(directory)
        return true
    }

    /// Makes `hostPath` a symlink to `target` atomically (symlink under a temporary name,
    /// then rename). Returns false when it already is one. Refuses to replace anything but
    /// a symlink.
    @discardableResult
    public func symlink(_ hostPath: String, to target: String) throws -> Bool {
        if linkTarget(hostPath) == target { return false }
        let kind = kind(hostPath)
        guard kind == .missing || kind == .symlink else {
            throw SystemError.io("\(hostPath) exists and is not a symlink; refusing to replace it")
        }
        let (directory, name) = try checkedParent(hostPath, create: true)
        let temporary = "\(directory)/.\(name).mvtmp-\(UInt32.random(in: 0...UInt32.max))"
        guard Glibc.symlink(target, temporary) == 0 else {
            throw SystemError.io("cannot create a link in \(directory): \(String(cString: strerror(errno)))")
        }
        guard rename(temporary, real(hostPath)) == 0 else {
            unlink(temporary)
            throw SystemError.io("cannot create \(hostPath): \(String(cString: strerror(errno)))")
        }
        syncDirectory(directory)
        return true
    }

    /// Removes the symlink at `hostPath` (never a regular file). Returns false when absent.
    @discardableResult
    public func removeSymlink(_ hostPath: String) throws -> Bool {
        switch kind(hostPath) {
        case .missing: return false
        case .symlink:
            _ = try checkedParent(hostPath)
            guard unlink(real(hostPath)) == 0 else { throw SystemError.io("cannot remove \(hostPath): \(String(cString: strerror(errno)))") }
            return true
        default: throw SystemError.io("\(hostPath) is not a symlink; refusing to remove it")
        }
    }

    /// The real parent directory and file name of `hostPath`, after checking that no
    /// directory between the root and the file is a symlink (so an edit cannot escape).
    private func checkedParent(_ hostPath: String, create: Bool = false) throws -> (String, String) {
        guard hostPath.hasPrefix("/"), !hostPath.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) else {
            throw SystemError.invalidInput("'\(hostPath)' is not an absolute host path")
        }
        var components = hostPath.split(separator: "/").map(String.init)
        let name = components.removeLast()
        var current = prefix
        for component in components {
            current += "/" + component
            var st = stat()
            if lstat(current, &st) != 0 {
                guard create, errno == ENOENT else { throw SystemError.io("\(current) does not exist") }
                guard mkdir(current, 0o755) == 0 || errno == EEXIST else {
                    throw SystemError.io("cannot create \(current): \(String(cString: strerror(errno)))")
                }
                continue
            }
            guard st.st_mode & S_IFMT == S_IFDIR else {
                throw SystemError.io("\(current) is not a directory (symlinks are not followed for edits)")
            }
        }
        return (current, name)
    }

    private func syncDirectory(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}


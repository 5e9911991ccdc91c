import CLinux
import Glibc
import Synchronization

/// qemu's own image locks, taken by the service: open file description (OFD) locks on the
/// bytes qemu's file driver checks before it opens an image.
///
/// qemu (and qemu-img without `-U`) holds a shared lock on byte 100 + *p* for each
/// permission *p* it uses and on byte 200 + *p* for each one it does not share with others
/// (*p*: 0 consistent read, 1 write, 2 write unchanged, 3 resize); before it opens an image
/// it checks that nobody holds 200 + *p* for a permission it wants, nor 100 + *p* for one it
/// will not share. Holding byte 201 (and 203) therefore makes a qemu started meanwhile — a
/// `virsh start` — fail to open the image ("Failed to get "write" lock") instead of writing
/// into a file the service is copying or about to replace; and a lock already held on byte
/// 101 says another process has the image open for writing. OFD locks belong to the open
/// file, not the process: they conflict with qemu's, and closing this lock's descriptor is
/// the only way they go (a daemon that dies loses them with its descriptors).
public final class ImageLock: Sendable {
    /// The descriptor the locks live on, closed once by ``release()`` (the atomic decides
    /// which call closes it).
    private let fd: Int32
    private let closed = Atomic<Bool>(false)
    /// The file locked.
    public let path: String

    /// Bytes qemu checks: the perm bytes at 100 + p, the "not shared" bytes at 200 + p.
    static let writePerm: Int = 101
    static let notSharingWrite: Int = 201
    static let notSharingResize: Int = 203

    /// Locks `path` against writers: no qemu may open it for writing or resizing while this
    /// is held. Another process in the way is a ``SystemError`` of kind `inUse` naming the
    /// file; other failures are `io`.
    public static func againstWriters(_ path: String) throws(SystemError) -> ImageLock {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw SystemError.failed("cannot open \(path) to lock it") }
        // Locks first, then the check, as qemu does: a qemu opening the image between the
        // two finds the locks, or holds byte 101 by the time it is checked.
        do throws(SystemError) {
            for byte in [notSharingWrite, notSharingResize] { try lock(fd, byte: byte, path: path) }
            if try lockedByOthers(fd, byte: writePerm, path: path) {
                throw SystemError.inUse("\(path) is open for writing by another process (a qemu started outside the service?)")
            }
        } catch {
            close(fd)
            throw error
        }
        return ImageLock(fd: fd, path: path)
    }

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    /// Gives the locks back (closes the descriptor); the second call does nothing.
    public func release() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        close(fd)
    }

    deinit { release() }

    private static func lock(_ fd: Int32, byte: Int, path: String) throws(SystemError) {
        guard mv_ofd_lock_byte(fd, Int64(byte), 0) == 0 else {
            let code = errno
            if code == EAGAIN || code == EACCES {
                throw SystemError.inUse("\(path) is locked by another process (a qemu started outside the service?)", code: code)
            }
            throw SystemError.failed("cannot lock \(path)", code: code)
        }
    }

    /// True when another open file holds a lock on `byte` (one that would stop a write lock).
    private static func lockedByOthers(_ fd: Int32, byte: Int, path: String) throws(SystemError) -> Bool {
        let answer = mv_ofd_byte_locked(fd, Int64(byte))
        guard answer >= 0 else { throw SystemError.failed("cannot read the locks of \(path)") }
        return answer == 1
    }
}

import FoundationEssentials
import CLinux
import Glibc

/// The format the service recorded for an image, kept with the image itself.
///
/// The record is the extended attribute `trusted.multiverse.format` of the image file.
/// Why an attribute and not a file in the state directory: it stays with the image when
/// `systemctl clean` or a package purge removes the state directory, it is written on the
/// private temporary image before that is linked or renamed into place (so the image and
/// its record appear together, atomically), and nothing a guest can do writes it: a guest
/// writes the image's *contents*, and `trusted.` attributes need `CAP_SYS_ADMIN` in the
/// host's user namespace. A copy by hand (`cp` without `--preserve=xattr`) drops the record,
/// so the copy must be adopted (Manager.AdoptDisk) before the service uses it.
///
/// A process that is not root (the Core tests of `scripts/test --fast`, a developer's
/// unprivileged run) cannot write `trusted.` attributes and keeps the record as
/// `user.multiverse.format` instead; the daemon runs as root and only ever reads and writes
/// the `trusted.` one.
public enum ImageFormatRecord {
    /// The attribute's name: `trusted.multiverse.format` as root (the daemon), else
    /// `user.multiverse.format`.
    public static let attribute = geteuid() == 0 ? "trusted.multiverse.format" : "user.multiverse.format"
    /// The formats the service manages.
    public static let managed = ["raw", "qcow2"]

    /// The recorded format of the file at `path` (never following a symlink), or nil when
    /// it has none.
    public static func read(_ path: String) -> String? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = mv_get_xattr(path, attribute, &buffer, buffer.count)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }

    /// Removes the record of the file at `path`.
    public static func remove(_ path: String) { _ = mv_remove_xattr(path, attribute) }

    /// Records `format` for the file at `path`.
    public static func write(_ path: String, format: String) throws {
        let bytes = Array(format.utf8)
        guard mv_set_xattr(path, attribute, bytes, bytes.count) == 0 else {
            let e = errno
            let hint = e == EPERM ? " (trusted.* attributes need CAP_SYS_ADMIN)"
                : e == ENOTSUP || e == EOPNOTSUPP ? " (the file system of the image directory has no extended attributes)" : ""
            throw SystemError.io("cannot record the format of \(path): \(String(cString: strerror(e)))\(hint)")
        }
    }
}

/// The image formats a file's first bytes announce. Used only to *refuse* (adopting an
/// image as raw whose contents look like another format, a warning at upgrade) — never to
/// decide how to open an image.
public enum ImageHeader {
    /// Magic numbers of the image formats qemu's block drivers would probe, at their offsets.
    static let magics: [(format: String, offset: Int, bytes: [UInt8])] = [
        ("qcow2", 0, Array("QFI".utf8) + [0xfb]),           // qcow and qcow2
        ("qed", 0, Array("QED".utf8) + [0x00]),
        ("vmdk", 0, Array("KDMV".utf8)),
        ("vmdk", 0, Array("COWD".utf8)),
        ("vmdk", 0, Array("# Disk DescriptorFile".utf8)),
        ("vdi", 64, [0x7f, 0x10, 0xda, 0xbe]),
        ("vhdx", 0, Array("vhdxfile".utf8)),
        ("vpc", 0, Array("conectix".utf8)),
        ("luks", 0, Array("LUKS".utf8) + [0xba, 0xbe]),
        ("parallels", 0, Array("WithoutFreeSpace".utf8)),
        ("parallels", 0, Array("WithouFreSpacExt".utf8)),
        ("bochs", 0, Array("Bochs Virtual HD Image".utf8)),
        ("cloop", 0, Array("#!/bin/sh\n#V2.0 Format".utf8)),
    ]

    /// The format whose header `bytes` (the first bytes of an image) start with, if any.
    public static func foreignFormat(_ bytes: [UInt8]) -> String? {
        for m in magics where bytes.count >= m.offset + m.bytes.count {
            if Array(bytes[m.offset..<(m.offset + m.bytes.count)]) == m.bytes { return m.format }
        }
        return nil
    }

    /// The format announced by the first bytes of the file at `path` (not following a symlink).
    public static func foreignFormat(ofFile path: String) -> String? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = read(fd, &buffer, buffer.count)
        return n > 0 ? foreignFormat(Array(buffer[0..<n])) : nil
    }
}

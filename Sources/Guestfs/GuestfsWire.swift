import Glibc

/// The messages between the daemon and the appliance helper (`multiverse-guestfs`), which
/// owns the libguestfs handle and runs as an unprivileged user.
///
/// One stream socket carries frames: a 4-byte little-endian length, then the payload. A
/// request is the call's name and its arguments; the helper answers each request with zero
/// or more progress frames and then one result or one error frame. Values are written
/// positionally (each call's arguments and results in a fixed order known to both sides):
/// integers as 8 bytes little-endian, strings and byte strings as a 4-byte length and the
/// bytes, string lists as a count and the strings.
public enum GuestfsWire {
    /// The largest frame either side accepts (a `pread` reply is at most 2 MiB; a listing
    /// chunk of 1000 names is far below this).
    public static let maxFrame = 16 << 20

    /// The first byte of every reply frame.
    public enum ReplyKind: UInt8, Sendable {
        case result = 0
        case error = 1
        case progress = 2
    }

    /// Writes one frame; false when the peer is gone.
    public static func send(_ fd: Int32, _ payload: [UInt8]) -> Bool {
        var frame = [UInt8]()
        frame.reserveCapacity(payload.count + 4)
        let n = UInt32(payload.count)
        frame += [UInt8(n & 0xff), UInt8((n >> 8) & 0xff), UInt8((n >> 16) & 0xff), UInt8(n >> 24)]
        frame += payload
        return frame.withUnsafeBytes { writeAll(fd, $0) }
    }

    /// Reads one frame; nil at end of stream, on a read error or on a frame over the limit.
    public static func receive(_ fd: Int32) -> [UInt8]? {
        var header = [UInt8](repeating: 0, count: 4)
        guard header.withUnsafeMutableBytes({ readAll(fd, $0) }) else { return nil }
        let n = Int(header[0]) | Int(header[1]) << 8 | Int(header[2]) << 16 | Int(header[3]) << 24
        guard n <= maxFrame else { return nil }
        var payload = [UInt8](repeating: 0, count: n)
        guard n == 0 || payload.withUnsafeMutableBytes({ readAll(fd, $0) }) else { return nil }
        return payload
    }

    private static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < buffer.count {
            let r = Glibc.send(fd, buffer.baseAddress! + done, buffer.count - done, Int32(MSG_NOSIGNAL))
            if r < 0 && errno == EINTR { continue }
            guard r > 0 else { return false }
            done += r
        }
        return true
    }

    private static func readAll(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Bool {
        var done = 0
        while done < buffer.count {
            let r = Glibc.read(fd, buffer.baseAddress! + done, buffer.count - done)
            if r < 0 && errno == EINTR { continue }
            guard r > 0 else { return false }
            done += r
        }
        return true
    }
}

/// Builds a frame's payload.
public struct WireWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func int(_ value: Int64) {
        let v = UInt64(bitPattern: value)
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8((v >> UInt64(shift)) & 0xff)) }
    }

    public mutating func int(_ value: Int) { int(Int64(value)) }
    public mutating func int(_ value: Int32) { int(Int64(value)) }
    public mutating func int(_ value: UInt64) { int(Int64(bitPattern: value)) }
    public mutating func bool(_ value: Bool) { int(Int64(value ? 1 : 0)) }

    public mutating func bytes<C: Collection>(_ value: C) where C.Element == UInt8 {
        length(value.count)
        bytes += value
    }

    public mutating func string(_ value: String) { bytes(Array(value.utf8)) }

    public mutating func strings(_ value: [String]) {
        length(value.count)
        for s in value { string(s) }
    }

    private mutating func length(_ n: Int) {
        let v = UInt32(n)
        bytes += [UInt8(v & 0xff), UInt8((v >> 8) & 0xff), UInt8((v >> 16) & 0xff), UInt8(v >> 24)]
    }
}

/// Reads a frame's payload in the order it was written; a short or malformed payload throws.
public struct WireReader: Sendable {
    private let data: [UInt8]
    private var at = 0

    public init(_ bytes: [UInt8]) { data = bytes }

    /// True when every value was read.
    public var atEnd: Bool { at == data.count }

    public mutating func int() throws -> Int64 {
        guard data.count - at >= 8 else { throw WireError() }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(data[at + i]) << UInt64(8 * i) }
        at += 8
        return Int64(bitPattern: v)
    }

    public mutating func int32() throws -> Int32 { Int32(truncatingIfNeeded: try int()) }
    public mutating func uint64() throws -> UInt64 { UInt64(bitPattern: try int()) }
    public mutating func bool() throws -> Bool { try int() != 0 }
    public mutating func byte() throws -> UInt8 {
        guard at < data.count else { throw WireError() }
        defer { at += 1 }
        return data[at]
    }

    public mutating func bytes() throws -> [UInt8] {
        let n = try length()
        guard data.count - at >= n else { throw WireError() }
        defer { at += n }
        return Array(data[at..<at + n])
    }

    public mutating func string() throws -> String { String(decoding: try bytes(), as: UTF8.self) }

    public mutating func strings() throws -> [String] {
        let n = try length()
        guard n <= data.count - at else { throw WireError() }
        return try (0..<n).map { _ in try string() }
    }

    private mutating func length() throws -> Int {
        guard data.count - at >= 4 else { throw WireError() }
        let n = Int(data[at]) | Int(data[at + 1]) << 8 | Int(data[at + 2]) << 16 | Int(data[at + 3]) << 24
        at += 4
        return n
    }
}

/// A payload that does not hold what its call says it should.
public struct WireError: Error, Sendable {
    public init() {}
}

extension Partition {
    public func write(to w: inout WireWriter) {
        w.int(number); w.int(start); w.int(end); w.int(size)
    }

    public init(from r: inout WireReader) throws {
        self.init(number: try r.int32(), start: try r.uint64(), end: try r.uint64(), size: try r.uint64())
    }
}

extension FileStat {
    public func write(to w: inout WireWriter) {
        w.int(Int64(mode)); w.int(uid); w.int(gid); w.int(size); w.int(mtime)
    }

    public init(from r: inout WireReader) throws {
        self.init(mode: UInt32(truncatingIfNeeded: try r.int()), uid: try r.int(), gid: try r.int(),
                  size: try r.uint64(), mtime: try r.int())
    }
}

/// The calls the helper answers, one per libguestfs operation the service uses (plus
/// `shutdown`). Both sides switch over this list, so a name cannot drift.
public enum GuestfsCall: String, Sendable, CaseIterable {
    case addDrive, launch, shutdown, sync
    case listDevices, listFilesystems, partList, partGetParttype, partDisk, partExpandGPT, partResize, partShrink
    case blockdevSize, blockdevSectorSize, vfsType, vfsMinimumSize, mkfs, e2fsckForce, resize2fs, resize2fsSize
    case xfsGrow, btrfsResize, inspectOS, inspectInfo, inspectMountpoints, mount, umountAll, mounts, statvfs
    case lstat, realpath, ls, lstatList, readlinkList, pread, write, writeAppend, rename, rm, chmod, lchown, isDir
}

import FoundationEssentials
import HostSystem

/// One point of a disk's backup chain: `BACKUP_DIR/ID.qcow2` (a qcow2 overlay whose backing
/// file is the parent point's, by relative name and explicit format; a full point has
/// none), `ID.index` (the SHA-256 of each block of the disk as it was at the point) and
/// this manifest, `ID.point`, written last: a point exists once its manifest does.
public struct BackupPoint: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        case full, incremental
    }
    public var id: String
    public var disk: String
    public var kind: Kind
    /// The point this one is an overlay of (incremental points).
    public var parent: String?
    /// Seconds since the epoch.
    public var created: UInt64
    /// Bytes of the point's image file.
    public var size: UInt64
    /// The disk's virtual size at the point.
    public var virtualSize: UInt64
    /// The disk's format when the point was taken (a restore writes this format).
    public var format: String
    /// The block size of the index.
    public var blockSize: Int
    /// SHA-256 of the point's index: the point's identity, checked on restore and verify.
    public var digest: String
    /// The dirty bitmap left on the disk to track writes after this point (nil: none, as
    /// for raw disks).
    public var bitmap: String?
    /// Why the point is full when an incremental one was possible in principle.
    public var reason: String?
}

/// What a caller asks `Backup` for.
public enum BackupMode: String, Sendable, CaseIterable {
    /// An incremental point when the chain is intact, a full one otherwise.
    case auto
    case full
    case incremental
    /// The image backups from before chains: a whole copy, compressed on request.
    case image

    /// The `mode` option as a caller sent it (nil: not given).
    public init?(option text: String?) throws {
        guard let text else { return nil }
        guard let mode = BackupMode(rawValue: text) else {
            throw ControllerError.invalidArgs("mode must be auto, full, incremental or image, not \(CallerText.quoted(text))")
        }
        self = mode
    }
}

/// The rules of backup chains, without I/O: which kind of point to make, the index's
/// layout, which blocks a new point changed.
public enum BackupChain {
    /// The block size of the index: qemu's default qcow2 cluster and bitmap granularity,
    /// so the blocks a bitmap backup copies are whole index blocks.
    public static let blockSize = 65536

    /// The bitmap that tracks writes since point `id`.
    public static func bitmapName(_ id: String) -> String { "mv-\(id)" }
    /// Bitmaps the service owns start with this.
    public static let bitmapPrefix = "mv-"

    /// The decision for the next point.
    public enum Plan: Sendable, Equatable {
        /// A full point; `reason` says why it is not incremental (nil: asked for).
        case full(reason: String?)
        /// An incremental point on `parent`, copying what `parent`'s bitmap marks.
        case incremental(parent: BackupPoint)
    }

    /// Decides the next point of `disk` from the service's records (`head`, the disk's
    /// newest point) checked against what the image says (`image`, from `qemu-img info`).
    /// `incremental` when the chain is broken is `InvalidState` naming why; an image that
    /// cannot track changes at all is `NotSupported`.
    public static func plan(mode: BackupMode, disk: DiskInfo, image: ImageInfo, head: BackupPoint?, headUsable: Bool) throws -> Plan {
        let name = disk.name
        let reason: String
        if disk.format != "qcow2" {
            reason = "disk \(name) is \(disk.format): raw disks cannot track changes, so every point is full"
            if mode == .incremental { throw ControllerError.notSupported(reason) }
        } else if image.compat == "0.10" {
            reason = "disk \(name) is a qcow2 version 2 image, which cannot hold change tracking; convert it with qemu-img amend -o compat=1.1"
            if mode == .incremental { throw ControllerError.notSupported(reason) }
        } else if let head {
            let bitmap = image.bitmaps.first { $0.name == head.bitmap }
            if !headUsable {
                reason = "the files of point \(head.id) are missing or unreadable"
            } else if head.virtualSize != disk.virtualSize {
                reason = "disk \(name) was resized since point \(head.id)"
            } else if head.bitmap == nil || bitmap == nil {
                reason = "change tracking since point \(head.id) is gone (the disk was restored, formatted, reverted or replaced)"
            } else if bitmap!.flags.contains("in-use") {
                reason = "change tracking since point \(head.id) is inconsistent (qemu did not close the disk cleanly)"
            } else if mode == .full {
                return .full(reason: nil)
            } else {
                return .incremental(parent: head)
            }
            if mode == .incremental { throw ControllerError.invalidState("no incremental point of disk \(name) is possible: \(reason)") }
        } else {
            reason = "disk \(name) has no earlier point"
            if mode == .incremental { throw ControllerError.invalidState("no incremental point of disk \(name) is possible: \(reason)") }
        }
        return .full(reason: mode == .full ? nil : reason)
    }

    /// The service's bitmaps on the image other than `keep`: left by a point that was never
    /// recorded, or tracking since a point that is no longer the newest.
    public static func staleBitmaps(_ image: ImageInfo, keep: String?) -> [String] {
        image.bitmaps.map(\.name).filter { $0.hasPrefix(bitmapPrefix) && $0 != keep }
    }

    // MARK: the index

    /// The index file's first line.
    static func indexHeader(virtualSize: UInt64) -> [UInt8] {
        Array("multiverse-block-index 1 block=\(blockSize) size=\(virtualSize)\n".utf8)
    }

    /// The index of an image of `virtualSize` bytes from its block digests.
    public static func index(virtualSize: UInt64, digests: [[UInt8]]) -> [UInt8] {
        var bytes = indexHeader(virtualSize: virtualSize)
        bytes.reserveCapacity(bytes.count + digests.count * 32)
        for d in digests { bytes += d }
        return bytes
    }

    /// The block digests in an index (nil: not an index of this virtual size).
    public static func digests(in index: [UInt8], virtualSize: UInt64) -> [[UInt8]]? {
        let header = indexHeader(virtualSize: virtualSize)
        let count = blockCount(virtualSize)
        guard index.count == header.count + count * 32, Array(index.prefix(header.count)) == header else { return nil }
        return (0..<count).map { Array(index[(header.count + $0 * 32)..<(header.count + $0 * 32 + 32)]) }
    }

    public static func blockCount(_ virtualSize: UInt64) -> Int { Int((virtualSize + UInt64(blockSize) - 1) / UInt64(blockSize)) }

    /// Which blocks of an image to read, and where their bytes are, from its map (`files[d]`
    /// is the file at depth d). With `inherited` (the parent's digests), a block the image
    /// itself (depth 0) does not touch keeps its parent's digest and is not read: only what
    /// the point wrote is read. Returns the blocks to hash.
    public static func blocksToHash(map: [ImageMapRange], virtualSize: UInt64, inheriting: Bool) throws -> [BlockHasher.Block] {
        let size = UInt64(blockSize)
        var blocks: [BlockHasher.Block] = []
        var current: (number: Int, pieces: [BlockHasher.Piece], own: Bool)?
        func finish() {
            if let c = current, c.own || !inheriting { blocks.append(BlockHasher.Block(number: c.number, pieces: c.pieces)) }
            current = nil
        }
        var expected: UInt64 = 0
        for range in map {
            guard range.start == expected else {
                throw ControllerError.io("qemu-img map left a gap at offset \(expected)")
            }
            expected = range.start + range.length
            var at = range.start
            let end = range.start + range.length
            while at < end {
                let number = Int(at / size)
                let blockEnd = min((UInt64(number) + 1) * size, virtualSize)
                let stop = min(end, blockEnd)
                let length = Int(stop - at)
                if current?.number != number {
                    finish()
                    current = (number, [], false)
                }
                let piece: BlockHasher.Piece
                if range.data {
                    guard let offset = range.offset else {
                        throw ControllerError.io("a compressed cluster at offset \(at) cannot be indexed")
                    }
                    piece = .data(file: range.depth, offset: offset + (at - range.start), length: length)
                } else {
                    piece = .zeros(length: length)
                }
                current!.pieces.append(piece)
                if range.depth == 0 { current!.own = true }
                at = stop
            }
        }
        finish()
        guard expected >= virtualSize else { throw ControllerError.io("qemu-img map ended at \(expected) of \(virtualSize) bytes") }
        return blocks
    }
}

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
    /// Points made since the chain's full point (0 for a full point): what `full_every`
    /// counts. Merges do not change it.
    public var sequence: Int = 0
    /// Set while the point is being deleted (its data merged into the next point): such a
    /// point is no longer listed or restorable, and a restart finishes the deletion.
    public var deleting: Bool?
    /// The order in which the backup store made its points (`created` has one-second
    /// resolution, and points are made faster than that).
    public var serial: UInt64 = 0
    /// The VM point this point belongs to (VM.Backup: one point of each of the VM's disks,
    /// taken in one qemu transaction), by the VM point's id; nil for a disk's own point.
    public var group: String?
    /// The disks of VM point `group`, by name: the VM point exists when each of them has its
    /// point (a daemon stopped between their manifests leaves an incomplete one, which is no
    /// VM point; its disks' points stay theirs). Nil in manifests written before it was
    /// recorded: such a VM point is whatever points name it.
    public var groupDisks: [String]?
    /// Whether a running VM's qemu made the point (libvirt's push backup) rather than the
    /// service's storage daemon.
    public var live: Bool?

    public init(id: String, disk: String, kind: Kind, parent: String?, created: UInt64, size: UInt64, virtualSize: UInt64,
                format: String, blockSize: Int, digest: String, bitmap: String?, reason: String?, sequence: Int = 0,
                deleting: Bool? = nil, serial: UInt64 = 0, group: String? = nil, groupDisks: [String]? = nil, live: Bool? = nil) {
        (self.id, self.disk, self.kind, self.parent, self.created, self.size) = (id, disk, kind, parent, created, size)
        (self.virtualSize, self.format, self.blockSize, self.digest, self.bitmap, self.reason) = (virtualSize, format, blockSize, digest, bitmap, reason)
        (self.sequence, self.deleting, self.serial, self.group, self.live) = (sequence, deleting, serial, group, live)
        self.groupDisks = groupDisks
    }

    private enum CodingKeys: String, CodingKey {
        case id, disk, kind, parent, created, size, virtualSize, format, blockSize, digest, bitmap, reason, sequence, deleting, serial, group, groupDisks, live
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(id: try c.decode(String.self, forKey: .id), disk: try c.decode(String.self, forKey: .disk),
                  kind: try c.decode(Kind.self, forKey: .kind), parent: try c.decodeIfPresent(String.self, forKey: .parent),
                  created: try c.decode(UInt64.self, forKey: .created), size: try c.decode(UInt64.self, forKey: .size),
                  virtualSize: try c.decode(UInt64.self, forKey: .virtualSize), format: try c.decode(String.self, forKey: .format),
                  blockSize: try c.decode(Int.self, forKey: .blockSize), digest: try c.decode(String.self, forKey: .digest),
                  bitmap: try c.decodeIfPresent(String.self, forKey: .bitmap), reason: try c.decodeIfPresent(String.self, forKey: .reason),
                  sequence: try c.decodeIfPresent(Int.self, forKey: .sequence) ?? 0, deleting: try c.decodeIfPresent(Bool.self, forKey: .deleting),
                  serial: try c.decodeIfPresent(UInt64.self, forKey: .serial) ?? 0, group: try c.decodeIfPresent(String.self, forKey: .group),
                  groupDisks: try c.decodeIfPresent([String].self, forKey: .groupDisks), live: try c.decodeIfPresent(Bool.self, forKey: .live))
    }
}

/// SetBackupPolicy's policy: retention (the newest `keepLast` points kept, older ones
/// merged away; 0: all kept), when auto makes a full point (`fullEvery`: every Nth point;
/// `maxChain`: when a restore of the newest point would read that many points; 0: never
/// for that reason), and a schedule (`intervalSeconds`: a point that often while no VM runs
/// on the disk; 0: none).
public struct BackupPolicy: Codable, Sendable, Equatable {
    public var keepLast: UInt32 = 0
    public var fullEvery: UInt32 = 0
    public var maxChain: UInt32 = 0
    public var intervalSeconds: UInt32 = 0

    public init() {}

    private enum CodingKeys: String, CodingKey { case keepLast, fullEvery, maxChain, intervalSeconds }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        keepLast = try c.decodeIfPresent(UInt32.self, forKey: .keepLast) ?? 0
        fullEvery = try c.decodeIfPresent(UInt32.self, forKey: .fullEvery) ?? 0
        maxChain = try c.decodeIfPresent(UInt32.self, forKey: .maxChain) ?? 0
        intervalSeconds = try c.decodeIfPresent(UInt32.self, forKey: .intervalSeconds) ?? 0
    }
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
    /// `chainLength`: how many points a restore of `head` reads (for `max_chain`).
    public static func plan(mode: BackupMode, disk: DiskInfo, image: ImageInfo, head: BackupPoint?, headUsable: Bool,
                            isBase: Bool = false, policy: BackupPolicy = BackupPolicy(), chainLength: Int = 1) throws -> Plan {
        let name = disk.name
        let reason: String
        if isBase {
            reason = "other disks are built on disk \(name): it cannot change while they exist and is not tracked, so every point is full"
            if mode == .incremental { throw ControllerError.notSupported(reason) }
        } else if disk.format != "qcow2" {
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
                reason = "change tracking since point \(head.id) is gone (the disk was restored, formatted, reverted or replaced, or a VM's qemu was killed before it stored it)"
            } else if bitmap!.flags.contains("in-use") {
                reason = "change tracking since point \(head.id) is inconsistent (qemu did not close the disk cleanly)"
            } else if mode == .full {
                return .full(reason: nil)
            } else if mode == .auto, policy.fullEvery > 0, head.sequence + 1 >= Int(policy.fullEvery) {
                return .full(reason: "every \(policy.fullEvery)th point is full (full_every)")
            } else if mode == .auto, policy.maxChain > 0, chainLength >= Int(policy.maxChain) {
                return .full(reason: "the chain of point \(head.id) is \(chainLength) points long (max_chain \(policy.maxChain))")
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

    /// The index of an image of `virtualSize` bytes from its block digests (32 bytes each).
    public static func index(virtualSize: UInt64, digests: [UInt8]) -> [UInt8] {
        indexHeader(virtualSize: virtualSize) + digests
    }

    /// The block digests in an index (nil: not an index of this virtual size).
    public static func digests(in index: [UInt8], virtualSize: UInt64) -> [UInt8]? {
        let header = indexHeader(virtualSize: virtualSize)
        guard index.count == header.count + blockCount(virtualSize) * 32, index.starts(with: header) else { return nil }
        return Array(index[header.count...])
    }

    public static func blockCount(_ virtualSize: UInt64) -> Int { Int((virtualSize + UInt64(blockSize) - 1) / UInt64(blockSize)) }

    /// The most blocks in one run: a unit of work for one hashing thread (16 MiB).
    static let runBlocks = 256

    /// Which blocks of an image to hash, and where their bytes are, from its map (`files[d]`
    /// is the file at depth d). With `inheriting` (the parent's digests are the base), a
    /// block the image itself (depth 0) does not touch keeps its parent's digest and is not
    /// read: only what the point wrote is read. Adjacent pieces are merged, so a run holds
    /// few pieces however many blocks it covers.
    public static func runsToHash(map: [ImageMapRange], virtualSize: UInt64, inheriting: Bool) throws -> [BlockHasher.Run] {
        let size = UInt64(blockSize)
        var runs: [BlockHasher.Run] = []
        var run: BlockHasher.Run?
        var runLength = 0
        var block: (number: Int, pieces: [BlockHasher.Piece], own: Bool)?
        func append(_ piece: BlockHasher.Piece, to pieces: inout [BlockHasher.Piece]) {
            switch (pieces.last, piece) {
            case (.zeros(let a)?, .zeros(let b)):
                pieces[pieces.count - 1] = .zeros(length: a + b)
            case (.data(let f, let o, let l)?, .data(let g, let p, let m)) where f == g && o + UInt64(l) == p:
                pieces[pieces.count - 1] = .data(file: f, offset: o, length: l + m)
            default:
                pieces.append(piece)
            }
        }
        func finishRun() {
            if let r = run { runs.append(r) }
            run = nil
            runLength = 0
        }
        func finishBlock() {
            guard let b = block else { return }
            block = nil
            guard b.own || !inheriting else { return finishRun() }
            if run == nil || run!.firstBlock + runLength != b.number || runLength >= runBlocks { finishRun() }
            if run == nil { run = BlockHasher.Run(firstBlock: b.number, pieces: []) }
            for piece in b.pieces { append(piece, to: &run!.pieces) }
            runLength += 1
        }
        var expected: UInt64 = 0
        for range in map {
            guard range.start == expected else { throw ControllerError.io("qemu-img map left a gap at offset \(expected)") }
            let end = range.start + range.length
            guard end <= virtualSize else { throw ControllerError.io("qemu-img map goes past the disk's \(virtualSize) bytes (to \(end))") }
            expected = end
            var at = range.start
            while at < end {
                let number = Int(at / size)
                let stop = min(end, min((UInt64(number) + 1) * size, virtualSize))
                let length = Int(stop - at)
                if block?.number != number {
                    finishBlock()
                    block = (number, [], false)
                }
                let piece: BlockHasher.Piece
                if range.data && !range.zero {
                    guard let offset = range.offset else { throw ControllerError.io("a compressed cluster at offset \(at) cannot be indexed") }
                    piece = .data(file: range.depth, offset: offset + (at - range.start), length: length)
                } else {
                    piece = .zeros(length: length)
                }
                append(piece, to: &block!.pieces)
                if range.depth == 0 { block!.own = true }
                at = stop
            }
        }
        finishBlock()
        finishRun()
        guard expected == virtualSize else { throw ControllerError.io("qemu-img map ended at \(expected) of \(virtualSize) bytes") }
        return runs
    }
}

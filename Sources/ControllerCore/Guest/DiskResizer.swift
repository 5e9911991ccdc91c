import FoundationEssentials
import Guestfs

/// What a resize did, for the job's Result.
public struct ResizeOutcome: Sendable, Equatable {
    public var oldSize: UInt64
    public var newSize: UInt64
    public var filesystemGrown = false
    public var filesystemShrunk = false
    /// Type of the filesystem that was resized ("" if none).
    public var filesystem = ""
    /// Why the filesystem was left alone, if it was.
    public var note = ""
}

/// Grows and shrinks an image together with its last partition and filesystem. It works on
/// the image it is given (the caller hands it a private copy and renames it over the disk
/// at the end, so a cancel or failure leaves the disk untouched).
public struct DiskResizer: Sendable {
    public let qemuImg: QemuImg
    public let appliances: ApplianceCache

    public init(qemuImg: QemuImg, appliances: ApplianceCache) {
        self.qemuImg = qemuImg
        self.appliances = appliances
    }

    /// Smallest slack kept above a filesystem's minimum size when shrinking.
    public static func margin(forMinimum minimum: UInt64) -> UInt64 { max(64 << 20, minimum / 10) }

    /// Grows `path` (format `format`) from `oldSize` to `newSize`, then (if `filesystem`)
    /// the last partition (moving a GPT backup header) and its ext2/3/4, xfs or btrfs.
    public func grow(_ path: String, format: String, disk: String, from oldSize: UInt64, to newSize: UInt64,
                     filesystem: Bool, progress: @escaping @Sendable (Double) -> Void) async throws -> ResizeOutcome {
        try await qemuImg.resize(path, format: format, size: newSize, shrink: false)
        progress(0.2)
        let base = ResizeOutcome(oldSize: oldSize, newSize: newSize)
        guard filesystem else {
            var outcome = base
            outcome.note = "filesystem=false: image only"
            return outcome
        }
        return try await appliances.withOneOff(label: "resize of \(disk)") { s in
            var outcome = base
            try s.addDrive(path, format: format, readonly: false)
            try s.launch()
            progress(0.6)
            let layout = try DiskLayout.read(s)
            if let part = layout.partition {
                if layout.tableType == "gpt" { try s.partExpandGPT(layout.device) }
                guard layout.tableType == "gpt" || part.number <= 4 else {
                    outcome.note = "the last partition is a logical one; left alone"
                    return outcome
                }
                let sectors = try s.blockdevSize(layout.device) / layout.sectorSize
                let end = Int64(sectors) - 1 - Int64(layout.tailReserve / layout.sectorSize)
                try s.partResize(layout.device, number: part.number, endSector: end)
            }
            progress(0.75)
            // libguestfs reports progress for the long filesystem calls that support it.
            s.onProgress { position, total in if total > 0 { progress(0.75 + 0.2 * Double(position) / Double(total)) } }
            defer { s.onProgress(nil) }
            outcome.filesystem = layout.filesystemType
            let fsdev = layout.filesystemDevice
            switch layout.filesystemType {
            case "ext2", "ext3", "ext4":
                try s.e2fsckForce(fsdev)
                try s.resize2fs(fsdev)
            case "xfs":
                try s.mount(fsdev, at: "/", readonly: false)
                try s.xfsGrow("/")
                try s.umountAll()
            case "btrfs":
                try s.mount(fsdev, at: "/", readonly: false)
                try s.btrfsResize("/", size: nil)
                try s.umountAll()
            case "":
                outcome.note = "no filesystem on \(fsdev); partition grown only"
                return outcome
            default:
                outcome.note = "\(layout.filesystemType) on \(fsdev) cannot be grown by the service; partition grown only"
                return outcome
            }
            try s.sync()
            outcome.filesystemGrown = true
            return outcome
        }
    }

    /// Shrinks `path` to `newSize`: checks the filesystem, refuses sizes below its minimum
    /// plus a margin (`InvalidArgs` with the numbers), shrinks the filesystem and the
    /// partition, then the image; a GPT's backup header is rewritten at the new end.
    public func shrink(_ path: String, format: String, disk: String, from oldSize: UInt64, to newSize: UInt64,
                       progress: @escaping @Sendable (Double) -> Void) async throws -> ResizeOutcome {
        let base = ResizeOutcome(oldSize: oldSize, newSize: newSize)
        let (table, outcome) = try await appliances.withOneOff(label: "shrink of \(disk)") { s -> (String?, ResizeOutcome) in
            var outcome = base
            try s.addDrive(path, format: format, readonly: false)
            try s.launch()
            progress(0.45)
            let layout = try DiskLayout.read(s)
            let fsdev = layout.filesystemDevice
            outcome.filesystem = layout.filesystemType
            switch layout.filesystemType {
            case "xfs":
                throw ControllerError.notSupported("disk \(disk): XFS (on \(fsdev)) cannot be shrunk")
            case "ext2", "ext3", "ext4", "btrfs":
                break
            case "":
                throw ControllerError.notSupported("disk \(disk): no filesystem found on \(fsdev); shrinking would cut data blindly")
            default:
                throw ControllerError.notSupported("disk \(disk): shrinking \(layout.filesystemType) (on \(fsdev)) is not supported")
            }
            if layout.partition == nil && layout.tableType != nil {
                throw ControllerError.notSupported("disk \(disk): partition table without partitions")
            }
            if layout.isExt { try s.e2fsckForce(fsdev) }
            let minimum = try s.vfsMinimumSize(fsdev)
            let margin = Self.margin(forMinimum: minimum)
            let start = layout.partition?.start ?? 0
            let needed = start + minimum + margin + layout.tailReserve
            guard newSize >= needed else {
                throw ControllerError.invalidArgs(
                    """
                        cannot shrink disk \(disk) to \(newSize) bytes: the \(layout.filesystemType) filesystem on \(fsdev) needs at \
                        least \(minimum) bytes plus a margin of \(margin), and starts at offset \
                        \(start)\(layout.tailReserve > 0 ? " with \(layout.tailReserve) bytes kept for the GPT backup" : ""): the \
                        smallest size is \(needed) bytes
                        """)
            }
            // New filesystem size: what fits between the partition start and the reserve,
            // on a 1 MiB boundary.
            let fsSize = (newSize - start - layout.tailReserve) & ~UInt64((1 << 20) - 1)
            if layout.isExt {
                try s.resize2fs(fsdev, size: fsSize)
            } else {
                try s.mount(fsdev, at: "/", readonly: false)
                try s.btrfsResize("/", size: fsSize)
                try s.umountAll()
            }
            if let part = layout.partition, let table = layout.tableType {
                try s.partShrink(layout.device, part, table: table, endSector: Int64((start + fsSize) / layout.sectorSize) - 1,
                                 sectorSize: layout.sectorSize)
            }
            try s.sync()
            outcome.filesystemShrunk = true
            return (layout.tableType, outcome)
        }
        progress(0.7)
        try await qemuImg.resize(path, format: format, size: newSize, shrink: true)
        progress(0.75)
        if table == "gpt" {
            // The backup GPT was cut off with the image's tail: write it at the new end, and
            // check the filesystem once more while the appliance is up.
            try await appliances.withOneOff(label: "shrink of \(disk) (GPT)") { s in
                try s.addDrive(path, format: format, readonly: false)
                try s.launch()
                let layout = try DiskLayout.read(s)
                try s.partExpandGPT(layout.device)
                if layout.isExt { try s.e2fsckForce(layout.filesystemDevice) }
                try s.sync()
            }
        }
        return outcome
    }
}

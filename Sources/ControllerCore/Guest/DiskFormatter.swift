import Guestfs

/// A validated Format request.
public struct FormatRequest: Sendable, Equatable {
    public var fstype: String
    /// `gpt`, `mbr` or `none`.
    public var partitionTable: String
    public var label: String?

    public static let fstypes = ["ext2", "ext3", "ext4", "xfs", "btrfs", "vfat"]
    public static let tables = ["gpt", "mbr", "none"]
    static let labelLimits = ["ext2": 16, "ext3": 16, "ext4": 16, "xfs": 12, "btrfs": 255, "vfat": 11]

    /// Checks every field; errors are `InvalidArgs` naming the value.
    public init(fstype: String, partitionTable: String?, label: String?) throws {
        guard Self.fstypes.contains(fstype) else {
            throw ControllerError.invalidArgs("invalid filesystem type \(CallerText.quoted(fstype)): use \(Self.fstypes.joined(separator: ", "))")
        }
        let table = partitionTable ?? "gpt"
        guard Self.tables.contains(table) else {
            throw ControllerError.invalidArgs("invalid partition_table \(CallerText.quoted(table)): use gpt, mbr or none")
        }
        if let label {
            let limit = Self.labelLimits[fstype]!
            guard !label.isEmpty, label.utf8.count <= limit,
                  label.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7f && $0 != "/" }) else {
                throw ControllerError.invalidArgs("invalid label \(CallerText.quoted(label)) for \(fstype): 1-\(limit) bytes, printable, no '/'")
            }
        }
        self.fstype = fstype
        self.partitionTable = table
        self.label = label
    }

    /// Writes the partition table (one partition over the whole disk) and the filesystem
    /// onto the image at `path` (a fresh or copied image the caller renames into place).
    public func apply(_ path: String, format: String, disk: String, appliances: ApplianceCache,
               progress: @escaping @Sendable (Double) -> Void) async throws -> String {
        let request = self
        return try await appliances.withOneOff(label: "format of \(disk)") { s in
            try s.addDrive(path, format: format, readonly: false)
            try s.launch()
            progress(0.6)
            guard let device = try s.listDevices().first else {
                throw GuestfsError(function: "list_devices", message: "the appliance sees no disk")
            }
            var target = device
            if request.partitionTable != "none" {
                try s.partDisk(device, type: request.partitionTable == "mbr" ? "msdos" : "gpt")
                target = device + "1"
            }
            progress(0.7)
            s.onProgress { position, total in if total > 0 { progress(0.7 + 0.25 * Double(position) / Double(total)) } }
            defer { s.onProgress(nil) }
            try s.mkfs(request.fstype, device: target, label: request.label)
            try s.sync()
            return target
        }
    }
}

import Guestfs

/// Where a disk's last filesystem lives: a whole-device filesystem, or the partition that
/// ends last (the one a resize moves the end of).
struct DiskLayout {
    let device: String
    /// `gpt`, `msdos`, or nil for no partition table.
    let tableType: String?
    let partition: Partition?
    /// The device holding the filesystem (`/dev/sda1`, or the whole `/dev/sda`).
    let filesystemDevice: String
    /// `ext4`, `xfs`, … or "" when there is none.
    let filesystemType: String
    let sectorSize: UInt64

    static func read(_ s: GuestfsSession) throws -> DiskLayout {
        guard let device = try s.listDevices().first else {
            throw GuestfsError(function: "list_devices", message: "the appliance sees no disk")
        }
        let ss = try s.blockdevSectorSize(device)
        let table = try? s.partGetParttype(device)
        if let table, table != "unknown", table != "loop" {
            let parts = try s.partList(device)
            if let last = parts.max(by: { $0.end < $1.end }) {
                let fsDevice = device + String(last.number)
                return DiskLayout(device: device, tableType: table, partition: last, filesystemDevice: fsDevice,
                                  filesystemType: (try? s.vfsType(fsDevice)) ?? "", sectorSize: ss)
            }
            return DiskLayout(device: device, tableType: table, partition: nil, filesystemDevice: device,
                              filesystemType: "", sectorSize: ss)
        }
        return DiskLayout(device: device, tableType: nil, partition: nil, filesystemDevice: device,
                          filesystemType: (try? s.vfsType(device)) ?? "", sectorSize: ss)
    }

    var isExt: Bool { ["ext2", "ext3", "ext4"].contains(filesystemType) }
    /// Bytes reserved after the last partition: GPT keeps its backup table there.
    var tailReserve: UInt64 { tableType == "gpt" ? 1 << 20 : 0 }
}

import SDBus

/// `org.multiverse.Controller.Disk`, one object per managed image.
public enum DiskInterface {
    public static let name = ControllerNames.interfacePrefix + "Disk"
    typealias A = Arg

    public static let resize = APIMethod("Resize", in: [A.a("size", "t"), A.options], out: [A.job], action: .diskManage,
        doc: "A job resizing the image to size bytes with its last partition and filesystem (ext2/3/4, xfs, btrfs), on a copy renamed over the disk at the end. Options: shrink b (required to shrink; ext* and btrfs only, refused below the filesystem minimum plus a margin), filesystem b (false: image only). On a disk a running VM uses: grow only, live, image only. Result: old_size, new_size, filesystem_grown, filesystem_shrunk, filesystem, live, note.")
    public static let clone = APIMethod("Clone", in: [A.a("new_name", "s"), A.options], out: [A.job], action: .diskManage,
        doc: "A job copying the disk to new_name (sparse), or with linked b a qcow2 overlay on it.")
    public static let backup = APIMethod("Backup", in: [A.options], out: [A.job], action: .diskManage,
        doc: "A job writing a checksummed backup (sha256 of the backup file). Uncompressed backups of a standalone image are sparse byte copies, internal snapshots included; compressed ones and overlays go through qemu-img convert. Refused (Busy) while a running VM uses the disk. Options: compress b. Result: backup_id, size, sha256.")
    public static let listBackups = APIMethod("ListBackups", in: [A.options], out: [A.a("backups", "a(stts)")],
        doc: "The disk's backups: id, creation time, size, sha256.")
    public static let restore = APIMethod("Restore", in: [A.a("backup_id", "s"), A.options], out: [A.job], action: .diskManage,
        doc: "A job verifying backup_id's checksum and replacing the disk with it.")
    public static let createSnapshot = APIMethod("CreateSnapshot", in: [A.a("name", "s"), A.options], action: .diskManage,
        doc: "Takes an internal snapshot (qcow2; names vm-* and auto-* are reserved).")
    public static let revertSnapshot = APIMethod("RevertSnapshot", in: [A.a("name", "s"), A.options], action: .diskManage,
        doc: "Returns the disk to a snapshot.")
    public static let deleteSnapshot = APIMethod("DeleteSnapshot", in: [A.a("name", "s"), A.options], action: .diskManage,
        doc: "Deletes a snapshot.")
    public static let format = APIMethod("Format", in: [A.a("fstype", "s"), A.options], out: [A.job], action: .diskManage,
        doc: "A job writing a partition table and a filesystem (ext2, ext3, ext4, xfs, btrfs, vfat). Options: partition_table s (gpt, mbr, none; default gpt), label s.")
    public static let inspect = APIMethod("Inspect", in: [A.options], out: [A.job], action: .diskInspect,
        doc: "A job recognising the operating system and measuring the filesystems; updates FilesystemUsage. Result: os_type, distro, version, product_name, hostname, filesystems a(ss), usage a(sttt).")
    public static let listFiles = APIMethod("ListFiles", in: [A.a("guest_path", "s"), A.options], out: [A.a("entries", "a(ssttt)")],
        action: .diskInspect,
        doc: "Entries of a directory inside the image: name, type, size, mode, mtime. guest_path absolute, no '..'.")
    public static let readFile = APIMethod("ReadFile", in: [A.a("guest_path", "s"), A.options], out: [A.a("content", "ay")],
        action: .diskInspect,
        doc: "The bytes of a regular file inside the image (at most 16 MiB, else LimitsExceeded). Read-only; crash-consistent on a disk a running VM uses.")
    public static let writeFile = APIMethod("WriteFile", in: [A.a("guest_path", "s"), A.a("content", "ay"), A.options], action: .diskWrite,
        doc: "Replaces or creates a file inside the image atomically (temporary file, rename), keeping owner and mode. Options: mode u. At most 16 MiB. Busy while a running VM uses the disk.")
    public static let setAutoGrow = APIMethod("SetAutoGrow", in: [A.a("policy", "a{sv}")], action: .diskManage,
        doc: "Sets the AutoGrow policy (keys: enabled b, threshold d, step t, max t; missing keys keep their value).")
    public static let setVersioning = APIMethod("SetVersioning", in: [A.a("policy", "a{sv}")], action: .diskManage,
        doc: "Sets the versioning policy (keys: enabled b, interval_s u, keep u, on_stop b; qcow2 only): auto-<UTC time> snapshots, oldest pruned to keep.")
    public static let delete = APIMethod("Delete", in: [A.options], action: .diskManage,
        doc: "Deletes the image (Busy while other disks or a VM use it).")

    public static let usageHigh = APISignal("UsageHigh", [A.a("fraction", "d")],
        doc: "A usage sample reached the AutoGrow threshold (fraction used of the fullest filesystem).")

    public static let declaration = APIInterface(name,
        methods: [resize, clone, backup, listBackups, restore, createSnapshot, revertSnapshot, deleteSnapshot, format, inspect,
                  listFiles, readFile, writeFile, setAutoGrow, setVersioning, delete],
        properties: [
            APIProperty("Name", "s", change: .const, doc: "The disk's name (its file name in the image directory)."),
            APIProperty("Path", "s", change: .const, doc: "The image's absolute path."),
            APIProperty("ImageFormat", "s", doc: "qcow2 or raw."),
            APIProperty("VirtualSize", "t", doc: "Virtual size in bytes."),
            APIProperty("AllocatedSize", "t", doc: "Bytes allocated on the host."),
            APIProperty("BackingDisk", "s", doc: "Name of the backing disk, or empty."),
            APIProperty("Overlays", "ao", doc: "Disks built on this one."),
            APIProperty("AttachedTo", "ao", doc: "VMs that use this disk."),
            APIProperty("Snapshots", "a(st)", doc: "Internal snapshots: name and creation time."),
            APIProperty("FilesystemUsage", "a(sttt)", doc: "Mounted filesystems from the last sample: device, size, used, available (bytes)."),
            APIProperty("UsageSampled", "t", doc: "When FilesystemUsage was sampled (seconds since the epoch; 0 = never)."),
            APIProperty("AutoGrow", "a{sv}", doc: "The AutoGrow policy: enabled, threshold, step, max."),
            APIProperty("Versioning", "a{sv}", doc: "The versioning policy: enabled, interval_s, keep, on_stop."),
        ],
        signals: [usageHigh])
}

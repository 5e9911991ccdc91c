import SDBus

/// `org.multiverse.Controller.Disk`, one object per managed image.
public enum DiskInterface {
    public static let name = ControllerNames.interfacePrefix + "Disk"
    typealias A = Arg

    public static let resize = APIMethod("Resize", in: [A.a("size", "t"), A.options], out: [A.job], action: .diskManage,
        doc: """
            A job resizing the image to size bytes with its last partition and filesystem (ext2/3/4, xfs, btrfs).\n\nsize \
            is a multiple of 512, at most [disks] max_size and not the current virtual size (InvalidArgs otherwise). \
            Options: shrink b (required to shrink), filesystem b (default true; false: the image only).\n\nGrowing grows \
            the image, then the last partition (moving a GPT's backup header) and its ext2/3/4, xfs or btrfs filesystem. \
            Shrinking (ext* and btrfs only) runs e2fsck -f and is refused below the filesystem's minimum size plus a \
            margin (the larger of 64 MiB and 10 %), with the numbers in the job's Error; XFS cannot shrink \
            (NotSupported).\n\nThe work is done on a private copy that is renamed over the disk at the end (the commit \
            point): Cancel before it kills the appliance and leaves the disk byte-for-byte as it was; after it Cancel is \
            InvalidState.\n\nWhen the filesystem was grown or shrunk, the disk's usage sample is dropped (UsageSampled 0; \
            the next Inspect or sample measures it again).\n\nA disk a running VM uses is grown live through libvirt's \
            block resize, image only (filesystem_grown false: the guest grows its partition and filesystem); shrinking it \
            is Busy.\n\nResult: old_size, new_size, filesystem_grown, filesystem_shrunk, filesystem, live, note.
            """)
    public static let clone = APIMethod("Clone", in: [A.a("new_name", "s"), A.options], out: [A.job], action: .diskManage,
        doc: """
            A job copying the disk to new_name (sparse), or with linked b a qcow2 overlay on it.\n\nA full copy of a \
            standalone image is a byte copy by the daemon, internal snapshots included: sparse like cp --sparse=always, a \
            reflink clone on xfs and btrfs, written back to disk while it is made. An overlay is flattened by qemu-img \
            convert -U.\n\nThe new disk appears only when it is complete and synced to disk; Cancel stops the copy and \
            leaves nothing. Progress follows the bytes copied. [disks] copy_rate_mib_s in controller.toml(5) limits how \
            fast a copy reads, here and in Backup, Restore and the copies of Resize and Format. Result: disk, linked, \
            size.
            """)
    public static let backup = APIMethod("Backup", in: [A.options], out: [A.job], action: .diskManage,
        doc: """
            A job making a backup point of the disk. Options: mode s (auto, full, incremental or image; default auto, \
            or image with compress), compress b (image backups only). Result: backup_id, kind (full, incremental or \
            image), parent (incremental points), reason (why a point is full when an incremental one was possible in \
            principle), size, digest and sha256 (the same value).\n\nPoints form a chain per disk. A full point holds \
            the whole disk; an incremental one only the 64 KiB blocks written since the point before it, which qemu \
            tracks in a persistent dirty bitmap on the disk (qcow2 version 3 only). auto makes an incremental point when \
            the chain is intact and a full one otherwise, saying why in reason: the first point, a raw disk (raw disks \
            cannot track changes: every point is full), a qcow2 version 2 disk (qemu-img amend -o compat=1.1 converts \
            it), a disk restored, formatted, reverted to a snapshot or resized since the last point, or tracking left \
            inconsistent by a qemu that did not close the disk. incremental fails instead (InvalidState; NotSupported \
            for disks that cannot track changes); full always makes a full point.\n\nA point is \
            BackupDirectory/ID.qcow2 (a qcow2 overlay of the previous point, by relative name, for incremental points), \
            ID.index (the SHA-256 of every 64 KiB block of the disk at that point, zero blocks marked; only the blocks the \
            point holds are read to make it) and the manifest ID.point, written last: a point exists once its manifest \
            does. Its digest is the SHA-256 of its index. A private qemu-storage-daemon opens the disk read-write (a VM \
            started meanwhile fails on qemu's image lock), adds the bitmap that tracks writes after the point and starts \
            the copy in one transaction, so no write escapes both.\n\nmode image writes the backups from before \
            chains: BackupDirectory/ID.img, a whole copy (compressed with compress), with its manifest ID.json (disk, \
            format, time, size, sha256, compressed, internalSnapshots). Image backups keep internal snapshots; points \
            do not.\n\nA disk a running VM uses gets its point through the VM's qemu: libvirt's push backup, with the \
            checkpoint (the bitmap of the new point) made in the same qemu transaction, copies the disk as it was when \
            the backup began while the guest goes on writing. Such a point is crash-consistent (the Multiverse design \
            has no guest agent to quiesce filesystems). qemu writes it into a file the service created in \
            BackupDirectory (mode 0711: searchable by qemu's user, every file root's and 0640). The service's records \
            are the truth for change tracking: before and after each such backup libvirt's checkpoints are reconciled \
            with them (one checkpoint per disk, the newest point's; after an offline point it is redefined in libvirt; \
            the service's other checkpoints are deleted), and a bitmap qemu does not hold consistently gives a full point \
            saying why. The space a point may take (the changed bytes libvirt reports, or the disk's allocation for a \
            full point) is checked and reserved before the backup begins (LimitsExceeded naming the figures), and a \
            backup is aborted when the backup filesystem has less than 64 MiB left: qemu would otherwise fail the \
            guest's own writes. mode image of a running VM's disk is Busy (it would be copied torn).\n\nDuring the copy \
            the disk is held: snapshots, resizes, writes, deletes and automatic versions get Busy.
            """)
    public static let listBackups = APIMethod("ListBackups", in: [A.options], out: [A.a("backups", "a(stts)")],
        doc: "The disk's backups, image backups and points alike, oldest first: id, creation time, size, sha256 (a point's digest).")
    public static let listBackupPoints = APIMethod("ListBackupPoints", in: [A.options], out: [A.a("points", "a(ssstts)")],
        doc: """
            The points of the disk's backup chain, oldest first: id, kind (full or incremental), parent (empty for a full \
            point), creation time, size of the point's file and digest (SHA-256 of its block index).
            """)
    public static let verifyBackup = APIMethod("VerifyBackup", in: [A.a("backup_id", "s"), A.options], out: [A.job], action: .diskManage,
        doc: """
            A job re-checking a backup without touching the disk. For a point, every point of its chain from the full \
            one: its index against its manifest's digest, and the blocks its file holds against its index (each point \
            file read once). For an image backup, its sha256. A mismatch fails the job naming the first bad point. \
            Result: backup_id, digest, points_checked (0 for an image backup).
            """)
    public static let deleteBackup = APIMethod("DeleteBackup", in: [A.a("backup_id", "s"), A.options], out: [A.job], action: .diskManage,
        doc: """
            A job deleting a backup. A point's data that the next point needs is merged into it first: a middle point's \
            by a safe qemu-img rebase of the next point onto the one before, a full point's by qemu-img commit of the next \
            point into it, the merged image then becoming the next point (now full). The next point's content, and so \
            its index and digest, do not change. The point is marked deleting in its manifest before anything moves: it is \
            no longer listed or restorable, and a restart (in the background), DeleteBackup of that id or the next \
            DeleteBackup on the disk finishes it. Before the old files go, the next point is checked against its index. \
            Busy while a backup, restore or verification of the disk's points runs. Result: backup_id.
            """)
    public static let setBackupPolicy = APIMethod("SetBackupPolicy", in: [A.a("policy", "a{sv}")], action: .diskManage,
        doc: """
            Sets the disk's backup policy (keys: keep_last u, full_every u, max_chain u, interval_s u; 0 turns each off; \
            missing keys keep their value). keep_last: after each point, the oldest points are deleted (as DeleteBackup \
            does) until that many are left. full_every: every Nth point of a chain is full. max_chain: a point is full \
            when a restore of the newest point would read that many points. interval_s (60 to 31536000): a Backup job \
            (mode auto, by uid 0) every interval_s seconds while no VM runs on the disk, put off while something holds \
            it; no cron needed.
            """)
    public static let restore = APIMethod("Restore", in: [A.a("backup_id", "s"), A.options], out: [A.job], action: .diskManage,
        doc: """
            A job replacing the disk with backup_id, any point of its chain or an image backup; with option new_name s, a \
            job making a new disk of that name from it instead (the disk is not touched and may be in use by a running \
            VM; AlreadyExists if the name is taken).\n\nA point's chain is \
            flattened by qemu-img convert into a temporary image of the disk's format, which is then checked block by \
            block against the point's index: a corrupted point fails the job naming it and leaves the disk untouched. An \
            image backup's sha256 is verified first; an uncompressed one of the disk's format is copied byte for byte \
            (its snapshots come back), any other converted. The result is synced to disk and renamed over the disk (the \
            commit point), or linked to new_name (never replacing a file put there meanwhile). The restored disk tracks no \
            changes: the next point is full. A new disk has no points, policies or VMs of its own. Result: backup_id, and disk \
            (new_name).
            """)
    public static let createSnapshot = APIMethod("CreateSnapshot", in: [A.a("name", "s"), A.options], action: .diskManage,
        doc: """
            Takes an internal snapshot (qcow2; names vm-* and auto-* are reserved).\n\nvm-* snapshots belong to VM \
            snapshots and auto-* ones to versioning (InvalidArgs here). A raw disk is NotSupported.
            """)
    public static let revertSnapshot = APIMethod("RevertSnapshot", in: [A.a("name", "s"), A.options], action: .diskManage,
        doc: "Returns the disk to a snapshot.")
    public static let deleteSnapshot = APIMethod("DeleteSnapshot", in: [A.a("name", "s"), A.options], action: .diskManage,
        doc: "Deletes a snapshot.")
    public static let format = APIMethod("Format", in: [A.a("fstype", "s"), A.options], out: [A.job], action: .diskManage,
        doc: """
            A job writing a partition table and a filesystem (ext2, ext3, ext4, xfs, btrfs, vfat). Options: \
            partition_table s (gpt, mbr, none; default gpt), label s.\n\nFormat works on a private image (a fresh empty \
            one when the disk has no snapshots, else a copy) that is renamed over the disk at the end: Cancel before that \
            point kills the appliance and leaves the disk byte-for-byte as it was; after it Cancel is InvalidState. The \
            disk's usage sample and last inspection are dropped. Result: fstype, partition_table, device, label.
            """)
    public static let inspect = APIMethod("Inspect", in: [A.options], out: [A.job], action: .diskInspect,
        doc: """
            A job recognising the operating system and measuring the filesystems. Result: inspected t (when it ended); \
            what it found is GetInspection's and its usage GetFilesystemUsage's.\n\nWhat Inspect reads comes from inside \
            the image, which the guest wrote: it never reaches a property or a signal, which every bus client receives, \
            only callers allowed disk.inspect.
            """)
    public static let getInspection = APIMethod("GetInspection", in: [A.options], out: [A.a("inspection", "a{sv}")], action: .diskInspect,
        doc: """
            What the last Inspect found: os_type, distro, version, product_name, hostname (empty when no operating system \
            was recognised), filesystems a(ss) (device, type), usage a(sttt) (device, size, used, available of the mounted \
            ones) and inspected t (when). Empty when the disk was never inspected or has been formatted since.\n\nThese \
            values were read from inside the image, so they are served to callers allowed disk.inspect only (the Inspect \
            job's Result carries none of them); the strings are the guest's and may hold any character.
            """)
    public static let getFilesystemUsage = APIMethod("GetFilesystemUsage", in: [A.options], out: [A.a("sampled", "t"), A.a("usage", "a(sttt)")],
        action: .diskInspect,
        doc: """
            The last usage sample: when it was taken (seconds since the epoch; 0 = none yet) and the mounted filesystems' \
            device, size, used and available bytes.\n\nA sampler measures the filesystems of every disk read-only, one \
            disk at a time, every [guestfs] usage_interval_s (600 s; 0 turns it off); Inspect takes a sample too. The \
            property UsageSampled changes with each sample (watch it, then call this); the figures are for callers allowed \
            disk.inspect only, since they come from inside the image.
            """)
    public static let listFiles = APIMethod("ListFiles", in: [A.a("guest_path", "s"), A.options], out: [A.a("entries", "a(ssttt)")],
        action: .diskInspect,
        doc: """
            Entries of a directory inside the image: name, type, size, mode, mtime. guest_path absolute, no '..'. \
            ListDirectory gives the same entries with each symlink's target. Options as for ListDirectory (after s, limit \
            u).
            """)
    public static let listDirectory = APIMethod("ListDirectory", in: [A.a("guest_path", "s"), A.options], out: [A.a("entries", "a(ssttts)")],
        action: .diskInspect,
        doc: """
            Entries of a directory inside the image, sorted by name: name, type (file, directory, symlink, fifo, ...), \
            size, mode (full st_mode), mtime (seconds since the epoch) and, for a symlink, its target as stored in the \
            link (empty for anything else; not followed). guest_path absolute, no '..'; the directory itself may be \
            reached through symlinks inside the guest. At most 100000 entries in the directory, else \
            LimitsExceeded.\n\nOne reply holds at most limit entries (option limit u, 1-10000, default 10000) and 16 MiB \
            of names and targets (else LimitsExceeded: ask for fewer): a reply of limit entries may have more after it, \
            which the option after s (a name: the entries after it, in this order) fetches.
            """)
    public static let readFile = APIMethod("ReadFile", in: [A.a("guest_path", "s"), A.options], out: [A.a("content", "ay")],
        action: .diskInspect,
        doc: """
            The bytes of a regular file inside the image (at most 16 MiB, else LimitsExceeded). A symlink is followed as \
            the guest would follow it, within the guest's filesystem only (an absolute link is the guest's path, never the \
            host's). Read-only; crash-consistent on a disk a running VM uses.
            """)
    public static let writeFile = APIMethod("WriteFile", in: [A.a("guest_path", "s"), A.a("content", "ay"), A.options], action: .diskWrite,
        doc: """
            Replaces or creates a file inside the image atomically (temporary file, rename), keeping owner and mode. \
            Options: mode u. At most 16 MiB. Busy while a running VM uses the disk.\n\nThe content goes to a temporary \
            file beside the target, which gets the old file's owner and mode (a new file 0644, or mode) and is renamed \
            over the target. A symlink is followed as ReadFile follows it, inside the guest only, and the file it leads to \
            is replaced (the link stays); a link that leads nowhere, a directory or a device is InvalidArgs. More than 16 \
            MiB is LimitsExceeded.\n\nA read-write appliance serves the writes queued for it and is then synced and closed \
            at once, since it holds qemu's write lock: a VM started by anyone (also virsh start) finds the image free.
            """)
    public static let setAutoGrow = APIMethod("SetAutoGrow", in: [A.a("policy", "a{sv}")], action: .diskManage,
        doc: """
            Sets the AutoGrow policy (keys: enabled b, threshold d, step t, max t; missing keys keep their value).\n\nWhen \
            a usage sample crosses threshold, the disk sends UsageHigh and, with AutoGrow enabled, disk and filesystem \
            grow by step bytes (never past max): at once if no VM runs on the disk, else when that VM stops.
            """)
    public static let setVersioning = APIMethod("SetVersioning", in: [A.a("policy", "a{sv}")], action: .diskManage,
        doc: """
            Sets the versioning policy (keys: enabled b, interval_s u, keep u, on_stop b; qcow2 only): auto-<UTC time> \
            snapshots, oldest pruned to keep.\n\nVersioning takes an auto-<UTC time> snapshot every interval_s seconds \
            while no running VM uses the disk and the image changed since the last one, and at each stop of the VM using \
            it (on_stop). The oldest auto-* snapshots beyond keep are deleted, never the user's own snapshots.
            """)
    public static let delete = APIMethod("Delete", in: [A.options], action: .diskManage,
        doc: "Deletes the image (Busy while other disks or a VM use it).")

    public static let usageHigh = APISignal("UsageHigh", [A.a("fraction", "d")],
        doc: """
            A usage sample reached the AutoGrow threshold: fraction is that threshold (the policy's, not the fraction \
            measured, which GetFilesystemUsage serves to callers allowed disk.inspect).
            """)

    public static let declaration = APIInterface(name,
        methods: [resize, clone, backup, listBackups, listBackupPoints, verifyBackup, deleteBackup, restore, createSnapshot, revertSnapshot, deleteSnapshot, format, inspect,
                  listFiles, listDirectory, readFile, getInspection, getFilesystemUsage, writeFile, setAutoGrow, setVersioning, setBackupPolicy, delete],
        properties: [
            APIProperty("Name", "s", change: .const, doc: "The disk's name (its file name in the image directory)."),
            APIProperty("Path", "s", change: .const, doc: "The image's absolute path."),
            APIProperty("ImageFormat", "s", doc: """
                qcow2 or raw: the format the service recorded when it made or adopted the image (never probed). Empty for an \
                image of the image directory without a record; adopt it with Manager.AdoptDisk.
                """),
            APIProperty("Problems", "as", doc: """
                Why the disk cannot be used, one sentence each; empty when it can. An image without a format record, a backing \
                file that is not a managed disk of the image directory (a json: or protocol name, a path elsewhere, a disk \
                without a record), a header without its backing disk's format or with another one than recorded, a backing \
                chain deeper than 8, and a qcow2 external data file are problems. Every call on such a disk but Delete (and \
                AdoptDisk) answers InvalidState naming them.
                """),
            APIProperty("VirtualSize", "t", doc: "Virtual size in bytes."),
            APIProperty("AllocatedSize", "t", doc: "Bytes allocated on the host."),
            APIProperty("BackingDisk", "s", doc: "Name of the backing disk, or empty."),
            APIProperty("Overlays", "ao", doc: "Disks built on this one."),
            APIProperty("AttachedTo", "ao", doc: "VMs whose definition or running configuration uses this disk."),
            APIProperty("HeldBy", "a(so)", doc: """
                The leases held on the disk now: kind (see Disk leases) and holder, the object path of a job \
                (/org/multiverse/Controller/job/N), a VM, a disk built on this one (kind base), or the service's root object \
                for a call that is no job and for the service's own work (versioning, the usage sampler). A call that needs a \
                lease another one does not allow is Busy naming that holder.
                """),
            APIProperty("Snapshots", "a(st)", doc: "Internal snapshots: name and creation time."),
            APIProperty("FilesystemUsage", "a(sttt)", doc: """
                Always empty; kept for its signature. The usage figures come from inside the image, and a property reaches \
                every bus client: GetFilesystemUsage serves them to callers allowed disk.inspect.
                """),
            APIProperty("UsageSampled", "t", doc: """
                When the last usage sample was taken (seconds since the epoch; 0 = none, or dropped after Format or a \
                filesystem resize). Its change tells clients to call GetFilesystemUsage again.
                """),
            APIProperty("AutoGrow", "a{sv}", doc: "The AutoGrow policy: enabled, threshold, step, max."),
            APIProperty("Versioning", "a{sv}", doc: "The versioning policy: enabled, interval_s, keep, on_stop."),
            APIProperty("BackupPolicy", "a{sv}", doc: "The backup policy (SetBackupPolicy): keep_last, full_every, max_chain, interval_s."),
            APIProperty("ChangeTracking", "a{sv}", doc: """
                Whether the writes since the disk's newest backup point are tracked: state s (tracking: the next point, mode \
                auto, is incremental; none: no point yet, or a disk that cannot track changes; broken: tracking since the \
                newest point is gone or inconsistent, so the next point is full), since t (the newest point's creation time, \
                0 without one), reason s (why the next point is full; empty when tracking), and when measured: changed t (bytes \
                changed since the point) and measured t (when that figure was taken). changed is 0 at each point and is \
                measured through libvirt while a VM runs on the disk: when it starts and stops and every [disks] \
                tracking_interval_s (60 s); writes made while no VM runs count from the next start.
                """),
        ],
        signals: [usageHigh])

    /// The disks' lease kinds as the reference publishes them: the kind, what holds it, and
    /// the kinds it can share a disk with. Core's `LeaseKind.compatible` is checked against
    /// this table (ControllerCoreTests), so the reference and the rules cannot drift apart.
    public static let leaseKinds: [(kind: String, heldBy: String, compatibleWith: [String])] = [
        ("vm", "a running or paused VM, on each disk it may write (from its start until libvirt says it stopped, or Destroy returned); on a disk it has read-only it holds consistent-reader",
         ["reader", "live-writer", "online-backup"]),
        ("reader", "Inspect, ListFiles, ReadFile, the usage sampler (a read-only appliance, crash-consistent beside a VM), and AdoptDisk (it writes a record, not the image)",
         ["vm", "reader", "consistent-reader", "writer", "live-writer", "online-backup", "base"]),
        ("consistent-reader", "the source of a full Clone, a Backup of a stopped disk, and a running VM on a disk it has read-only",
         ["reader", "consistent-reader", "online-backup", "base"]),
        ("writer", "offline Resize, Format, Restore, WriteFile, disk and VM snapshots (create, revert, delete), Delete, versioning, AutoGrow, and AdoptDisk of a qcow2 overlay (its header is written)",
         ["reader"]),
        ("live-writer", "a live Resize of a running VM's disk (only beside that VM's lease)", ["vm", "reader"]),
        ("online-backup", "a Backup of a running VM's disk, read through the VM's qemu (only beside that VM's lease)",
         ["vm", "reader", "consistent-reader", "base"]),
        ("base", "each disk built on this one (an overlay, a linked clone) for as long as it exists",
         ["reader", "consistent-reader", "online-backup", "base"]),
    ]
}

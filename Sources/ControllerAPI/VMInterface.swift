import SDBus

/// `org.multiverse.Controller.VM`, one object per libvirt domain.
public enum VMInterface {
    public static let name = ControllerNames.interfacePrefix + "VM"
    typealias A = Arg

    public static let start = APIMethod("Start", in: [A.options], action: .vmControl, doc: """
        Starts a shut-off VM.\n\nInactive libvirt networks its NICs use are started first (logged); that also needs \
        org.multiverse.controller.network.manage, and a network that cannot be started is InvalidState naming \
        it.\n\nThe host is never overcommitted: LimitsExceeded, naming the figures, when the running VMs would then \
        hold more memory (each its maximum) than the host's minus [vms] host_reserve_mib (default 1024), or more vCPUs \
        than the host has CPUs unless [vms] allow_cpu_overcommit = true. A VM being started counts until it runs, so \
        starts at once cannot overcommit together.
        """)
    public static let shutdown = APIMethod("Shutdown", in: [A.options], action: .vmControl,
        doc: """
            Asks the guest to power off. Options: timeout_s u (wait), force b (destroy when the timeout \
            passes).\n\nWithout timeout_s the call returns once the request is made. With it, the call waits up to \
            timeout_s seconds (at most 3600) for the VM to stop and answers Busy when it did not; force b (needs \
            timeout_s) destroys the VM instead.
            """)
    public static let destroy = APIMethod("Destroy", in: [A.options], action: .vmControl, doc: "Stops the VM at once.")
    public static let reboot = APIMethod("Reboot", in: [A.options], action: .vmControl, doc: "Reboots a running VM.")
    public static let suspend = APIMethod("Suspend", in: [A.options], action: .vmControl, doc: "Pauses a running VM.")
    public static let resume = APIMethod("Resume", in: [A.options], action: .vmControl, doc: "Resumes a paused VM.")
    public static let undefine = APIMethod("Undefine", in: [A.options], action: .vmConfigure,
        doc: """
            Removes a shut-off VM's definition. Options: delete_disks b (managed disks only).\n\nWith delete_disks, a \
            managed disk another VM also uses is Busy and nothing is undefined.
            """)
    public static let attachDisk = APIMethod("AttachDisk", in: [A.a("disk", "s"), A.a("target", "s"), A.options], action: .vmConfigure,
        doc: """
            Attaches a managed disk or an image under an allowed root. Options: live b, persistent b, readonly b, bus s, \
            format s.\n\ndisk is a managed disk name or an absolute image path whose real path is under the image \
            directory or [vms] image_roots. A path needs format (raw or qcow2): the service never probes an image's \
            format. A managed disk's path must name its recorded format; any other image is opened as the format given, a \
            raw one with an empty backingStore and a qcow2 one only without a backing file or data file. target is vdX, \
            sdX or hdX (X: one or two letters a-z); bus defaults to virtio, sata or ide by the target's prefix (scsi and \
            usb are also accepted). A target or image this VM already uses is AlreadyExists; an image another VM uses is \
            Busy unless readonly.\n\nlive and persistent default to what the VM's state allows: both while it runs, the \
            definition when it is shut off. Drivers without live device calls (libvirt's test driver) get persistent \
            changes by redefining the XML.
            """)
    public static let detachDisk = APIMethod("DetachDisk", in: [A.a("target", "s"), A.options], action: .vmConfigure,
        doc: """
            Detaches the disk at target; a live detach waits for the guest. Options: live b, persistent b, timeout_s \
            u.\n\nA live detach needs the guest to let go of the disk (ACPI hotplug): the call waits for libvirt's \
            device-removed event up to timeout_s seconds (default [vms] detach_timeout_s, 30) and answers Busy naming the \
            target when the guest did not release it. live and persistent default as for AttachDisk.
            """)
    public static let addShare = APIMethod("AddShare", in: [A.a("host_path", "s"), A.a("tag", "s"), A.options], action: .vmConfigure,
        doc: """
            Adds a 9p share of host_path under tag to a shut-off VM. Options: readonly b.\n\n9p shares cannot be \
            hot-plugged: a VM that is not shut off is InvalidState. The real path of host_path must be under [vms] \
            share_roots; tag is 1-31 characters of A-Z a-z 0-9 . _ -.
            """)
    public static let removeShare = APIMethod("RemoveShare", in: [A.a("tag", "s"), A.options], action: .vmConfigure,
        doc: "Removes the 9p share tagged tag from a shut-off VM.")
    public static let setAutostart = APIMethod("SetAutostart", in: [A.a("enabled", "b"), A.options], action: .vmConfigure,
        doc: """
            Sets the service's own autostart flag (used by StartAll). Options: fallback s, ready_timeout_s u.\n\nThe flag \
            is kept in the domain's metadata; a transient VM is InvalidState. libvirt's own autostart is not used. \
            fallback names the VM StartAll starts in this one's place when it does not become ready in time (another \
            existing VM; empty clears it); ready_timeout_s is how long StartAll waits for this VM's READY=1 (0: [vms] \
            ready_timeout_s; at most 86400). Both are kept in the metadata and left as they are when not given.
            """)
    public static let setResources = APIMethod("SetResources", in: [A.options], action: .vmConfigure,
        doc: """
            Changes memory and vCPUs of the definition. Options: memory_mib t, vcpus u.\n\nThe persistent definition \
            changes (at least one option is needed); the VM runs with the new values from its next start.
            """)
    public static let getXML = APIMethod("GetXML", in: [A.options], out: [A.a("xml", "s")],
        doc: "The domain XML. Options: inactive b (the persistent definition).")
    public static let createSnapshot = APIMethod("CreateSnapshot", in: [A.a("name", "s"), A.options], out: [A.job], action: .vmControl,
        doc: """
            A job taking snapshot vm-NAME on every managed qcow2 disk of the shut-off VM.\n\nA VM snapshot NAME is the \
            qcow2 internal snapshot vm-NAME on every managed disk of the VM. Every VM snapshot call needs a shut-off VM \
            (InvalidState otherwise) whose managed disks are all qcow2 (a raw one is NotSupported naming it). A failed \
            create removes the snapshots it took.
            """)
    public static let revertSnapshot = APIMethod("RevertSnapshot", in: [A.a("name", "s"), A.options], out: [A.job], action: .vmConfigure,
        doc: "A job returning every managed disk to vm-NAME.\n\nReverting a disk other disks are built on is Busy.")
    public static let deleteSnapshot = APIMethod("DeleteSnapshot", in: [A.a("name", "s"), A.options], action: .vmConfigure,
        doc: "Deletes vm-NAME from every managed disk.")
    public static let listSnapshots = APIMethod("ListSnapshots", in: [A.options], out: [A.a("snapshots", "a(st)")],
        doc: "The VM's snapshots: name and creation time (the names present on every managed disk, with the earliest time).")

    public static let backup = APIMethod("Backup", in: [A.options], out: [A.job], action: .diskManage,
        doc: """
            A job making one backup point of every managed disk the VM writes to, together. Options: mode s (auto, \
            full or incremental, as for Disk.Backup). Result: backup_id (the VM point's id), disks, points (each disk's \
            point, in the same order), kinds, size, pruned.\n\nWhile the VM runs, all its disks' points come from one \
            push backup of libvirt, in one qemu transaction with one checkpoint: they are consistent with each other as a \
            power cut would leave them (crash-consistent: the Multiverse design has no guest agent to quiesce the guest's \
            filesystems). While it is stopped, the service's storage daemon makes them one after the other (nothing \
            writes meanwhile); either way, if one fails, the points made before it are deleted again. Each disk point is \
            a point of its disk's chain like Disk.Backup's (listed by Disk.ListBackupPoints, restorable alone by \
            Disk.Restore) and records the VM point's id and disks: the VM point exists once every disk's point is \
            recorded. One the daemon could not finish (it was killed between two disks' points) is no VM point: it is not \
            listed or restored, and the daemon logs it at its start; its disks' points stay theirs. The disks are held as \
            for Disk.Backup.
            """)
    public static let restore = APIMethod("Restore", in: [A.a("backup_id", "s"), A.options], out: [A.job], action: .diskManage,
        doc: """
            A job restoring every disk of a VM point (VM.Backup's backup_id) that the VM still uses, each checked bit-exact \
            against its point's index before it replaces the disk. The VM must be shut off (Busy otherwise). A VM point \
            missing some disk's point (its making was interrupted, or a point was deleted since) is NoSuchBackup naming \
            the disk. Result: backup_id, disks, points.
            """)
    public static let listBackups = APIMethod("ListBackups", in: [A.options], out: [A.a("backups", "a(stas)")],
        doc: "The VM's complete points (VM.Backup), oldest first: id, creation time, and the disk points it holds.")

    public static let stateChanged = APISignal("StateChanged", [A.a("state", "s"), A.a("reason", "s")],
        doc: "Sent from libvirt's lifecycle events, whoever caused the change.")
    public static let ready = APISignal("Ready", [],
        doc: """
            Sent when the guest writes READY=1 on its readiness channel (once per boot, and again when a READY=1 follows a \
            STOPPING=1), after the PropertiesChanged that shows Ready true.
            """)

    public static let declaration = APIInterface(name,
        methods: [start, shutdown, destroy, reboot, suspend, resume, undefine, attachDisk, detachDisk, addShare, removeShare,
                  setAutostart, setResources, getXML, createSnapshot, revertSnapshot, deleteSnapshot, listSnapshots, backup, restore,
                  listBackups],
        properties: [
            APIProperty("Name", "s", doc: "The VM's name."),
            APIProperty("UUID", "s", change: .const, doc: "The domain UUID."),
            APIProperty("State", "s", doc: """
                running, paused, shutoff, shutdown, crashed, pmsuspended, blocked or nostate.\n\nA method called in a state it \
                cannot work in is InvalidState (cannot resume NAME: it is shutoff) before any authorization.
                """),
            APIProperty("StateReason", "s", doc: "libvirt's reason for the state, e.g. booted, user, destroyed."),
            APIProperty("Profile", "s", doc: "The profile it was defined from (empty for VMs defined elsewhere)."),
            APIProperty("VCPUs", "u", doc: "Number of vCPUs."),
            APIProperty("MemoryMiB", "t", doc: "Memory in MiB."),
            APIProperty("Autostart", "b", doc: "The service's autostart flag."),
            APIProperty("Persistent", "b", doc: "Whether libvirt keeps a persistent definition."),
            APIProperty("Ephemeral", "b", doc: "Whether the VM is discarded (with its overlay) when it stops."),
            APIProperty("Disks", "a(ssso)", doc: "target, source path, format and managed disk object (or /) of each disk."),
            APIProperty("Shares", "a(ss)", doc: "host path and tag of each 9p share."),
            APIProperty("Interfaces", "a(sss)", doc: "MAC address, network (or bridge or host device) and model of each NIC, in the order of the definition."),
            APIProperty("Readiness", "s", doc: """
                none, waiting, ready or stopping: what the guest said on its readiness channel during this boot.\n\nnone: the \
                VM is not running, or has no readiness channel the daemon can read (VMs defined before the channel existed, \
                until redefined; drivers that make no socket, such as libvirt's test driver). waiting: running, no READY=1 \
                yet. ready: the guest wrote READY=1. stopping: it wrote STOPPING=1 (information only: it never delays a \
                shutdown). It starts over at every boot, including a guest reboot, and survives a daemon restart \
                (state_dir/readiness.json, per UUID and domain ID).
                """),
            APIProperty("Ready", "b", doc: "Readiness is ready."),
            APIProperty("ReadySince", "t", doc: "When READY=1 arrived, in microseconds since the epoch (0 when not ready)."),
            APIProperty("GuestStatus", "s", doc: """
                The guest's last STATUS= line, at most 200 characters, control characters and invalid UTF-8 dropped. Hostile \
                text: show it as text only.
                """),
            APIProperty("Fallback", "s", doc: """
                The VM StartAll starts in this one's place when it does not become ready in time (metadata; empty: none). Set \
                with the fallback option of DefineVM or SetAutostart.
                """),
        ],
        signals: [stateChanged, ready])
}

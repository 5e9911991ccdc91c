import SDBus

/// The D-Bus interfaces of API version 1, declared once; vtables, introspection and the
/// checked-in `dbus/*.xml` all come from these descriptions.
public enum Interfaces {
    static func a(_ name: String, _ sig: String) -> DBusArgument { DBusArgument(name, sig) }
    static let options = DBusArgument("options", "a{sv}")

    public static let manager = DBusInterface(
        "org.multiverse.Controller.Manager",
        methods: [
            DBusMethod("ListVMs", in: [options], out: [a("vms", "ao")]),
            DBusMethod("GetVMByName", in: [a("name", "s"), options], out: [a("vm", "o")]),
            DBusMethod("ListProfiles", in: [options], out: [a("profiles", "a(ss)")]),
            DBusMethod("DefineVM", in: [a("name", "s"), a("profile", "s"), options], out: [a("vm", "o")]),
            DBusMethod("DefineVMFromXML", in: [a("xml", "s"), options], out: [a("vm", "o")]),
            DBusMethod("StartAll", in: [options], out: [a("job", "o")]),
            DBusMethod("ListDisks", in: [options], out: [a("disks", "ao")]),
            DBusMethod("GetDiskByName", in: [a("name", "s"), options], out: [a("disk", "o")]),
            DBusMethod("CreateDisk", in: [a("name", "s"), a("size", "t"), a("format", "s"), options], out: [a("disk", "o")]),
            DBusMethod("ListJobs", in: [options], out: [a("jobs", "ao")]),
        ],
        properties: [
            DBusProperty("Version", "s", change: .const),
            DBusProperty("APIVersion", "u", change: .const),
            DBusProperty("LibvirtURI", "s", change: .const),
            DBusProperty("LibvirtConnected", "b"),
            DBusProperty("ImageDirectory", "s", change: .const),
            DBusProperty("BackupDirectory", "s", change: .const),
        ])

    public static let vm = DBusInterface(
        "org.multiverse.Controller.VM",
        methods: [
            DBusMethod("Start", in: [options]),
            DBusMethod("Shutdown", in: [options]),
            DBusMethod("Destroy", in: [options]),
            DBusMethod("Reboot", in: [options]),
            DBusMethod("Suspend", in: [options]),
            DBusMethod("Resume", in: [options]),
            DBusMethod("Undefine", in: [options]),
            DBusMethod("AttachDisk", in: [a("disk", "s"), a("target", "s"), options]),
            DBusMethod("DetachDisk", in: [a("target", "s"), options]),
            DBusMethod("AddShare", in: [a("host_path", "s"), a("tag", "s"), options]),
            DBusMethod("RemoveShare", in: [a("tag", "s"), options]),
            DBusMethod("SetAutostart", in: [a("enabled", "b"), options]),
            DBusMethod("SetResources", in: [options]),
            DBusMethod("GetXML", in: [options], out: [a("xml", "s")]),
            DBusMethod("CreateSnapshot", in: [a("name", "s"), options], out: [a("job", "o")]),
            DBusMethod("RevertSnapshot", in: [a("name", "s"), options], out: [a("job", "o")]),
            DBusMethod("DeleteSnapshot", in: [a("name", "s"), options]),
            DBusMethod("ListSnapshots", in: [options], out: [a("snapshots", "a(st)")]),
        ],
        properties: [
            DBusProperty("Name", "s"),
            DBusProperty("UUID", "s", change: .const),
            DBusProperty("State", "s"),
            DBusProperty("StateReason", "s"),
            DBusProperty("Profile", "s"),
            DBusProperty("VCPUs", "u"),
            DBusProperty("MemoryMiB", "t"),
            DBusProperty("Autostart", "b"),
            DBusProperty("Persistent", "b"),
            DBusProperty("Ephemeral", "b"),
            DBusProperty("Disks", "a(ssso)"),
            DBusProperty("Shares", "a(ss)"),
        ],
        signals: [
            DBusSignal("StateChanged", [a("state", "s"), a("reason", "s")]),
        ])

    public static let disk = DBusInterface(
        "org.multiverse.Controller.Disk",
        methods: [
            DBusMethod("Resize", in: [a("size", "t"), options], out: [a("job", "o")]),
            DBusMethod("Clone", in: [a("new_name", "s"), options], out: [a("job", "o")]),
            DBusMethod("Backup", in: [options], out: [a("job", "o")]),
            DBusMethod("ListBackups", in: [options], out: [a("backups", "a(stts)")]),
            DBusMethod("Restore", in: [a("backup_id", "s"), options], out: [a("job", "o")]),
            DBusMethod("CreateSnapshot", in: [a("name", "s"), options]),
            DBusMethod("RevertSnapshot", in: [a("name", "s"), options]),
            DBusMethod("DeleteSnapshot", in: [a("name", "s"), options]),
            DBusMethod("Format", in: [a("fstype", "s"), options], out: [a("job", "o")]),
            DBusMethod("Inspect", in: [options], out: [a("job", "o")]),
            DBusMethod("ListFiles", in: [a("guest_path", "s"), options], out: [a("entries", "a(ssttt)")]),
            DBusMethod("ReadFile", in: [a("guest_path", "s"), options], out: [a("content", "ay")]),
            DBusMethod("WriteFile", in: [a("guest_path", "s"), a("content", "ay"), options]),
            DBusMethod("SetAutoGrow", in: [a("policy", "a{sv}")]),
            DBusMethod("SetVersioning", in: [a("policy", "a{sv}")]),
            DBusMethod("Delete", in: [options]),
        ],
        properties: [
            DBusProperty("Name", "s", change: .const),
            DBusProperty("Path", "s", change: .const),
            DBusProperty("ImageFormat", "s"),
            DBusProperty("VirtualSize", "t"),
            DBusProperty("AllocatedSize", "t"),
            DBusProperty("BackingDisk", "s"),
            DBusProperty("Overlays", "ao"),
            DBusProperty("AttachedTo", "ao"),
            DBusProperty("Snapshots", "a(st)"),
            DBusProperty("FilesystemUsage", "a(sttt)"),
            DBusProperty("UsageSampled", "t"),
            DBusProperty("AutoGrow", "a{sv}"),
            DBusProperty("Versioning", "a{sv}"),
        ],
        signals: [
            DBusSignal("UsageHigh", [a("fraction", "d")]),
        ])

    public static let settings = DBusInterface(
        "org.multiverse.Controller.Settings",
        methods: [
            DBusMethod("Check", in: [options], out: [a("settings", "a(ssbs)")]),
            DBusMethod("Apply", in: [a("ids", "as"), options], out: [a("results", "a(sbs)")]),
            DBusMethod("SetEnforcing", in: [a("enabled", "b"), options]),
            DBusMethod("AddUserToGroups", in: [a("user", "s"), a("groups", "as"), options]),
        ],
        properties: [
            DBusProperty("Enforcing", "b"),
            DBusProperty("Settings", "a(ssbs)"),
            DBusProperty("LastCheck", "t"),
        ],
        signals: [
            DBusSignal("Drifted", [a("id", "s"), a("detail", "s")]),
            DBusSignal("Reverted", [a("id", "s"), a("success", "b"), a("detail", "s")]),
        ])

    public static let job = DBusInterface(
        "org.multiverse.Controller.Job",
        methods: [
            DBusMethod("Cancel", in: [options]),
        ],
        properties: [
            DBusProperty("Operation", "s", change: .const),
            DBusProperty("Target", "o", change: .const),
            DBusProperty("StartedByUID", "u", change: .const),
            DBusProperty("StartTime", "t", change: .const),
            DBusProperty("State", "s"),
            DBusProperty("Progress", "d"),
            DBusProperty("ProgressValid", "b"),
            DBusProperty("Error", "s"),
            DBusProperty("Result", "a{sv}"),
        ],
        signals: [
            DBusSignal("Completed", [a("success", "b"), a("message", "s")]),
        ])

    /// Every interface the service exports, in documentation order.
    public static let all = [manager, vm, disk, job, settings]
}

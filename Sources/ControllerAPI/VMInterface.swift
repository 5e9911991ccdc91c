import SDBus

/// `org.multiverse.Controller.VM`, one object per libvirt domain.
public enum VMInterface {
    public static let name = ControllerNames.interfacePrefix + "VM"
    typealias A = Arg

    public static let start = APIMethod("Start", in: [A.options], action: .vmControl, doc: "Starts a shut-off VM.")
    public static let shutdown = APIMethod("Shutdown", in: [A.options], action: .vmControl,
        doc: "Asks the guest to power off. Options: timeout_s u (wait), force b (destroy when the timeout passes).")
    public static let destroy = APIMethod("Destroy", in: [A.options], action: .vmControl, doc: "Stops the VM at once.")
    public static let reboot = APIMethod("Reboot", in: [A.options], action: .vmControl, doc: "Reboots a running VM.")
    public static let suspend = APIMethod("Suspend", in: [A.options], action: .vmControl, doc: "Pauses a running VM.")
    public static let resume = APIMethod("Resume", in: [A.options], action: .vmControl, doc: "Resumes a paused VM.")
    public static let undefine = APIMethod("Undefine", in: [A.options], action: .vmConfigure,
        doc: "Removes a shut-off VM's definition. Options: delete_disks b (managed disks only).")
    public static let attachDisk = APIMethod("AttachDisk", in: [A.a("disk", "s"), A.a("target", "s"), A.options], action: .vmConfigure,
        doc: "Attaches a managed disk or an image under an allowed root. Options: live b, persistent b, readonly b, bus s.")
    public static let detachDisk = APIMethod("DetachDisk", in: [A.a("target", "s"), A.options], action: .vmConfigure,
        doc: "Detaches the disk at target; a live detach waits for the guest. Options: live b, persistent b, timeout_s u.")
    public static let addShare = APIMethod("AddShare", in: [A.a("host_path", "s"), A.a("tag", "s"), A.options], action: .vmConfigure,
        doc: "Adds a 9p share of host_path under tag to a shut-off VM. Options: readonly b.")
    public static let removeShare = APIMethod("RemoveShare", in: [A.a("tag", "s"), A.options], action: .vmConfigure,
        doc: "Removes the 9p share tagged tag from a shut-off VM.")
    public static let setAutostart = APIMethod("SetAutostart", in: [A.a("enabled", "b"), A.options], action: .vmConfigure,
        doc: "Sets the service's own autostart flag (used by StartAll).")
    public static let setResources = APIMethod("SetResources", in: [A.options], action: .vmConfigure,
        doc: "Changes memory and vCPUs of the definition. Options: memory_mib t, vcpus u.")
    public static let getXML = APIMethod("GetXML", in: [A.options], out: [A.a("xml", "s")],
        doc: "The domain XML. Options: inactive b (the persistent definition).")
    public static let createSnapshot = APIMethod("CreateSnapshot", in: [A.a("name", "s"), A.options], out: [A.job], action: .vmControl,
        doc: "A job taking snapshot vm-NAME on every managed qcow2 disk of the shut-off VM.")
    public static let revertSnapshot = APIMethod("RevertSnapshot", in: [A.a("name", "s"), A.options], out: [A.job], action: .vmConfigure,
        doc: "A job returning every managed disk to vm-NAME.")
    public static let deleteSnapshot = APIMethod("DeleteSnapshot", in: [A.a("name", "s"), A.options], action: .vmConfigure,
        doc: "Deletes vm-NAME from every managed disk.")
    public static let listSnapshots = APIMethod("ListSnapshots", in: [A.options], out: [A.a("snapshots", "a(st)")],
        doc: "The VM's snapshots: name and creation time.")

    public static let stateChanged = APISignal("StateChanged", [A.a("state", "s"), A.a("reason", "s")],
        doc: "Sent from libvirt's lifecycle events, whoever caused the change.")

    public static let declaration = APIInterface(name,
        methods: [start, shutdown, destroy, reboot, suspend, resume, undefine, attachDisk, detachDisk, addShare, removeShare,
                  setAutostart, setResources, getXML, createSnapshot, revertSnapshot, deleteSnapshot, listSnapshots],
        properties: [
            APIProperty("Name", "s", doc: "The VM's name."),
            APIProperty("UUID", "s", change: .const, doc: "The domain UUID."),
            APIProperty("State", "s", doc: "running, paused, shutoff, shutdown, crashed, pmsuspended, blocked or nostate."),
            APIProperty("StateReason", "s", doc: "libvirt's reason for the state, e.g. booted, user, destroyed."),
            APIProperty("Profile", "s", doc: "The profile it was defined from (empty for VMs defined elsewhere)."),
            APIProperty("VCPUs", "u", doc: "Number of vCPUs."),
            APIProperty("MemoryMiB", "t", doc: "Memory in MiB."),
            APIProperty("Autostart", "b", doc: "The service's autostart flag."),
            APIProperty("Persistent", "b", doc: "Whether libvirt keeps a persistent definition."),
            APIProperty("Ephemeral", "b", doc: "Whether the VM is discarded (with its overlay) when it stops."),
            APIProperty("Disks", "a(ssso)", doc: "target, source path, format and managed disk object (or /) of each disk."),
            APIProperty("Shares", "a(ss)", doc: "host path and tag of each 9p share."),
        ],
        signals: [stateChanged])
}

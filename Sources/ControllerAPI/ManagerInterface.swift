import SDBus

/// `org.multiverse.Controller.Manager` at `/org/multiverse/Controller`.
public enum ManagerInterface {
    public static let name = ControllerNames.interfacePrefix + "Manager"
    typealias A = Arg

    public static let listVMs = APIMethod("ListVMs", in: [A.options], out: [A.a("vms", "ao")],
        doc: "Object paths of every VM, sorted by name.")
    public static let getVMByName = APIMethod("GetVMByName", in: [A.a("name", "s"), A.options], out: [A.a("vm", "o")],
        doc: "The object path of the VM named name (NoSuchVM otherwise).")
    public static let listProfiles = APIMethod("ListProfiles", in: [A.options], out: [A.a("profiles", "a(ss)")],
        doc: "The profiles VMs can be defined from: name and description.")
    public static let defineVM = APIMethod("DefineVM", in: [A.a("name", "s"), A.a("profile", "s"), A.options], out: [A.a("vm", "o")],
        action: .vmConfigure,
        doc: "Defines a VM from a profile. Options: memory_mib t, vcpus u, disks as, networks as, shares a(ss), base_disk s, ephemeral b, autostart b, seclabel s.")
    public static let defineVMFromXML = APIMethod("DefineVMFromXML", in: [A.a("xml", "s"), A.options], out: [A.a("vm", "o")],
        action: .vmConfigure,
        doc: "Defines a VM from libvirt domain XML (qemu:commandline and host devices refused unless allowed).")
    public static let startAll = APIMethod("StartAll", in: [A.options], out: [A.job], action: .vmControl,
        doc: "A job starting the VMs whose autostart flag is set: network controllers, interface controllers, the rest.")
    public static let listDisks = APIMethod("ListDisks", in: [A.options], out: [A.a("disks", "ao")],
        doc: "Object paths of every managed disk.")
    public static let getDiskByName = APIMethod("GetDiskByName", in: [A.a("name", "s"), A.options], out: [A.a("disk", "o")],
        doc: "The object path of the disk named name (NoSuchDisk otherwise).")
    public static let createDisk = APIMethod("CreateDisk", in: [A.a("name", "s"), A.a("size", "t"), A.a("format", "s"), A.options],
        out: [A.a("disk", "o")], action: .diskManage,
        doc: "Creates a qcow2 or raw image. Options: backing s, preallocation s.")
    public static let listJobs = APIMethod("ListJobs", in: [A.options], out: [A.a("jobs", "ao")],
        doc: "Object paths of running and recently finished jobs.")

    public static let declaration = APIInterface(name,
        methods: [listVMs, getVMByName, listProfiles, defineVM, defineVMFromXML, startAll, listDisks, getDiskByName, createDisk, listJobs],
        properties: [
            APIProperty("Version", "s", change: .const, doc: "The service's version."),
            APIProperty("APIVersion", "u", change: .const, doc: "The API version (1)."),
            APIProperty("LibvirtURI", "s", change: .const, doc: "The libvirt connection URI."),
            APIProperty("LibvirtConnected", "b", doc: "Whether libvirt is reachable now."),
            APIProperty("ImageDirectory", "s", change: .const, doc: "Directory of the managed disk images."),
            APIProperty("BackupDirectory", "s", change: .const, doc: "Directory of the disk backups."),
        ])
}

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
        doc: "The profiles VMs can be defined from: name and description.\n\nBuilt in: network-controller (512 MiB, 1 vCPU, two NICs, serial console, no graphics), interface-controller (4 GiB, 2 vCPUs, SPICE without a network listener, /var/multiverse shared as Multiverse) and app (1 GiB, 1 vCPU). NAME.toml files in [vms] profiles_dir add profiles or override the keys they set of a built-in one; a broken file is logged with its name and line and skipped.")
    public static let defineVM = APIMethod("DefineVM", in: [A.a("name", "s"), A.a("profile", "s"), A.options], out: [A.a("vm", "o")],
        action: .vmConfigure,
        doc: "Defines a VM from a profile.\n\nOptions: memory_mib t, vcpus u; disks as (managed disks, attached as vda, vdb, ...); networks as (one NIC each: network:NAME or a network's name, bridge:BR for a host bridge, direct:DEV for a macvtap on a host NIC; they replace the profile's); macs as (the MACs of the first NICs, in order: unicast, not another VM's; libvirt picks the others); shares a(ss) (host path and 9p tag; the real path must be under [vms] share_roots); autostart b (the service's own flag, used by StartAll); seclabel s (dynamic, the default, or none).\n\nbase_disk s: the VM boots from a new copy-on-write qcow2 overlay NAME-root.qcow2 (NAME: the VM's name) of that managed disk, attached as vda. ephemeral b: when the VM stops it is undefined and its overlay deleted, leaving nothing behind; this also happens to ephemeral VMs found stopped when the daemon starts.\n\nEvery VM defined this way gets the Multiverse defaults: UTC clock with the RTC tracking wall time, ACPI and APIC, PMU and VMware port off, on_poweroff destroy, on_reboot and on_crash restart, suspend to memory and disk off, a virtio RNG, no memory balloon, nosharepages, the readiness channel (a virtio-serial port org.multiverse.ready.0 on a unix socket libvirt creates; the guest writes sd_notify-style lines such as READY=1 to it), a dynamic seclabel (unless seclabel is none), and a host-passthrough CPU on KVM and qemu64 otherwise (unless [vms] cpu_mode says otherwise). The domain type follows the connection's capabilities unless [vms] domain_type says otherwise.\n\nNICs. Precedence: the networks option > the profile file's networks > the profile's role: a network-controller gets NIC 1 on [vms] uplink (default network:default) and NIC 2 on [vms] internal_network (default multiverse); an interface-controller or app VM one NIC on the internal network. A missing internal network is created, isolated, first: the call then also needs org.multiverse.controller.network.manage. Any other network must exist (InvalidArgs naming it). With [vms] enforce_topology (default true) an interface-controller or app VM may only be on isolated networks, never on the uplink or a bridge or direct interface (InvalidArgs naming the NIC). Every NIC is virtio and carries libvirt's clean-traffic filter, so a guest cannot send with another MAC or IP than its own.")
    public static let defineVMFromXML = APIMethod("DefineVMFromXML", in: [A.a("xml", "s"), A.options], out: [A.a("vm", "o")],
        action: .vmConfigure,
        doc: "Defines a VM from libvirt domain XML (qemu:commandline and host devices refused unless allowed).\n\nThe document must be a domain with a valid VM name. qemu:commandline, hostdev and redirdev elements are InvalidArgs unless [vms] allow_passthrough = true. Channels whose port name begins with org.multiverse. are the service's own and are InvalidArgs. The topology rules of DefineVM apply to its NICs, by the role of the profile its service metadata names (none: app): with [vms] enforce_topology, an interface-controller or app VM may only have network interfaces on isolated networks.")
    public static let startAll = APIMethod("StartAll", in: [A.options], out: [A.job], action: .vmControl,
        doc: "A job starting the VMs whose autostart flag is set: network controllers, interface controllers, the rest.\n\nVMs without the service's metadata come last. Each VM is started and waited for until it is running ([vms] start_timeout_s) before the next. A VM that fails fails the job with its name and reason; the others stay as they are. Result: order, started, already_running (VM names). Each start is held to the host's budget as Start is (LimitsExceeded fails the job naming the figures). Inactive networks the VMs use are started first, before their VM; a call that needs that also needs org.multiverse.controller.network.manage.\n\nThe daemon runs StartAll once when it first reaches libvirt ([vms] start_all_on_boot). libvirt's own autostart is not used: it has no order.")
    public static let listDisks = APIMethod("ListDisks", in: [A.options], out: [A.a("disks", "ao")],
        doc: "Object paths of every managed disk.")
    public static let getDiskByName = APIMethod("GetDiskByName", in: [A.a("name", "s"), A.options], out: [A.a("disk", "o")],
        doc: "The object path of the disk named name (NoSuchDisk otherwise).")
    public static let createDisk = APIMethod("CreateDisk", in: [A.a("name", "s"), A.a("size", "t"), A.a("format", "s"), A.options],
        out: [A.a("disk", "o")], action: .diskManage,
        doc: "Creates a qcow2 or raw image of size bytes.\n\nname follows the disk name rules; the disk is the file ImageDirectory/NAME, which appears under its name only once it is complete. size is in bytes, a multiple of 512 and at most [disks] max_size. format is qcow2 or raw.\n\nOptions: backing s (a managed disk to overlay; qcow2 only), preallocation s (off, metadata (qcow2 only), falloc or full).")
    public static let listNetworks = APIMethod("ListNetworks", in: [A.options], out: [A.a("networks", "ao")],
        doc: "Object paths of every libvirt network of the connection, sorted by name.")
    public static let getNetworkByName = APIMethod("GetNetworkByName", in: [A.a("name", "s"), A.options], out: [A.a("network", "o")],
        doc: "The object path of the network named name (NoSuchNetwork otherwise).")
    public static let defineNetwork = APIMethod("DefineNetwork", in: [A.a("name", "s"), A.a("kind", "s"), A.options],
        out: [A.a("network", "o")], action: .networkManage,
        doc: "Defines a persistent libvirt network of kind isolated or nat and starts it.\n\nname follows the disk name rules. isolated: no forward and no ip element, so the host has no address on it and there is no DHCP: guests on it reach each other and nothing else (for the internal link between a router and its interface controllers); the options ipv4 and dhcp are InvalidArgs on it. nat: libvirt's NAT to the host (for a router's outside NIC); ipv4 s is required, the host's address and prefix as a CIDR (10.10.0.1/24, prefix 8 to 30), and dhcp b (default true) serves the rest of the subnet.\n\nOther options: bridge s (the bridge's name, at most 15 characters; libvirt picks virbrN otherwise), autostart b (libvirt's autostart flag, default true), start b (default true). A name, bridge or address range libvirt reports as taken is AlreadyExists or InvalidArgs with libvirt's message.")
    public static let listJobs = APIMethod("ListJobs", in: [A.options], out: [A.a("jobs", "ao")],
        doc: "Object paths of running and recently finished jobs.")

    public static let declaration = APIInterface(name,
        methods: [listVMs, getVMByName, listProfiles, defineVM, defineVMFromXML, startAll, listDisks, getDiskByName, createDisk, listJobs,
                  listNetworks, getNetworkByName, defineNetwork],
        properties: [
            APIProperty("Version", "s", change: .const, doc: "The service's version."),
            APIProperty("APIVersion", "u", change: .const, doc: "The API version (1)."),
            APIProperty("LibvirtURI", "s", change: .const, doc: "The libvirt connection URI."),
            APIProperty("LibvirtConnected", "b", doc: "Whether libvirt is reachable now. While it is not, the service keeps reconnecting and VM calls fail at once with Libvirt."),
            APIProperty("ImageDirectory", "s", change: .const, doc: "Directory of the managed disk images."),
            APIProperty("BackupDirectory", "s", change: .const, doc: "Directory of the disk backups."),
        ])
}

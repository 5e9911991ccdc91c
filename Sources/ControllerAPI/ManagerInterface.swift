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
        doc: """
            The profiles VMs can be defined from: name and description.\n\nBuilt in: network-controller (512 MiB, 1 vCPU, \
            two NICs, serial console, no graphics), interface-controller (4 GiB, 2 vCPUs, SPICE without a network \
            listener, /var/multiverse shared as Multiverse) and app (1 GiB, 1 vCPU). NAME.toml files in [vms] profiles_dir \
            add profiles or override the keys they set of a built-in one; a broken file is logged with its name and line \
            and skipped.
            """)
    public static let defineVM = APIMethod("DefineVM", in: [A.a("name", "s"), A.a("profile", "s"), A.options], out: [A.a("vm", "o")],
        action: .vmConfigure,
        doc: """
            Defines a VM from a profile.\n\nOptions: memory_mib t, vcpus u; disks as (managed disks, attached as vda, vdb, \
            ...); networks as (one NIC each: network:NAME or a network's name, bridge:BR for a host bridge, direct:DEV for \
            a macvtap on a host NIC; they replace the profile's); macs as (the MACs of the first NICs, in order: unicast, \
            not another VM's; libvirt picks the others); shares a(ss) (host path and 9p tag: the path must be under [vms] \
            share_roots as written, and its real path, looked at after authorization, too); autostart b (the service's own \
            flag, used by StartAll); fallback s (a VM StartAll starts in this one's place when it is not ready in time); \
            ready_timeout_s u (how long StartAll waits for its READY=1; default [vms] ready_timeout_s); seclabel s \
            (dynamic, the default, or none: none turns libvirt's confinement off and is InvalidArgs unless [vms] \
            allow_unconfined = true).\n\nbase_disk s: the VM boots from a new copy-on-write qcow2 overlay NAME-root.qcow2 \
            (NAME: the VM's name) of that managed disk, attached as vda. ephemeral b: when the VM stops it is undefined \
            and its overlay deleted, leaving nothing behind; this also happens to ephemeral VMs found stopped when the \
            daemon starts.\n\nEvery VM defined this way gets the Multiverse defaults: UTC clock with the RTC tracking wall \
            time, ACPI and APIC, PMU and VMware port off, on_poweroff destroy, on_reboot and on_crash restart, suspend to \
            memory and disk off, a virtio RNG, no memory balloon, nosharepages, the readiness channel (a virtio-serial \
            port org.multiverse.ready.0 on a unix socket libvirt creates; the guest writes sd_notify-style lines such as \
            READY=1 to it), a dynamic seclabel (unless seclabel is none), and a host-passthrough CPU on KVM and qemu64 \
            otherwise (unless [vms] cpu_mode says otherwise). The domain type follows the connection's capabilities unless \
            [vms] domain_type says otherwise.\n\nNICs. Precedence: the networks option > the profile file's networks > the \
            profile's role: a network-controller gets NIC 1 on [vms] uplink (default network:default) and NIC 2 on [vms] \
            internal_network (default multiverse); an interface-controller or app VM one NIC on the internal network. A \
            missing internal network is created, isolated, first: the call then also needs \
            org.multiverse.controller.network.manage. Any other network must exist (InvalidArgs naming it). With [vms] \
            enforce_topology (default true) an interface-controller or app VM may only be on isolated networks, never on \
            the uplink or a bridge or direct interface (InvalidArgs naming the NIC). Every NIC is virtio and carries \
            libvirt's clean-traffic filter, so a guest cannot send with another MAC or IP than its own.
            """)
    public static let defineVMFromXML = APIMethod("DefineVMFromXML", in: [A.a("xml", "s"), A.options], out: [A.a("vm", "o")],
        action: .vmConfigure,
        doc: """
            Defines a VM from libvirt domain XML checked against an allowlist; the service's own metadata comes from the \
            options.\n\nThe caller's document is checked element by element against the allowlist printed in this page's \
            section DOMAIN XML ALLOWLIST, before the service adds anything: any other element, attribute or value, a \
            DOCTYPE or entity, an element given twice where it may appear once, or an element in another namespace is \
            InvalidArgs naming it by its path (/domain/devices/serial[1]/@type='file'). Host paths: a disk's source file \
            must be a managed disk's path with that disk's format as driver type, and no backingStore but an empty one; a \
            9p share's source dir must lie under [vms] share_roots, and os kernel and initrd under [vms] kernel_roots \
            (none by default; a regular file owned by root, readable by everyone, not in the image directory): both are \
            looked at on the host only after authorization, and again (shares) at each Start; emulator may only be the \
            path libvirt's capabilities name. No other element may name a host path, device or program: no block, network \
            or volume disks, no chardev with a path or a log file, no evdev or passthrough input, no seclabel but type \
            dynamic (and the stub type none with model none that libvirt writes on hosts without AppArmor or SELinux), no \
            timezone, keymaps and channel names only as names; 9p shares always accessmode mapped (set when absent: \
            libvirt's default, passthrough, would let a guest create host files with its modes); an interface's source \
            only with its type's attribute (network, bridge or dev); MACs unicast and not another VM's. qemu:commandline, \
            hostdev and redirdev pass (unchecked) only with [vms] allow_passthrough = true. The virsh dumpxml --inactive \
            of a VM the service made is accepted once its metadata element of the service is removed.\n\nThe service's \
            metadata namespace in the document is InvalidArgs. Options: profile s (whose role the topology rules use; \
            none: app), autostart b, boot_order u (0-9, StartAll order; default the profile's, else 3), fallback s, \
            ready_timeout_s u (as for DefineVM), console_log b (the first serial console, added as a pty when there is \
            none, logs to [vms] console_log_dir/NAME-console.log), base_disk s and ephemeral b (as for DefineVM: the \
            overlay NAME-root.qcow2 is attached as vda, which the document may not use). Which overlay belongs to which VM \
            is the service's own record (state_dir/overlays.json, by UUID), never the metadata: metadata rewritten through \
            libvirt cannot make the service delete a disk. The service adds its readiness channel (port names beginning \
            with org.multiverse. are the service's and InvalidArgs in the document). NICs: network interfaces, or for a \
            network-controller its [vms] uplink as a bridge or direct interface; the topology rules of DefineVM apply by \
            the profile's role.
            """)
    public static let startAll = APIMethod("StartAll", in: [A.options], out: [A.job], action: .vmControl,
        doc: """
            A job starting the VMs whose autostart flag is set: network controllers, interface controllers, the rest, each \
            only when the one before is ready.\n\nVMs without the service's metadata come last. Each VM is started and \
            waited for until it is running ([vms] start_timeout_s), then, when it has a readiness channel (Readiness not \
            none), until its guest sends READY=1: within its ready timeout (DefineVM or SetAutostart option \
            ready_timeout_s, kept in the metadata; default [vms] ready_timeout_s, 300). A VM that does not become ready in \
            time is destroyed (only when this run started it; logged) and its fallback (DefineVM or SetAutostart option \
            fallback) is started and waited for in its place; without a fallback, or when the fallback fails too, the job \
            fails naming both. Any other failure fails the job with the VM's name and reason; the others stay as they are. \
            Result: order, started, already_running, ready (VM names) and replaced (a(ss): each VM that was not ready and \
            the fallback that replaced it). Each start is held to the host's budget as Start is (LimitsExceeded fails the \
            job naming the figures). Inactive networks the VMs use are started first, before their VM; a call that needs \
            that also needs org.multiverse.controller.network.manage.\n\nThe daemon runs StartAll itself once per host \
            boot, when it first reaches libvirt ([vms] start_all_on_boot): it leaves a marker holding the boot's ID \
            (/proc/sys/kernel/random/boot_id) in /run/multiverse-controller/start-all.boot (the unit's RuntimeDirectory, \
            kept across restarts; without systemd, state_dir/start-all.boot), so a daemon restart, an upgrade or a D-Bus \
            activation later in the same boot does not touch VMs the user stopped or started by hand. libvirt's own \
            autostart is not used: it has no order.
            """)
    public static let stopAll = APIMethod("StopAll", in: [A.options], out: [A.job], action: .vmControl,
        doc: """
            A job shutting every running VM down in the reverse of StartAll's order: the rest, interface controllers, \
            network controllers. Options: timeout_s u (default [vms] stop_timeout_s, 60).\n\nThe VMs of one group are \
            asked to power off at once; a VM still running when timeout_s passes is destroyed (logged). A guest's \
            STOPPING=1 changes nothing here. Result: order, stopped, destroyed (VM names). For host shutdown: the unit \
            does not call it when it stops, because a daemon restart or a package upgrade stops the unit too and must not \
            stop the VMs; call it from the host's shutdown path (e.g. a unit ordered before libvirtd's stop) where that is \
            wanted.
            """)
    public static let listDisks = APIMethod("ListDisks", in: [A.options], out: [A.a("disks", "ao")],
        doc: "Object paths of every managed disk.")
    public static let getDiskByName = APIMethod("GetDiskByName", in: [A.a("name", "s"), A.options], out: [A.a("disk", "o")],
        doc: "The object path of the disk named name (NoSuchDisk otherwise).")
    public static let createDisk = APIMethod("CreateDisk", in: [A.a("name", "s"), A.a("size", "t"), A.a("format", "s"), A.options],
        out: [A.a("disk", "o")], action: .diskManage,
        doc: """
            Creates a qcow2 or raw image of size bytes.\n\nname follows the disk name rules; the disk is the file \
            ImageDirectory/NAME, which appears under its name only once it is complete. size is in bytes, a multiple of \
            512 and at most [disks] max_size. format is qcow2 or raw.\n\nOptions: backing s (a managed disk to overlay; \
            qcow2 only), preallocation s (off, metadata (qcow2 only), falloc or full).
            """)
    public static let adoptDisk = APIMethod("AdoptDisk", in: [A.a("name", "s"), A.a("format", "s"), A.options],
        out: [A.a("disk", "o")], action: .diskManage,
        doc: """
            Records the format of an image that is in the image directory without one (placed there by hand, or a copy \
            that lost its record), so the service uses it. Options: force b.\n\nThe service records each disk's format \
            when it makes an image and never probes it: a guest can write any header into a raw disk. An image without a \
            record is a disk whose ImageFormat is empty and whose Problems say so; only Delete and AdoptDisk work on it. \
            format is raw or qcow2. A raw adoption of an image whose first bytes are another format's header (qcow2, vmdk, \
            vdi, vhdx, vpc, qed, luks, ...) is InvalidArgs naming it unless force is true; a qcow2 adoption needs a qcow2 \
            header, and the image's backing chain must meet the rules of Disk.Problems (a header without its backing \
            disk's format gets it written). Adopting a disk with its recorded format again changes nothing; another format \
            is InvalidState. The record is the extended attribute trusted.multiverse.format of the image, which only root \
            with CAP_SYS_ADMIN can write.
            """)
    public static let listNetworks = APIMethod("ListNetworks", in: [A.options], out: [A.a("networks", "ao")],
        doc: "Object paths of every libvirt network of the connection, sorted by name.")
    public static let getNetworkByName = APIMethod("GetNetworkByName", in: [A.a("name", "s"), A.options], out: [A.a("network", "o")],
        doc: "The object path of the network named name (NoSuchNetwork otherwise).")
    public static let defineNetwork = APIMethod("DefineNetwork", in: [A.a("name", "s"), A.a("kind", "s"), A.options],
        out: [A.a("network", "o")], action: .networkManage,
        doc: """
            Defines a persistent libvirt network of kind isolated or nat and starts it.\n\nname follows the disk name \
            rules. isolated: no forward and no ip element, so the host has no address on it and there is no DHCP: guests \
            on it reach each other and nothing else (for the internal link between a router and its interface \
            controllers); the options ipv4 and dhcp are InvalidArgs on it. nat: libvirt's NAT to the host (for a router's \
            outside NIC); ipv4 s is required, the host's address and prefix as a CIDR (10.10.0.1/24, prefix 8 to 30), and \
            dhcp b (default true) serves the rest of the subnet.\n\nOther options: bridge s (the bridge's name, at most 15 \
            characters; libvirt picks virbrN otherwise), autostart b (libvirt's autostart flag, default true), start b \
            (default true). A name, bridge or address range libvirt reports as taken is AlreadyExists or InvalidArgs with \
            libvirt's message.
            """)
    public static let listJobs = APIMethod("ListJobs", in: [A.options], out: [A.a("jobs", "ao")],
        doc: "Object paths of running and recently finished jobs.")

    public static let declaration = APIInterface(name,
        methods: [listVMs, getVMByName, listProfiles, defineVM, defineVMFromXML, startAll, stopAll, listDisks, getDiskByName, createDisk, adoptDisk, listJobs,
                  listNetworks, getNetworkByName, defineNetwork],
        properties: [
            APIProperty("Version", "s", change: .const, doc: "The service's version."),
            APIProperty("APIVersion", "u", change: .const, doc: "The API version (1)."),
            APIProperty("LibvirtURI", "s", change: .const, doc: "The libvirt connection URI."),
            APIProperty("LibvirtConnected", "b", doc: """
                Whether libvirt is reachable now. While it is not, the service keeps reconnecting and VM calls fail at once \
                with Libvirt.
                """),
            APIProperty("ImageDirectory", "s", change: .const, doc: "Directory of the managed disk images."),
            APIProperty("BackupDirectory", "s", change: .const, doc: "Directory of the disk backups."),
        ])
}

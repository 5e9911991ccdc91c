import SDBus

/// `org.multiverse.Controller.Network`, one object per libvirt network at
/// `/org/multiverse/Controller/network/NAME`.
public enum NetworkInterface {
    public static let name = ControllerNames.interfacePrefix + "Network"
    typealias A = Arg

    public static let start = APIMethod("Start", in: [A.options], action: .networkManage,
        doc: "Starts the network (libvirt creates its bridge). InvalidState when it is active.")
    public static let stop = APIMethod("Stop", in: [A.options], action: .networkManage,
        doc: "Stops the network. Busy, naming the VM, while a running VM has a NIC on it; InvalidState when it is not active.")
    public static let undefine = APIMethod("Undefine", in: [A.options], action: .networkManage,
        doc: """
            Removes the network's definition (and stops it first when it is active). Busy, naming the VM, while a running \
            VM has a NIC on it.\n\nThe definitions of stopped VMs that use the network are left as they are: they fail to \
            start until it exists again.
            """)
    public static let setAutostart = APIMethod("SetAutostart", in: [A.a("enabled", "b"), A.options], action: .networkManage,
        doc: "Sets libvirt's autostart flag of the network (libvirtd starts it when libvirtd starts).")

    public static let declaration = APIInterface(name,
        methods: [start, stop, undefine, setAutostart],
        properties: [
            APIProperty("Name", "s", change: .const, doc: "The network's name."),
            APIProperty("UUID", "s", change: .const, doc: "libvirt's UUID of the network."),
            APIProperty("Kind", "s", doc: """
                isolated (no forward, no host address), nat, or the forward mode of a network defined elsewhere (route, open, \
                bridge, ...).
                """),
            APIProperty("Bridge", "s", doc: "The host bridge of the network (virbrN unless given), empty when libvirt names none."),
            APIProperty("Active", "b", doc: "Whether the network is started. Kept current by libvirt's network events, also for changes made with virsh."),
            APIProperty("Autostart", "b", doc: "libvirt's autostart flag of the network."),
            APIProperty("HostIsolated", "b", doc: """
                true when the network is isolated, running, and its bridge is one the host takes no part in: each time the \
                service sees the network start it sets, for the bridge, net.ipv4.conf.BRIDGE.arp_ignore=8 (no ARP answers for \
                the host's addresses), forwarding=0 (nothing from it is routed), rp_filter=1, and \
                net.ipv6.conf.BRIDGE.disable_ipv6=1, and reads them back; and it writes the nftables tables inet and arp \
                multiverse_isolation, which drop everything the host would receive from the bridge (ARP included) and what \
                would be forwarded from it to another interface (guests on the bridge still reach each other). The sysctls and \
                tables are checked again every 10 s and restored when something changed them (restarting nftables.service \
                flushes the ruleset); the tables follow the set of running isolated networks. false for every other network, \
                and when a value or the tables could not be set (logged with the sysctl lines to set by hand). Without this, \
                Linux answers ARP on an address-less bridge for every address the host has elsewhere. Not set on libvirt's \
                test driver, whose bridges do not exist on the host. A host-wide net.ipv4.conf.all.rp_filter=2 makes the \
                reverse-path filter loose; the input drop still holds.
                """),
            APIProperty("ConnectedVMs", "ao", doc: "The VMs with a NIC on this network (running or not), sorted by name."),
        ])
}

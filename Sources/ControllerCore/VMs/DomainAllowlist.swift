/// What DefineVMFromXML accepts of a caller's domain XML: every element by its path from
/// `domain`, with the attributes it may carry and their values. Anything not listed is
/// refused, naming it by its path (`/domain/devices/serial[1]/@type='file'`).
///
/// The list keeps every host path out of caller XML but the ones the service checks itself
/// after authorization: a disk's `source/@file` (a managed disk), a 9p share's
/// `source/@dir` (under `[vms] share_roots`), the kernel and initrd (under
/// `[vms] kernel_roots`), and `<emulator>` (only the path libvirt's capabilities name).
/// The API reference prints this table (``documentation``).
public enum DomainAllowlist {
    /// What an attribute may hold.
    public enum Value: Sendable, Equatable {
        /// Any text (libvirt checks it; nothing in it names a host object).
        case text
        /// A non-negative decimal number.
        case number
        /// One of these words.
        case oneOf([String])
        /// A name that cannot be a path: 1-128 of `A-Z a-z 0-9 . _ -`, not starting with `.`
        /// or `-` (libvirt builds socket paths from channel names).
        case name
        /// A name libvirt generated itself: one of these prefixes and a number (libvirt drops
        /// such a name at define and picks a new one).
        case generated([String])
        /// A host path the service checks after authorization (``HostReference``).
        case reference(HostReference)
    }

    /// The host objects caller XML may name, each checked by the service.
    public enum HostReference: String, Sendable, Equatable {
        case managedDisk = "a managed disk's path"
        case shareDirectory = "a directory under [vms] share_roots"
        case kernelFile = "a root-owned, world-readable file under [vms] kernel_roots"
        case emulator = "the emulator libvirt's capabilities name"
    }

    /// One element: its attributes, whether it holds text (and what), and whether it may
    /// appear more than once in its parent.
    public struct Rule: Sendable {
        public let attributes: [(String, Value)]
        public let text: Value?
        public let repeats: Bool

        init(_ attributes: [(String, Value)] = [], text: Value? = nil, repeats: Bool = false) {
            self.attributes = attributes
            self.text = text
            self.repeats = repeats
        }

        func value(of attribute: String) -> Value? { attributes.first { $0.0 == attribute }?.1 }
    }

    static let onOff = Value.oneOf(["on", "off"])
    static let yesNo = Value.oneOf(["yes", "no"])
    /// `<address>`: where libvirt put a device on its bus (any of its forms).
    static let address = Rule([("type", .oneOf(["pci", "drive", "virtio-serial", "usb", "isa", "ccid", "spapr-vio", "virtio-mmio", "unassigned"])),
                               ("domain", .text), ("bus", .text), ("slot", .text), ("function", .text), ("multifunction", onOff),
                               ("controller", .text), ("target", .text), ("unit", .text), ("port", .text), ("iobase", .text),
                               ("irq", .text), ("reg", .text)])
    static let alias = Rule([("name", .text)])
    static let boot = Rule([("order", .number), ("loadparm", .text)])

    /// Every accepted element by its path from the root, `domain`. `devices/*/address`,
    /// `alias` and `boot` are added to each device below.
    public static let rules: [String: Rule] = {
        var r: [String: Rule] = [
            "domain": Rule([("type", .oneOf(["kvm", "qemu", "test"])), ("id", .text)]),
            "domain/name": Rule(text: .text),
            "domain/uuid": Rule(text: .text),
            "domain/title": Rule(text: .text),
            "domain/description": Rule(text: .text),
            "domain/metadata": Rule(),
            "domain/memory": Rule([("unit", .text)], text: .number),
            "domain/currentMemory": Rule([("unit", .text)], text: .number),
            "domain/maxMemory": Rule([("unit", .text), ("slots", .number)], text: .number),
            "domain/memoryBacking": Rule(),
            "domain/memoryBacking/nosharepages": Rule(),
            "domain/memoryBacking/locked": Rule(),
            "domain/memoryBacking/discard": Rule(),
            "domain/memoryBacking/hugepages": Rule(),
            "domain/memoryBacking/hugepages/page": Rule([("size", .number), ("unit", .text), ("nodeset", .text)], repeats: true),
            "domain/memoryBacking/source": Rule([("type", .oneOf(["anonymous", "memfd"]))]),
            "domain/memoryBacking/access": Rule([("mode", .oneOf(["shared", "private"]))]),
            "domain/memoryBacking/allocation": Rule([("mode", .oneOf(["immediate", "ondemand"])), ("threads", .number)]),
            "domain/vcpu": Rule([("placement", .oneOf(["static", "auto"])), ("cpuset", .text), ("current", .number)], text: .number),
            "domain/iothreads": Rule(text: .number),
            "domain/resource": Rule(),
            "domain/resource/partition": Rule(text: .oneOf(["/machine"])),
            "domain/sysinfo": Rule([("type", .oneOf(["smbios"]))]),
            "domain/os": Rule([("firmware", .oneOf(["bios", "efi"]))]),
            "domain/os/type": Rule([("arch", .text), ("machine", .text)], text: .oneOf(["hvm"])),
            "domain/os/firmware": Rule(),
            "domain/os/firmware/feature": Rule([("enabled", yesNo), ("name", .text)], repeats: true),
            "domain/os/boot": Rule([("dev", .oneOf(["hd", "cdrom", "network", "fd"]))], repeats: true),
            "domain/os/bootmenu": Rule([("enable", yesNo), ("timeout", .number)]),
            "domain/os/smbios": Rule([("mode", .oneOf(["emulate", "host", "sysinfo"]))]),
            "domain/os/bios": Rule([("useserial", yesNo), ("rebootTimeout", .text)]),
            "domain/os/kernel": Rule(text: .reference(.kernelFile)),
            "domain/os/initrd": Rule(text: .reference(.kernelFile)),
            "domain/os/cmdline": Rule(text: .text),
            "domain/features": Rule(),
            "domain/features/hap": Rule([("state", onOff)]),
            "domain/features/pmu": Rule([("state", onOff)]),
            "domain/features/vmport": Rule([("state", onOff)]),
            "domain/features/smm": Rule([("state", onOff)]),
            "domain/features/vmcoreinfo": Rule([("state", onOff)]),
            "domain/features/ioapic": Rule([("driver", .oneOf(["kvm", "qemu"]))]),
            "domain/features/msrs": Rule([("unknown", .oneOf(["ignore", "fault"]))]),
            "domain/features/kvm": Rule(),
            "domain/features/kvm/hidden": Rule([("state", onOff)]),
            "domain/features/hyperv": Rule([("mode", .oneOf(["custom", "passthrough"]))]),
            "domain/features/hyperv/spinlocks": Rule([("state", onOff), ("retries", .number)]),
            "domain/features/hyperv/vendor_id": Rule([("state", onOff), ("value", .text)]),
            "domain/cpu": Rule([("mode", .oneOf(["custom", "host-model", "host-passthrough", "maximum"])),
                                ("match", .oneOf(["minimum", "exact", "strict"])), ("check", .oneOf(["none", "partial", "full"])),
                                ("migratable", onOff)]),
            "domain/cpu/model": Rule([("fallback", .oneOf(["allow", "forbid"])), ("vendor_id", .text)], text: .text),
            "domain/cpu/vendor": Rule(text: .text),
            "domain/cpu/topology": Rule([("sockets", .number), ("dies", .number), ("cores", .number), ("threads", .number)]),
            "domain/cpu/feature": Rule([("policy", .oneOf(["force", "require", "optional", "disable", "forbid"])), ("name", .text)], repeats: true),
            "domain/cpu/cache": Rule([("mode", .oneOf(["emulate", "passthrough", "disable"])), ("level", .number)]),
            // No timezone: qemu gets it as TZ, and glibc reads a file named by ":path".
            "domain/clock": Rule([("offset", .oneOf(["utc", "localtime", "variable"])), ("adjustment", .text),
                                  ("basis", .oneOf(["utc", "localtime"]))]),
            "domain/clock/timer": Rule([("name", .oneOf(["platform", "pit", "rtc", "hpet", "kvmclock", "hypervclock", "tsc", "armvtimer"])),
                                        ("tickpolicy", .oneOf(["delay", "catchup", "merge", "discard"])), ("track", .oneOf(["boot", "guest", "wall", "realtime"])),
                                        ("present", yesNo), ("frequency", .number), ("mode", .oneOf(["auto", "native", "emulate", "paravirt", "smpsafe"]))],
                                       repeats: true),
            "domain/on_poweroff": Rule(text: .oneOf(["destroy", "restart", "preserve", "rename-restart"])),
            "domain/on_reboot": Rule(text: .oneOf(["destroy", "restart", "preserve", "rename-restart"])),
            "domain/on_crash": Rule(text: .oneOf(["destroy", "restart", "preserve", "rename-restart", "coredump-destroy", "coredump-restart"])),
            "domain/on_lockfailure": Rule(text: .oneOf(["poweroff", "restart", "pause", "ignore"])),
            "domain/pm": Rule(),
            "domain/pm/suspend-to-mem": Rule([("enabled", yesNo)]),
            "domain/pm/suspend-to-disk": Rule([("enabled", yesNo)]),
            // `type='dynamic'`: libvirt picks the label; no label, no relabel='no'. `type='none'`
            // only for the model 'none' (the stub libvirt writes on hosts without AppArmor or
            // SELinux), never to turn DAC or a real model off.
            "domain/seclabel": Rule([("type", .oneOf(["dynamic", "none"])), ("model", .oneOf(["dac", "apparmor", "selinux", "none"])),
                                     ("relabel", .oneOf(["yes"]))], repeats: true),
            "domain/devices": Rule(),
            "domain/devices/emulator": Rule(text: .reference(.emulator)),

            "domain/devices/disk": Rule([("type", .oneOf(["file"])), ("device", .oneOf(["disk", "cdrom"])), ("model", .text)], repeats: true),
            "domain/devices/disk/driver": Rule([("name", .oneOf(["qemu"])), ("type", .oneOf(["raw", "qcow2"])),
                                                ("cache", .oneOf(["default", "none", "writethrough", "writeback", "directsync", "unsafe"])),
                                                ("io", .oneOf(["threads", "native", "io_uring"])), ("discard", .oneOf(["ignore", "unmap"])),
                                                ("detect_zeroes", .oneOf(["off", "on", "unmap"])), ("iothread", .number), ("queues", .number),
                                                ("error_policy", .oneOf(["stop", "report", "ignore", "enospace"])),
                                                ("rerror_policy", .oneOf(["stop", "report", "ignore"]))]),
            "domain/devices/disk/source": Rule([("file", .reference(.managedDisk)), ("index", .number)]),
            // Empty only: a managed disk's chain is the service's to know, never the caller's.
            "domain/devices/disk/backingStore": Rule(),
            "domain/devices/disk/target": Rule([("dev", .text), ("bus", .oneOf(["virtio", "scsi", "sata", "ide", "usb", "fdc"])),
                                                ("removable", onOff), ("rotation_rate", .number), ("tray", .oneOf(["open", "closed"]))]),
            "domain/devices/disk/readonly": Rule(),
            "domain/devices/disk/shareable": Rule(),
            "domain/devices/disk/transient": Rule(),
            "domain/devices/disk/serial": Rule(text: .text),
            "domain/devices/disk/wwn": Rule(text: .text),
            "domain/devices/disk/vendor": Rule(text: .text),
            "domain/devices/disk/product": Rule(text: .text),
            "domain/devices/disk/blockio": Rule([("logical_block_size", .number), ("physical_block_size", .number)]),

            // mapped only (the service sets it when absent): libvirt's default, passthrough,
            // and squash let a guest create host files with its modes (setuid for qemu's user).
            "domain/devices/filesystem": Rule([("type", .oneOf(["mount"])), ("accessmode", .oneOf(["mapped"])),
                                               ("multidevs", .oneOf(["default", "remap", "forbid", "warn"])), ("fmode", .text), ("dmode", .text)],
                                              repeats: true),
            "domain/devices/filesystem/driver": Rule([("type", .oneOf(["path"])), ("wrpolicy", .oneOf(["immediate"]))]),
            "domain/devices/filesystem/source": Rule([("dir", .reference(.shareDirectory))]),
            "domain/devices/filesystem/target": Rule([("dir", .text)]),
            "domain/devices/filesystem/readonly": Rule(),

            // type network everywhere; bridge and direct only as a network controller's uplink
            // (the topology rules check which).
            "domain/devices/interface": Rule([("type", .oneOf(["network", "bridge", "direct"])), ("trustGuestRxFilters", .oneOf(["no"]))], repeats: true),
            "domain/devices/interface/mac": Rule([("address", .text)]),
            "domain/devices/interface/target": Rule([("dev", .generated(["vnet", "macvtap", "macvlan", "testnet"]))]),
            "domain/devices/interface/source": Rule([("network", .text), ("bridge", .text), ("dev", .text), ("mode", .oneOf(["bridge", "vepa", "private"])),
                                                     ("portgroup", .text), ("portid", .text)]),
            "domain/devices/interface/model": Rule([("type", .oneOf(["virtio", "e1000", "e1000e", "rtl8139", "virtio-transitional", "virtio-non-transitional"]))]),
            "domain/devices/interface/filterref": Rule([("filter", .text)]),
            "domain/devices/interface/filterref/parameter": Rule([("name", .text), ("value", .text)], repeats: true),
            "domain/devices/interface/link": Rule([("state", .oneOf(["up", "down"]))]),
            "domain/devices/interface/mtu": Rule([("size", .number)]),
            "domain/devices/interface/driver": Rule([("name", .oneOf(["qemu", "vhost"])), ("queues", .number), ("rx_queue_size", .number),
                                                     ("tx_queue_size", .number)]),

            // Consoles: a pty (no path, no <log file>: console_log places one), or a unix
            // socket with no path (libvirt makes and labels it).
            "domain/devices/serial": Rule([("type", .oneOf(["pty"]))], repeats: true),
            "domain/devices/serial/target": Rule([("type", .oneOf(["isa-serial", "usb-serial", "pci-serial"])), ("port", .number)]),
            "domain/devices/serial/target/model": Rule([("name", .oneOf(["isa-serial", "usb-serial", "pci-serial"]))]),
            "domain/devices/console": Rule([("type", .oneOf(["pty"]))], repeats: true),
            "domain/devices/console/target": Rule([("type", .oneOf(["serial", "virtio"])), ("port", .number)]),
            "domain/devices/channel": Rule([("type", .oneOf(["unix", "pty", "spicevmc"]))], repeats: true),
            "domain/devices/channel/source": Rule([("mode", .oneOf(["bind"]))]),
            "domain/devices/channel/target": Rule([("type", .oneOf(["virtio"])), ("name", .name), ("state", .oneOf(["connected", "disconnected"]))]),

            // Graphics on no listener, a socket libvirt places, or loopback.
            "domain/devices/graphics": Rule([("type", .oneOf(["spice", "vnc"])), ("autoport", yesNo), ("port", .text), ("tlsPort", .text),
                                             ("listen", .oneOf(["127.0.0.1", "::1", "localhost"])), ("keymap", .name),
                                             ("sharePolicy", .oneOf(["allow-exclusive", "force-shared", "ignore"])),
                                             ("defaultMode", .oneOf(["any", "secure", "insecure"]))], repeats: true),
            "domain/devices/graphics/listen": Rule([("type", .oneOf(["none", "address", "socket"])), ("address", .oneOf(["127.0.0.1", "::1", "localhost"]))]),
            "domain/devices/graphics/image": Rule([("compression", .text)]),
            "domain/devices/graphics/gl": Rule([("enable", .oneOf(["no"]))]),
            "domain/devices/graphics/audio": Rule([("id", .number)]),
            "domain/devices/graphics/mouse": Rule([("mode", .oneOf(["server", "client"]))]),
            "domain/devices/graphics/clipboard": Rule([("copypaste", yesNo)]),
            "domain/devices/graphics/filetransfer": Rule([("enable", yesNo)]),
            "domain/devices/graphics/streaming": Rule([("mode", .oneOf(["filter", "all", "off"]))]),
            "domain/devices/video": Rule(repeats: true),
            "domain/devices/video/model": Rule([("type", .oneOf(["vga", "cirrus", "qxl", "virtio", "bochs", "ramfb", "none"])), ("vram", .number),
                                                ("heads", .number), ("primary", yesNo), ("ram", .number), ("vgamem", .number), ("vram64", .number)]),
            "domain/devices/video/model/acceleration": Rule([("accel3d", yesNo), ("accel2d", yesNo)]),
            "domain/devices/input": Rule([("type", .oneOf(["mouse", "keyboard", "tablet"])), ("bus", .oneOf(["ps2", "usb", "virtio"]))], repeats: true),
            "domain/devices/sound": Rule([("model", .oneOf(["ich6", "ich9", "ac97", "es1370", "sb16", "usb", "hda"]))], repeats: true),
            "domain/devices/sound/codec": Rule([("type", .oneOf(["duplex", "micro", "output"]))], repeats: true),
            "domain/devices/sound/audio": Rule([("id", .number)]),
            "domain/devices/audio": Rule([("id", .number), ("type", .oneOf(["none", "spice"]))], repeats: true),
            "domain/devices/controller": Rule([("type", .oneOf(["usb", "pci", "virtio-serial", "scsi", "sata", "ide", "fdc", "ccid", "xenbus", "isa"])),
                                               ("index", .number), ("model", .text), ("ports", .number), ("vectors", .number), ("maxGrantFrames", .number)],
                                              repeats: true),
            "domain/devices/controller/model": Rule([("name", .text)]),
            "domain/devices/controller/target": Rule([("chassisNr", .number), ("chassis", .number), ("port", .text), ("busNr", .number),
                                                      ("index", .number), ("hotplug", onOff)]),
            "domain/devices/controller/driver": Rule([("queues", .number), ("iothread", .number), ("cmd_per_lun", .number), ("max_sectors", .number)]),
            "domain/devices/controller/master": Rule([("startport", .number)]),
            // The RNG reads the host's entropy device, and only that.
            "domain/devices/rng": Rule([("model", .oneOf(["virtio", "virtio-transitional", "virtio-non-transitional"]))], repeats: true),
            "domain/devices/rng/backend": Rule([("model", .oneOf(["random", "builtin"]))], text: .oneOf(["/dev/urandom", "/dev/random"])),
            "domain/devices/rng/rate": Rule([("bytes", .number), ("period", .number)]),
            "domain/devices/memballoon": Rule([("model", .oneOf(["none", "virtio", "virtio-transitional", "virtio-non-transitional"])),
                                               ("autodeflate", onOff), ("freePageReporting", onOff)]),
            "domain/devices/memballoon/stats": Rule([("period", .number)]),
            "domain/devices/watchdog": Rule([("model", .oneOf(["i6300esb", "ib700", "diag288", "itco"])),
                                             ("action", .oneOf(["reset", "shutdown", "poweroff", "pause", "none", "dump", "inject-nmi"]))]),
            "domain/devices/panic": Rule([("model", .oneOf(["isa", "pseries", "hyperv", "s390"]))], repeats: true),
        ]
        for field in ["bios", "system", "baseBoard", "chassis", "oemStrings"] {
            r["domain/sysinfo/\(field)"] = Rule(repeats: field == "baseBoard")
            r["domain/sysinfo/\(field)/entry"] = Rule([("name", .text)], text: .text, repeats: true)
        }
        for feature in ["acpi", "apic", "pae", "gic", "vmcoreinfo"] where r["domain/features/\(feature)"] == nil {
            r["domain/features/\(feature)"] = Rule([("eoi", onOff), ("version", .text)])
        }
        for feature in ["relaxed", "vapic", "vpindex", "runtime", "synic", "stimer", "reset", "frequencies", "reenlightenment",
                        "tlbflush", "ipi", "evmcs"] {
            r["domain/features/hyperv/\(feature)"] = Rule([("state", onOff)])
        }
        for device in ["disk", "filesystem", "interface", "serial", "console", "channel", "video", "input", "sound", "controller",
                       "rng", "memballoon", "watchdog", "panic"] {
            r["domain/devices/\(device)/address"] = address
            r["domain/devices/\(device)/alias"] = alias
        }
        for device in ["disk", "interface"] { r["domain/devices/\(device)/boot"] = boot }
        return r
    }()

    /// The table as the API reference prints it: a title and one paragraph per element.
    public static var documentation: (title: String, paragraphs: [String]) {
        var paragraphs = [
            """
                What DefineVMFromXML accepts, element by element (paths from the root; [n] positions are not written here). \
                After each element: its attributes, with the values allowed where they are limited; text: what its text may \
                be; repeats: it may appear more than once in its parent (else once). Every device below /domain/devices may \
                also carry address and alias (and disk and interface boot). Elements of /domain/metadata are not looked into, \
                but the service's own namespace is refused.
                """,
        ]
        for path in rules.keys.sorted() {
            let rule = rules[path]!
            if path.hasSuffix("/address") || path.hasSuffix("/alias") || path.hasSuffix("/boot") && path.hasPrefix("domain/devices/") { continue }
            var parts = rule.attributes.map { name, value in describe(value).map { "\(name) (\($0))" } ?? name }
            if let text = rule.text { parts.append("text: " + (describe(text) ?? "any")) }
            if rule.repeats { parts.append("repeats") }
            paragraphs.append("/\(path)" + (parts.isEmpty ? "" : ": " + parts.joined(separator: "; ")))
        }
        return ("Domain XML allowlist", paragraphs)
    }

    static func describe(_ value: Value) -> String? {
        switch value {
        case .text: return nil
        case .number: return "a number"
        case .oneOf(let words): return words.joined(separator: ", ")
        case .name: return "a name of A-Z a-z 0-9 . _ -"
        case .generated(let prefixes): return "as libvirt names it: " + prefixes.map { $0 + "N" }.joined(separator: ", ")
        case .reference(let kind): return kind.rawValue
        }
    }
}

import FoundationEssentials
import HostSystem

/// Builds and reads domain XML with a real XML library (libxml2, through ``XElement``):
/// values are escaped by the library, never interpolated into markup.
public enum DomainXML {
    /// The namespace of the service's `<metadata>` element.
    public static let namespace = "https://multiverse-os.org/controller/1"
    static let qemuNamespace = "http://libvirt.org/schemas/domain/qemu/1.0"

    /// Everything a new domain needs.
    public struct Spec: Sendable {
        public var name: String
        public var domainType: String
        public var cpuMode: String
        public var profile: VMProfile
        public var memoryMiB: UInt64
        public var vcpus: UInt32
        /// The NICs, in order (resolved by ``VMTopology``); each gets the clean-traffic filter.
        public var nics: [NICSpec]
        public var shares: [VMShare]
        /// (path, format) in target order vda, vdb, …
        public var disks: [(path: String, format: String)]
        public var autostart: Bool
        public var fallback = ""
        public var readyTimeoutSeconds: UInt32 = 0
        public var ephemeral: Bool
        public var baseDisk: String
        /// The overlay disk made for this VM from `baseDisk` (deleted with an ephemeral VM).
        public var overlay: String
        public var seclabel: String

        public init(name: String, domainType: String, cpuMode: String, profile: VMProfile) {
            self.name = name
            self.domainType = domainType
            self.cpuMode = cpuMode
            self.profile = profile
            memoryMiB = profile.memoryMiB
            vcpus = profile.vcpus
            nics = []
            shares = profile.shares
            disks = []
            autostart = false
            ephemeral = false
            baseDisk = ""
            overlay = ""
            seclabel = "dynamic"
        }
    }

    static func element(_ name: String, _ text: String? = nil, _ attributes: [(String, String)] = [], _ children: [XElement] = []) -> XElement {
        XElement(name, text: text, attributes: attributes, children: children)
    }

    /// The service's metadata element.
    static func metadata(_ m: VMMetadata) -> XElement {
        let root = XElement("mv:controller", children: [
            element("mv:profile", m.profile),
            element("mv:autostart", m.autostart ? "true" : "false"),
            element("mv:ephemeral", m.ephemeral ? "true" : "false"),
            element("mv:base-disk", m.baseDisk),
            element("mv:overlay", m.overlay),
            element("mv:boot-order", String(m.bootOrder)),
        ] + (m.fallback.isEmpty ? [] : [element("mv:fallback", m.fallback)])
          + (m.readyTimeoutSeconds == 0 ? [] : [element("mv:ready-timeout-s", String(m.readyTimeoutSeconds))]))
        root.namespaceDeclarations = [("mv", namespace)]
        return root
    }

    /// A complete domain definition with the Multiverse defaults: UTC clock with the RTC
    /// tracking wall time, ACPI/APIC, PMU and VMware port off, destroy on power-off, restart on
    /// reboot and crash, no suspend, a virtio RNG, no balloon, no shared pages, dynamic
    /// seclabel unless `none`, host-passthrough CPU on KVM and a TCG-safe model otherwise.
    public static func build(_ spec: Spec) -> String {
        let domain = element("domain", nil, [("type", spec.domainType)])
        domain.append(element("name", spec.name))
        domain.append(element("metadata", nil, [], [metadata(VMMetadata(
            profile: spec.profile.name, autostart: spec.autostart, ephemeral: spec.ephemeral,
            baseDisk: spec.baseDisk, overlay: spec.overlay, bootOrder: spec.profile.bootOrder,
            fallback: spec.fallback, readyTimeoutSeconds: spec.readyTimeoutSeconds))]))
        domain.append(element("memory", String(spec.memoryMiB), [("unit", "MiB")]))
        domain.append(element("currentMemory", String(spec.memoryMiB), [("unit", "MiB")]))
        domain.append(element("memoryBacking", nil, [], [element("nosharepages")]))
        domain.append(element("vcpu", String(spec.vcpus)))
        domain.append(element("os", nil, [], [element("type", "hvm", [("arch", "x86_64")]), element("boot", nil, [("dev", "hd")])]))
        domain.append(element("features", nil, [], [
            element("acpi"), element("apic"), element("pmu", nil, [("state", "off")]), element("vmport", nil, [("state", "off")]),
        ]))
        domain.append(cpu(spec.cpuMode, domainType: spec.domainType))
        domain.append(element("clock", nil, [("offset", "utc")], [
            element("timer", nil, [("name", "rtc"), ("tickpolicy", "catchup"), ("track", "wall")]),
        ]))
        domain.append(element("on_poweroff", "destroy"))
        domain.append(element("on_reboot", "restart"))
        domain.append(element("on_crash", "restart"))
        domain.append(element("pm", nil, [], [
            element("suspend-to-mem", nil, [("enabled", "no")]), element("suspend-to-disk", nil, [("enabled", "no")]),
        ]))
        let devices = element("devices")
        for (index, disk) in spec.disks.enumerated() {
            devices.append(diskElement(path: disk.path, format: disk.format, target: targetName(index), bus: "virtio", readonly: false))
        }
        for share in spec.shares { devices.append(shareElement(share)) }
        for nic in spec.nics { devices.append(interfaceElement(nic)) }
        if spec.profile.serialConsole {
            devices.append(element("serial", nil, [("type", "pty")]))
            devices.append(element("console", nil, [("type", "pty")]))
        }
        if spec.profile.graphics {
            devices.append(element("graphics", nil, [("type", "spice")], [element("listen", nil, [("type", "none")])]))
            devices.append(element("video", nil, [], [element("model", nil, [("type", "virtio")])]))
        }
        devices.append(readinessChannelElement())
        devices.append(element("rng", nil, [("model", "virtio")], [element("backend", "/dev/urandom", [("model", "random")])]))
        devices.append(element("memballoon", nil, [("model", "none")]))
        domain.append(devices)
        domain.append(spec.seclabel == "none" ? element("seclabel", nil, [("type", "none")]) : element("seclabel", nil, [("type", "dynamic")]))
        return domain.xmlString
    }

    static func cpu(_ mode: String, domainType: String) -> XElement {
        let chosen = mode.isEmpty ? (domainType == "kvm" ? "host-passthrough" : "qemu64") : mode
        switch chosen {
        case "host-passthrough", "host-model", "maximum":
            return element("cpu", nil, [("mode", chosen)])
        default:
            return element("cpu", nil, [("mode", "custom"), ("match", "exact")], [element("model", chosen, [("fallback", "allow")])])
        }
    }

    static func targetName(_ index: Int) -> String {
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        return index < 26 ? "vd\(letters[index])" : "vd\(letters[index / 26 - 1])\(letters[index % 26])"
    }

    /// A file disk opened as `format`; a raw one with an empty `<backingStore/>`, so
    /// libvirt looks for no backing chain in bytes a guest writes.
    static func diskElement(path: String, format: String, target: String, bus: String, readonly: Bool) -> XElement {
        var children = [element("driver", nil, [("name", "qemu"), ("type", format)]), element("source", nil, [("file", path)])]
        if format == "raw" { children.append(element("backingStore")) }
        children.append(element("target", nil, [("dev", target), ("bus", bus)]))
        let disk = element("disk", nil, [("type", "file"), ("device", "disk")], children)
        if readonly { disk.append(element("readonly")) }
        return disk
    }

    static func shareElement(_ share: VMShare) -> XElement {
        let fs = element("filesystem", nil, [("type", "mount"), ("accessmode", "mapped")], [
            element("source", nil, [("dir", share.hostPath)]),
            element("target", nil, [("dir", share.tag)]),
        ])
        if share.readonly { fs.append(element("readonly")) }
        return fs
    }

    // MARK: reading

    /// Parses `xml` into the fields the service shows (state comes from libvirt separately).
    public static func read(_ xml: String, into info: inout VMInfo) throws {
        let domain = try XElement.parse(xml)
        guard domain.name == "domain" else { throw ControllerError.invalidArgs("not a <domain> document") }
        info.name = domain.first("name")?.text ?? info.name
        info.vcpus = UInt32(domain.first("vcpu")?.text.trimmed ?? "") ?? 0
        if let memory = domain.first("memory") {
            let value = UInt64(memory.text.trimmed) ?? 0
            info.memoryMiB = mebibytes(value, unit: memory.attribute("unit") ?? "KiB")
        }
        info.metadata = VMMetadata()
        if let ours = ownMetadata(domain) {
            for e in ours.elements() {
                let value = e.text
                switch e.localName {
                case "profile": info.metadata.profile = value
                case "autostart": info.metadata.autostart = value == "true"
                case "ephemeral": info.metadata.ephemeral = value == "true"
                case "base-disk": info.metadata.baseDisk = value
                case "overlay": info.metadata.overlay = value
                case "boot-order": info.metadata.bootOrder = Int(value) ?? 3
                case "fallback": info.metadata.fallback = VMName.isValid(value) ? value : ""
                case "ready-timeout-s": info.metadata.readyTimeoutSeconds = UInt32(value.trimmed).map { min($0, 86_400) } ?? 0
                default: break
                }
            }
        }
        let devices = domain.first("devices")
        info.disks = (devices?.elements("disk") ?? []).compactMap { disk in
            guard disk.attribute("device") ?? "disk" == "disk", let target = disk.first("target")?.attribute("dev") else { return nil }
            let source = disk.first("source")
            let path = source?.attribute("file") ?? source?.attribute("dev") ?? ""
            return VMDisk(target: target, source: path, format: disk.first("driver")?.attribute("type") ?? "raw",
                          readonly: disk.first("readonly") != nil)
        }
        info.shares = (devices?.elements("filesystem") ?? []).compactMap { fs in
            guard let dir = fs.first("source")?.attribute("dir"), let tag = fs.first("target")?.attribute("dir") else { return nil }
            return VMShare(hostPath: dir, tag: tag, readonly: fs.first("readonly") != nil)
        }
        let channel = (devices?.elements("channel") ?? []).first { $0.first("target")?.attribute("name") == readinessChannel }
        info.hasReadinessChannel = channel != nil
        info.readinessSocket = channel?.attribute("type") == "unix" ? channel?.first("source")?.attribute("path") ?? "" : ""
        info.interfaces = (devices?.elements("interface") ?? []).map { nic in
            let type = nic.attribute("type") ?? ""
            let source = nic.first("source")
            return VMInterface(type: type, source: source?.attribute("network") ?? source?.attribute("bridge") ?? source?.attribute("dev") ?? "",
                               mac: nic.first("mac")?.attribute("address") ?? "", model: nic.first("model")?.attribute("type") ?? "")
        }
    }

    static func mebibytes(_ value: UInt64, unit: String) -> UInt64 {
        switch unit {
        case "b", "bytes": return value >> 20
        case "KB": return value * 1000 >> 20
        case "k", "KiB": return value >> 10
        case "MB": return value * 1_000_000 >> 20
        case "M", "MiB": return value
        case "GB": return value * 1_000_000_000 >> 20
        case "G", "GiB": return value << 10
        default: return value >> 10
        }
    }

    static func ownMetadata(_ domain: XElement) -> XElement? {
        domain.first("metadata")?.elements().first { $0.namespaceURI == namespace }
    }

    /// Returns `xml` with the service's metadata replaced by `values` (a `<metadata>`
    /// element is added when missing).
    public static func withMetadata(_ xml: String, _ values: VMMetadata) throws -> String {
        let domain = try XElement.parse(xml)
        let metadata = domain.first("metadata") ?? {
            let m = element("metadata")
            domain.append(m)
            return m
        }()
        metadata.removeElements { $0.namespaceURI == namespace }
        metadata.append(self.metadata(values))
        return domain.xmlString
    }

    /// Returns `xml` with memory and vCPUs changed (the persistent definition).
    public static func withResources(_ xml: String, memoryMiB: UInt64?, vcpus: UInt32?) throws -> String {
        let domain = try XElement.parse(xml)
        if let memoryMiB {
            for e in domain.elements("memory") + domain.elements("currentMemory") {
                e.setText(String(memoryMiB))
                e.setAttribute("unit", "MiB")
            }
        }
        if let vcpus {
            for e in domain.elements("vcpu") {
                e.setText(String(vcpus))
                e.removeAttribute("current")
            }
        }
        return domain.xmlString
    }

    /// The domain types the connection's capabilities offer for its guests.
    public static func domainTypes(capabilities: String) -> [String] {
        guard let root = try? XElement.parse(capabilities) else { return [] }
        var types: [String] = []
        for guest in root.elements("guest") {
            for arch in guest.elements("arch") {
                for d in arch.elements("domain") {
                    if let t = d.attribute("type"), !types.contains(t) { types.append(t) }
                }
            }
        }
        return types
    }

    /// The emulator paths the connection's capabilities name (per guest arch and domain type).
    public static func emulators(capabilities: String) -> [String] {
        guard let root = try? XElement.parse(capabilities) else { return [] }
        var paths: [String] = []
        for arch in root.elements("guest").flatMap({ $0.elements("arch") }) {
            for e in arch.elements("emulator") + arch.elements("domain").flatMap({ $0.elements("emulator") }) {
                let path = e.text.trimmed
                if !path.isEmpty, !paths.contains(path) { paths.append(path) }
            }
        }
        return paths
    }

    // MARK: devices

    /// `<disk>` device XML for attaching.
    public static func diskDevice(path: String, format: String, target: String, bus: String, readonly: Bool) -> String {
        diskElement(path: path, format: format, target: target, bus: bus, readonly: readonly).xmlString
    }

    /// `<filesystem>` device XML for a 9p share.
    public static func shareDevice(_ share: VMShare) -> String { shareElement(share).xmlString }

    static func matches(_ e: XElement, disk target: String?, share tag: String?) -> Bool {
        if let target { return e.name == "disk" && e.first("target")?.attribute("dev") == target }
        if let tag { return e.name == "filesystem" && e.first("target")?.attribute("dir") == tag }
        return false
    }

    /// The XML of the device in `domainXML` matching (disk by target dev, share by target dir).
    public static func device(in domainXML: String, disk target: String? = nil, share tag: String? = nil) throws -> String? {
        try XElement.parse(domainXML).first("devices")?.elements().first { matches($0, disk: target, share: tag) }?.xmlString
    }

    /// `domainXML` with `deviceXML` appended to `<devices>` (for drivers without device calls).
    public static func adding(device deviceXML: String, to domainXML: String) throws -> String {
        let domain = try XElement.parse(domainXML)
        let devices = domain.first("devices") ?? {
            let d = element("devices")
            domain.append(d)
            return d
        }()
        devices.append(try XElement.parse(deviceXML))
        return domain.xmlString
    }

    /// `domainXML` without the matching device.
    public static func removing(disk target: String? = nil, share tag: String? = nil, from domainXML: String) throws -> String {
        let domain = try XElement.parse(domainXML)
        domain.first("devices")?.removeElements { matches($0, disk: target, share: tag) }
        return domain.xmlString
    }
}

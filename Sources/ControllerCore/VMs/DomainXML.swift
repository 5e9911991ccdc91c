import CLibxml2
import Foundation
import FoundationXML

/// Builds and reads domain XML with a real XML library (FoundationXML on libxml2): values
/// are escaped by the library, never interpolated into markup.
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
        public var networks: [String]
        public var shares: [VMShare]
        /// (path, format) in target order vda, vdb, …
        public var disks: [(path: String, format: String)]
        public var autostart: Bool
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
            networks = profile.networks
            shares = profile.shares
            disks = []
            autostart = false
            ephemeral = false
            baseDisk = ""
            overlay = ""
            seclabel = "dynamic"
        }
    }

    static func element(_ name: String, _ text: String? = nil, _ attributes: [(String, String)] = [], _ children: [XMLElement] = []) -> XMLElement {
        let e = text.map { XMLElement(name: name, stringValue: $0) } ?? XMLElement(name: name)
        for (k, v) in attributes {
            let a = XMLNode(kind: .attribute)
            a.name = k
            a.stringValue = v
            e.addAttribute(a)
        }
        for c in children { e.addChild(c) }
        return e
    }

    /// The service's metadata element.
    static func metadata(_ m: VMMetadata) -> XMLElement {
        let root = XMLElement(name: "mv:controller")
        root.addNamespace(XMLNode.namespace(withName: "mv", stringValue: namespace) as! XMLNode)
        root.addChild(element("mv:profile", m.profile))
        root.addChild(element("mv:autostart", m.autostart ? "true" : "false"))
        root.addChild(element("mv:ephemeral", m.ephemeral ? "true" : "false"))
        root.addChild(element("mv:base-disk", m.baseDisk))
        root.addChild(element("mv:overlay", m.overlay))
        root.addChild(element("mv:boot-order", String(m.bootOrder)))
        return root
    }

    /// A complete domain definition with the Multiverse defaults: UTC clock with the RTC
    /// tracking wall time, ACPI/APIC, PMU and VMware port off, destroy on power-off, restart on
    /// reboot and crash, no suspend, a virtio RNG, no balloon, no shared pages, dynamic
    /// seclabel unless `none`, host-passthrough CPU on KVM and a TCG-safe model otherwise.
    public static func build(_ spec: Spec) -> String {
        let domain = element("domain", nil, [("type", spec.domainType)])
        domain.addChild(element("name", spec.name))
        domain.addChild(element("metadata", nil, [], [metadata(VMMetadata(
            profile: spec.profile.name, autostart: spec.autostart, ephemeral: spec.ephemeral,
            baseDisk: spec.baseDisk, overlay: spec.overlay, bootOrder: spec.profile.bootOrder))]))
        domain.addChild(element("memory", String(spec.memoryMiB), [("unit", "MiB")]))
        domain.addChild(element("currentMemory", String(spec.memoryMiB), [("unit", "MiB")]))
        domain.addChild(element("memoryBacking", nil, [], [element("nosharepages")]))
        domain.addChild(element("vcpu", String(spec.vcpus)))
        domain.addChild(element("os", nil, [], [element("type", "hvm", [("arch", "x86_64")]), element("boot", nil, [("dev", "hd")])]))
        domain.addChild(element("features", nil, [], [
            element("acpi"), element("apic"), element("pmu", nil, [("state", "off")]), element("vmport", nil, [("state", "off")]),
        ]))
        domain.addChild(cpu(spec.cpuMode, domainType: spec.domainType))
        domain.addChild(element("clock", nil, [("offset", "utc")], [
            element("timer", nil, [("name", "rtc"), ("tickpolicy", "catchup"), ("track", "wall")]),
        ]))
        domain.addChild(element("on_poweroff", "destroy"))
        domain.addChild(element("on_reboot", "restart"))
        domain.addChild(element("on_crash", "restart"))
        domain.addChild(element("pm", nil, [], [
            element("suspend-to-mem", nil, [("enabled", "no")]), element("suspend-to-disk", nil, [("enabled", "no")]),
        ]))
        let devices = element("devices")
        for (index, disk) in spec.disks.enumerated() {
            devices.addChild(diskElement(path: disk.path, format: disk.format, target: targetName(index), bus: "virtio", readonly: false))
        }
        for share in spec.shares { devices.addChild(shareElement(share)) }
        for network in spec.networks {
            devices.addChild(element("interface", nil, [("type", "network")], [
                element("source", nil, [("network", network)]), element("model", nil, [("type", "virtio")]),
            ]))
        }
        if spec.profile.serialConsole {
            devices.addChild(element("serial", nil, [("type", "pty")]))
            devices.addChild(element("console", nil, [("type", "pty")]))
        }
        if spec.profile.graphics {
            devices.addChild(element("graphics", nil, [("type", "spice")], [element("listen", nil, [("type", "none")])]))
            devices.addChild(element("video", nil, [], [element("model", nil, [("type", "virtio")])]))
        }
        devices.addChild(element("rng", nil, [("model", "virtio")], [element("backend", "/dev/urandom", [("model", "random")])]))
        devices.addChild(element("memballoon", nil, [("model", "none")]))
        domain.addChild(devices)
        domain.addChild(spec.seclabel == "none" ? element("seclabel", nil, [("type", "none")]) : element("seclabel", nil, [("type", "dynamic")]))
        return XMLDocument(rootElement: domain).xmlString
    }

    static func cpu(_ mode: String, domainType: String) -> XMLElement {
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

    static func diskElement(path: String, format: String, target: String, bus: String, readonly: Bool) -> XMLElement {
        let disk = element("disk", nil, [("type", "file"), ("device", "disk")], [
            element("driver", nil, [("name", "qemu"), ("type", format)]),
            element("source", nil, [("file", path)]),
            element("target", nil, [("dev", target), ("bus", bus)]),
        ])
        if readonly { disk.addChild(element("readonly")) }
        return disk
    }

    static func shareElement(_ share: VMShare) -> XMLElement {
        let fs = element("filesystem", nil, [("type", "mount"), ("accessmode", "mapped")], [
            element("source", nil, [("dir", share.hostPath)]),
            element("target", nil, [("dir", share.tag)]),
        ])
        if share.readonly { fs.addChild(element("readonly")) }
        return fs
    }

    // MARK: reading

    /// Parses `xml` into the fields the service shows (state comes from libvirt separately).
    public static func read(_ xml: String, into info: inout VMInfo) throws {
        let document = try parse(xml)
        guard let domain = document.rootElement(), domain.name == "domain" else { throw ControllerError.invalidArgs("not a <domain> document") }
        info.name = domain.elements(forName: "name").first?.stringValue ?? info.name
        info.vcpus = UInt32(domain.elements(forName: "vcpu").first?.stringValue?.trimmingCharacters(in: .whitespaces) ?? "") ?? 0
        if let memory = domain.elements(forName: "memory").first {
            let value = UInt64(memory.stringValue?.trimmingCharacters(in: .whitespaces) ?? "") ?? 0
            info.memoryMiB = mebibytes(value, unit: memory.attribute(forName: "unit")?.stringValue ?? "KiB")
        }
        info.metadata = VMMetadata()
        if let ours = ownMetadata(domain) {
            for child in ours.children ?? [] {
                guard let e = child as? XMLElement, let local = e.localName else { continue }
                let value = e.stringValue ?? ""
                switch local {
                case "profile": info.metadata.profile = value
                case "autostart": info.metadata.autostart = value == "true"
                case "ephemeral": info.metadata.ephemeral = value == "true"
                case "base-disk": info.metadata.baseDisk = value
                case "overlay": info.metadata.overlay = value
                case "boot-order": info.metadata.bootOrder = Int(value) ?? 3
                default: break
                }
            }
        }
        let devices = domain.elements(forName: "devices").first
        info.disks = (devices?.elements(forName: "disk") ?? []).compactMap { disk in
            guard disk.attribute(forName: "device")?.stringValue ?? "disk" == "disk",
                  let target = disk.elements(forName: "target").first?.attribute(forName: "dev")?.stringValue else { return nil }
            let source = disk.elements(forName: "source").first
            let path = source?.attribute(forName: "file")?.stringValue ?? source?.attribute(forName: "dev")?.stringValue ?? ""
            let format = disk.elements(forName: "driver").first?.attribute(forName: "type")?.stringValue ?? "raw"
            return VMDisk(target: target, source: path, format: format)
        }
        info.shares = (devices?.elements(forName: "filesystem") ?? []).compactMap { fs in
            guard let dir = fs.elements(forName: "source").first?.attribute(forName: "dir")?.stringValue,
                  let tag = fs.elements(forName: "target").first?.attribute(forName: "dir")?.stringValue else { return nil }
            return VMShare(hostPath: dir, tag: tag, readonly: !fs.elements(forName: "readonly").isEmpty)
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

    /// Parses `xml` strictly: libxml2 without recovery, no network, no entity expansion
    /// (FoundationXML alone would repair malformed input), then the tree with FoundationXML.
    static func parse(_ xml: String) throws -> XMLDocument {
        let options = Int32(XML_PARSE_NONET.rawValue | XML_PARSE_NOERROR.rawValue | XML_PARSE_NOWARNING.rawValue)
        let wellFormed = xml.withCString { pointer -> Bool in
            guard let doc = xmlReadMemory(pointer, Int32(strlen(pointer)), "domain.xml", "UTF-8", options) else { return false }
            xmlFreeDoc(doc)
            return true
        }
        guard wellFormed else {
            let detail = xmlGetLastError().flatMap { $0.pointee.message }.map { String(cString: $0).trimmingCharacters(in: .whitespacesAndNewlines) }
            throw ControllerError.invalidArgs("the XML does not parse\(detail.map { ": \($0)" } ?? "")")
        }
        do {
            return try XMLDocument(xmlString: xml, options: [.nodeLoadExternalEntitiesNever])
        } catch {
            throw ControllerError.invalidArgs("the XML does not parse: \(error.localizedDescription)")
        }
    }

    static func ownMetadata(_ domain: XMLElement) -> XMLElement? {
        for child in domain.elements(forName: "metadata").first?.children ?? [] {
            if let e = child as? XMLElement, e.uri == namespace || e.name?.hasSuffix(":controller") == true && e.localName == "controller" {
                return e
            }
        }
        return nil
    }

    /// Returns `xml` with the service's metadata replaced by the given values (a
    /// `<metadata>` element is added when missing).
    public static func withMetadata(_ xml: String, _ values: VMMetadata) throws -> String {
        let document = try parse(xml)
        guard let domain = document.rootElement() else { throw ControllerError.invalidArgs("empty XML") }
        var metadata = domain.elements(forName: "metadata").first
        if metadata == nil {
            let m = element("metadata")
            // libvirt orders elements itself; placing it after <name>/<uuid> keeps it readable.
            domain.insertChild(m, at: min(2, domain.childCount))
            metadata = m
        }
        if let old = ownMetadata(domain), let index = old.index as Int? { metadata?.removeChild(at: index) }
        metadata?.addChild(self.metadata(values))
        return document.xmlString
    }

    /// Returns `xml` with memory and vCPUs changed (the persistent definition).
    public static func withResources(_ xml: String, memoryMiB: UInt64?, vcpus: UInt32?) throws -> String {
        let document = try parse(xml)
        guard let domain = document.rootElement() else { throw ControllerError.invalidArgs("empty XML") }
        if let memoryMiB {
            for name in ["memory", "currentMemory"] {
                for e in domain.elements(forName: name) {
                    e.stringValue = String(memoryMiB)
                    e.removeAttribute(forName: "unit")
                    e.addAttribute(XMLNode.attribute(withName: "unit", stringValue: "MiB") as! XMLNode)
                }
            }
        }
        if let vcpus {
            for e in domain.elements(forName: "vcpu") {
                e.stringValue = String(vcpus)
                e.removeAttribute(forName: "current")
            }
        }
        return document.xmlString
    }

    /// Checks a caller's domain XML: a `<domain>` with a valid name, and (unless allowed) no
    /// `<qemu:commandline>` and no host device passthrough. Returns the VM name.
    public static func validateForeign(_ xml: String, allowPassthrough: Bool) throws -> String {
        guard xml.utf8.count <= 1 << 20 else { throw ControllerError.limitsExceeded("domain XML larger than 1 MiB") }
        let document = try parse(xml)
        guard let domain = document.rootElement(), domain.name == "domain" else {
            throw ControllerError.invalidArgs("the document's root element is not <domain>")
        }
        guard let name = domain.elements(forName: "name").first?.stringValue else {
            throw ControllerError.invalidArgs("the domain has no <name>")
        }
        try VMName.validate(name)
        if !allowPassthrough {
            var stack: [XMLElement] = [domain]
            while let e = stack.popLast() {
                if e.uri == qemuNamespace || (e.name ?? "").hasPrefix("qemu:") {
                    throw ControllerError.invalidArgs("<\(e.name ?? "")> (qemu command-line passthrough) is not allowed (vms.allow_passthrough)")
                }
                if ["hostdev", "redirdev"].contains(e.name ?? "") {
                    throw ControllerError.invalidArgs("<\(e.name ?? "")> (host device passthrough) is not allowed (vms.allow_passthrough)")
                }
                stack.append(contentsOf: (e.children ?? []).compactMap { $0 as? XMLElement })
            }
        }
        return name
    }

    /// The domain types the connection's capabilities offer for x86_64 guests.
    public static func domainTypes(capabilities: String) -> [String] {
        guard let document = try? parse(capabilities), let root = document.rootElement() else { return [] }
        var types: [String] = []
        for guest in root.elements(forName: "guest") {
            for arch in guest.elements(forName: "arch") {
                for d in arch.elements(forName: "domain") {
                    if let t = d.attribute(forName: "type")?.stringValue, !types.contains(t) { types.append(t) }
                }
            }
        }
        return types
    }

    // MARK: devices

    /// `<disk>` device XML for attaching.
    public static func diskDevice(path: String, format: String, target: String, bus: String, readonly: Bool) -> String {
        diskElement(path: path, format: format, target: target, bus: bus, readonly: readonly).xmlString
    }

    /// `<filesystem>` device XML for a 9p share.
    public static func shareDevice(_ share: VMShare) -> String { shareElement(share).xmlString }

    /// The XML of the device in `domainXML` matching (disk by target dev, share by target dir).
    public static func device(in domainXML: String, disk target: String? = nil, share tag: String? = nil) throws -> String? {
        try matchingDevice(in: try parse(domainXML), disk: target, share: tag)?.xmlString
    }

    static func matchingDevice(in document: XMLDocument, disk target: String?, share tag: String?) -> XMLElement? {
        guard let devices = document.rootElement()?.elements(forName: "devices").first else { return nil }
        if let target {
            return devices.elements(forName: "disk").first { $0.elements(forName: "target").first?.attribute(forName: "dev")?.stringValue == target }
        }
        if let tag {
            return devices.elements(forName: "filesystem").first { $0.elements(forName: "target").first?.attribute(forName: "dir")?.stringValue == tag }
        }
        return nil
    }

    /// `domainXML` with `deviceXML` appended to `<devices>` (for drivers without device calls).
    public static func adding(device deviceXML: String, to domainXML: String) throws -> String {
        let document = try parse(domainXML)
        let device = try parse(deviceXML).rootElement()!
        device.detach()
        guard let root = document.rootElement() else { throw ControllerError.invalidArgs("empty XML") }
        let devices = root.elements(forName: "devices").first ?? {
            let d = element("devices")
            root.addChild(d)
            return d
        }()
        devices.addChild(device)
        return document.xmlString
    }

    /// `domainXML` without the matching device.
    public static func removing(disk target: String? = nil, share tag: String? = nil, from domainXML: String) throws -> String {
        let document = try parse(domainXML)
        matchingDevice(in: document, disk: target, share: tag)?.detach()
        return document.xmlString
    }
}

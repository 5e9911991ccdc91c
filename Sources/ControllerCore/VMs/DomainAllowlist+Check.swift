import HostSystem

/// The walk of a caller's domain tree against ``DomainAllowlist/rules``.
extension DomainAllowlist {
    /// The host objects a checked domain names, by kind, in document order (as written by
    /// the caller; the service resolves shares and kernel files only after authorization).
    public struct References: Sendable, Equatable {
        public var managedDisks: [(path: String, format: String)] = []
        public var shareDirectories: [String] = []
        public var kernelFiles: [String] = []
        public var emulators: [String] = []

        public static func == (a: References, b: References) -> Bool {
            a.managedDisks.map(\.path) == b.managedDisks.map(\.path) && a.managedDisks.map(\.format) == b.managedDisks.map(\.format)
                && a.shareDirectories == b.shareDirectories && a.kernelFiles == b.kernelFiles && a.emulators == b.emulators
        }
    }

    /// Checks `domain` (the caller's tree, before the service adds anything) element by
    /// element; returns the host objects it names. `InvalidArgs` names the first element,
    /// attribute or text that is not allowed by its path. The service's own metadata
    /// namespace is refused; `<qemu:*>`, `<hostdev>` and `<redirdev>` pass only with
    /// `allowPassthrough` (and are then not looked into).
    public static func check(_ domain: XElement, allowPassthrough: Bool) throws -> References {
        var references = References()
        guard domain.name == "domain", domain.namespaceURI == nil else {
            throw ControllerError.invalidArgs("the document's root element is not <domain> (it is <\(domain.name)>)")
        }
        try check(domain, path: "domain", shown: "/domain", allowPassthrough: allowPassthrough, into: &references)
        return references
    }

    private static func check(_ e: XElement, path: String, shown: String, allowPassthrough: Bool, into refs: inout References) throws {
        guard let rule = rules[path] else { throw refusal("\(shown) is not an element DefineVMFromXML accepts") }
        if path == "domain/devices/disk/backingStore", !e.elements().isEmpty || !e.attributes.isEmpty {
            throw refusal("\(shown) names a backing chain; a managed disk's chain is the service's to know (give <backingStore/> or none)")
        }
        for (name, value) in e.attributes {
            guard let allowed = rule.value(of: name) else {
                throw refusal("\(shown)/@\(name)=\(quote(value)) is not an attribute DefineVMFromXML accepts")
            }
            try checkValue(value, allowed, at: "\(shown)/@\(name)", into: &refs)
        }
        let text = e.children.compactMap { if case .text(let t) = $0 { t } else { nil } }.joined()
        if let allowed = rule.text {
            try checkValue(text.trimmed, allowed, at: "\(shown)/text()", into: &refs)
        } else if !text.allSatisfy(\.isWhitespace) {
            throw refusal("\(shown) holds text \(quote(text.trimmed)); it takes none")
        }
        if path == "domain/metadata" {
            // Other applications' metadata is theirs; the service's namespace is the service's.
            if let ours = e.elements().first(where: { $0.namespaceURI == DomainXML.namespace }) {
                throw refusal("\(shown)/\(ours.name) is the service's own metadata; give its values as DefineVMFromXML options (profile, autostart, boot_order, fallback, ready_timeout_s)")
            }
            return
        }
        var seen: [String: Int] = [:]
        for child in e.elements() {
            let count = (seen[child.name] ?? 0) + 1
            seen[child.name] = count
            let childPath = "\(path)/\(child.name)"
            // Positions only where an element may repeat: /domain/devices/serial[1]/@type.
            let childShown = "\(shown)/\(child.name)" + (rules[childPath]?.repeats ?? false || count > 1 ? "[\(count)]" : "")
            if isPassthrough(child) {
                guard allowPassthrough else {
                    throw refusal("""
                        \(childShown) \
                        (\(child.name.hasPrefix("qemu:") || child.namespaceURI == DomainXML.qemuNamespace ? "qemu command-line" : "host device") \
                        passthrough) is not allowed (vms.allow_passthrough)
                        """)
                }
                continue
            }
            guard child.namespaceURI == nil, !child.name.contains(":") else {
                throw refusal("\(childShown) is in the namespace \(quote(child.namespaceURI ?? "")); DefineVMFromXML accepts libvirt's elements only")
            }
            if count == 2, let childRule = rules[childPath], !childRule.repeats {
                throw refusal("\(childShown): <\(child.name)> may appear only once in \(shown)")
            }
            try check(child, path: childPath, shown: childShown, allowPassthrough: allowPassthrough, into: &refs)
        }
        try collectDevice(e, path: path, shown: shown, into: &refs)
    }

    /// The references only a whole device makes sense of (a disk's format is its driver's).
    private static func collectDevice(_ e: XElement, path: String, shown: String, into refs: inout References) throws {
        switch path {
        case "domain/devices/disk":
            guard let file = e.first("source")?.attribute("file") else {
                if e.attribute("device") == "cdrom" { return }   // an empty drive
                throw refusal("\(shown) has no <source file=…>; a disk is a managed disk")
            }
            guard let format = e.first("driver")?.attribute("type") else {
                throw refusal("\(shown) has no <driver type=…>; say the managed disk's format (raw or qcow2)")
            }
            refs.managedDisks.append((file, format))
        case "domain/seclabel":
            let (type, model) = (e.attribute("type") ?? "dynamic", e.attribute("model"))
            guard (type == "none") == (model == "none") else {
                throw refusal("""
                    \(shown): type=\(quote(type)) with model=\(quote(model ?? "")): only the stub model 'none' may have type \
                    'none' (confinement stays on; DefineVM's seclabel option and [vms] allow_unconfined are the way to turn it \
                    off)
                    """)
            }
        case "domain/devices/filesystem":
            guard let dir = e.first("source")?.attribute("dir") else { throw refusal("\(shown) has no <source dir=…>") }
            refs.shareDirectories.append(dir)
        case "domain/devices/interface":
            // Only the source attribute of the NIC's type, so what the topology rules check
            // is what libvirt connects.
            let type = e.attribute("type") ?? "network"
            let allowed: Set<String> = switch type {
            case "network": ["network", "portgroup", "portid"]
            case "bridge": ["bridge"]
            default: ["dev", "mode"]
            }
            if let source = e.first("source"), let extra = source.attributes.first(where: { !allowed.contains($0.name) }) {
                throw refusal("\(shown)/source/@\(extra.name)=\(quote(extra.value)) does not belong to an interface of type \(quote(type))")
            }
            guard e.first("source") != nil else { throw refusal("\(shown) has no <source>") }
        case "domain/devices/channel":
            // The readiness channel as the service writes it (a dumpxml of its VM) is taken
            // and replaced by the service's own; other names of the service's are refused.
            if let name = e.first("target")?.attribute("name"), name.hasPrefix(DomainXML.reservedChannelPrefix),
               name != DomainXML.readinessChannel || e.attribute("type") != "unix" {
                throw refusal("\(shown)/target[1]/@name=\(quote(name)): port names under \(DomainXML.reservedChannelPrefix) are the service's own")
            }
        default: break
        }
    }

    private static func isPassthrough(_ e: XElement) -> Bool {
        e.namespaceURI == DomainXML.qemuNamespace || e.name.hasPrefix("qemu:") || ["hostdev", "redirdev"].contains(e.name)
    }

    private static func checkValue(_ value: String, _ allowed: Value, at shown: String, into refs: inout References) throws {
        switch allowed {
        case .text:
            return
        case .number:
            guard !value.isEmpty, value.utf8.count <= 20, value.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else {
                throw refusal("\(shown)=\(quote(value)) is not a number")
            }
        case .oneOf(let words):
            guard words.contains(value) else {
                throw refusal("\(shown)=\(quote(value)) is not accepted (one of: \(words.joined(separator: ", ")))")
            }
        case .name:
            let ok = (1...128).contains(value.utf8.count) && !value.hasPrefix(".") && !value.hasPrefix("-")
                && value.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a) || $0 == 0x2e || $0 == 0x5f || $0 == 0x2d }
            guard ok else { throw refusal("\(shown)=\(quote(value)) is not a name (1-128 of A-Z a-z 0-9 . _ -, not starting with '.' or '-')") }
        case .generated(let prefixes):
            let number = prefixes.first { value.hasPrefix($0) }.map { value.dropFirst($0.count) } ?? ""
            guard !number.isEmpty, number.utf8.count <= 6, number.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else {
                throw refusal("\(shown)=\(quote(value)) is not a name libvirt generates (\(prefixes.map { $0 + "N" }.joined(separator: ", ")))")
            }
        case .reference(let kind):
            guard value.hasPrefix("/"), !value.split(separator: "/").contains(".."), !value.utf8.contains(0) else {
                throw refusal("\(shown)=\(quote(value)) must be an absolute path without '..' (\(kind.rawValue))")
            }
            switch kind {
            case .kernelFile: refs.kernelFiles.append(value)
            case .emulator: refs.emulators.append(value)
            case .managedDisk, .shareDirectory: break   // collected with their device
            }
        }
    }

    static func quote(_ value: String) -> String { CallerText.quoted(value) }

    static func refusal(_ message: String) -> ControllerError { .invalidArgs(message) }
}

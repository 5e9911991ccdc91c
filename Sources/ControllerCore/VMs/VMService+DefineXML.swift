import FoundationEssentials
import HostSystem

/// DefineVMFromXML: a caller's domain checked against ``DomainAllowlist``, the service's
/// metadata from the call's options, host paths resolved only after authorization.
extension VMService {
    /// What DefineVMFromXML asks for: the caller's XML and the options that fill the
    /// service's own metadata (never read from the XML).
    public struct ForeignDefineRequest: Sendable {
        public var xml: String
        /// The profile whose role the topology rules use ("": an app VM).
        public var profile = ""
        public var autostart = false
        /// StartAll order (0 first); nil: the profile's, else 3 (last).
        public var bootOrder: UInt32?
        public var fallback = ""
        public var readyTimeoutSeconds: UInt32 = 0
        /// Log the first serial console to `[vms] console_log_dir/NAME-console.log`.
        public var consoleLog = false
        /// Boot from a new copy-on-write overlay of this managed disk, attached as vda.
        public var baseDisk: String?
        /// Undefine the VM and delete its overlay when it stops.
        public var ephemeral = false
        public init(xml: String) { self.xml = xml }
    }

    /// A checked DefineVMFromXML: the caller's tree with the service's additions, and the
    /// host objects it names (shares and kernel files are resolved by ``runDefine(_:)-4k2w``).
    public struct ForeignDefinePlan: Sendable {
        public let name: String
        public let profile: String
        let xml: String
        public let references: DomainAllowlist.References
        public let networks: [String]
        /// The overlay to make first (base_disk).
        public let overlay: DiskService.CreatePlan?
        public var details: [String: String] {
            ["vm": name, "operation": "define-xml", "profile": profile,
             "disks": references.managedDisks.map(\.path).joined(separator: ","),
             "shares": references.shareDirectories.joined(separator: ","),
             "kernel": references.kernelFiles.joined(separator: ","),
             "networks": networks.joined(separator: ","), "base_disk": overlay?.request.backing ?? ""]
        }
    }

    public func checkDefine(_ request: ForeignDefineRequest) async throws -> ForeignDefinePlan {
        guard request.xml.utf8.count <= 1 << 20 else { throw ControllerError.limitsExceeded("domain XML larger than 1 MiB") }
        let domain = try XElement.parse(request.xml)
        let references = try DomainAllowlist.check(domain, allowPassthrough: config.allowPassthrough)
        guard let name = domain.first("name")?.text else { throw ControllerError.invalidArgs("the domain has no <name>") }
        try VMName.validate(name)
        let profiles = await vms.profiles
        if !request.profile.isEmpty, !profiles.contains(where: { $0.name == request.profile }) {
            throw ControllerError.invalidArgs("unknown profile \(CallerText.quoted(request.profile)) (known: \(profiles.map(\.name).joined(separator: ", ")))")
        }
        for (path, format) in references.managedDisks { try await checkManagedDisk(path: path, format: format) }
        for shown in references.shareDirectories { try SharePath.checkSyntax(shown, roots: config.shareRoots) }
        for shown in references.kernelFiles { _ = try RootedPath.lexical(shown, what: "kernel file", roots: config.kernelRoots, rootsName: "kernel root") }
        let emulators = await vms.emulators
        for emulator in references.emulators where !emulators.contains(emulator) {
            throw ControllerError.invalidArgs("""
                /domain/devices/emulator \(CallerText.quoted(emulator)) is not the emulator libvirt names \
                (\(emulators.joined(separator: ", "))); leave it out and libvirt picks it
                """)
        }
        var info = VMInfo(uuid: "", name: name)
        try DomainXML.read(request.xml, into: &info)
        try VMTopology.checkNICCount(info.interfaces.count)
        let macs = info.interfaces.map(\.mac).filter { !$0.isEmpty }
        _ = try VMTopology.checkMACs(macs, nics: macs.count, others: await vms.list())
        let role = VMRole.of(profile: request.profile, in: profiles)
        let sources = try info.interfaces.enumerated().map { index, nic in
            guard let source = NICSource(nic) else {
                throw ControllerError.invalidArgs("NIC \(index + 1) of VM \(name) is of type \(CallerText.quoted(nic.type)); only network (and a router's uplink) are accepted")
            }
            return source
        }
        let topology = VMTopology(config)
        try topology.check(sources, role: role, vm: name, kinds: try await vms.networkKinds(sources.compactMap(\.networkName)))
        try await checkFallback(request.fallback, of: name)
        try Self.checkReadyTimeout(request.readyTimeoutSeconds)
        if let order = request.bootOrder, order > 9 { throw ControllerError.invalidArgs("boot_order \(order) is above 9") }
        try await vms.precheckName(name)
        let overlay = try await request.baseDisk.asyncMap { try await checkOverlay(of: $0, for: name) }
        if overlay != nil, domain.first("devices")?.elements("disk").contains(where: { $0.first("target")?.attribute("dev") == "vda" }) == true {
            throw ControllerError.invalidArgs("base_disk: the overlay is attached as vda, which a <disk> of the document already uses")
        }

        let bootOrder = request.bootOrder.map(Int.init) ?? profiles.first { $0.name == request.profile }?.bootOrder ?? 3
        let metadata = VMMetadata(profile: request.profile, autostart: request.autostart, ephemeral: request.ephemeral,
                                  baseDisk: request.baseDisk ?? "", overlay: overlay?.request.name ?? "", bootOrder: bootOrder,
                                  fallback: request.fallback, readyTimeoutSeconds: request.readyTimeoutSeconds)
        let devices = domain.first("devices") ?? {
            let d = DomainXML.element("devices")
            domain.append(d)
            return d
        }()
        if let overlay {
            let path = (imageDirectory.hasSuffix("/") ? imageDirectory : imageDirectory + "/") + overlay.request.name
            devices.children.insert(.element(DomainXML.diskElement(path: path, format: "qcow2", target: "vda", bus: "virtio", readonly: false)), at: 0)
        }
        devices.removeElements { $0.name == "channel" && $0.first("target")?.attribute("name") == DomainXML.readinessChannel }
        devices.append(DomainXML.readinessChannelElement())
        if request.consoleLog { addConsoleLog(devices, name: name) }
        for fs in devices.elements("filesystem") where fs.attribute("accessmode") == nil { fs.setAttribute("accessmode", "mapped") }
        let metadataElement = domain.first("metadata") ?? {
            let m = DomainXML.element("metadata")
            domain.append(m)
            return m
        }()
        metadataElement.append(DomainXML.metadata(metadata))
        return ForeignDefinePlan(name: name, profile: request.profile, xml: domain.xmlString, references: references,
                                 networks: sources.map(\.description), overlay: overlay)
    }

    /// Resolves the shares and kernel files the caller named (now that the caller is
    /// authorized), writes their real paths, and defines the domain.
    public func runDefine(_ plan: ForeignDefinePlan) async throws -> VMInfo {
        let domain = try XElement.parse(plan.xml)
        for fs in domain.first("devices")?.elements("filesystem") ?? [] {
            guard let source = fs.first("source"), let dir = source.attribute("dir") else { continue }
            source.setAttribute("dir", try SharePath.validate(dir, roots: config.shareRoots))
        }
        for file in ["kernel", "initrd"] {
            guard let e = domain.path("os/\(file)") else { continue }
            e.setText(try KernelPath.validate(e.text.trimmed, roots: config.kernelRoots, imageDirectory: imageDirectory))
        }
        guard let overlayPlan = plan.overlay else {
            let info = try await vms.define(xml: domain.xmlString, name: plan.name)
            await recordOverlay("", of: info)
            return info
        }
        let overlay = try await disks.createOverlay(overlayPlan)
        do {
            let info = try await vms.define(xml: domain.xmlString, name: plan.name)
            await recordOverlay(overlay.name, of: info)
            return info
        } catch {
            try? await disks.deleteForVM(overlay.name)   // nothing half-made stays behind
            throw error
        }
    }

    /// A caller's disk source: the path of a managed disk, with that disk's format.
    func checkManagedDisk(path: String, format: String) async throws {
        let prefix = imageDirectory.hasSuffix("/") ? imageDirectory : imageDirectory + "/"
        let name = path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : ""
        guard NameRule.disk.isValid(name), let disk = try? await disks.existing(name) else {
            throw ControllerError.invalidArgs("disk source \(CallerText.quoted(path)) is not a managed disk (a file \(prefix)NAME the service lists)")
        }
        guard disk.format == format else {
            throw ControllerError.invalidArgs("disk source \(CallerText.quoted(path)): <driver type=\(CallerText.quoted(format))> but managed disk \(name) is \(disk.format)")
        }
    }

    /// The first serial console logs to the service's place for it (a pty console is
    /// added when the domain has none).
    func addConsoleLog(_ devices: XElement, name: String) {
        let serial = devices.first("serial") ?? {
            let s = DomainXML.element("serial", nil, [("type", "pty")])
            devices.append(s)
            return s
        }()
        let dir = config.consoleLogDirectory.hasSuffix("/") ? String(config.consoleLogDirectory.dropLast()) : config.consoleLogDirectory
        serial.append(DomainXML.element("log", nil, [("file", "\(dir)/\(name)-console.log"), ("append", "off")]))
    }
}

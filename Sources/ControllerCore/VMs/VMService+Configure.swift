import FoundationEssentials
import HostSystem

/// The VM calls that change its definition or devices: SetAutostart, SetResources, disks,
/// shares and snapshots.
extension VMService {
    /// A checked change of the definition; `details` for the authorization.
    public struct ConfigurePlan: Sendable {
        public let vm: VMInfo
        public let operation: String
        /// What the change names besides the VM (the disk, the share), for polkit rules.
        public var extraDetails: [String: String] = [:]
        fileprivate let change: Change
        public var details: [String: String] { extraDetails.merging(["vm": vm.name, "operation": operation]) { _, ours in ours } }

        fileprivate init(vm: VMInfo, operation: String, details: [String: String] = [:], change: Change) {
            self.vm = vm
            self.operation = operation
            extraDetails = details
            self.change = change
        }
    }

    fileprivate enum Change: Sendable {
        case autostart(Bool, fallback: String?, readyTimeoutSeconds: UInt32?)
        case resources(memoryMiB: UInt64?, vcpus: UInt32?)
        /// `lease`: the running VM's lease on the managed disk a live attach adds.
        case attach(device: String, live: Bool, config: Bool, what: String, lease: LeaseRequest?)
        /// An image named by its host path: looked at only in ``runConfigure(_:)``, after authorization.
        case attachPath(path: String, format: String, target: String, bus: String, readonly: Bool, live: Bool, config: Bool)
        case detachDisk(target: String, live: Bool, config: Bool, timeout: Int)
        case addShare(VMShare)
        case removeShare(String)
    }

    /// `fallback`: the VM StartAll starts in this one's place ("" clears it); `readyTimeoutSeconds`:
    /// how long StartAll waits for its READY=1 (0: `[vms] ready_timeout_s`).
    public func checkAutostart(_ uuid: String, enabled: Bool, fallback: String? = nil, readyTimeoutSeconds: UInt32? = nil) async throws -> ConfigurePlan {
        let info = try await existing(uuid)
        guard info.persistent else { throw ControllerError.invalidState("\(info.name) is transient; autostart needs a persistent VM") }
        if let fallback { try await checkFallback(fallback, of: info.name) }
        try Self.checkReadyTimeout(readyTimeoutSeconds)
        return ConfigurePlan(vm: info, operation: "autostart", change: .autostart(enabled, fallback: fallback, readyTimeoutSeconds: readyTimeoutSeconds))
    }

    /// A fallback must be another existing VM ("" for none).
    func checkFallback(_ fallback: String, of name: String) async throws {
        guard !fallback.isEmpty else { return }
        try VMName.validate(fallback)
        guard fallback != name else { throw ControllerError.invalidArgs("fallback \(fallback): a VM cannot be its own fallback") }
        guard await vms.vm(named: fallback) != nil else { throw ControllerError.noSuchVM("fallback \(fallback): no VM of that name") }
    }

    static func checkReadyTimeout(_ seconds: UInt32?) throws {
        if let seconds, seconds > 86_400 { throw ControllerError.invalidArgs("ready_timeout_s \(seconds) is above 86400") }
    }

    public func checkResources(_ uuid: String, memoryMiB: UInt64?, vcpus: UInt32?) async throws -> ConfigurePlan {
        let info = try await existing(uuid)
        guard memoryMiB != nil || vcpus != nil else { throw ControllerError.invalidArgs("SetResources: give memory_mib and/or vcpus") }
        try await vms.precheckResources(memoryMiB: memoryMiB, vcpus: vcpus)
        guard info.persistent else { throw ControllerError.invalidState("\(info.name) is transient; SetResources changes the persistent definition") }
        return ConfigurePlan(vm: info, operation: "resources", change: .resources(memoryMiB: memoryMiB, vcpus: vcpus))
    }

    /// Where a device change goes: what the caller asked for, defaulting to what the state allows.
    func impact(_ info: VMInfo, live: Bool?, persistent: Bool?) throws -> (live: Bool, config: Bool) {
        let active = info.state.acceptsLiveChanges
        let live = live ?? active
        let config = persistent ?? info.persistent
        if live && !active { throw ControllerError.invalidState("cannot change \(info.name) live: it is \(info.state.rawValue)") }
        if config && !info.persistent { throw ControllerError.invalidState("\(info.name) is transient; it has no persistent definition") }
        if !live && !config { throw ControllerError.invalidArgs("live and persistent are both false: nothing to do") }
        return (live, config)
    }

    /// The buses a disk can be attached on.
    public static let diskBuses = ["virtio", "scsi", "sata", "ide", "usb"]

    /// `vdb`, `sdc`, `hdaa`: a bus prefix and 1–2 letters.
    public static func isDiskTarget(_ target: String) -> Bool {
        guard ["vd", "sd", "hd"].contains(String(target.prefix(2))) else { return false }
        let rest = target.dropFirst(2)
        return (1...2).contains(rest.count) && rest.allSatisfy { ("a"..."z").contains($0) }
    }

    /// What AttachDisk asks for.
    public struct AttachRequest: Sendable {
        public var disk: String, target: String, readonly = false, bus: String?, live: Bool?, persistent: Bool?
        /// The image's format (raw or qcow2): required for a path, checked against the
        /// record for a managed disk. The service never probes it.
        public var format: String?
        public init(disk: String, target: String) { self.disk = disk; self.target = target }
    }

    public func checkAttach(_ uuid: String, _ request: AttachRequest) async throws -> ConfigurePlan {
        let info = try await existing(uuid)
        let (live, config) = try impact(info, live: request.live, persistent: request.persistent)
        let target = request.target
        guard Self.isDiskTarget(target) else {
            throw ControllerError.invalidArgs("invalid target \(CallerText.quoted(target)): use vdX, sdX or hdX (X: 1-2 letters a-z)")
        }
        let bus = request.bus ?? (target.hasPrefix("vd") ? "virtio" : target.hasPrefix("sd") ? "sata" : "ide")
        guard Self.diskBuses.contains(bus) else {
            throw ControllerError.invalidArgs("invalid bus \(CallerText.quoted(bus)) (\(Self.diskBuses.joined(separator: ", ")))")
        }
        if let used = info.disks.first(where: { $0.target == target }) {
            throw ControllerError.alreadyExists("target \(target) of \(info.name) is already used by \(used.source)")
        }
        if let format = request.format, !ImageFormatRecord.managed.contains(format) {
            throw ControllerError.invalidArgs("invalid format \(CallerText.quoted(format)): use raw or qcow2")
        }
        guard !request.disk.hasPrefix("/") else {
            // A host path: its syntax now, the file itself after authorization.
            try ImagePath.checkSyntax(request.disk, roots: [imageDirectory] + vms.config.imageRoots)
            guard let format = request.format else {
                throw ControllerError.invalidArgs("attaching the path \(CallerText.quoted(request.disk)) needs the option format (raw or qcow2): the service never guesses an image's format")
            }
            return ConfigurePlan(vm: info, operation: "attach-disk", details: ["disk": request.disk, "target": target],
                                 change: .attachPath(path: request.disk, format: format, target: target, bus: bus,
                                                     readonly: request.readonly, live: live, config: config))
        }
        let managed = try await disks.find(request.disk)
        if let format = request.format, format != managed.format {
            throw ControllerError.invalidArgs("format \(format) does not match disk \(managed.name), which is recorded as \(managed.format)")
        }
        try await checkAttachable(managed.path, to: info, readonly: request.readonly)
        let device = DomainXML.diskDevice(path: managed.path, format: managed.format, target: target, bus: bus, readonly: request.readonly)
        let lease = live ? await disks.vmLease(of: managed.path, readonly: request.readonly) : nil
        if let lease { try await disks.checkVMLeases([lease], for: "attach disk \(managed.name) to \(info.name)") }
        return ConfigurePlan(vm: info, operation: "attach-disk", details: ["disk": managed.name, "target": target],
                             change: .attach(device: device, live: live, config: config, what: "attach \(managed.path) as \(target) to",
                                             lease: lease))
    }

    /// Runs a live attach holding the running VM's lease on the managed disk it adds
    /// (`lease`; nil: no managed disk, or not live).
    func attachHolding(_ vm: VMInfo, _ lease: LeaseRequest?, what: String, _ attach: () async throws -> Void) async throws {
        guard let lease else { return try await attach() }
        try await disks.holdingForVM(vm, [lease], for: "\(what) \(vm.name)", attach)
    }

    /// An image attached by path: a managed disk's path needs that disk usable and `format`
    /// its record; any other image is opened only as `format`, and a qcow2 one may have
    /// neither a backing file nor a data file (libvirt would follow them).
    func checkImage(_ path: String, format: String) async throws {
        if path.hasPrefix(imageDirectory + "/") {
            let name = String(path.dropFirst(imageDirectory.count + 1))
            if NameRule.disk.isValid(name), let managed = try? await disks.existingAny(name) {
                try managed.requireUsable()
                guard managed.format == format else {
                    throw ControllerError.invalidArgs("format \(format) does not match disk \(name), which is recorded as \(managed.format)")
                }
                return
            }
        }
        guard format == "qcow2" else { return }
        let image = try await qemuImg.info(path: path, format: format)
        if let backing = image.backingFile {
            throw ControllerError.invalidArgs("image \(path) has the backing file \(CallerText.quoted(backing)); only managed disks may have one")
        }
        if let dataFile = image.dataFile {
            throw ControllerError.invalidArgs("image \(path) has an external data file \(CallerText.quoted(dataFile)); such qcow2 images are refused")
        }
    }

    /// `path` is not attached to `info` yet, nor writable by another VM when attached writable.
    func checkAttachable(_ path: String, to info: VMInfo, readonly: Bool) async throws {
        if info.disks.contains(where: { $0.source == path }) {
            throw ControllerError.alreadyExists("\(path) is already attached to \(info.name)")
        }
        if !readonly, let other = await vms.list().first(where: { $0.uuid != info.uuid && $0.disks.contains { $0.source == path } }) {
            throw ControllerError.busy("\(path) is attached to VM \(other.name); attach it readonly or detach it there first")
        }
    }

    public func checkDetach(_ uuid: String, target: String, live: Bool?, persistent: Bool?, timeoutSeconds: UInt32?) async throws -> ConfigurePlan {
        let info = try await existing(uuid)
        let (live, config) = try impact(info, live: live, persistent: persistent)
        let timeout = timeoutSeconds.map { Int($0) } ?? vms.config.detachTimeoutSeconds
        guard Self.isDiskTarget(target) else { throw ControllerError.invalidArgs("invalid target \(CallerText.quoted(target))") }
        guard info.disks.contains(where: { $0.target == target }) || config else {
            throw ControllerError.invalidArgs("\(info.name) has no disk at target \(target)")
        }
        return ConfigurePlan(vm: info, operation: "detach-disk", change: .detachDisk(target: target, live: live, config: config, timeout: timeout))
    }

    public func checkAddShare(_ uuid: String, hostPath: String, tag: String, readonly: Bool) async throws -> ConfigurePlan {
        let info = try await existing(uuid)
        try VMName.validateTag(tag)
        try SharePath.checkSyntax(hostPath, roots: vms.config.shareRoots)   // resolved after authorization
        guard !info.state.acceptsLiveChanges else {
            throw ControllerError.invalidState("9p shares cannot be hot-plugged; stop \(info.name) first (it is \(info.state.rawValue))")
        }
        if info.shares.contains(where: { $0.tag == tag }) { throw ControllerError.alreadyExists("\(info.name) already has a share tagged \(tag)") }
        return ConfigurePlan(vm: info, operation: "add-share", details: ["share": hostPath, "tag": tag],
                             change: .addShare(VMShare(hostPath: hostPath, tag: tag, readonly: readonly)))
    }

    public func checkRemoveShare(_ uuid: String, tag: String) async throws -> ConfigurePlan {
        let info = try await existing(uuid)
        try VMName.validateTag(tag)
        guard !info.state.acceptsLiveChanges else {
            throw ControllerError.invalidState("9p shares cannot be hot-unplugged; stop \(info.name) first (it is \(info.state.rawValue))")
        }
        guard info.shares.contains(where: { $0.tag == tag }) else { throw ControllerError.invalidArgs("\(info.name) has no share tagged \(tag)") }
        return ConfigurePlan(vm: info, operation: "remove-share", change: .removeShare(tag))
    }

    public func runConfigure(_ plan: ConfigurePlan) async throws {
        let uuid = plan.vm.uuid
        switch plan.change {
        case .autostart(let enabled, let fallback, let readyTimeout):
            var metadata = plan.vm.metadata
            metadata.autostart = enabled
            if let fallback { metadata.fallback = fallback }
            if let readyTimeout { metadata.readyTimeoutSeconds = readyTimeout }
            try await vms.redefine(uuid, enabled ? "enable autostart of" : "disable autostart of") { [metadata] xml in
                try DomainXML.withMetadata(xml, metadata)
            }
        case .resources(let memory, let vcpus):
            try await vms.redefine(uuid, "change resources of") { try DomainXML.withResources($0, memoryMiB: memory, vcpus: vcpus) }
        case .attach(let device, let live, let config, let what, let lease):
            try await attachHolding(plan.vm, lease, what: what) {
                try await vms.attach(uuid, device: device, live: live, config: config, what: what)
            }
        case .detachDisk(let target, let live, let config, let timeout):
            try await vms.detach(uuid, disk: target, live: live, config: config, timeout: .seconds(timeout), what: "detach \(target) from")
        case .attachPath(let given, let format, let target, let bus, let readonly, let live, let config):
            let path = try ImagePath.validate(given, roots: [imageDirectory] + vms.config.imageRoots)
            try await checkAttachable(path, to: plan.vm, readonly: readonly)
            try await checkImage(path, format: format)
            var lease: LeaseRequest?
            if live { lease = await disks.vmLease(of: path, readonly: readonly) }
            let what = "attach \(path) as \(target) to"
            try await attachHolding(plan.vm, lease, what: what) {
                try await vms.attach(uuid, device: DomainXML.diskDevice(path: path, format: format, target: target, bus: bus, readonly: readonly),
                                     live: live, config: config, what: what)
            }
        case .addShare(var share):
            share.hostPath = try SharePath.validate(share.hostPath, roots: vms.config.shareRoots)
            try await vms.attach(uuid, device: DomainXML.shareDevice(share), live: false, config: true,
                                 what: "share \(share.hostPath) as \(share.tag) with")
        case .removeShare(let tag):
            try await vms.detach(uuid, share: tag, live: false, config: true, timeout: .seconds(1), what: "remove share \(tag) from")
        }
    }
}

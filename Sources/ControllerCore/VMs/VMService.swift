import FoundationEssentials
import Logging

/// Every rule of the VMs, over the libvirt cache (``VMManager``) and the disks. As in
/// ``DiskService``, each operation is a `check…` (every rule, no side effect, a plan whose
/// `details` go to the authorization) and a `run…`.
public final class VMService: Sendable {
    let vms: VMManager
    let disks: DiskService
    let networks: NetworkService
    let jobs: JobManager
    let qemuImg: QemuImg
    let imageDirectory: String
    /// The overlays the service made, per VM: what discarding an ephemeral VM may delete.
    let overlays: OverlayOwners
    let logger: Logger

    public init(vms: VMManager, disks: DiskService, networks: NetworkService, jobs: JobManager, qemuImg: QemuImg,
                imageDirectory: String, overlays: OverlayOwners = OverlayOwners(stateDirectory: nil), logger: Logger) {
        self.overlays = overlays
        self.vms = vms
        self.disks = disks
        self.networks = networks
        self.jobs = jobs
        self.qemuImg = qemuImg
        self.imageDirectory = imageDirectory
        self.logger = logger
    }

    public var config: VMConfig { vms.config }

    // MARK: reading

    public func list() async -> [VMInfo] { await vms.list() }
    public func profiles() async -> [VMProfile] { await vms.profiles }

    /// The VM named `name`: `InvalidArgs` for a bad name, `NoSuchVM` when absent.
    public func find(_ name: String) async throws -> VMInfo {
        try VMName.validate(name)
        guard let info = await vms.vm(named: name) else { throw ControllerError.noSuchVM("no VM named \(name)") }
        return info
    }

    /// The VM of an exported object (`NoSuchVM` when it went away meanwhile).
    public func existing(_ uuid: String) async throws -> VMInfo {
        guard let info = await vms.vm(uuid: uuid) else { throw ControllerError.noSuchVM("VM \(uuid) no longer exists") }
        return info
    }

    /// The managed disk object of each of the VM's disks (its name, or nil).
    public func managedDiskNames(of info: VMInfo) async -> [String?] {
        var names: [String?] = []
        let prefix = imageDirectory + "/"
        for d in info.disks {
            var managed: String?
            if d.source.hasPrefix(prefix) {
                let name = String(d.source.dropFirst(prefix.count))
                if NameRule.disk.isValid(name), (try? await disks.existing(name)) != nil { managed = name }
            }
            names.append(managed)
        }
        return names
    }

    public func xml(_ uuid: String, inactive: Bool) async throws -> String {
        _ = try await existing(uuid)
        return try await vms.xml(uuid, inactive: inactive)
    }

    // MARK: define

    /// What DefineVM asks for, as read from the call.
    public struct DefineRequest: Sendable {
        public var name: String
        public var profile: String
        public var memoryMiB: UInt64?
        public var vcpus: UInt32?
        public var disks: [String] = []
        public var baseDisk: String?
        public var ephemeral: Bool?
        public var shares: [(hostPath: String, tag: String)]?
        /// NICs as `network:NAME`, `bridge:BR`, `direct:DEV` (or a network's name).
        public var networks: [String]?
        /// MACs of the first NICs, in order (libvirt picks the rest).
        public var macs: [String] = []
        public var autostart = false
        /// The VM StartAll starts in this one's place when it is not ready in time ("": none).
        public var fallback = ""
        /// How long StartAll waits for its READY=1 (0: `[vms] ready_timeout_s`).
        public var readyTimeoutSeconds: UInt32 = 0
        public var seclabel = "dynamic"
        public init(name: String, profile: String) { self.name = name; self.profile = profile }
    }

    /// A checked DefineVM: the domain to build, the overlay to make first and the internal
    /// network to create first (that needs network.manage too).
    public struct DefinePlan: Sendable {
        public let spec: DomainXML.Spec
        public let overlay: DiskService.CreatePlan?
        public let internalNetwork: NetworkService.DefinePlan?
        /// The shares are the caller's (the shares option), resolved by ``runDefine(_:)``.
        public var sharesFromCaller = false
        public var details: [String: String] {
            ["vm": spec.name, "operation": "define", "profile": spec.profile.name, "seclabel": spec.seclabel,
             "disks": spec.disks.map(\.path).joined(separator: ","), "shares": spec.shares.map(\.hostPath).joined(separator: ","),
             "networks": spec.nics.map(\.source.description).joined(separator: ","), "base_disk": spec.baseDisk]
        }
        /// The details of the network.manage check for ``internalNetwork``.
        public var networkDetails: [String: String] { internalNetwork.map { $0.details.merging(["vm": spec.name]) { a, _ in a } } ?? [:] }
    }

    public func checkDefine(_ request: DefineRequest) async throws -> DefinePlan {
        let name = request.name
        try VMName.validate(name)
        guard let profile = await vms.profile(named: request.profile) else {
            throw ControllerError.invalidArgs("unknown profile \(CallerText.quoted(request.profile)) (known: \(await vms.profiles.map(\.name).joined(separator: ", ")))")
        }
        let overlay = try await request.baseDisk.asyncMap { try await checkOverlay(of: $0, for: name) }
        try await vms.precheckResources(memoryMiB: request.memoryMiB, vcpus: request.vcpus)
        guard ["dynamic", "none"].contains(request.seclabel) else {
            throw ControllerError.invalidArgs("seclabel \(CallerText.quoted(request.seclabel)) is not 'dynamic' or 'none'")
        }
        guard request.seclabel == "dynamic" || vms.config.allowUnconfined else {
            throw ControllerError.invalidArgs("seclabel 'none' turns libvirt's confinement of the VM off; it needs [vms] allow_unconfined = true")
        }
        let topology = VMTopology(vms.config)
        let sources = try topology.sources(role: profile.role, profileNetworks: profile.networks, requested: request.networks)
        let macs = try VMTopology.checkMACs(request.macs, nics: sources.count, others: await vms.list())
        var diskSpecs: [(path: String, format: String)] = []
        for diskName in request.disks {
            let disk = try await disks.find(diskName)
            diskSpecs.append((disk.path, disk.format))
        }
        var shares = profile.shares
        if let requested = request.shares {
            shares = try requested.map { hostPath, tag in
                try VMName.validateTag(tag)
                try SharePath.checkSyntax(hostPath, roots: vms.config.shareRoots)   // resolved after authorization
                return VMShare(hostPath: hostPath, tag: tag, readonly: false)
            }
            let tags = shares.map(\.tag)
            if Set(tags).count != tags.count { throw ControllerError.invalidArgs("share tags must be unique: \(tags.joined(separator: ", "))") }
        }
        try await vms.precheckName(name)
        var spec = DomainXML.Spec(name: name, domainType: await vms.domainType, cpuMode: vms.config.cpuMode, profile: profile)
        if let memory = request.memoryMiB { spec.memoryMiB = memory }
        if let vcpus = request.vcpus { spec.vcpus = vcpus }
        spec.nics = sources.enumerated().map { NICSpec(source: $1, mac: $0 < macs.count ? macs[$0] : nil) }
        let internalNetwork = try await checkNetworks(sources, role: profile.role, vm: name, topology: topology)
        spec.shares = shares
        spec.disks = diskSpecs
        spec.autostart = request.autostart
        try await checkFallback(request.fallback, of: name)
        try Self.checkReadyTimeout(request.readyTimeoutSeconds)
        spec.fallback = request.fallback
        spec.readyTimeoutSeconds = request.readyTimeoutSeconds
        spec.seclabel = request.seclabel
        spec.ephemeral = request.ephemeral ?? false
        spec.baseDisk = request.baseDisk ?? ""
        var plan = DefinePlan(spec: spec, overlay: overlay, internalNetwork: internalNetwork)
        plan.sharesFromCaller = request.shares != nil
        return plan
    }

    /// The plan of the copy-on-write overlay `NAME-root.qcow2` of `baseDisk` a VM boots from.
    func checkOverlay(of baseDisk: String, for name: String) async throws -> DiskService.CreatePlan {
        let base = try await disks.find(baseDisk)
        let overlayName = "\(name)-root.qcow2"
        guard NameRule.disk.isValid(overlayName) else {
            throw ControllerError.invalidArgs("VM name \(name) is too long for its overlay disk name \(overlayName) (64 characters at most)")
        }
        let create = CreateDiskRequest(name: overlayName, size: base.virtualSize, format: "qcow2", backing: baseDisk, preallocation: nil)
        return try await disks.checkCreate(create, maxSize: .max)
    }

    /// The topology rules for `sources`, and the networks they name must exist, but for the
    /// internal network: when missing, the plan to create it (isolated) is returned.
    func checkNetworks(_ sources: [NICSource], role: VMRole, vm: String, topology: VMTopology) async throws -> NetworkService.DefinePlan? {
        let names = sources.compactMap(\.networkName)
        let kinds = try await vms.networkKinds(names)
        try topology.check(sources, role: role, vm: vm, kinds: kinds)
        let missing = Set(names).subtracting(kinds.keys).subtracting([topology.internalNetwork]).sorted()
        if !missing.isEmpty {
            throw ControllerError.invalidArgs("no network named \(missing.map(CallerText.quoted).joined(separator: ", ")) (define it with DefineNetwork, or give other networks)")
        }
        guard names.contains(topology.internalNetwork), kinds[topology.internalNetwork] == nil else { return nil }
        return try await networks.checkDefine(NetworkService.DefineRequest(name: topology.internalNetwork, kind: "isolated"))
    }

    /// Makes the internal network and the overlay (if needed), then the domain; a failed
    /// define leaves no overlay (a network made for it stays: others will use it).
    public func runDefine(_ plan: DefinePlan) async throws -> VMInfo {
        if let network = plan.internalNetwork {
            do {
                _ = try await networks.runDefine(network)
                logger.notice("created the internal network \(network.spec.name) (isolated) for VM \(plan.spec.name)")
            } catch ControllerError.alreadyExists(_) {
                // Another define made it meanwhile: that is the network wanted.
            }
        }
        var spec = plan.spec
        // Only now, authorized, is a caller's share path looked at on the host (a profile's
        // are the administrator's).
        if plan.sharesFromCaller {
            spec.shares = try spec.shares.map { share in
                var resolved = share
                resolved.hostPath = try SharePath.validate(share.hostPath, roots: vms.config.shareRoots)
                return resolved
            }
        }
        if let overlayPlan = plan.overlay {
            // The VM boots from a copy-on-write overlay of the base disk, attached first (vda).
            let overlay = try await disks.createOverlay(overlayPlan)
            spec.disks.insert((overlay.path, "qcow2"), at: 0)
            spec.overlay = overlay.name
        }
        do {
            let info = try await vms.define(xml: DomainXML.build(spec), name: spec.name)
            await recordOverlay(spec.overlay, of: info)
            return info
        } catch {
            if let overlay = plan.overlay {   // nothing half-made stays behind
                try? await disks.deleteForVM(overlay.request.name)
            }
            throw error
        }
    }

    /// Records the overlay made for `info` (a failure to write the record is logged: the
    /// overlay is then kept when the VM goes, never deleted by mistake).
    func recordOverlay(_ overlay: String, of info: VMInfo) async {
        // A record left for this UUID (a VM undefined while the daemon was down, its UUID
        // given again by a caller) belongs to no one now.
        guard !overlay.isEmpty else {
            do { try await overlays.forget(info.uuid) } catch { logger.error("VM \(info.name): cannot drop a stale overlay record: \(error)") }
            return
        }
        do { try await overlays.record(overlay, for: info.uuid) } catch {
            logger.error("VM \(info.name): cannot record its overlay \(overlay) (it will be kept when the VM goes): \(error)")
        }
    }

    // MARK: undefine

    /// A checked Undefine, with the managed disks to delete after it.
    public struct UndefinePlan: Sendable {
        public let vm: VMInfo
        public let deleteDisks: [String]
        public var details: [String: String] { ["vm": vm.name, "operation": "undefine", "disks": deleteDisks.joined(separator: ",")] }
        /// The details of the disk.manage check that deleting disks needs too.
        public var diskDetails: [String: String] { ["vm": vm.name, "operation": "delete", "disk": deleteDisks.joined(separator: ",")] }
    }

    public func checkUndefine(_ uuid: String, deleteDisks: Bool) async throws -> UndefinePlan {
        let info = try await existing(uuid)
        try require(info, [.shutoff], "undefine")
        var managed: [String] = []
        if deleteDisks {
            let others = await vms.list().filter { $0.uuid != uuid }
            for (disk, diskName) in zip(info.disks, await managedDiskNames(of: info)) {
                guard let diskName else { continue }
                if let user = others.first(where: { $0.disks.contains { $0.source == disk.source } }) {
                    throw ControllerError.busy("disk \(diskName) is also used by VM \(user.name); not deleting it")
                }
                try await disks.checkDeletable(diskName)
                managed.append(diskName)
            }
        }
        return UndefinePlan(vm: info, deleteDisks: managed)
    }

    public func runUndefine(_ plan: UndefinePlan) async throws {
        try await vms.undefine(plan.vm.uuid)
        for diskName in plan.deleteDisks {
            do {
                try await disks.deleteForVM(diskName)
            } catch {
                throw ControllerError.io("VM \(plan.vm.name) was undefined, but disk \(diskName) could not be deleted: \(error)")
            }
        }
    }

    // MARK: lifecycle

    /// A lifecycle call of the VM object.
    public enum Lifecycle: String, Sendable {
        case start, destroy, reboot, suspend, resume

        /// The states it can be made in.
        func allowed(_ state: VMState) -> Bool {
            switch self {
            case .start: return state.canStart
            case .destroy: return state.isActive || state == .crashed
            case .reboot, .suspend: return state == .running
            case .resume: return state == .paused
            }
        }
    }

    /// A checked lifecycle call or Shutdown.
    public struct LifecyclePlan: Sendable {
        public let vm: VMInfo
        public let operation: String
        /// Inactive networks a Start must start first (they need network.manage too).
        public var networksToStart: [String] = []
        public var details: [String: String] { ["vm": vm.name, "operation": operation] }
        /// The details of the network.manage check for ``networksToStart``.
        public var networkDetails: [String: String] {
            ["network": networksToStart.joined(separator: ","), "operation": "start", "vm": vm.name]
        }
    }

    public func checkLifecycle(_ uuid: String, _ action: Lifecycle) async throws -> LifecyclePlan {
        let info = try await existing(uuid)
        guard action.allowed(info.state) else {
            throw ControllerError.invalidState("cannot \(action.rawValue) \(info.name): it is \(info.state.rawValue)")
        }
        var plan = LifecyclePlan(vm: info, operation: action.rawValue)
        if action == .start {
            try await checkDisks(of: info)
            try await disks.checkVMLeases(await disks.vmLeases(of: info), for: "start \(info.name)")
            try await vms.checkBudget(uuid)
            plan.networksToStart = try await vms.inactiveNetworks(of: info)
        }
        return plan
    }

    public func runLifecycle(_ plan: LifecyclePlan, _ action: Lifecycle) async throws {
        let uuid = plan.vm.uuid
        switch action {
        case .start:
            try checkShares(of: plan.vm)
            try await startHolding(plan.vm) {
                try await checkDisks(of: plan.vm)
                try await vms.startNetworks(plan.networksToStart, for: plan.vm)
                await disks.releaseAppliances(of: plan.vm)
                try await vms.startWithinBudget(uuid)
            }
        case .destroy: try await destroy(uuid)
        case .reboot: try await vms.perform(uuid, "reboot") { try $0.reboot() }
        case .suspend: try await vms.perform(uuid, "suspend") { try $0.suspend() }
        case .resume: try await vms.perform(uuid, "resume") { try $0.resume() }
        }
    }

    /// A checked Shutdown.
    public struct ShutdownPlan: Sendable {
        public let lifecycle: LifecyclePlan
        public let timeoutSeconds: UInt32?
        public let force: Bool
        public var details: [String: String] { lifecycle.details }
    }

    public func checkShutdown(_ uuid: String, timeoutSeconds: UInt32?, force: Bool) async throws -> ShutdownPlan {
        let info = try await existing(uuid)
        if force && timeoutSeconds == nil { throw ControllerError.invalidArgs("Shutdown: force needs timeout_s") }
        if let timeoutSeconds, timeoutSeconds > 3600 { throw ControllerError.invalidArgs("Shutdown: timeout_s \(timeoutSeconds) is above 3600") }
        try require(info, [.running, .paused, .blocked], "shut down")
        return ShutdownPlan(lifecycle: LifecyclePlan(vm: info, operation: "shutdown"), timeoutSeconds: timeoutSeconds, force: force)
    }

    public func runShutdown(_ plan: ShutdownPlan) async throws {
        try await vms.shutdown(plan.lifecycle.vm.uuid, timeout: plan.timeoutSeconds.map { .seconds(Int($0)) }, force: plan.force)
    }

    /// Runs `start` (libvirt's start of `vm`, and what must come right before it) holding
    /// the VM's leases on its disks, taken first: a disk a job rewrites is `Busy` naming it.
    /// The leases are those of the VM's definition as it is now (a disk attached during the
    /// authorization is held too).
    func startHolding(_ vm: VMInfo, _ start: () async throws -> Void) async throws {
        let now = await vms.vm(uuid: vm.uuid) ?? vm
        try await disks.holdingForVM(now, await disks.vmLeases(of: now), for: "start \(vm.name)", start)
    }

    /// Destroys VM `uuid`; its leases go as the call returns (a fallback on the same disk
    /// may start at once).
    func destroy(_ uuid: String) async throws {
        try await vms.perform(uuid, "destroy") { try $0.destroy() }
        await disks.releaseVMLeases(uuid)
    }

    func require(_ info: VMInfo, _ states: Set<VMState>, _ operation: String) throws {
        guard states.contains(info.state) else {
            throw ControllerError.invalidState("cannot \(operation) \(info.name): it is \(info.state.rawValue)")
        }
    }
}

extension Optional {
    /// `map` with an asynchronous transform.
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}

import ControllerCore
import Foundation
import SDBus

/// The VM side of the Manager and one `org.multiverse.Controller.VM` object per domain.
extension ControllerService {
    // MARK: objects

    /// Mirrors the VM cache on the bus.
    public func vmChanged(_ change: VMChange) async {
        vmPathCache.withLock { $0 = ($0.generation + 1, nil) }
        await mirror(change)
        // Disks' AttachedTo only change when a VM's disks do (not on every state change).
        let (uuid, sources): (String, [String]?) = switch change {
        case .added(let info), .updated(let info, _): (info.uuid, info.disks.map(\.source))
        case .removed(let uuid): (uuid, nil)
        case .ephemeralStopped(let info): (info.uuid, info.disks.map(\.source))
        }
        let changed = vmDiskSources.withLock { known -> Bool in
            let before = known[uuid] ?? []
            known[uuid] = sources
            return before != sources ?? []   // a VM without disks coming or going changes none
        }
        if changed { await publishAttachments() }
    }

    private func mirror(_ change: VMChange) async {
        switch change {
        case .added(let info):
            do { try await exportVM(info, announce: true) } catch { logger.error("cannot export VM \(info.name): \(error)") }
        case .updated(let info, let stateChanged):
            await bus.setProperties(path: ObjectPaths.vm(info.uuid), interface: Interfaces.vm.name, await vmProperties(info))
            if stateChanged && info.state == "shutoff" {
                Task { await vmStopped(info) }
            }
            if stateChanged {
                try? await bus.emitSignal(path: ObjectPaths.vm(info.uuid), interface: Interfaces.vm.name, member: "StateChanged",
                                          [.string(info.state), .string(info.stateReason)])
            }
        case .removed(let uuid):
            await bus.unexport(path: ObjectPaths.vm(uuid))
        case .ephemeralStopped(let info):
            await discardEphemeral(info)
        }
    }

    /// Undefines a stopped ephemeral VM and deletes its overlay, leaving nothing behind.
    func discardEphemeral(_ info: VMInfo) async {
        do {
            if info.persistent { try await vms.undefine(info.uuid) }
        } catch {
            logger.error("cannot undefine ephemeral VM \(info.name): \(error)")
            return
        }
        let overlay = info.metadata.overlay
        guard !overlay.isEmpty, DiskName.isValid(overlay), await disks.disk(named: overlay) != nil else { return }
        do {
            try await disks.delete(overlay)
            await bus.unexport(path: ObjectPaths.disk(overlay))
            await publishDiskChange(nil)
            logger.notice("deleted overlay \(overlay) of ephemeral VM \(info.name)")
        } catch {
            logger.error("cannot delete overlay \(overlay) of ephemeral VM \(info.name): \(error)")
        }
    }

    /// Recomputes every disk's `AttachedTo` from the VMs' disks and publishes the changes.
    func publishAttachments() async {
        let users = await vms.diskUsers()
        for disk in await disks.list() {
            let now = (users[disk.path] ?? []).map(ObjectPaths.vm)
            let changed = attachedTo.withLock { cache -> Bool in
                guard cache[disk.name] ?? [] != now else { return false }
                cache[disk.name] = now
                return true
            }
            if changed {
                await bus.setProperties(path: ObjectPaths.disk(disk.name), interface: Interfaces.disk.name, ["AttachedTo": .objectPaths(now)])
            }
        }
    }

    func exportVM(_ info: VMInfo, announce: Bool) async throws {
        let uuid = info.uuid
        try await bus.export(path: ObjectPaths.vm(uuid), interfaces: [
            ExportedInterface(Interfaces.vm, properties: await vmProperties(info),
                              handler: { [self] call in try await handleVM(uuid, call) }),
        ], announce: announce)
    }

    func vmProperties(_ info: VMInfo) async -> [String: DBusValue] {
        var disks: [DBusValue] = []
        for d in info.disks {
            var object = "/"
            let prefix = config.imageDirectory + "/"
            if d.source.hasPrefix(prefix) {
                let name = String(d.source.dropFirst(prefix.count))
                if DiskName.isValid(name), await self.disks.disk(named: name) != nil { object = ObjectPaths.disk(name) }
            }
            disks.append(.structure([.string(d.target), .string(d.source), .string(d.format), .objectPath(object)]))
        }
        return [
            "Name": .string(info.name),
            "UUID": .string(info.uuid),
            "State": .string(info.state),
            "StateReason": .string(info.stateReason),
            "Profile": .string(info.profile),
            "VCPUs": .uint32(info.vcpus),
            "MemoryMiB": .uint64(info.memoryMiB),
            "Autostart": .boolean(info.autostart),
            "Persistent": .boolean(info.persistent),
            "Ephemeral": .boolean(info.ephemeral),
            "Disks": .array(elementSignature: "(ssso)", disks),
            "Shares": .array(elementSignature: "(ss)", info.shares.map { .structure([.string($0.hostPath), .string($0.tag)]) }),
        ]
    }

    // MARK: Manager

    func handleManagerVMs(_ call: MethodCall) async throws -> [DBusValue]? {
        let args = Arguments(call: call)
        switch call.member {
        case "ListVMs":
            try args.options(0).finish()
            let (generation, cached) = vmPathCache.withLock { $0 }
            if let cached { return [.objectPaths(cached)] }
            let paths = await vms.list().map { ObjectPaths.vm($0.uuid) }
            vmPathCache.withLock { if $0.generation == generation { $0.paths = paths } }
            return [.objectPaths(paths)]
        case "GetVMByName":
            let name = args.string(0)
            try args.options(1).finish()
            try VMName.validate(name)
            guard let info = await vms.vm(named: name) else { throw ControllerError.noSuchVM("no VM named \(name)") }
            return [.objectPath(ObjectPaths.vm(info.uuid))]
        case "ListProfiles":
            try args.options(0).finish()
            return [.array(elementSignature: "(ss)", await vms.profiles.map { .structure([.string($0.name), .string($0.description)]) })]
        case "DefineVM":
            return [.objectPath(try await defineVM(args))]
        case "DefineVMFromXML":
            let xml = args.string(0)
            try args.options(1).finish()
            let name = try DomainXML.validateForeign(xml, allowPassthrough: vms.config.allowPassthrough)
            try await vms.precheckName(name)
            let caller = try await callers.caller(for: call)
            try await authorizer.authorize(caller, .vmConfigure, details: ["vm": name, "operation": "define-xml"])
            let info = try await vms.define(xml: xml, name: name)
            return [.objectPath(ObjectPaths.vm(info.uuid))]
        default:
            return nil
        }
    }

    private func defineVM(_ args: Arguments) async throws -> String {
        // parse
        let name = args.string(0)
        let profileName = args.string(1)
        var options = try args.options(2)
        let memory = try options.uint64("memory_mib")
        let vcpus = try options.uint32("vcpus")
        let diskNames = try options.strings("disks") ?? []
        let baseDisk = try options.string("base_disk")
        let ephemeral = try options.bool("ephemeral")
        let shares = try options.stringPairs("shares")
        let networks = try options.strings("networks")
        let autostart = try options.bool("autostart") ?? false
        let seclabel = try options.string("seclabel") ?? "dynamic"
        try options.finish()
        // validate
        try VMName.validate(name)
        guard let profile = await vms.profile(named: profileName) else {
            throw ControllerError.invalidArgs("unknown profile \(DiskName.quoted(profileName)) (known: \(await vms.profiles.map(\.name).joined(separator: ", ")))")
        }
        var overlayRequest: CreateDiskRequest?
        if let baseDisk {
            try DiskName.validate(baseDisk)
            guard let base = await disks.disk(named: baseDisk) else { throw ControllerError.noSuchDisk("no disk named \(baseDisk)") }
            let overlayName = "\(name)-root.qcow2"
            guard DiskName.isValid(overlayName) else {
                throw ControllerError.invalidArgs("VM name \(name) is too long for its overlay disk name \(overlayName) (64 characters at most)")
            }
            let request = CreateDiskRequest(name: overlayName, size: base.virtualSize, format: "qcow2", backing: baseDisk, preallocation: nil)
            try request.validate(maxSize: UInt64.max)
            try await disks.precheckCreate(request)
            overlayRequest = request
        }
        try await vms.precheckResources(memoryMiB: memory, vcpus: vcpus)
        guard ["dynamic", "none"].contains(seclabel) else {
            throw ControllerError.invalidArgs("seclabel \(DiskName.quoted(seclabel)) is not 'dynamic' or 'none'")
        }
        for network in networks ?? [] where !DiskName.isValid(network) {
            throw ControllerError.invalidArgs("invalid network name \(DiskName.quoted(network))")
        }
        var diskSpecs: [(path: String, format: String)] = []
        for diskName in diskNames {
            try DiskName.validate(diskName)
            guard let disk = await disks.disk(named: diskName) else { throw ControllerError.noSuchDisk("no disk named \(diskName)") }
            diskSpecs.append((disk.path, disk.format))
        }
        var shareSpecs = profile.shares
        if let shares {
            shareSpecs = try shares.map { hostPath, tag in
                try VMName.validateTag(tag)
                return VMShare(hostPath: try SharePath.validate(hostPath, roots: vms.config.shareRoots), tag: tag, readonly: false)
            }
            let tags = shareSpecs.map(\.tag)
            if Set(tags).count != tags.count { throw ControllerError.invalidArgs("share tags must be unique: \(tags.joined(separator: ", "))") }
        }
        try await vms.precheckName(name)
        // authorize
        let caller = try await callers.caller(for: args.call)
        try await authorizer.authorize(caller, .vmConfigure, details: ["vm": name, "operation": "define", "profile": profile.name])
        // act
        var spec = DomainXML.Spec(name: name, domainType: await vms.domainType, cpuMode: vms.config.cpuMode, profile: profile)
        if let memory { spec.memoryMiB = memory }
        if let vcpus { spec.vcpus = vcpus }
        if let networks { spec.networks = networks }
        spec.shares = shareSpecs
        spec.disks = diskSpecs
        spec.autostart = autostart
        spec.seclabel = seclabel
        spec.ephemeral = ephemeral ?? false
        if let overlayRequest {
            // The VM boots from a copy-on-write overlay of the base disk, attached first (vda).
            let overlay = try await disks.create(overlayRequest)
            try await exportDisk(overlay, announce: true)
            await publishDiskChange(nil)
            spec.disks.insert((overlay.path, "qcow2"), at: 0)
            spec.baseDisk = baseDisk ?? ""
            spec.overlay = overlay.name
        }
        do {
            let info = try await vms.define(xml: DomainXML.build(spec), name: name)
            return ObjectPaths.vm(info.uuid)
        } catch {
            if let overlayRequest {   // nothing half-made stays behind
                try? await disks.delete(overlayRequest.name)
                await bus.unexport(path: ObjectPaths.disk(overlayRequest.name))
            }
            throw error
        }
    }

    // MARK: VM

    private func handleVM(_ uuid: String, _ call: MethodCall) async throws -> [DBusValue] {
        let args = Arguments(call: call)
        guard let info = await vms.vm(uuid: uuid) else { throw ControllerError.noSuchVM("VM \(uuid) no longer exists") }
        let name = info.name
        func authorize(_ action: PolkitAction, _ operation: String) async throws {
            let caller = try await callers.caller(for: call)
            try await authorizer.authorize(caller, action, details: ["vm": name, "operation": operation])
        }
        func require(_ states: [String], _ operation: String) throws {
            guard states.contains(info.state) else {
                throw ControllerError.invalidState("cannot \(operation) \(name): it is \(info.state)")
            }
        }
        switch call.member {
        case "Start":
            try args.options(0).finish()
            try require(["shutoff", "crashed"], "start")
            try await authorize(.vmControl, "start")
            await vms.prepareStart(info)
            try await vms.perform(uuid, "start") { try $0.start() }
        case "Shutdown":
            var options = try args.options(0)
            let timeout = try options.uint32("timeout_s")
            let force = try options.bool("force") ?? false
            try options.finish()
            if force && timeout == nil { throw ControllerError.invalidArgs("Shutdown: force needs timeout_s") }
            if let timeout, timeout > 3600 { throw ControllerError.invalidArgs("Shutdown: timeout_s \(timeout) is above 3600") }
            try require(["running", "paused", "blocked"], "shut down")
            try await authorize(.vmControl, "shutdown")
            try await vms.shutdown(uuid, timeout: timeout.map { .seconds(Int($0)) }, force: force)
        case "Destroy":
            try args.options(0).finish()
            try require(["running", "paused", "blocked", "shutdown", "pmsuspended", "crashed"], "destroy")
            try await authorize(.vmControl, "destroy")
            try await vms.perform(uuid, "destroy") { try $0.destroy() }
        case "Reboot":
            try args.options(0).finish()
            try require(["running"], "reboot")
            try await authorize(.vmControl, "reboot")
            try await vms.perform(uuid, "reboot") { try $0.reboot() }
        case "Suspend":
            try args.options(0).finish()
            try require(["running"], "suspend")
            try await authorize(.vmControl, "suspend")
            try await vms.perform(uuid, "suspend") { try $0.suspend() }
        case "Resume":
            try args.options(0).finish()
            try require(["paused"], "resume")
            try await authorize(.vmControl, "resume")
            try await vms.perform(uuid, "resume") { try $0.resume() }
        case "Undefine":
            var options = try args.options(0)
            let deleteDisks = try options.bool("delete_disks") ?? false
            try options.finish()
            try require(["shutoff"], "undefine")
            var managed: [String] = []
            if deleteDisks {
                let prefix = config.imageDirectory + "/"
                let others = await vms.list().filter { $0.uuid != uuid }
                for disk in info.disks where disk.source.hasPrefix(prefix) {
                    let diskName = String(disk.source.dropFirst(prefix.count))
                    guard await disks.disk(named: diskName) != nil else { continue }
                    if let user = others.first(where: { $0.disks.contains { $0.source == disk.source } }) {
                        throw ControllerError.busy("disk \(diskName) is also used by VM \(user.name); not deleting it")
                    }
                    try await disks.precheckDelete(diskName)
                    managed.append(diskName)
                }
            }
            try await authorize(.vmConfigure, "undefine")
            try await vms.undefine(uuid)
            for diskName in managed {
                do {
                    try await disks.delete(diskName)
                    await bus.unexport(path: ObjectPaths.disk(diskName))
                    await publishDiskChange(nil)
                } catch {
                    throw ControllerError.io("VM \(name) was undefined, but disk \(diskName) could not be deleted: \(error)")
                }
            }
        case "AttachDisk", "DetachDisk", "AddShare", "RemoveShare":
            try await handleVMDevices(info, call, authorize: authorize)
        case "SetAutostart":
            let enabled = args.bool(0)
            try args.options(1).finish()
            guard info.persistent else { throw ControllerError.invalidState("\(name) is transient; autostart needs a persistent VM") }
            try await authorize(.vmConfigure, "autostart")
            var metadata = info.metadata
            metadata.autostart = enabled
            try await vms.redefine(uuid, enabled ? "enable autostart of" : "disable autostart of") { [metadata] xml in
                try DomainXML.withMetadata(xml, metadata)
            }
        case "SetResources":
            var options = try args.options(0)
            let memory = try options.uint64("memory_mib")
            let vcpus = try options.uint32("vcpus")
            try options.finish()
            guard memory != nil || vcpus != nil else { throw ControllerError.invalidArgs("SetResources: give memory_mib and/or vcpus") }
            try await vms.precheckResources(memoryMiB: memory, vcpus: vcpus)
            guard info.persistent else { throw ControllerError.invalidState("\(name) is transient; SetResources changes the persistent definition") }
            try await authorize(.vmConfigure, "resources")
            try await vms.redefine(uuid, "change resources of") { try DomainXML.withResources($0, memoryMiB: memory, vcpus: vcpus) }
        case "CreateSnapshot", "RevertSnapshot", "DeleteSnapshot", "ListSnapshots":
            return try await handleVMSnapshots(info, call, authorize: authorize)
        case "GetXML":
            var options = try args.options(0)
            let inactive = try options.bool("inactive") ?? false
            try options.finish()
            return [.string(try await vms.xml(uuid, inactive: inactive))]
        default:
            throw ControllerError.notSupported("\(call.member) is not implemented")
        }
        return []
    }
}

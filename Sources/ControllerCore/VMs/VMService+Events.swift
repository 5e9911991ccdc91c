import FoundationEssentials

/// What follows from libvirt's changes.
extension VMService {
    /// A VM changed (seen by libvirt's events): its leases follow its state and disks (see
    /// ``DiskService/syncVMLeases(_:)``), the disks learn who uses them, a stopped
    /// VM's disks get their on-stop snapshots and pending AutoGrows, and a stopped
    /// ephemeral VM is undefined with its overlay. Returns what the VM's object shows (nil:
    /// nothing to mirror).
    func vmChanged(_ change: VMChange) async -> VMEvent? {
        switch change {
        case .added(let info):
            await disks.syncVMLeases(info.uuid)
            await disks.vmDisksChanged(uuid: info.uuid, sources: info.disks.map(\.source))
            return .added(await view(info))
        case .updated(let info, let stateChanged):
            await disks.syncVMLeases(info.uuid)
            if stateChanged && info.state == .shutoff {
                let policies = disks.policies
                Task { await policies.vmStopped(info) }
            }
            await disks.vmDisksChanged(uuid: info.uuid, sources: info.disks.map(\.source))
            return .updated(await view(info), stateChanged: stateChanged)
        case .removed(let uuid):
            await disks.releaseVMLeases(uuid)
            await disks.vmDisksChanged(uuid: uuid, sources: nil)
            try? await overlays.forget(uuid)
            return .removed(uuid: uuid)
        case .ephemeralStopped(let info):
            await disks.syncVMLeases(info.uuid)
            await discardEphemeral(info)
            await disks.vmDisksChanged(uuid: info.uuid, sources: info.disks.map(\.source))
            return nil
        case .ready(let info):
            return .ready(info)
        }
    }

    /// Rebuilds the VMs' leases from the domains libvirt just listed (see
    /// ``DiskService/rebuildVMLeases(_:)``).
    public func rebuildVMLeases() async {
        await disks.rebuildVMLeases(await vms.list())
    }

    /// A VM as its object shows it.
    public func view(_ info: VMInfo) async -> VMView { VMView(info: info, managedDisks: await managedDiskNames(of: info)) }

    /// Every VM as its object shows it, by name.
    public func views() async -> [VMView] {
        var views: [VMView] = []
        for info in await vms.list() { views.append(await view(info)) }
        return views
    }

    /// Undefines a stopped ephemeral VM and deletes its overlay, leaving nothing behind.
    func discardEphemeral(_ info: VMInfo) async {
        // Read before the undefine, whose removal event forgets the record.
        let recorded = await overlays.overlay(of: info.uuid)
        do {
            if info.persistent { try await vms.undefine(info.uuid) }
        } catch ControllerError.noSuchVM(let message) {
            // libvirt no longer knows it (undefined while its stop was still being
            // processed): what is left to discard is its overlay.
            logger.info("ephemeral VM \(info.name) is already undefined (\(message))")
        } catch {
            logger.error("cannot undefine ephemeral VM \(info.name): \(error)")
            return
        }
        // The service's own record, never the metadata (which libvirt lets others rewrite).
        guard let overlay = recorded else {
            if !info.metadata.overlay.isEmpty {
                logger.warning("ephemeral VM \(info.name) names overlay \(CallerText.quoted(info.metadata.overlay)) in its metadata, but the service has no record of making it: kept")
            }
            return
        }
        try? await overlays.forget(info.uuid)
        // And only a disk this VM used.
        guard NameRule.disk.isValid(overlay), let disk = try? await disks.existingAny(overlay), info.disks.contains(where: { $0.source == disk.path }) else {
            logger.warning("ephemeral VM \(info.name): its recorded overlay \(overlay) is not one of its disks: kept")
            return
        }
        do {
            try await disks.deleteForVM(overlay)
            logger.notice("deleted overlay \(overlay) of ephemeral VM \(info.name)")
        } catch {
            logger.error("cannot delete overlay \(overlay) of ephemeral VM \(info.name): \(error)")
        }
    }

    /// Records the format of each image without a record from what the service already
    /// knew, never from a probe (run when libvirt is reached, before StartAll): the
    /// `<driver type>` of the VMs that use it, else its backups' manifests. An overlay the
    /// service made for an ephemeral VM that no longer exists (left by a crash) is deleted
    /// instead. Images known nowhere stay unadopted (see Manager.AdoptDisk).
    public func recordKnownFormats() async {
        let unrecorded = await disks.list().filter { $0.format.isEmpty }
        guard !unrecorded.isEmpty else { return }
        let all = await vms.list()
        let owners = await overlays.all()
        for disk in unrecorded {
            if let (uuid, _) = owners.first(where: { $0.value == disk.name }), !all.contains(where: { $0.uuid == uuid }) {
                do {
                    try await disks.deleteForVM(disk.name)
                    try? await overlays.forget(uuid)
                    logger.notice("deleted \(disk.name), the overlay of ephemeral VM \(uuid), which no longer exists")
                } catch {
                    logger.error("cannot delete \(disk.name), the overlay of a VM that no longer exists: \(error)")
                }
                continue
            }
            var known: [(format: String, from: String)] = []
            for vm in all {
                for used in vm.disks where used.source == disk.path { known.append((used.format, "the definition of VM \(vm.name)")) }
            }
            await disks.recordKnownFormat(disk.name, known: known)
        }
    }
}

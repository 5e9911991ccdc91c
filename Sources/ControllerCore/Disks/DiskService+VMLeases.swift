import FoundationEssentials

/// The VMs' leases on their disks (see ``LeaseKind/vm``): taken with a start or a live attach
/// of the service's own, and otherwise following what libvirt reports.
extension DiskService {
    /// The leases VM `info` holds while it runs: one per managed disk,
    /// ``LeaseKind/consistentReader`` for a disk it has read-only (a guest reads it for as
    /// long as it runs: the image must stay still, and other VMs may read it too).
    public func vmLeases(of info: VMInfo) async -> [LeaseRequest] {
        var requests: [LeaseRequest] = []
        for used in info.disks {
            if let lease = await vmLease(of: used.source, readonly: used.readonly) { requests.append(lease) }
        }
        return requests
    }

    /// The lease a running VM holds on the image at `path` (nil: no managed disk).
    public func vmLease(of path: String, readonly: Bool) async -> LeaseRequest? {
        let prefix = store.directory + "/"
        guard path.hasPrefix(prefix) else { return nil }
        let name = String(path.dropFirst(prefix.count))
        guard DiskName.isValid(name), await store.disk(named: name) != nil else { return nil }
        return LeaseRequest(name, readonly ? .consistentReader : .vm)
    }

    /// Throws what taking `requests` for a VM would hit (the `check…` half of Start and
    /// AttachDisk).
    public func checkVMLeases(_ requests: [LeaseRequest], for what: String) async throws {
        try await context.checkLeases(requests, for: what)
    }

    /// Takes `requests` for VM `vm` (all or none: `Busy` naming the holder in the way), runs
    /// `body` (the start, the attach), then makes the VM's leases what libvirt says it has
    /// now, whether `body` succeeded or not. While `body` runs, what libvirt reports of the
    /// VM adds leases but takes none away.
    public func holdingForVM<T: Sendable>(_ vm: VMInfo, _ requests: [LeaseRequest], for what: String,
                                          _ body: () async throws -> T) async throws -> T {
        await store.beginStart(vm.uuid)
        let result: Result<T, Error>
        do {
            try await context.hold(requests, by: .vm(vm.uuid), label: Self.label(vm), for: what)
            result = .success(try await body())
        } catch {
            result = .failure(error)
        }
        await store.endStart(vm.uuid)
        await syncVMLeases(vm.uuid)
        return try result.get()
    }

    /// Makes VM `uuid`'s leases those of its disks while it is active, none otherwise (or
    /// when it is gone), as libvirt's cache has it now — not as an event that may have been
    /// overtaken said. Leases another holder does not allow are taken anyway (the VM
    /// already has the image open: started outside the service) and logged.
    public func syncVMLeases(_ uuid: String) async {
        var wanted: [String: LeaseKind] = [:]
        let info = await context.vms.vm(uuid: uuid)
        if let info, info.state.isActive {
            for request in await vmLeases(of: info) { wanted[request.disk] = request.kind }
        }
        let label = info.map(Self.label) ?? "VM \(uuid)"
        let (changed, conflicts) = await store.setVMLeases(uuid, label: label, disks: wanted)
        for conflict in conflicts {
            context.logger.warning("\(label) runs on a disk the service holds for other work (started outside the service?): \(conflict)")
        }
        await context.announceHeld(changed)
        await context.vmLeasesChanged(changed)
    }

    /// VM `uuid` stopped or is gone (Destroy returned, the VM was undefined).
    public func releaseVMLeases(_ uuid: String) async {
        let released = await store.release(.vm(uuid))
        await context.announceHeld(released)
        await context.vmLeasesChanged(released)
    }

    /// Rebuilds the VMs' leases from libvirt's domains (`all`, just read) and from then on
    /// grants the other leases: run when libvirt is reached, before StartAll.
    public func rebuildVMLeases(_ all: [VMInfo]) async {
        for info in all { await syncVMLeases(info.uuid) }
        let known = Set(all.map(\.uuid))
        for uuid in await store.vmHolders().subtracting(known) { await releaseVMLeases(uuid) }
        await store.vmLeasesKnown()
        // (Its own task: libvirt 9.0 takes 30 s to end an aborted backup.)
        let context = self.context
        Task { await context.abortOrphanedBackups(all) }
    }

    static func label(_ vm: VMInfo) -> String { "VM \(vm.name)" }
}

/// Work of the VMs on their disks' images (VM snapshots): ``LeaseKind/writer`` leases on all
/// of them at once, the disks re-checked under them.
extension DiskService {
    /// Throws what holding `disks` as a writer would hit.
    public func checkWriting(_ disks: [DiskInfo], for what: String) async throws {
        try await context.checkLeases(disks.map { LeaseRequest($0.name, .writer) }, for: what)
    }

    /// Starts job `operation` holding `disks` as a writer (see ``DiskContext/leasedJob``).
    public func writingJob(_ operation: String, target: JobTarget, disks: [DiskInfo], uid: UInt32, for what: String,
                           _ body: @escaping @Sendable (Job) async throws -> [String: JobValue]) async throws -> JobSnapshot {
        let context = self.context
        return try await context.leasedJob(operation, target: target, leases: disks.map { LeaseRequest($0.name, .writer) },
                                           uid: uid, for: what) {
            for disk in disks { try await context.requireUnchanged(disk, for: what) }
        } _: { job in
            try await body(job)
        }
    }

    /// Runs `body` holding `disks` as a writer for a call that is no job.
    public func writing<T: Sendable>(_ disks: [DiskInfo], label: String, for what: String, _ body: () async throws -> T) async throws -> T {
        let context = self.context
        return try await context.leased(disks.map { LeaseRequest($0.name, .writer) }, label: label, for: what) {
            for disk in disks { try await context.requireUnchanged(disk, for: what) }
        } _: {
            try await body()
        }
    }
}

import FoundationEssentials
import Logging

/// Every rule of the managed disks. Each operation comes in two halves: `check…` makes every
/// check without a side effect (errors name the value) and returns a plan whose `details`
/// go to the authorization; `run…` does the work the plan describes and returns Swift
/// values or a job. Nothing is touched between the two but the authorization.
public final class DiskService: Sendable {
    let context: DiskContext
    /// AutoGrow, versioning and usage sampling.
    public let policies: DiskPolicyEngine

    public init(context: DiskContext) {
        self.context = context
        policies = DiskPolicyEngine(context: context)
    }

    var store: DiskStore { context.store }

    /// Sets who mirrors the disks' changes (see ``DiskEvent``; CoreServices wires it).
    func setObserver(_ observer: any CoreObserver) { context.setObserver(observer) }

    // MARK: reading

    /// Every managed disk, by name.
    public func list() async -> [DiskInfo] { await store.list() }

    /// Every managed disk as the bus shows it.
    public func views() async -> [DiskView] {
        let all = await store.list()
        return await context.views(all, all: all)
    }

    /// The disk named `name`, usable or not (GetDiskByName): `InvalidArgs` for a bad name,
    /// `NoSuchDisk` when absent.
    public func lookup(_ name: String) async throws -> DiskInfo {
        try DiskName.validate(name)
        guard let disk = await store.disk(named: name) else { throw ControllerError.noSuchDisk("no disk named \(name)") }
        return disk
    }

    /// The usable disk named `name`: `InvalidArgs` for a bad name, `NoSuchDisk` when
    /// absent, `InvalidState` naming its problems (see ``DiskChain``).
    public func find(_ name: String) async throws -> DiskInfo {
        try DiskName.validate(name)
        guard let disk = await store.disk(named: name) else { throw ControllerError.noSuchDisk("no disk named \(name)") }
        try disk.requireUsable()
        return disk
    }

    /// The disk `name` of an exported object (`NoSuchDisk` when it went away meanwhile).
    public func existing(_ name: String) async throws -> DiskInfo { try await context.disk(name) }

    /// The disk `name` even when it cannot be used (its ``DiskInfo/problems`` say why).
    public func existingAny(_ name: String) async throws -> DiskInfo { try await context.anyDisk(name) }

    /// The backups of a disk, oldest first.
    public func backups(of name: String) async throws -> [BackupInfo] {
        _ = try await context.disk(name)
        return await context.backups.list(disk: name)
    }

    // MARK: create and delete

    /// A checked CreateDisk.
    public struct CreatePlan: Sendable {
        public let request: CreateDiskRequest
        public var details: [String: String] { ["disk": request.name, "operation": "create"] }
    }

    /// `maxSize` overrides `[disks] max_size` (an overlay is as large as its base).
    public func checkCreate(_ request: CreateDiskRequest, maxSize: UInt64? = nil) async throws -> CreatePlan {
        try request.validate(maxSize: maxSize ?? context.maxSize)
        try await store.precheckCreate(request)
        if let backing = request.backing {
            try await context.checkLeases([LeaseRequest(backing, .base)], for: "create disk \(request.name) on \(backing)")
        }
        return CreatePlan(request: request)
    }

    /// An overlay holds its backing disk as a ``LeaseKind/base`` while it is made (after,
    /// that lease is derived from the overlay itself).
    public func runCreate(_ plan: CreatePlan) async throws -> DiskInfo {
        let (context, request) = (self.context, plan.request)
        let info: DiskInfo
        if let backing = request.backing {
            info = try await context.leased([LeaseRequest(backing, .base)], label: "a CreateDisk call",
                                            for: "create disk \(request.name) on \(backing)") {
                try await context.store.create(request)
            }
        } else {
            info = try await store.create(request)
        }
        await context.added(info)
        return info
    }

    /// A checked Delete.
    public struct DeletePlan: Sendable {
        public let disk: DiskInfo
        public var details: [String: String] { ["disk": disk.name, "operation": "delete"] }
    }

    public func checkDelete(_ name: String) async throws -> DeletePlan {
        let disk = try await context.anyDisk(name)
        try await checkDeletable(name)
        if let user = await context.vms.list().first(where: { vm in vm.disks.contains { $0.source == disk.path } }) {
            throw ControllerError.busy("disk \(name) is used by VM \(user.name); detach it first")
        }
        return DeletePlan(disk: disk)
    }

    /// Throws what deleting `name` would hit (held, the backing file of others).
    public func checkDeletable(_ name: String) async throws {
        try await context.checkLeases([LeaseRequest(name, .writer)], for: "delete disk \(name)")
    }

    public func runDelete(_ plan: DeletePlan) async throws {
        let (context, name) = (self.context, plan.disk.name)
        try await context.leased([LeaseRequest(name, .writer)], label: "a Delete call", for: "delete disk \(name)") {
            try await context.delete(name)
        }
    }

    // MARK: snapshots

    public typealias SnapshotAction = SnapshotOperation

    /// A checked CreateSnapshot, RevertSnapshot or DeleteSnapshot.
    public struct SnapshotPlan: Sendable {
        public let disk: DiskInfo
        public let action: SnapshotAction
        public let snapshot: String
        public var details: [String: String] { ["disk": disk.name, "operation": action.rawValue, "snapshot": snapshot] }

        /// The call in words, for errors.
        static func what(_ action: SnapshotAction, _ snapshot: String, _ disk: String) -> String {
            switch action {
            case .create: "take snapshot \(snapshot) of disk \(disk)"
            case .revert: "revert disk \(disk) to snapshot \(snapshot)"
            case .delete: "delete snapshot \(snapshot) of disk \(disk)"
            }
        }
    }

    public func checkSnapshot(_ action: SnapshotAction, _ snapshot: String, on name: String) async throws -> SnapshotPlan {
        let disk = try await context.disk(name)
        try NameRule.snapshot.validate(snapshot)
        guard disk.format == "qcow2" else {
            throw ControllerError.notSupported("disk \(name) is \(disk.format); internal snapshots need qcow2")
        }
        let exists = disk.snapshots.contains { $0.name == snapshot }
        switch action {
        case .create:
            if snapshot.hasPrefix("vm-") || snapshot.hasPrefix("auto-") {
                throw ControllerError.invalidArgs("snapshot names vm-* and auto-* belong to VM snapshots and versioning; choose another than \(snapshot)")
            }
            if exists { throw ControllerError.alreadyExists("disk \(name) already has a snapshot \(snapshot)") }
        case .revert, .delete:
            if !exists { throw ControllerError.noSuchSnapshot("disk \(name) has no snapshot \(snapshot)") }
        }
        try await context.checkLeases([LeaseRequest(name, .writer)], for: SnapshotPlan.what(action, snapshot, name))
        return SnapshotPlan(disk: disk, action: action, snapshot: snapshot)
    }

    public func runSnapshot(_ plan: SnapshotPlan) async throws {
        let (context, qemuImg, path, snapshot) = (self.context, self.context.qemuImg, plan.disk.path, plan.snapshot)
        let action: QemuImg.SnapshotAction = switch plan.action { case .create: .create; case .revert: .apply; case .delete: .delete }
        let what = SnapshotPlan.what(plan.action, snapshot, plan.disk.name)
        try await context.leased([LeaseRequest(plan.disk.name, .writer)], label: "a \(plan.action.method) call", for: what) {
            try await context.requireUnchanged(plan.disk, for: what)
        } _: {
            await context.guests.cache.release(path)
            if action == .apply {
                try await qemuImg.revert(toSnapshot: snapshot, path: path)
            } else {
                try await qemuImg.snapshot(action, snapshot, path: path)
            }
        }
        context.logger.notice("\(plan.action.rawValue) \(snapshot) on disk \(plan.disk.name)")
        await context.publish(plan.disk.name)
    }

    // MARK: clone, backup, restore

    /// A checked Clone.
    public struct ClonePlan: Sendable {
        public let disk: DiskInfo
        public let newName: String
        public let linked: Bool
        public var details: [String: String] { ["disk": disk.name, "operation": "clone", "new_name": newName] }
        static func what(_ disk: String, _ newName: String) -> String { "clone disk \(disk) to \(newName)" }
    }

    public func checkClone(_ name: String, to newName: String, linked: Bool) async throws -> ClonePlan {
        let disk = try await context.disk(name)
        try DiskName.validate(newName)
        try await store.precheckCreate(CreateDiskRequest(name: newName, size: 512, format: "qcow2"))
        try await context.checkLeases([LeaseRequest(name, linked ? .base : .consistentReader)], for: ClonePlan.what(name, newName))
        return ClonePlan(disk: disk, newName: newName, linked: linked)
    }

    public func runClone(_ plan: ClonePlan, uid: UInt32) async throws -> JobSnapshot {
        let context = self.context
        let what = ClonePlan.what(plan.disk.name, plan.newName)
        // A linked clone is an overlay: its source then has a base lease for as long as it
        // exists (taken here for the making, derived from the overlay after).
        return try await context.leasedJob("Clone", target: .disk(plan.disk.name),
                                           leases: [LeaseRequest(plan.disk.name, plan.linked ? .base : .consistentReader)],
                                           uid: uid, for: what) {
            try await context.requireUnchanged(plan.disk, for: what)
        } _: { job in
            await context.guests.cache.release(plan.disk.path)
            let info = try await context.store.clone(plan.disk.name, to: plan.newName, linked: plan.linked) { job.progress($0) }
            await context.added(info)
            return ["disk": .string(info.name), "linked": .bool(plan.linked), "size": .uint64(info.allocatedSize)]
        }
    }

    // MARK: for the VMs

    /// Creates an overlay disk for a VM's `base_disk` (already checked with ``checkCreate(_:)``).
    public func createOverlay(_ plan: CreatePlan) async throws -> DiskInfo { try await runCreate(plan) }

    /// Deletes disks a VM no longer needs (its overlay, or its disks on Undefine), holding
    /// each as a writer like Delete (a job on it, or a disk built on it since, is `Busy`).
    /// It does not wait for the VMs' leases to be known: it runs on the way there too (a
    /// stopped ephemeral VM found while libvirt is listed), on a disk only that VM used.
    public func deleteForVM(_ name: String) async throws {
        let context = self.context
        try await context.leased([LeaseRequest(name, .writer)], label: "the deletion of a VM's disk", for: "delete disk \(name)",
                                 afterVMs: false) {
            try await context.delete(name)
        }
    }

    /// Images changed behind the disk objects (a VM snapshot call ran qemu-img on them):
    /// re-reads each and announces what changed (`Snapshots`, sizes).
    public func imagesChanged(_ names: [String]) async {
        for name in names { await context.publish(name) }
    }

    /// A VM's disk sources changed (nil: the VM is gone): `AttachedTo` follows.
    public func vmDisksChanged(uuid: String, sources: [String]?) async {
        await context.vmDisksChanged(uuid: uuid, sources: sources)
    }

    /// Closes cached appliances on the disks of `vm` before it starts (a read-write
    /// appliance holds qemu's write lock on the image).
    public func releaseAppliances(of vm: VMInfo) async {
        for source in vm.disks.map(\.source) { await context.guests.cache.release(source) }
    }
}

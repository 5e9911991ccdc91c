import FoundationEssentials
import Guestfs
import Logging
import Synchronization

/// What the bus layer shows of one disk: the image, its relations and its policies.
public struct DiskView: Sendable, Equatable {
    public var info: DiskInfo
    /// Name of the managed backing disk (or the backing file's path when unmanaged), or "".
    public var backingDisk: String
    /// Names of the disks built on this one.
    public var overlays: [String]
    /// UUIDs of the VMs that use this disk.
    public var attachedTo: [String]
    /// AutoGrow, versioning and the last usage sample.
    public var record: DiskRecord
    /// The leases held on it (see ``LeaseKind``).
    public var heldBy: [DiskLease] = []
    /// Whether the writes since its newest backup point are tracked.
    public var tracking = ChangeTracking(state: .none, since: 0, reason: "")
}

/// A change of the disks, in the order it happened; the bus layer mirrors each one.
public enum DiskEvent: Sendable {
    /// A disk appeared.
    case added(DiskView)
    /// The changeable properties of these disks (sizes, snapshots, overlays) changed.
    case changed([DiskView])
    /// A disk is gone.
    case removed(String)
    /// The policies or usage of a disk changed.
    case policies(String, DiskRecord)
    /// The VMs that use a disk changed (UUIDs).
    case attachedTo(String, [String])
    /// The leases held on a disk changed: all of them now.
    case heldBy(String, [DiskLease])
    /// A usage sample reached the AutoGrow threshold (the threshold: what the guest's
    /// filesystems hold is for `disk.inspect` callers only).
    case usageHigh(String, Double)
}

/// The parts the disk services share: the stores, the VMs (to know who uses a disk), the
/// jobs, the observer of ``DiskEvent``s, and the checks every writing operation makes.
public final class DiskContext: Sendable {
    let store: DiskStore
    let backups: BackupStore
    let guests: GuestImages
    let policies: DiskPolicyStore
    let vms: VMManager
    let jobs: JobManager
    let qemuImg: QemuImg
    let maxSize: UInt64
    let usageIntervalSeconds: Int
    let trackingIntervalSeconds: Int
    let logger: Logger
    /// Who mirrors the disks' changes: a protocol rather than a stored async closure, since a
    /// closure kept in a `Mutex` is called through a reabstraction thunk, and that thunk made
    /// every task that emitted an event grow its task allocator by about 1 MB (measured with
    /// heaptrack: `DiskContext.added` 131 MB over 120 calls; the daemon's anonymous memory
    /// grew 20 MB per LoadTests round).
    private let observer = Mutex<(any CoreObserver)?>(nil)
    /// The VM UUIDs last published as each disk's `AttachedTo`, by disk name.
    private let attachedTo = Mutex<[String: [String]]>([:])
    /// The disk sources of each VM (by UUID) when attachments were last published.
    private let vmDiskSources = Mutex<[String: [String]]>([:])
    /// The bytes changed since each disk's newest point as last measured, by disk name.
    let measures = Mutex<[String: ChangeTracking.Measure]>([:])
    /// Numbers the lease holders that are no job (``LeaseHolder/work(_:)``).
    let workCounter = Atomic<UInt64>(0)

    public init(store: DiskStore, backups: BackupStore, guests: GuestImages, policies: DiskPolicyStore, vms: VMManager,
                jobs: JobManager, qemuImg: QemuImg, maxSize: UInt64, usageIntervalSeconds: Int,
                trackingIntervalSeconds: Int = 60, logger: Logger) {
        self.store = store
        self.backups = backups
        self.guests = guests
        self.policies = policies
        self.vms = vms
        self.jobs = jobs
        self.qemuImg = qemuImg
        self.maxSize = maxSize
        self.usageIntervalSeconds = usageIntervalSeconds
        self.trackingIntervalSeconds = trackingIntervalSeconds
        self.logger = logger
    }

    /// Sets who mirrors the disks' changes (CoreServices: its observer).
    func setObserver(_ observer: any CoreObserver) {
        self.observer.withLock { $0 = observer }
    }

    func emit(_ event: DiskEvent) async {
        let observer = self.observer.withLock { $0 }
        await observer?.coreEvent(.disk(event))
    }

    // MARK: views

    /// The views of `disks` (one read of the policies for all of them).
    func views(_ disks: [DiskInfo], all: [DiskInfo]) async -> [DiskView] {
        let records = await policies.all()
        let directory = store.directory + "/"
        let users = attachedTo.withLock { $0 }
        let held = await store.holdings(of: disks.map(\.name))
        var heads: [String: BackupPoint] = [:]
        for disk in disks { heads[disk.name] = await backups.head(of: disk.name) }
        let measures = self.measures.withLock { $0 }
        return disks.map { disk in
            let backing = disk.backingFile.map { $0.hasPrefix(directory) ? String($0.dropFirst(directory.count)) : $0 } ?? ""
            let overlays = all.filter { $0.backingFile == disk.path }.map(\.name)
            let leases = held[disk.name] ?? []
            let tracking = ChangeTracking.of(disk, head: heads[disk.name], isBase: !overlays.isEmpty,
                                             running: leases.contains { $0.kind == .vm }, measure: measures[disk.name])
            return DiskView(info: disk, backingDisk: backing, overlays: overlays,
                            attachedTo: users[disk.name] ?? [], record: records[disk.name] ?? DiskRecord(),
                            heldBy: leases, tracking: tracking)
        }
    }

    /// Re-reads `changed` (if any) and publishes the changeable properties of it and of
    /// its backing disk (its `Overlays`), or of every disk when `changed` is nil.
    func publish(_ changed: String?) async {
        if let changed { _ = try? await store.refresh(changed) }
        let all = await store.list()
        let backing = all.first { $0.name == changed }?.backingFile
        let changedDisks = all.filter { changed == nil || $0.name == changed || $0.path == backing }
        await emit(.changed(await views(changedDisks, all: all)))
    }

    /// Drops `name`'s usage sample once its filesystems are no longer the ones measured
    /// (Format, a Resize that resized the filesystem): no sample until the next Inspect or
    /// sampler run, rather than figures of a filesystem that is gone. `inspection` drops the
    /// last Inspect's findings too (Format: the system it found is gone).
    func forgetUsage(_ name: String, inspection: Bool = false) async {
        let change: (inout DiskRecord) -> Void = { r in
            r.usage = []
            r.sampled = 0
            if inspection { r.inspection = nil }
        }
        if let record = try? await policies.update(name, change) {
            await emit(.policies(name, record))
        }
    }

    /// Announces a new disk, then the `Overlays` and `HeldBy` of the disk it is built on.
    func added(_ disk: DiskInfo) async {
        let all = await store.list()
        for view in await views([disk], all: all) { await emit(.added(view)) }
        await publish(nil)
        await announceHeld(all.filter { $0.path == disk.backingFile }.map(\.name))
    }

    /// Deletes a disk's image and its policies, and announces it (and the `HeldBy` of the
    /// disk it was built on).
    func delete(_ name: String) async throws {
        let disk = await store.disk(named: name)
        if let disk { await guests.cache.release(disk.path) }
        let base = await store.list().first { $0.path == disk?.backingFile }?.name
        try await store.delete(name)
        try? await policies.remove(name)
        await emit(.removed(name))
        await publish(nil)
        if let base { await announceHeld([base]) }
    }

    // MARK: who uses a disk

    /// The active VM (qemu running) using `disk`, and the target it has it at.
    func activeUser(of disk: DiskInfo) async -> (vm: VMInfo, target: String)? {
        for vm in await vms.list() where vm.state.isActive {
            if let d = vm.disks.first(where: { $0.source == disk.path }) { return (vm, d.target) }
        }
        return nil
    }

    /// The disk named `name` (already validated), or `NoSuchDisk`; `InvalidState` naming
    /// its problems when it cannot be used (no format record, a broken backing chain).
    func disk(_ name: String) async throws -> DiskInfo {
        let disk = try await anyDisk(name)
        try disk.requireUsable()
        return disk
    }

    /// The disk named `name` (already validated) even when it cannot be used (Delete,
    /// AdoptDisk), or `NoSuchDisk`.
    func anyDisk(_ name: String) async throws -> DiskInfo {
        guard let disk = await store.disk(named: name) else { throw ControllerError.noSuchDisk("disk \(name) no longer exists") }
        return disk
    }

    /// A VM's disks changed: recomputes the `AttachedTo` of every disk when the set of
    /// disk sources of that VM changed (not on every state change).
    func vmDisksChanged(uuid: String, sources: [String]?) async {
        let changed = vmDiskSources.withLock { known -> Bool in
            let before = known[uuid] ?? []
            known[uuid] = sources
            return before != sources ?? []   // a VM without disks coming or going changes none
        }
        guard changed else { return }
        let users = await vms.diskUsers()
        for disk in await store.list() {
            let now = users[disk.path] ?? []
            let differs = attachedTo.withLock { cache -> Bool in
                guard cache[disk.name] ?? [] != now else { return false }
                cache[disk.name] = now
                return true
            }
            if differs { await emit(.attachedTo(disk.name, now)) }
        }
    }
}

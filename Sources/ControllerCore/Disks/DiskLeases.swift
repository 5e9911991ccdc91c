/// What a lease on a disk lets its holder do, and so what it lets others do at the same time.
///
/// Every operation on a managed disk holds a lease for as long as it works on the image: a
/// running VM on each of its disks, a job from its start to its end, the service's own work
/// (versioning, the usage sampler) for its duration. Two leases on one disk may coexist
/// only where ``compatible`` says so; the table is published in the API reference
/// (`Disk.HeldBy`) and a Core test iterates it.
public enum LeaseKind: String, Sendable, CaseIterable {
    /// A running (or paused) VM's qemu has the image open read-write.
    case vm
    /// Reads that are safe while a VM writes: a read-only appliance (Inspect, ListFiles,
    /// ReadFile, the usage sampler) sees the image as a crash would leave it. Safe beside a
    /// VM is safe beside any writer (one that replaces the image leaves the reader the old
    /// file; writers close the cached read-only appliances first), and a reader never stops a
    /// writer: opening a disk's details (its file listing) or a usage sample must not make
    /// the next Format or Resize `Busy`.
    case reader
    /// Reads that need the image to stay still: the source of a Clone, an offline Backup.
    case consistentReader = "consistent-reader"
    /// Rewrites the image or replaces it: offline Resize, Format, Restore, WriteFile, disk
    /// snapshots (create, revert, delete), VM snapshots, Delete, AdoptDisk of an overlay,
    /// versioning, AutoGrow. Alone but for readers.
    case writer
    /// Changes a running VM's image through its qemu (a live Resize): held beside the VM's
    /// own lease, and only while there is one. (AutoGrow waits for the VM to stop and then
    /// holds a writer's lease.)
    case liveWriter = "live-writer"
    /// A backup read through a running VM's qemu (a point-in-time copy that qemu keeps
    /// consistent while the guest writes): a Backup of a running VM's disk.
    case onlineBackup = "online-backup"
    /// Held by each disk built on this one (an overlay): the base must not change under it.
    case base

    /// The kinds each kind can share a disk with (symmetric: the Core tests check it).
    public static let compatible: [LeaseKind: Set<LeaseKind>] = [
        .vm: [.reader, .liveWriter, .onlineBackup],
        .reader: [.vm, .reader, .consistentReader, .writer, .liveWriter, .onlineBackup, .base],
        .consistentReader: [.reader, .consistentReader, .onlineBackup, .base],
        .writer: [.reader],
        .liveWriter: [.vm, .reader],
        .onlineBackup: [.vm, .reader, .consistentReader, .base],
        .base: [.reader, .consistentReader, .onlineBackup, .base],
    ]

    /// True when a lease of this kind and one of `other` may be held on one disk at once.
    public func allows(_ other: LeaseKind) -> Bool { Self.compatible[self]?.contains(other) ?? false }

    /// The kind a lease of this kind needs beside it on the same disk (a live change needs
    /// the running VM it goes through).
    public var needs: LeaseKind? {
        switch self {
        case .liveWriter, .onlineBackup: return .vm
        default: return nil
        }
    }
}

/// Who holds a lease.
public enum LeaseHolder: Hashable, Sendable {
    /// A job, by id.
    case job(UInt64)
    /// A VM, by UUID.
    case vm(String)
    /// A disk built on the leased one (its ``LeaseKind/base`` lease), by name.
    case disk(String)
    /// A method call that is no job (WriteFile, Delete, ReadFile…) or the service's own
    /// work (versioning, the usage sampler): one number per call.
    case work(UInt64)
}

/// One lease on one disk: its kind, its holder, and what the holder is in words (for the
/// `Busy` error that names it and for the log).
public struct DiskLease: Sendable, Equatable {
    public let kind: LeaseKind
    public let holder: LeaseHolder
    /// E.g. "job 12 (Resize)", "VM web", "disk web-overlay (built on it)".
    public let label: String

    public init(kind: LeaseKind, holder: LeaseHolder, label: String) {
        self.kind = kind
        self.holder = holder
        self.label = label
    }
}

/// The leases held on the managed disks, by disk name: the rules only (no locking, no I/O;
/// ``DiskStore`` holds one and is the only one to change it).
struct DiskLeases: Sendable {
    private(set) var held: [String: [DiskLease]] = [:]

    /// The first lease (of `held`, or of `bases`: the derived ``LeaseKind/base`` leases by
    /// disk) that stops `holder` from taking `kind` on `disk`; nil when it may. A holder
    /// never conflicts with itself.
    func conflict(_ kind: LeaseKind, on disk: String, for holder: LeaseHolder, bases: [DiskLease]) -> DiskLease? {
        let others = ((held[disk] ?? []) + bases).filter { $0.holder != holder }
        return others.first { !kind.allows($0.kind) }
    }

    /// True when `disk` has a lease of `kind` (by anyone).
    func has(_ kind: LeaseKind, on disk: String) -> Bool { held[disk]?.contains { $0.kind == kind } ?? false }

    /// Adds `lease` on `disk` (the caller checked ``conflict(_:on:for:bases:)``); a holder
    /// holds one lease of a kind per disk. Returns true when something changed.
    @discardableResult
    mutating func insert(_ lease: DiskLease, on disk: String) -> Bool {
        if held[disk]?.contains(where: { $0.holder == lease.holder && $0.kind == lease.kind }) == true { return false }
        held[disk, default: []].append(lease)
        return true
    }

    /// Drops `holder`'s leases (on `disks` only, when given); returns the disks changed.
    mutating func remove(_ holder: LeaseHolder, on disks: Set<String>? = nil) -> [String] {
        var changed: [String] = []
        for (disk, leases) in held where disks?.contains(disk) ?? true {
            let kept = leases.filter { $0.holder != holder }
            guard kept.count != leases.count else { continue }
            held[disk] = kept.isEmpty ? nil : kept
            changed.append(disk)
        }
        return changed.sorted()
    }

    /// The disks `holder` holds a lease on.
    func disks(of holder: LeaseHolder) -> Set<String> {
        Set(held.compactMap { disk, leases in leases.contains { $0.holder == holder } ? disk : nil })
    }

    /// The leases held on `disk`, in the order they were taken.
    func leases(on disk: String) -> [DiskLease] { held[disk] ?? [] }
}

/// One lease to take: a kind on a disk, by name.
public struct LeaseRequest: Sendable, Equatable {
    public let disk: String
    public let kind: LeaseKind

    public init(_ disk: String, _ kind: LeaseKind) {
        self.disk = disk
        self.kind = kind
    }
}

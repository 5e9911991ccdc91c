/// VM snapshots: a snapshot NAME of a VM is the set of qcow2 internal snapshots `vm-NAME`
/// on each of its managed disks, taken while the VM is shut off (not libvirt's
/// whole-machine snapshots, which cannot revert external disk snapshots or handle raw disks).
public struct VMSnapshots: Sendable {
    public let qemuImg: QemuImg

    public init(qemuImg: QemuImg) { self.qemuImg = qemuImg }

    public static func internalName(_ name: String) -> String { "vm-" + name }

    /// The VM's managed disks, checked for snapshots: all qcow2 (a raw one is `NotSupported`
    /// naming it), at least one, VM shut off.
    public static func disks(of vm: VMInfo, managed: [DiskInfo]) throws -> [DiskInfo] {
        guard vm.state == .shutoff else {
            throw ControllerError.invalidState("VM snapshots are taken while the VM is shut off; \(vm.name) is \(vm.state)")
        }
        let byPath = Dictionary(managed.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        let disks = vm.disks.compactMap { byPath[$0.source] }
        guard !disks.isEmpty else { throw ControllerError.invalidState("\(vm.name) has no managed disks to snapshot") }
        for disk in disks { try disk.requireUsable() }
        if let raw = disks.first(where: { $0.format != "qcow2" }) {
            throw ControllerError.notSupported("disk \(raw.name) of \(vm.name) is \(raw.format); internal snapshots need qcow2")
        }
        return disks
    }

    /// Snapshot names present on every disk, with the earliest creation time.
    /// From the disks' cached snapshot lists (kept current by every snapshot call and the
    /// disk store's rescans): a read that anyone may make starts no child process.
    public func list(_ disks: [DiskInfo]) -> [(name: String, created: UInt64)] {
        var common: [String: UInt64]?
        for disk in disks {
            var mine: [String: UInt64] = [:]
            for s in disk.snapshots where s.name.hasPrefix("vm-") {
                mine[String(s.name.dropFirst(3))] = s.created
            }
            if let current = common {
                var next: [String: UInt64] = [:]
                for (name, created) in current { if let other = mine[name] { next[name] = min(created, other) } }
                common = next
            } else {
                common = mine
            }
        }
        return (common ?? [:]).map { (name: $0.key, created: $0.value) }.sorted { ($0.created, $0.name) < ($1.created, $1.name) }
    }

    /// Checks no disk has `vm-NAME` yet (`AlreadyExists` naming the disk).
    public func requireAbsent(_ name: String, on disks: [DiskInfo]) async throws {
        let tag = Self.internalName(name)
        for disk in disks where try await qemuImg.info(path: disk.path, format: disk.format).snapshots.contains(where: { $0.name == tag }) {
            throw ControllerError.alreadyExists("disk \(disk.name) already has a snapshot \(tag)")
        }
    }

    /// Takes `vm-NAME` on every disk; on a failure the ones already taken are removed.
    public func create(_ name: String, on disks: [DiskInfo], job: Job) async throws {
        let tag = Self.internalName(name)
        try await requireAbsent(name, on: disks)
        var done: [DiskInfo] = []
        do {
            for (index, disk) in disks.enumerated() {
                try job.checkCancelled()
                try await qemuImg.snapshot(.create, tag, path: disk.path)
                done.append(disk)
                job.progress(Double(index + 1) / Double(disks.count))
            }
        } catch {
            for disk in done { try? await qemuImg.snapshot(.delete, tag, path: disk.path) }
            throw error
        }
    }

    /// Checks every disk has `vm-NAME`.
    public func require(_ name: String, on disks: [DiskInfo]) async throws {
        let tag = Self.internalName(name)
        for disk in disks where !(try await qemuImg.info(path: disk.path, format: disk.format).snapshots.contains { $0.name == tag }) {
            throw ControllerError.noSuchSnapshot("disk \(disk.name) has no snapshot \(tag)")
        }
    }

    /// Applies `vm-NAME` to every disk (each apply is atomic per image; the job is
    /// committed from the start, so it cannot be cancelled half-way).
    public func revert(_ name: String, on disks: [DiskInfo], job: Job) async throws {
        job.commit()
        let tag = Self.internalName(name)
        for (index, disk) in disks.enumerated() {
            try await qemuImg.revert(toSnapshot: tag, path: disk.path)
            job.progress(Double(index + 1) / Double(disks.count))
        }
    }

    public func delete(_ name: String, on disks: [DiskInfo]) async throws {
        let tag = Self.internalName(name)
        for disk in disks { try await qemuImg.snapshot(.delete, tag, path: disk.path) }
    }
}

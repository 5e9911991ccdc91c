import FoundationEssentials

/// The leases of the managed disks (see ``LeaseKind``): the store owns them, so a check of
/// the leases and the disks' overlays (the derived ``LeaseKind/base`` leases) and the taking
/// happen in one step of its actor.
extension DiskStore {
    /// The ``LeaseKind/base`` leases of `name`: one per disk built on it.
    func bases(of name: String) -> [DiskLease] {
        let p = path(of: name)
        return disks.values.filter { $0.backingFile == p }.map(\.name).sorted()
            .map { DiskLease(kind: .base, holder: .disk($0), label: "disk \($0), which is built on it") }
    }

    /// Every lease on disk `name`: those taken, then those of its overlays.
    public func holdings(of name: String) -> [DiskLease] { leases.leases(on: name) + bases(of: name) }

    /// The leases of each of `names` at once (the views of every disk: one step of the actor).
    func holdings(of names: [String]) -> [String: [DiskLease]] {
        Dictionary(names.map { ($0, holdings(of: $0)) }, uniquingKeysWith: { a, _ in a })
    }

    /// Throws what taking `requests` for `holder` would hit, without taking anything (the
    /// `check…` halves: their errors come before the authorization).
    func checkLeases(_ requests: [LeaseRequest], by holder: LeaseHolder?, for what: String) throws {
        for request in requests {
            guard disks[request.disk] != nil else { throw ControllerError.noSuchDisk("cannot \(what): disk \(request.disk) no longer exists") }
            if let other = leases.conflict(request.kind, on: request.disk, for: holder ?? .work(0), bases: bases(of: request.disk)) {
                throw ControllerError.busy("cannot \(what): disk \(request.disk) is held by \(other.label) (\(other.kind.rawValue))")
            }
            if let needed = request.kind.needs, !leases.has(needed, on: request.disk) {
                throw ControllerError.invalidState("cannot \(what): disk \(request.disk) is no longer used by a running VM")
            }
        }
    }

    /// Takes every lease of `requests` for `holder`, or none (`Busy` naming the first
    /// holder in the way); never waits while holding. Returns the disks whose leases changed.
    func hold(_ requests: [LeaseRequest], by holder: LeaseHolder, label: String, for what: String) throws -> [String] {
        try checkLeases(requests, by: holder, for: what)
        var changed: [String] = []
        for request in requests where leases.insert(DiskLease(kind: request.kind, holder: holder, label: label), on: request.disk) {
            changed.append(request.disk)
        }
        return changed
    }

    /// Drops `holder`'s leases; returns the disks changed.
    func release(_ holder: LeaseHolder) -> [String] { leases.remove(holder) }

    /// VM `uuid` runs with `disks` (name → ``LeaseKind/vm`` or, read-only,
    /// ``LeaseKind/reader``), or is not running (empty): its leases become exactly those.
    /// Taken even where another lease is in the way — the VM already has the image open
    /// (started outside the service); those leases are returned for the log. While a
    /// start or live attach of the service's own is under way (``beginStart(_:)``), leases
    /// are only added: the ones that call took stay until it ends.
    func setVMLeases(_ uuid: String, label: String, disks wanted: [String: LeaseKind]) -> (changed: [String], conflicts: [String]) {
        let holder = LeaseHolder.vm(uuid)
        let current = leases.disks(of: holder)
        var changed = starting[uuid, default: 0] > 0 ? [] : Set(leases.remove(holder, on: current.subtracting(wanted.keys)))
        var conflicts: [String] = []
        for (disk, kind) in wanted.sorted(by: { $0.key < $1.key }) where disks[disk] != nil {
            if !current.contains(disk), let other = leases.conflict(kind, on: disk, for: holder, bases: bases(of: disk)) {
                conflicts.append("disk \(disk) is held by \(other.label) (\(other.kind.rawValue))")
            }
            let had = leases.leases(on: disk).first { $0.holder == holder }
            if let had, had.kind != kind { _ = leases.remove(holder, on: [disk]) }
            if leases.insert(DiskLease(kind: kind, holder: holder, label: label), on: disk) { changed.insert(disk) }
        }
        return (changed.sorted(), conflicts)
    }

    /// A start or live attach of VM `uuid` by the service begins (its leases are taken) or ends.
    /// (Counted: a live attach may overlap a start.)
    func beginStart(_ uuid: String) { starting[uuid, default: 0] += 1 }
    func endStart(_ uuid: String) {
        starting[uuid, default: 1] -= 1
        if starting[uuid] == 0 { starting[uuid] = nil }
    }

    /// The VMs holding leases (to drop those of VMs gone while libvirt was away).
    func vmHolders() -> Set<String> {
        Set(leases.held.values.flatMap { $0 }.compactMap { if case .vm(let uuid) = $0.holder { return uuid } else { return nil } })
    }

    // MARK: the VMs' leases known

    /// Called once the VMs' leases have been rebuilt from libvirt's running domains:
    /// leases other than a VM's are granted from now on.
    func vmLeasesKnown() {
        guard !vmLeasesReady else { return }
        vmLeasesReady = true
        for waiter in vmLeaseWaiters.values { waiter.resume(returning: true) }
        vmLeaseWaiters.removeAll()
    }

    /// Waits (up to `timeout`) until the VMs' leases are known: until then nothing can say
    /// whether a VM has an image open. False when the wait timed out. Woken by
    /// ``vmLeasesKnown()``, nothing polls.
    func awaitVMLeases(timeout: Duration) async -> Bool {
        if vmLeasesReady { return true }
        let key = nextLeaseWaiter
        nextLeaseWaiter += 1
        let deadline = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.endLeaseWait(key)
        }
        let known = await withCheckedContinuation { vmLeaseWaiters[key] = $0 }
        deadline.cancel()
        return known
    }

    private func endLeaseWait(_ key: UInt64) {
        vmLeaseWaiters.removeValue(forKey: key)?.resume(returning: false)
    }
}

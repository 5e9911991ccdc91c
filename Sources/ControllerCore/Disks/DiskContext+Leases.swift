import FoundationEssentials
import Synchronization

/// Taking and giving back the disks' leases (see ``LeaseKind``), each change announced as
/// ``DiskEvent/heldBy(_:_:)``.
extension DiskContext {
    /// How long a lease other than a VM's waits, after the service started, for the VMs'
    /// leases to be rebuilt from libvirt (until then nothing says whether a VM has an image
    /// open); then `Busy`.
    static let vmLeaseWait = Duration.seconds(20)

    /// A new holder for a call that is no job (or the service's own work).
    func newWork() -> LeaseHolder { .work(workCounter.add(1, ordering: .relaxed).newValue) }

    /// Throws what taking `requests` would hit (`Busy` naming the holder in the way,
    /// `NoSuchDisk`, `InvalidState`), taking nothing: the `check…` halves' early answer.
    func checkLeases(_ requests: [LeaseRequest], for what: String) async throws {
        try await store.checkLeases(requests, by: nil, for: what)
    }

    /// Takes every lease of `requests` for `holder`, or none. Unless `afterVMs` is false
    /// (work on the way to knowing them: the discard of a stopped ephemeral VM's overlay while
    /// libvirt is listed), leases other than a VM's wait until the VMs' leases are known.
    func hold(_ requests: [LeaseRequest], by holder: LeaseHolder, label: String, for what: String, afterVMs: Bool = true) async throws {
        if afterVMs, requests.contains(where: { $0.kind != .vm }), !(await store.awaitVMLeases(timeout: Self.vmLeaseWait)) {
            throw ControllerError.busy("cannot \(what): the service does not know yet which VMs have disks open (libvirt has not been reached since it started)")
        }
        await announceHeld(try await store.hold(requests, by: holder, label: label, for: what))
    }

    /// Gives back `holder`'s leases.
    func release(_ holder: LeaseHolder) async {
        await announceHeld(await store.release(holder))
    }

    /// Announces the leases of each of `names` that still exists. Two announcements of one
    /// disk may cross on their way out (each reads, then emits): each reads again after it
    /// emitted and emits once more when the leases changed meanwhile, so the last value out
    /// is a current one.
    func announceHeld(_ names: [String]) async {
        for name in names {
            var sent: [DiskLease]?
            for _ in 0..<3 {
                guard await store.disk(named: name) != nil else { break }
                let now = await store.holdings(of: name)
                if now == sent { break }
                await emit(.heldBy(name, now))
                sent = now
            }
        }
    }

    /// Throws `InvalidState` when disk `planned` changed since it was checked (during the
    /// authorization: another call resized, reverted or replaced it) or `NoSuchDisk` when it
    /// is gone; run under the leases, after which it cannot change.
    func requireUnchanged(_ planned: DiskInfo, for what: String) async throws {
        guard let now = await store.disk(named: planned.name) else {
            throw ControllerError.noSuchDisk("cannot \(what): disk \(planned.name) no longer exists")
        }
        guard now.sameImage(as: planned) else {
            throw ControllerError.invalidState("cannot \(what): disk \(planned.name) changed while the call was authorized; check it and call again")
        }
    }

    /// Runs `body` holding `requests` for a new holder labelled `label` (a call that is no
    /// job, the service's own work), after `recheck` under the leases.
    func leased<T: Sendable>(_ requests: [LeaseRequest], label: String, for what: String, afterVMs: Bool = true,
                             recheck: () async throws -> Void = {}, _ body: () async throws -> T) async throws -> T {
        let holder = newWork()
        try await hold(requests, by: holder, label: label, for: what, afterVMs: afterVMs)
        do {
            try await recheck()
            let result = try await body()
            await release(holder, after: requests)
            return result
        } catch {
            await release(holder, after: requests)
            throw error
        }
    }

    /// Gives back `holder`'s leases after work under `requests`: the images a writer held
    /// are re-read first, so the next holder's re-check (``requireUnchanged(_:for:)``)
    /// compares with what the image is now, not with what it was before the write.
    private func release(_ holder: LeaseHolder, after requests: [LeaseRequest]) async {
        for request in requests where request.kind == .writer || request.kind == .liveWriter {
            _ = try? await store.refresh(request.disk)
        }
        await release(holder)
    }

    /// Starts job `operation` holding `requests` from before the job exists until its body
    /// has ended (so `HeldBy` shows the job before its object appears and is clear before
    /// it reports its end); `recheck` runs under the leases before the job starts;
    /// `afterward` once the leases are given back after a body that succeeded.
    func leasedJob(_ operation: String, target: JobTarget, leases requests: [LeaseRequest], uid: UInt32, for what: String,
                   afterward: (@Sendable () async -> Void)? = nil, recheck: () async throws -> Void,
                   _ body: @escaping @Sendable (Job) async throws -> [String: JobValue]) async throws -> JobSnapshot {
        let id = await jobs.reserveID()
        let holder = LeaseHolder.job(id)
        try await hold(requests, by: holder, label: "job \(id) (\(operation))", for: what)
        do {
            try await recheck()
            return try await jobs.start(id: id, operation: operation, target: target, uid: uid) { [self] job in
                do {
                    let result = try await body(job)
                    await release(holder, after: requests)
                    await afterward?()
                    return result
                } catch {
                    await release(holder, after: requests)
                    throw error
                }
            }
        } catch {
            await release(holder)
            throw error
        }
    }
}

extension DiskInfo {
    /// True when `other` describes the same image as far as a plan relies on it: format,
    /// virtual size, backing file, data file and snapshots (not the allocation, which a
    /// running VM changes).
    func sameImage(as other: DiskInfo) -> Bool {
        format == other.format && virtualSize == other.virtualSize && backingFile == other.backingFile
            && dataFile == other.dataFile && snapshots.map(\.name) == other.snapshots.map(\.name)
    }
}

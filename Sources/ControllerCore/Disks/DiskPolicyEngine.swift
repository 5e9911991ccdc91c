import FoundationEssentials
import HostSystem

/// The per-disk policies and what acts on them: SetAutoGrow and SetVersioning, the usage
/// sampler (FilesystemUsage, UsageHigh, AutoGrow), automatic `auto-*` snapshots with
/// pruning, and what a stopping VM triggers.
public final class DiskPolicyEngine: Sendable {
    let context: DiskContext

    init(context: DiskContext) { self.context = context }

    var store: DiskStore { context.store }
    var records: DiskPolicyStore { context.policies }

    // MARK: SetAutoGrow, SetVersioning

    /// The keys a SetAutoGrow call gives (missing keys keep their value).
    public struct AutoGrowChange: Sendable {
        public var enabled: Bool?, threshold: Double?, step: UInt64?, max: UInt64?
        public init(enabled: Bool? = nil, threshold: Double? = nil, step: UInt64? = nil, max: UInt64? = nil) {
            (self.enabled, self.threshold, self.step, self.max) = (enabled, threshold, step, max)
        }
    }

    /// A checked policy change: the disk and the whole new policy.
    public struct PolicyPlan<Policy: Sendable>: Sendable {
        public let disk: String
        public let policy: Policy
        public let operation: String
        public var details: [String: String] { ["disk": disk, "operation": operation] }
    }

    public func checkAutoGrow(_ name: String, _ change: AutoGrowChange) async throws -> PolicyPlan<AutoGrowPolicy> {
        let disk = try await context.disk(name)
        var policy = await records.record(name).autoGrow
        let maxSize = context.maxSize
        if let v = change.enabled { policy.enabled = v }
        if let v = change.threshold {
            guard v >= 0.05, v <= 0.99 else { throw ControllerError.invalidArgs("invalid threshold \(v): use 0.05 to 0.99") }
            policy.threshold = v
        }
        if let v = change.step {
            guard v >= 1 << 20, v % 512 == 0, v <= maxSize else {
                throw ControllerError.invalidArgs("invalid step \(v): at least 1 MiB (1048576), a multiple of 512, at most \(maxSize)")
            }
            policy.step = v
        }
        if let v = change.max {
            guard v % 512 == 0, v <= maxSize else { throw ControllerError.invalidArgs("invalid max \(v): a multiple of 512, at most \(maxSize)") }
            policy.max = v
        }
        if policy.enabled && policy.max <= disk.virtualSize {
            throw ControllerError.invalidArgs("max \(policy.max) must be above disk \(name)'s virtual size \(disk.virtualSize) to enable AutoGrow")
        }
        return PolicyPlan(disk: name, policy: policy, operation: "set-autogrow")
    }

    public func runAutoGrow(_ plan: PolicyPlan<AutoGrowPolicy>) async throws {
        let policy = plan.policy
        let record = try await records.update(plan.disk) { $0.autoGrow = policy }
        context.logger.notice("AutoGrow of disk \(plan.disk): enabled=\(policy.enabled) threshold=\(policy.threshold) step=\(policy.step) max=\(policy.max)")
        await context.emit(.policies(plan.disk, record))
    }

    /// The keys a SetVersioning call gives (missing keys keep their value).
    public struct VersioningChange: Sendable {
        public var enabled: Bool?, intervalSeconds: UInt32?, keep: UInt32?, onStop: Bool?
        public init(enabled: Bool? = nil, intervalSeconds: UInt32? = nil, keep: UInt32? = nil, onStop: Bool? = nil) {
            (self.enabled, self.intervalSeconds, self.keep, self.onStop) = (enabled, intervalSeconds, keep, onStop)
        }
    }

    public func checkVersioning(_ name: String, _ change: VersioningChange) async throws -> PolicyPlan<VersioningPolicy> {
        let disk = try await context.disk(name)
        var policy = await records.record(name).versioning
        if let v = change.enabled { policy.enabled = v }
        if let v = change.intervalSeconds {
            guard v == 0 || (5...31_536_000).contains(v) else {
                throw ControllerError.invalidArgs("invalid interval_s \(v): 0 (only on_stop) or 5 to 31536000 seconds")
            }
            policy.intervalSeconds = v
        }
        if let v = change.keep {
            guard (1...1000).contains(v) else { throw ControllerError.invalidArgs("invalid keep \(v): use 1 to 1000") }
            policy.keep = v
        }
        if let v = change.onStop { policy.onStop = v }
        if policy.enabled && disk.format != "qcow2" {
            throw ControllerError.notSupported("disk \(name) is \(disk.format); versioning takes internal snapshots, which need qcow2")
        }
        return PolicyPlan(disk: name, policy: policy, operation: "set-versioning")
    }

    public func runVersioning(_ plan: PolicyPlan<VersioningPolicy>) async throws {
        let policy = plan.policy
        let record = try await records.update(plan.disk) { r in
            // A newly enabled policy counts its interval from now.
            if policy.enabled && !r.versioning.enabled { r.lastAutoSnapshot = UInt64(Date().timeIntervalSince1970) }
            r.versioning = policy
        }
        context.logger.notice("versioning of disk \(plan.disk): enabled=\(policy.enabled) interval_s=\(policy.intervalSeconds) keep=\(policy.keep) on_stop=\(policy.onStop)")
        await context.emit(.policies(plan.disk, record))
    }

    /// The keys a SetBackupPolicy call gives (missing keys keep their value).
    public struct BackupPolicyChange: Sendable {
        public var keepLast: UInt32?, fullEvery: UInt32?, maxChain: UInt32?, intervalSeconds: UInt32?
        public init(keepLast: UInt32? = nil, fullEvery: UInt32? = nil, maxChain: UInt32? = nil, intervalSeconds: UInt32? = nil) {
            (self.keepLast, self.fullEvery, self.maxChain, self.intervalSeconds) = (keepLast, fullEvery, maxChain, intervalSeconds)
        }
    }

    public func checkBackupPolicy(_ name: String, _ change: BackupPolicyChange) async throws -> PolicyPlan<BackupPolicy> {
        _ = try await context.disk(name)
        var policy = await records.record(name).backup
        for (key, value) in [("keep_last", change.keepLast), ("full_every", change.fullEvery), ("max_chain", change.maxChain)] {
            if let value, value > 10_000 { throw ControllerError.invalidArgs("invalid \(key) \(value): 0 (none) or 1 to 10000") }
        }
        if let v = change.intervalSeconds {
            guard v == 0 || (60...31_536_000).contains(v) else {
                throw ControllerError.invalidArgs("invalid interval_s \(v): 0 (no schedule) or 60 to 31536000 seconds")
            }
            policy.intervalSeconds = v
        }
        if let v = change.keepLast { policy.keepLast = v }
        if let v = change.fullEvery { policy.fullEvery = v }
        if let v = change.maxChain { policy.maxChain = v }
        return PolicyPlan(disk: name, policy: policy, operation: "set-backup-policy")
    }

    public func runBackupPolicy(_ plan: PolicyPlan<BackupPolicy>) async throws {
        let policy = plan.policy
        let record = try await records.update(plan.disk) { r in
            // A newly scheduled policy counts its interval from now.
            if policy.intervalSeconds > 0 && r.backup.intervalSeconds == 0 { r.lastScheduledBackup = UInt64(Date().timeIntervalSince1970) }
            r.backup = policy
        }
        context.logger.notice("backup policy of disk \(plan.disk): keep_last=\(policy.keepLast) full_every=\(policy.fullEvery) max_chain=\(policy.maxChain) interval_s=\(policy.intervalSeconds)")
        await context.emit(.policies(plan.disk, record))
    }

    /// How long a scheduled backup that could not start, or failed, waits before it is
    /// tried again (then every minute rather than every tick, nor a whole interval later).
    static let scheduledRetrySeconds: UInt64 = 60

    /// Starts the scheduled backups that are due: a Backup job (mode auto, as uid 0) for each
    /// disk whose policy has an interval, when no VM runs on it and nothing holds it against
    /// a consistent reader. The interval counts from the end of the last successful one; one
    /// that cannot start or fails is tried again a minute later.
    func backupTick() async {
        let now = UInt64(Date().timeIntervalSince1970)
        for (name, record) in await records.all() {
            let policy = record.backup
            guard policy.intervalSeconds > 0, now >= record.lastScheduledBackup + UInt64(policy.intervalSeconds),
                  let disk = await store.disk(named: name), disk.problems.isEmpty, await context.activeUser(of: disk) == nil else { continue }
            let (context, records) = (self.context, self.records)
            let what = "back up disk \(name) on schedule"
            let interval = UInt64(policy.intervalSeconds)
            // Not due again while the job runs; its end sets the next time.
            _ = try? await records.update(name) { $0.lastScheduledBackup = now }
            do {
                _ = try await context.leasedJob("Backup", target: .disk(name), leases: [LeaseRequest(name, .consistentReader)], uid: 0, for: what) {
                    try await context.requireUnchanged(disk, for: what)
                } _: { job in
                    do {
                        let result = try await context.backUp(disk, mode: .auto, compress: false, job: job)
                        _ = try? await records.update(name) { $0.lastScheduledBackup = UInt64(Date().timeIntervalSince1970) }
                        return result
                    } catch {
                        // Tried again a minute from its end.
                        let end = UInt64(Date().timeIntervalSince1970) + Self.scheduledRetrySeconds
                        _ = try? await records.update(name) { $0.lastScheduledBackup = end > interval ? end - interval : 0 }
                        throw error
                    }
                }
                context.logger.info("scheduled backup of disk \(name) started (interval_s \(policy.intervalSeconds))")
            } catch {
                let retry = now + Self.scheduledRetrySeconds
                _ = try? await records.update(name) { $0.lastScheduledBackup = retry > interval ? retry - interval : 0 }
                context.logger.info("scheduled backup of disk \(name) put off for a minute: \(error)")
            }
        }
    }

    // MARK: usage and AutoGrow

    /// Records what Inspect found (kept for GetInspection) and its usage as a sample;
    /// returns when it was inspected.
    func inspected(_ name: String, _ report: InspectionReport) async -> UInt64 {
        var report = report
        report.inspected = UInt64(Date().timeIntervalSince1970)
        await usageSampled(name, report.usage, inspection: report)
        return report.inspected
    }

    /// Records a usage sample (from the sampler or Inspect): publishes when it was taken
    /// (`UsageSampled`; the figures only through GetFilesystemUsage), signals `UsageHigh`
    /// with the threshold when the highest fraction crosses the AutoGrow threshold, and
    /// marks the disk for growing when AutoGrow is enabled: the sampler or Inspect grows it
    /// (``growIfPending(_:)``) once it has let go of the disk, or the VM using it once it stops.
    func usageSampled(_ name: String, _ usage: [FilesystemUsage], inspection: InspectionReport? = nil) async {
        let previous = await records.record(name)
        let now = inspection?.inspected ?? UInt64(Date().timeIntervalSince1970)
        let change: (inout DiskRecord) -> Void = { r in
            r.usage = usage
            r.sampled = now
            if let inspection { r.inspection = inspection }
        }
        guard let record = try? await records.update(name, change) else { return }
        await context.emit(.policies(name, record))
        let threshold = record.autoGrow.threshold
        let fraction = usage.map(\.fraction).max() ?? 0
        let before = previous.usage.map(\.fraction).max() ?? 0
        guard fraction >= threshold else { return }
        if before < threshold || previous.sampled == 0 {
            context.logger.notice("disk \(name): filesystem usage \(Int(fraction * 100))% reached the threshold \(Int(threshold * 100))%")
            // The threshold, not the fraction measured: signals reach every bus client.
            await context.emit(.usageHigh(name, threshold))
        }
        guard record.autoGrow.enabled, let disk = await store.disk(named: name) else { return }
        _ = try? await records.update(name) { $0.growPending = true }
        if let user = await context.activeUser(of: disk) {
            context.logger.notice("disk \(name): AutoGrow waits until VM \(user.vm.name) stops")
        }
    }

    /// Starts the AutoGrow a usage sample asked for, unless a VM runs on the disk (then it
    /// waits for the VM to stop).
    func growIfPending(_ name: String) async {
        let record = await records.record(name)
        guard record.growPending, record.autoGrow.enabled, let disk = await store.disk(named: name),
              await context.activeUser(of: disk) == nil else { return }
        await startAutoGrow(name)
    }

    /// Starts an AutoGrow job: `step` more, never past `max`, with the filesystem, holding
    /// the disk as a writer (held by another: it stays pending, for the next sample).
    func startAutoGrow(_ name: String) async {
        guard let disk = await store.disk(named: name), disk.problems.isEmpty else { return }
        let policy = await records.record(name).autoGrow
        _ = try? await records.update(name) { $0.growPending = false }
        let size = min(disk.virtualSize + policy.step, policy.max) / 512 * 512
        guard size > disk.virtualSize else {
            context.logger.warning("disk \(name): AutoGrow reached its max (\(policy.max) bytes); not growing")
            return
        }
        let context = self.context
        let what = "grow disk \(name) (AutoGrow)"
        do {
            _ = try await context.leasedJob("AutoGrow", target: .disk(name), leases: [LeaseRequest(name, .writer)], uid: 0, for: what) {
                try await context.requireUnchanged(disk, for: what)
            } _: { job in
                try await context.resizeOffline(name, to: size, filesystem: true, job: job)
            }
        } catch {
            _ = try? await records.update(name) { $0.growPending = true }
            context.logger.error("disk \(name): cannot start AutoGrow: \(error)")
        }
    }

    /// A VM stopped: versioning's `on_stop` snapshots and pending AutoGrows of its disks.
    func vmStopped(_ vm: VMInfo) async {
        for source in vm.disks.map(\.source) {
            guard let disk = await store.list().first(where: { $0.path == source }) else { continue }
            let record = await records.record(disk.name)
            if record.versioning.enabled && record.versioning.onStop {
                await autoSnapshot(disk.name, reason: "VM \(vm.name) stopped")
            }
            if record.growPending && record.autoGrow.enabled { await startAutoGrow(disk.name) }
        }
    }

    // MARK: background work

    /// Starts the usage sampler, the versioning clock and the measurement of what running VMs
    /// changed since their disks' newest points; runs pending AutoGrows of disks
    /// whose VM is shut off (the daemon was down when it stopped).
    public func start() {
        Task { [self] in
            for name in await records.all().keys.sorted() { await growIfPending(name) }
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                await versioningTick()
                await backupTick()
            }
        }
        if context.trackingIntervalSeconds > 0 {
            let tracking = context.trackingIntervalSeconds
            Task { [context] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(tracking))
                    await context.measureRunningDisks()
                }
            }
        }
        let interval = context.usageIntervalSeconds
        guard interval > 0 else { return }
        Task { [self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(interval))
                await sampleAll()
            }
        }
    }

    /// One appliance at a time, read-only, each disk held as a ``LeaseKind/reader`` for its
    /// sample (a disk another operation holds against readers is skipped).
    func sampleAll() async {
        for disk in await store.list() where disk.problems.isEmpty {
            do {
                let context = self.context
                let usage = try await context.leased([LeaseRequest(disk.name, .reader)], label: "the usage sampler",
                                                     for: "sample the usage of disk \(disk.name)") {
                    try await context.guests.sampleUsage(disk)
                }
                await usageSampled(disk.name, usage)
                await growIfPending(disk.name)
            } catch {
                context.logger.info("usage sample of disk \(disk.name) skipped: \(error)")
            }
        }
    }

    func versioningTick() async {
        let now = UInt64(Date().timeIntervalSince1970)
        for (name, record) in await records.all() {
            let v = record.versioning
            guard v.enabled, v.intervalSeconds > 0, now >= record.lastAutoSnapshot + UInt64(v.intervalSeconds),
                  let disk = await store.disk(named: name), await context.activeUser(of: disk) == nil,
                  (try? await context.checkLeases([LeaseRequest(name, .writer)], for: "version disk \(name)")) != nil else { continue }
            if Self.stamp(disk.path) == record.lastAutoStamp && !record.lastAutoStamp.isEmpty {
                // Unchanged since the last version: no new snapshot (it would only push a
                // real version out of `keep`).
                _ = try? await records.update(name) { $0.lastAutoSnapshot = now }
                continue
            }
            await autoSnapshot(name, reason: "interval \(v.intervalSeconds) s")
        }
    }

    /// Takes `auto-<UTC time>` and prunes the oldest `auto-*` beyond `keep`.
    func autoSnapshot(_ name: String, reason: String) async {
        guard let disk = await store.disk(named: name), disk.format == "qcow2", disk.problems.isEmpty else { return }
        let keep = Int(await records.record(name).versioning.keep)
        var snapshot = "auto-" + TextFormat.compactUTCNow()
        var n = 2
        while disk.snapshots.contains(where: { $0.name == snapshot }) {
            snapshot = "auto-" + TextFormat.compactUTCNow() + "-\(n)"
            n += 1
        }
        let (context, qemuImg) = (self.context, self.context.qemuImg)
        let path = disk.path
        let target = snapshot
        do {
            // The stamp is read under the lease: a VM started right after it writes a change
            // the next version takes.
            let stamp = try await context.leased([LeaseRequest(name, .writer)], label: "versioning", for: "version disk \(name)") {
                await context.guests.cache.release(path)
                try await qemuImg.snapshot(.create, target, path: path)
                let autos = try await qemuImg.info(path: path, format: "qcow2").snapshots.filter { $0.name.hasPrefix("auto-") }
                    .sorted { ($0.created, $0.name) < ($1.created, $1.name) }
                for old in autos.dropLast(keep) { try await qemuImg.snapshot(.delete, old.name, path: path) }
                return Self.stamp(path)
            }
            let now = UInt64(Date().timeIntervalSince1970)
            try await records.update(name) { $0.lastAutoSnapshot = now; $0.lastAutoStamp = stamp }
            context.logger.notice("versioning: snapshot \(snapshot) of disk \(name) (\(reason))")
        } catch {
            context.logger.error("versioning: cannot snapshot disk \(name): \(error)")
        }
        await context.publish(name)
    }

    /// Size and modification time of an image: a change means a new version.
    static func stamp(_ path: String) -> String { FileStamp(path)?.persisted ?? "" }
}

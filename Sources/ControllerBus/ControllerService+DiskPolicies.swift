import ControllerCore
import Foundation
import SDBus

/// SetAutoGrow and SetVersioning, their properties, and what acts on them: the usage
/// sampler (FilesystemUsage, UsageHigh, AutoGrow) and automatic snapshots.
extension ControllerService {
    func handleDiskPolicyCall(_ disk: DiskInfo, _ call: MethodCall) async throws -> [DBusValue]? {
        let name = disk.name
        switch call.member {
        case "SetAutoGrow":
            var policy = await policies.record(name).autoGrow
            var o = try Options(call.arguments.first, method: call.member)
            if let v = try o.bool("enabled") { policy.enabled = v }
            if let v = try o.double("threshold") {
                guard v >= 0.05, v <= 0.99 else { throw ControllerError.invalidArgs("invalid threshold \(v): use 0.05 to 0.99") }
                policy.threshold = v
            }
            if let v = try o.uint64("step") {
                guard v >= 1 << 20, v % 512 == 0, v <= config.maxDiskSize else {
                    throw ControllerError.invalidArgs("invalid step \(v): at least 1 MiB (1048576), a multiple of 512, at most \(config.maxDiskSize)")
                }
                policy.step = v
            }
            if let v = try o.uint64("max") {
                guard v % 512 == 0, v <= config.maxDiskSize else {
                    throw ControllerError.invalidArgs("invalid max \(v): a multiple of 512, at most \(config.maxDiskSize)")
                }
                policy.max = v
            }
            try o.finish()
            if policy.enabled && policy.max <= disk.virtualSize {
                throw ControllerError.invalidArgs("max \(policy.max) must be above disk \(name)'s virtual size \(disk.virtualSize) to enable AutoGrow")
            }
            let caller = try await callers.caller(for: call)
            try await authorizer.authorize(caller, .diskManage, details: ["disk": name, "operation": "set-autogrow"])
            try await policies.update(name) { $0.autoGrow = policy }
            logger.notice("AutoGrow of disk \(name): enabled=\(policy.enabled) threshold=\(policy.threshold) step=\(policy.step) max=\(policy.max)")
            await publishPolicies(name)
            return []
        case "SetVersioning":
            var policy = await policies.record(name).versioning
            var o = try Options(call.arguments.first, method: call.member)
            if let v = try o.bool("enabled") { policy.enabled = v }
            if let v = try o.uint32("interval_s") {
                guard v == 0 || (5...31_536_000).contains(v) else {
                    throw ControllerError.invalidArgs("invalid interval_s \(v): 0 (only on_stop) or 5 to 31536000 seconds")
                }
                policy.intervalSeconds = v
            }
            if let v = try o.uint32("keep") {
                guard (1...1000).contains(v) else { throw ControllerError.invalidArgs("invalid keep \(v): use 1 to 1000") }
                policy.keep = v
            }
            if let v = try o.bool("on_stop") { policy.onStop = v }
            try o.finish()
            if policy.enabled && disk.format != "qcow2" {
                throw ControllerError.notSupported("disk \(name) is \(disk.format); versioning takes internal snapshots, which need qcow2")
            }
            let caller = try await callers.caller(for: call)
            try await authorizer.authorize(caller, .diskManage, details: ["disk": name, "operation": "set-versioning"])
            try await policies.update(name) { r in
                // A newly enabled policy counts its interval from now.
                if policy.enabled && !r.versioning.enabled { r.lastAutoSnapshot = UInt64(Date().timeIntervalSince1970) }
                r.versioning = policy
            }
            logger.notice("versioning of disk \(name): enabled=\(policy.enabled) interval_s=\(policy.intervalSeconds) keep=\(policy.keep) on_stop=\(policy.onStop)")
            await publishPolicies(name)
            return []
        default:
            return nil
        }
    }

    /// The policy and usage properties of a disk.
    static func policyProperties(_ r: DiskRecord) -> [String: DBusValue] {
        [
            "FilesystemUsage": usageValue(r.usage),
            "UsageSampled": .uint64(r.sampled),
            "AutoGrow": .vardict(["enabled": .boolean(r.autoGrow.enabled), "threshold": .double(r.autoGrow.threshold),
                                  "step": .uint64(r.autoGrow.step), "max": .uint64(r.autoGrow.max)]),
            "Versioning": .vardict(["enabled": .boolean(r.versioning.enabled), "interval_s": .uint32(r.versioning.intervalSeconds),
                                    "keep": .uint32(r.versioning.keep), "on_stop": .boolean(r.versioning.onStop)]),
        ]
    }

    static func usageValue(_ rows: [FilesystemUsage]) -> DBusValue {
        .array(elementSignature: "(sttt)", rows.map { .structure([.string($0.device), .uint64($0.size), .uint64($0.used), .uint64($0.available)]) })
    }

    func publishPolicies(_ name: String) async {
        let r = await policies.record(name)
        await bus.setProperties(path: ObjectPaths.disk(name), interface: Interfaces.disk.name, Self.policyProperties(r))
    }

    // MARK: usage and AutoGrow

    /// Records a usage sample (from the sampler or Inspect): publishes it, signals
    /// `UsageHigh` when the highest fraction crosses the AutoGrow threshold, and grows the
    /// disk (now if no VM runs on it, else when that VM stops) when AutoGrow is enabled.
    func usageSampled(_ name: String, _ usage: [FilesystemUsage]) async {
        let previous = await policies.record(name)
        let now = UInt64(Date().timeIntervalSince1970)
        guard let record = try? await policies.update(name, { $0.usage = usage; $0.sampled = now }) else { return }
        await publishPolicies(name)
        let threshold = record.autoGrow.threshold
        let fraction = usage.map(\.fraction).max() ?? 0
        let before = previous.usage.map(\.fraction).max() ?? 0
        guard fraction >= threshold else { return }
        if before < threshold || previous.sampled == 0 {
            logger.notice("disk \(name): filesystem usage \(Int(fraction * 100))% reached the threshold \(Int(threshold * 100))%")
            try? await bus.emitSignal(path: ObjectPaths.disk(name), interface: Interfaces.disk.name, member: "UsageHigh", [.double(fraction)])
        }
        guard record.autoGrow.enabled, let disk = await disks.disk(named: name) else { return }
        if let user = await activeUser(of: disk) {
            _ = try? await policies.update(name) { $0.growPending = true }
            logger.notice("disk \(name): AutoGrow waits until VM \(user.vm.name) stops")
        } else {
            await startAutoGrow(name)
        }
    }

    /// Starts an AutoGrow job: `step` more, never past `max`, with the filesystem.
    func startAutoGrow(_ name: String) async {
        guard let disk = await disks.disk(named: name) else { return }
        let policy = await policies.record(name).autoGrow
        _ = try? await policies.update(name) { $0.growPending = false }
        let size = min(disk.virtualSize + policy.step, policy.max) / 512 * 512
        guard size > disk.virtualSize else {
            logger.warning("disk \(name): AutoGrow reached its max (\(policy.max) bytes); not growing")
            return
        }
        do {
            _ = try await jobs.start(operation: "AutoGrow", target: ObjectPaths.disk(name), uid: 0) { [self] job in
                try await resizeOffline(name, to: size, filesystem: true, job: job)
            }
        } catch {
            _ = try? await policies.update(name) { $0.growPending = true }
            logger.error("disk \(name): cannot start AutoGrow: \(error)")
        }
    }

    /// A VM stopped: versioning's `on_stop` snapshots and pending AutoGrows of its disks.
    func vmStopped(_ vm: VMInfo) async {
        for source in vm.disks.map(\.source) {
            guard let disk = await disks.list().first(where: { $0.path == source }) else { continue }
            let record = await policies.record(disk.name)
            if record.versioning.enabled && record.versioning.onStop {
                await autoSnapshot(disk.name, reason: "VM \(vm.name) stopped")
            }
            if record.growPending && record.autoGrow.enabled { await startAutoGrow(disk.name) }
        }
    }

    /// Syncs and closes cached appliances on the disks of `vm` before it starts (a
    /// read-write appliance holds qemu's write lock on the image).
    public func releaseAppliances(of vm: VMInfo) async {
        for source in vm.disks.map(\.source) { await guests.cache.release(source) }
    }

    // MARK: background work

    /// Starts the usage sampler and the versioning clock; runs pending AutoGrows of disks
    /// whose VM is shut off (the daemon was down when it stopped).
    public func startDiskMaintenance() {
        Task { [self] in
            for (name, record) in await policies.all() where record.growPending && record.autoGrow.enabled {
                if let disk = await disks.disk(named: name), await activeUser(of: disk) == nil { await startAutoGrow(name) }
            }
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                await versioningTick()
            }
        }
        let interval = config.guestfs.usageIntervalSeconds
        guard interval > 0 else { return }
        Task { [self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(interval))
                await sampleAll()
            }
        }
    }

    /// One appliance at a time, read-only, disks busy with other work skipped.
    func sampleAll() async {
        for disk in await disks.list() {
            guard await !disks.isBusy(disk.name) else { continue }
            do {
                let usage = try await guests.sampleUsage(disk)
                await usageSampled(disk.name, usage)
            } catch {
                logger.info("usage sample of disk \(disk.name) skipped: \(error)")
            }
        }
    }

    func versioningTick() async {
        let now = UInt64(Date().timeIntervalSince1970)
        for (name, record) in await policies.all() {
            let v = record.versioning
            guard v.enabled, v.intervalSeconds > 0, now >= record.lastAutoSnapshot + UInt64(v.intervalSeconds),
                  let disk = await disks.disk(named: name), await activeUser(of: disk) == nil, await !disks.isBusy(name) else { continue }
            if Self.stamp(disk.path) == record.lastAutoStamp && !record.lastAutoStamp.isEmpty {
                // Unchanged since the last version: no new snapshot (it would only push a
                // real version out of `keep`).
                _ = try? await policies.update(name) { $0.lastAutoSnapshot = now }
                continue
            }
            await autoSnapshot(name, reason: "interval \(v.intervalSeconds) s")
        }
    }

    /// Takes `auto-<UTC time>` and prunes the oldest `auto-*` beyond `keep`.
    func autoSnapshot(_ name: String, reason: String) async {
        guard let disk = await disks.disk(named: name), disk.format == "qcow2" else { return }
        let keep = Int(await policies.record(name).versioning.keep)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        var snapshot = "auto-" + formatter.string(from: Date())
        var n = 2
        while disk.snapshots.contains(where: { $0.name == snapshot }) {
            snapshot = "auto-" + formatter.string(from: Date()) + "-\(n)"
            n += 1
        }
        let qemuImg = QemuImg(path: config.qemuImgPath)
        let path = disk.path
        let target = snapshot
        await guests.cache.release(path)
        do {
            try await disks.exclusive(name) {
                try await qemuImg.snapshot(.create, target, path: path)
                let autos = try await qemuImg.info(path: path).snapshots.filter { $0.name.hasPrefix("auto-") }
                    .sorted { ($0.created, $0.name) < ($1.created, $1.name) }
                for old in autos.dropLast(keep) { try await qemuImg.snapshot(.delete, old.name, path: path) }
            }
            let now = UInt64(Date().timeIntervalSince1970)
            try await policies.update(name) { $0.lastAutoSnapshot = now; $0.lastAutoStamp = Self.stamp(path) }
            logger.notice("versioning: snapshot \(snapshot) of disk \(name) (\(reason))")
        } catch {
            logger.error("versioning: cannot snapshot disk \(name): \(error)")
        }
        await publishDiskChange(name)
    }

    /// Size and modification time of an image: a change means a new version.
    static func stamp(_ path: String) -> String { FileStamp(path)?.persisted ?? "" }
}

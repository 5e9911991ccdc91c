import FoundationEssentials
import Glibc

/// What follows from libvirt's changes, and the ordered start.
extension VMService {
    /// A VM changed (seen by libvirt's events): the disks learn who uses them, a stopped
    /// VM's disks get their on-stop snapshots and pending AutoGrows, and a stopped
    /// ephemeral VM is undefined with its overlay.
    public func vmChanged(_ change: VMChange) async {
        switch change {
        case .added(let info):
            await disks.vmDisksChanged(uuid: info.uuid, sources: info.disks.map(\.source))
        case .updated(let info, let stateChanged):
            if stateChanged && info.state == .shutoff {
                let policies = disks.policies
                Task { await policies.vmStopped(info) }
            }
            await disks.vmDisksChanged(uuid: info.uuid, sources: info.disks.map(\.source))
        case .removed(let uuid):
            await disks.vmDisksChanged(uuid: uuid, sources: nil)
        case .ephemeralStopped(let info):
            await discardEphemeral(info)
            await disks.vmDisksChanged(uuid: info.uuid, sources: info.disks.map(\.source))
        }
    }

    /// Undefines a stopped ephemeral VM and deletes its overlay, leaving nothing behind.
    func discardEphemeral(_ info: VMInfo) async {
        do {
            if info.persistent { try await vms.undefine(info.uuid) }
        } catch {
            logger.error("cannot undefine ephemeral VM \(info.name): \(error)")
            return
        }
        let overlay = info.metadata.overlay
        guard !overlay.isEmpty, DiskName.isValid(overlay), (try? await disks.existing(overlay)) != nil else { return }
        do {
            try await disks.deleteForVM(overlay)
            logger.notice("deleted overlay \(overlay) of ephemeral VM \(info.name)")
        } catch {
            logger.error("cannot delete overlay \(overlay) of ephemeral VM \(info.name): \(error)")
        }
    }

    /// A checked StartAll.
    public struct StartAllPlan: Sendable {
        /// Inactive networks the VMs to start use (they need network.manage too).
        public var networksToStart: [String] = []
        public var details: [String: String] { ["operation": "start-all"] }
        public var networkDetails: [String: String] { ["network": networksToStart.joined(separator: ","), "operation": "start"] }
    }

    public func checkStartAll() async -> StartAllPlan {
        let used = await vms.list().filter { $0.autostart && $0.state != .running }
            .flatMap { $0.interfaces.filter { $0.type == "network" }.map(\.source) }
        return StartAllPlan(networksToStart: (try? await vms.inactiveNetworks(among: used)) ?? [])
    }

    /// Starts the StartAll job (also run once at start-up, as uid 0).
    public func runStartAll(_ plan: StartAllPlan, uid: UInt32) async throws -> JobSnapshot {
        let timeout = Duration.seconds(vms.config.startTimeoutSeconds)
        return try await jobs.start(operation: "StartAll", target: .service, uid: uid) { [self] job in
            try await startAll(job: job, timeout: timeout)
        }
    }

    /// Starts the VMs whose autostart flag is set: network controllers first, each waited
    /// for until running, then interface controllers, then the rest (VMs without the
    /// service's metadata last). A VM that fails fails the job with its name and reason;
    /// the others stay as they are.
    func startAll(job: Job, timeout: Duration) async throws -> [String: JobValue] {
        let order = await vms.list().filter(\.autostart).sorted { ($0.bootOrder, $0.name) < ($1.bootOrder, $1.name) }
        logger.notice("StartAll: \(order.map(\.name).joined(separator: ", "))")
        var started: [String] = []
        var already: [String] = []
        job.progress(order.isEmpty ? nil : 0)
        for (index, vm) in order.enumerated() {
            try job.checkCancelled()
            if vm.state == .running {
                already.append(vm.name)
            } else {
                do {
                    try await vms.startNetworks(try await vms.inactiveNetworks(of: vm), for: vm)
                    await disks.releaseAppliances(of: vm)
                    try await vms.startWithinBudget(vm.uuid)
                } catch ControllerError.limitsExceeded(let message) {
                    throw ControllerError.limitsExceeded("StartAll: \(message)")
                } catch {
                    throw ControllerError.libvirt("StartAll: \(vm.name) failed to start: \((error as? ControllerError)?.message ?? "\(error)")")
                }
                let deadline = ContinuousClock.now + timeout
                while true {
                    let state = await vms.refresh(vm.uuid)?.state
                    if state == .running { break }
                    if state == nil || state == .shutoff || state == .crashed {
                        throw ControllerError.libvirt("StartAll: \(vm.name) stopped right after it was started (it is \(state?.rawValue ?? "gone"))")
                    }
                    guard ContinuousClock.now < deadline else {
                        throw ControllerError.libvirt("StartAll: \(vm.name) did not reach running within \(timeout.components.seconds) s (it is \(state?.rawValue ?? "gone"))")
                    }
                    try await Task.sleep(for: .milliseconds(200))
                }
                started.append(vm.name)
            }
            job.progress(Double(index + 1) / Double(order.count))
        }
        return ["order": .strings(order.map(\.name)), "started": .strings(started), "already_running": .strings(already)]
    }
}

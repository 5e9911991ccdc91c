import FoundationEssentials

/// The ordered start and stop of the whole host: StartAll and StopAll.
extension VMService {
    /// A checked StartAll.
    public struct StartAllPlan: Sendable {
        /// Inactive networks the VMs to start use (they need network.manage too).
        public var networksToStart: [String] = []
        public var details: [String: String] { ["operation": "start-all"] }
        public var networkDetails: [String: String] { ["network": networksToStart.joined(separator: ","), "operation": "start"] }
    }

    /// The networks the run would start (each VM's and fallback's inactive ones): a failed
    /// lookup is an error (`Libvirt`), never a smaller authorization.
    public func checkStartAll() async throws -> StartAllPlan {
        let all = await vms.list()
        let fallbacks = Set(all.filter(\.autostart).map(\.metadata.fallback))
        let used = all.filter { ($0.autostart || fallbacks.contains($0.name)) && $0.state != .running }
            .flatMap { $0.interfaces.filter { $0.type == "network" }.map(\.source) }
        return StartAllPlan(networksToStart: try await vms.inactiveNetworks(among: used))
    }

    /// Starts the StartAll job (also run once per host boot at start-up, as uid 0). The run
    /// starts only the networks of the plan (the ones network.manage was asked for).
    public func runStartAll(_ plan: StartAllPlan, uid: UInt32) async throws -> JobSnapshot {
        try await jobs.start(operation: "StartAll", target: .service, uid: uid) { [self] job in
            try await startAll(job: job, networks: Set(plan.networksToStart))
        }
    }

    /// Starts the VMs whose autostart flag is set, in boot order (network controllers,
    /// interface controllers, the rest; VMs without the service's metadata last). Each is
    /// started, waited for until running, and — when it has a readiness channel — until its
    /// guest sends `READY=1`, before the next. A VM that does not become ready in time is
    /// destroyed (only if this run started it) and its fallback started in its place; any
    /// other failure fails the job naming the VM. The others stay as they are.
    func startAll(job: Job, networks allowed: Set<String>) async throws -> [String: JobValue] {
        let order = await vms.list().filter(\.autostart).sorted { ($0.bootOrder, $0.name) < ($1.bootOrder, $1.name) }
        logger.notice("StartAll: \(order.map(\.name).joined(separator: ", "))")
        var started: [String] = [], already: [String] = [], ready: [String] = [], replaced: [[String]] = []
        job.progress(order.isEmpty ? nil : 0)
        for (index, vm) in order.enumerated() {
            try job.checkCancelled()
            let wasRunning = vm.state == .running
            if wasRunning {
                already.append(vm.name)
            } else {
                job.status("starting \(vm.name) (\(Self.group(vm)))")
                try await startForStartAll(vm, networks: allowed)
                started.append(vm.name)
            }
            switch try await waitReady(vm, job: job) {
            case .ready: ready.append(vm.name)
            case .noChannel: break
            case .timedOut(let why):
                guard !vm.metadata.fallback.isEmpty else { throw ControllerError.invalidState("StartAll: \(why)") }
                if !wasRunning {
                    logger.warning("StartAll: \(why); destroying it")
                    _ = try? await destroy(vm.uuid)
                    started.removeAll { $0 == vm.name }
                }
                let fallbackName = vm.metadata.fallback
                do {
                    guard let fallback = await vms.vm(named: fallbackName) else {
                        throw ControllerError.noSuchVM("no VM named \(fallbackName)")
                    }
                    logger.notice("StartAll: starting \(fallback.name) in place of \(vm.name)")
                    job.status("\(why): starting its fallback \(fallback.name)")
                    if fallback.state != .running { try await startForStartAll(fallback, networks: allowed); started.append(fallback.name) }
                    if case .timedOut(let fallbackWhy) = try await waitReady(fallback, job: job) {
                        throw ControllerError.invalidState(fallbackWhy)
                    }
                    if !ready.contains(fallback.name) { ready.append(fallback.name) }
                    replaced.append([vm.name, fallback.name])
                } catch let error as ControllerError {
                    throw ControllerError.invalidState("StartAll: \(why), and its fallback \(fallbackName) failed too: \(error.message)")
                }
            }
            job.progress(Double(index + 1) / Double(order.count))
        }
        job.status("done")
        return ["order": .strings(order.map(\.name)), "started": .strings(started), "already_running": .strings(already),
                "ready": .strings(ready), "replaced": .pairs(replaced)]
    }

    /// Starts one VM for StartAll (its inactive networks first — only those of `allowed`,
    /// the plan's — within the host's budget) and waits until libvirt says it runs.
    private func startForStartAll(_ vm: VMInfo, networks allowed: Set<String>) async throws {
        let timeout = Duration.seconds(vms.config.startTimeoutSeconds)
        let networks = try await vms.inactiveNetworks(of: vm)
        if let stopped = networks.first(where: { !allowed.contains($0) }) {
            throw ControllerError.invalidState("StartAll: network \(stopped) that \(vm.name) uses became inactive after StartAll was authorized; start it (network.manage) or call StartAll again")
        }
        do {
            try checkShares(of: vm)
            try await startHolding(vm) {
                try await checkDisks(of: vm)
                try await vms.startNetworks(networks, for: vm)
                await disks.releaseAppliances(of: vm)
                try await vms.startWithinBudget(vm.uuid)
            }
        } catch ControllerError.limitsExceeded(let message) {
            throw ControllerError.limitsExceeded("StartAll: \(message)")
        } catch ControllerError.busy(let message) {
            throw ControllerError.busy("StartAll: \(message)")
        } catch {
            throw ControllerError.libvirt("StartAll: \(vm.name) failed to start: \((error as? ControllerError)?.message ?? "\(error)")")
        }
        // libvirt's started (or stopped) event ends the wait; the start call itself re-read the VM.
        let settled = try await vms.wait(for: vm.uuid, timeout: timeout) { info in
            guard let state = info?.state else { return true }
            return state == .running || state == .shutoff || state == .crashed
        }
        let state = settled.info?.state
        if state == .running { return }
        guard settled.met else {
            throw ControllerError.libvirt("StartAll: \(vm.name) did not reach running within \(timeout.components.seconds) s (it is \(state?.rawValue ?? "gone"))")
        }
        throw ControllerError.libvirt("StartAll: \(vm.name) stopped right after it was started (it is \(state?.rawValue ?? "gone"))")
    }

    /// The StartAll group of a VM, as a person names it.
    static func group(_ vm: VMInfo) -> String {
        switch vm.bootOrder {
        case 0: return "network controllers first"
        case 1: return "interface controllers after the network controllers"
        default: return "after the controllers"
        }
    }

    enum ReadyOutcome {
        case ready, noChannel, timedOut(String)
    }

    /// Waits for a running VM's guest to send `READY=1` within its timeout (metadata, else
    /// `[vms] ready_timeout_s`). A VM without a readable channel is not waited for.
    private func waitReady(_ vm: VMInfo, job: Job) async throws -> ReadyOutcome {
        let seconds = vm.metadata.readyTimeoutSeconds > 0 ? Int(vm.metadata.readyTimeoutSeconds) : vms.config.readyTimeoutSeconds
        let deadline = ContinuousClock.now + .seconds(seconds)
        var shownStatus: String?
        while true {
            // Woken by the guest's lines (readiness or a new STATUS=) and by libvirt's events.
            let seen = shownStatus
            let now = try await vms.wait(for: vm.uuid, timeout: deadline - ContinuousClock.now) { info in
                guard let info, info.state.isActive else { return true }
                return info.guest.readiness == .ready || info.guest.readiness == .none || info.guest.status != seen
            }
            try job.checkCancelled()
            guard let info = now.info, info.state.isActive else {
                return .timedOut("\(vm.name) stopped before its guest was ready")
            }
            switch info.guest.readiness {
            case .ready: return .ready
            case .none: return .noChannel
            case .waiting, .stopping: break
            }
            guard now.met, ContinuousClock.now < deadline else {
                let status = info.guest.status.isEmpty ? "" : " (its last status: \(info.guest.status))"
                return .timedOut("\(vm.name) did not become ready within \(seconds) s\(status)")
            }
            if shownStatus == nil {
                logger.notice("StartAll: waiting up to \(seconds) s for \(vm.name)'s guest to send READY=1 before starting the next VM")
            }
            shownStatus = info.guest.status
            let status = info.guest.status.isEmpty ? "" : "; its status: \(info.guest.status)"
            job.status("waiting up to \(seconds) s for \(vm.name)'s guest to send READY=1 before the next VM\(status)")
        }
    }

    // MARK: StopAll

    /// A checked StopAll: every running VM, in the reverse of StartAll's order.
    public struct StopAllPlan: Sendable {
        public var timeoutSeconds: Int
        public var details: [String: String] { ["operation": "stop-all"] }
    }

    public func checkStopAll(timeoutSeconds: UInt32?) throws -> StopAllPlan {
        if let t = timeoutSeconds, !(1...3600).contains(t) { throw ControllerError.invalidArgs("timeout_s \(t) is outside 1...3600") }
        return StopAllPlan(timeoutSeconds: timeoutSeconds.map(Int.init) ?? vms.config.stopTimeoutSeconds)
    }

    public func runStopAll(_ plan: StopAllPlan, uid: UInt32) async throws -> JobSnapshot {
        try await jobs.start(operation: "StopAll", target: .service, uid: uid) { [self] job in
            try await stopAll(job: job, timeout: .seconds(plan.timeoutSeconds))
        }
    }

    /// Shuts the running VMs down group by group in the reverse boot order (the rest,
    /// interface controllers, network controllers); the VMs of one group at once. A VM that
    /// has not stopped when the timeout passes is destroyed.
    func stopAll(job: Job, timeout: Duration) async throws -> [String: JobValue] {
        let running = await vms.list().filter { $0.state.isActive || $0.state == .crashed }
        let groups = Dictionary(grouping: running, by: \.bootOrder).sorted { $0.key > $1.key }.map { $0.value.sorted { $0.name < $1.name } }
        let order = groups.flatMap { $0.map(\.name) }
        logger.notice("StopAll: \(order.joined(separator: ", "))")
        var stopped: [String] = [], destroyed: [String] = []
        job.progress(order.isEmpty ? nil : 0)
        for group in groups {
            try job.checkCancelled()
            job.status("shutting down \(group.map(\.name).joined(separator: ", ")) (destroyed after \(timeout.components.seconds) s)")
            let results = await withTaskGroup(of: (String, Bool?, String).self) { tasks in
                for vm in group {
                    tasks.addTask { [vms] in
                        do {
                            if vm.state == .crashed {
                                try await vms.perform(vm.uuid, "destroy") { try $0.destroy() }
                                return (vm.name, true, "")
                            }
                            return (vm.name, try await vms.shutdown(vm.uuid, timeout: timeout, force: true), "")
                        } catch {
                            return (vm.name, nil, "\(error)")
                        }
                    }
                }
                return await tasks.reduce(into: [(String, Bool?, String)]()) { $0.append($1) }
            }
            for (name, forced, reason) in results.sorted(by: { $0.0 < $1.0 }) {
                guard let forced else { throw ControllerError.libvirt("StopAll: \(name) could not be stopped: \(reason)") }
                if forced { destroyed.append(name) }
                stopped.append(name)
            }
            job.progress(Double(stopped.count) / Double(max(order.count, 1)))
        }
        job.status("done")
        return ["order": .strings(order), "stopped": .strings(stopped), "destroyed": .strings(destroyed)]
    }
}

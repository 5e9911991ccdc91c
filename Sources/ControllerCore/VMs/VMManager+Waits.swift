/// Waiting on the cache instead of polling libvirt: a wait ends when a VM as cached meets
/// its condition — checked at once and on every change the cache takes (libvirt's lifecycle
/// and device events, the guests' readiness lines) — when its deadline passes, or when the
/// waiting task is cancelled. Nothing runs while a wait waits.
extension VMManager {
    /// One pending wait (kept in `waiters` until it ends).
    struct Waiter {
        let uuid: String
        let condition: @Sendable (VMInfo?) -> Bool
        let continuation: CheckedContinuation<WaitEnd, Never>
    }

    /// How a pending wait ended.
    enum WaitEnd {
        /// The condition held for the VM as then cached (nil: libvirt no longer has it).
        case met(VMInfo?)
        /// The deadline passed or the task was cancelled.
        case ended
    }

    /// What a wait found: whether the condition held, and the VM as cached then.
    public struct WaitOutcome: Sendable {
        public let met: Bool
        public let info: VMInfo?
    }

    /// Waits up to `timeout` until `condition` holds for the VM `uuid` as cached (it gets
    /// nil once libvirt no longer has the VM). At the deadline the VM is read from libvirt
    /// once more (unless `rereadAtDeadline` is false: a caller that checks libvirt itself
    /// after each wait), so a lost event costs the wait's length, never a wrong answer. A
    /// cancelled task ends the wait at once with `CancellationError`.
    public func wait(for uuid: String, timeout: Duration, rereadAtDeadline: Bool = true,
                     until condition: @escaping @Sendable (VMInfo?) -> Bool) async throws -> WaitOutcome {
        if condition(vms[uuid]) { return WaitOutcome(met: true, info: vms[uuid]) }
        let id = nextWaiterID
        nextWaiterID &+= 1
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.endWait(id)
        }
        defer { timer.cancel() }
        let end = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<WaitEnd, Never>) in
                // Runs on this actor before anything else does: a cancellation seen here ends
                // the wait now, a later one finds the waiter registered.
                if Task.isCancelled { continuation.resume(returning: .ended); return }
                waiters[id] = Waiter(uuid: uuid, condition: condition, continuation: continuation)
            }
        } onCancel: {
            Task { await self.endWait(id) }
        }
        try Task.checkCancellation()
        if case .met(let info) = end { return WaitOutcome(met: true, info: info) }
        guard rereadAtDeadline else { return WaitOutcome(met: condition(vms[uuid]), info: vms[uuid]) }
        let info = await refresh(uuid)
        return WaitOutcome(met: condition(info), info: info)
    }

    /// Ends a pending wait without its condition (deadline or cancellation).
    private func endWait(_ id: UInt64) {
        waiters.removeValue(forKey: id)?.continuation.resume(returning: .ended)
    }

    /// Ends the pending waits on `uuid` whose condition `info` meets (called on every change
    /// of the cache).
    func wakeWaiters(_ uuid: String, _ info: VMInfo?) {
        guard !waiters.isEmpty else { return }
        for (id, waiter) in waiters where waiter.uuid == uuid && waiter.condition(info) {
            waiters[id] = nil
            waiter.continuation.resume(returning: .met(info))
        }
    }

    /// The number of pending waits (for tests: a wait leaves none behind).
    public var pendingWaits: Int { waiters.count }
}

import FoundationEssentials
import Logging

/// A change the bus layer mirrors.
public enum JobChange: Sendable {
    case added(JobSnapshot)
    case updated(JobSnapshot)
    case finished(JobSnapshot)
    case removed(id: UInt64)
}

/// Runs jobs: a cap on concurrent ones (over it → `LimitsExceeded`), finished jobs kept
/// listed for a while, all running jobs cancelled on shutdown.
public actor JobManager {
    private let maxConcurrent: Int
    private let retention: Duration
    private let logger: Logger
    private var nextID: UInt64 = 1
    private var jobs: [UInt64: Job] = [:]
    private var tasks: [UInt64: Task<Void, Never>] = [:]
    private var observer: (@Sendable (JobChange) async -> Void)?
    private let updates: AsyncStream<JobChange>.Continuation
    private var pump: Task<Void, Never>?

    public init(maxConcurrent: Int, retention: Duration, logger: Logger) {
        self.maxConcurrent = maxConcurrent
        self.retention = retention
        self.logger = logger
        let (stream, continuation) = AsyncStream<JobChange>.makeStream()
        updates = continuation
        pumpStream = stream
    }

    private let pumpStream: AsyncStream<JobChange>
    /// Who waits for each running job's end (``ended(_:)``), by job id.
    private var endWaiters: [UInt64: [CheckedContinuation<JobSnapshot, Never>]] = [:]
    /// `cancelAll`'s waits for the last running job to end, each woken by that end or by
    /// its own deadline, whichever comes first.
    private var idleWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    private var nextIdleWaiter: UInt64 = 0

    /// Changes are delivered in order, one at a time.
    public func setObserver(_ observer: @escaping @Sendable (JobChange) async -> Void) {
        self.observer = observer
        let stream = pumpStream
        pump = Task { for await change in stream { await observer(change) } }
    }

    public func list() -> [JobSnapshot] { jobs.values.map(\.snapshot).sorted { $0.id < $1.id } }
    public func job(_ id: UInt64) -> Job? { jobs[id] }

    /// A job id for a job about to start (what it holds can name it before it exists);
    /// pass it to ``start(id:operation:target:uid:_:)``.
    public func reserveID() -> UInt64 {
        defer { nextID += 1 }
        return nextID
    }

    /// Starts `body` as a job (with the id `id` reserved for it, or a new one). Throws
    /// `LimitsExceeded` when `max_concurrent` jobs run. The job's object exists (the
    /// observer has seen `.added`) before this returns, so a caller can read it as soon as
    /// it has the path.
    public func start(id reserved: UInt64? = nil, operation: String, target: JobTarget, uid: UInt32,
                      _ body: @escaping @Sendable (Job) async throws -> [String: JobValue]) async throws -> JobSnapshot {
        let running = jobs.values.filter { $0.snapshot.state == "running" }.count
        guard running < maxConcurrent else {
            throw ControllerError.limitsExceeded("\(running) jobs are running (max_concurrent \(maxConcurrent)); try again later")
        }
        let id = reserved ?? reserveID()
        let updates = self.updates
        let job = Job(id: id, operation: operation, target: target, uid: uid) { snapshot in
            if snapshot.state == "running" { updates.yield(.updated(snapshot)) }
        }
        jobs[id] = job
        await observer?(.added(job.snapshot))
        logger.notice("job \(id) \(operation) on \(target) started by uid \(uid)")
        let task = Task {
            let began = ContinuousClock.now
            let outcome: Result<[String: JobValue], Error>
            do { outcome = .success(try await body(job)) } catch { outcome = .failure(error) }
            self.finished(job, outcome, after: ContinuousClock.now - began)
        }
        job.attach(task)
        tasks[id] = task
        return job.snapshot
    }

    /// The job's last snapshot once it has ended (at once when it already has; nil when no
    /// such job is kept). Woken by the job's end, nothing polls.
    public func ended(_ id: UInt64) async -> JobSnapshot? {
        guard let job = jobs[id] else { return nil }
        let snapshot = job.snapshot
        guard snapshot.state == "running" else { return snapshot }
        return await withCheckedContinuation { endWaiters[id, default: []].append($0) }
    }

    private func finished(_ job: Job, _ outcome: Result<[String: JobValue], Error>, after elapsed: Duration) {
        let snapshot = job.finish(outcome)
        tasks[job.id] = nil
        updates.yield(.finished(snapshot))
        for waiter in endWaiters.removeValue(forKey: job.id) ?? [] { waiter.resume(returning: snapshot) }
        if tasks.isEmpty {
            for waiter in idleWaiters.values { waiter.resume() }
            idleWaiters.removeAll()
        }
        let seconds = TextFormat.seconds(elapsed)
        logger.notice("job \(job.id) \(snapshot.operation) \(snapshot.state) after \(seconds) s\(snapshot.error.isEmpty ? "" : ": \(snapshot.error)")")
        let retention = self.retention
        Task {
            try? await Task.sleep(for: retention)
            self.remove(job.id)
        }
    }

    private func remove(_ id: UInt64) {
        guard jobs.removeValue(forKey: id) != nil else { return }
        updates.yield(.removed(id: id))
    }

    /// The job `id` if it can still be cancelled: running and before its commit point.
    public func checkCancel(_ id: UInt64) throws -> JobSnapshot {
        guard let job = jobs[id]?.snapshot else { throw ControllerError.invalidArgs("job \(id) no longer exists") }
        guard job.state == "running" else { throw ControllerError.invalidState("job \(id) has already \(job.state)") }
        guard !job.committed else { throw ControllerError.invalidState("job \(id) is past its commit point and can no longer be cancelled") }
        return job
    }

    /// Cancels a job (the caller checked who may).
    public func cancel(_ id: UInt64) throws {
        guard let job = jobs[id] else { throw ControllerError.invalidArgs("no job \(id)") }
        try job.cancel()
        logger.notice("job \(id) cancel requested")
    }

    /// Cancels every running job and waits (up to `timeout`) for them to end (shutdown).
    /// The last job's end wakes the wait; nothing polls.
    public func cancelAll(timeout: Duration) async {
        for id in tasks.keys.sorted() {
            if (try? jobs[id]?.cancel()) == nil { logger.notice("job \(id) is past its commit point; letting it finish") }
        }
        guard !tasks.isEmpty else { return }
        let key = nextIdleWaiter
        nextIdleWaiter += 1
        let deadline = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.endIdleWait(key)
        }
        await withCheckedContinuation { idleWaiters[key] = $0 }
        deadline.cancel()
        if !tasks.isEmpty { logger.warning("\(tasks.count) job(s) still running after \(timeout)") }
    }

    private func endIdleWait(_ key: UInt64) {
        idleWaiters.removeValue(forKey: key)?.resume()
    }
}

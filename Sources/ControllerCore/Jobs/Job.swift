import FoundationEssentials
import Synchronization

/// A value in a job's `Result` (an `a{sv}` on the bus).
public enum JobValue: Sendable, Equatable {
    case string(String)
    case strings([String])
    case bool(Bool)
    case uint64(UInt64)
    case double(Double)
    /// Filesystem usage rows, `a(sttt)` (device, size, used, available).
    case usage([FilesystemUsage])
    /// Pairs of strings, `a(ss)`.
    case pairs([[String]])
}

/// What a job works on.
public enum JobTarget: Sendable, Equatable, CustomStringConvertible {
    /// The service as a whole (StartAll).
    case service
    /// A managed disk, by name.
    case disk(String)
    /// A VM, by UUID.
    case vm(String)

    public var description: String {
        switch self {
        case .service: return "the service"
        case .disk(let name): return "disk \(name)"
        case .vm(let uuid): return "VM \(uuid)"
        }
    }
}

/// What a Job object shows.
public struct JobSnapshot: Sendable, Equatable {
    public let id: UInt64
    public let operation: String
    /// What the job works on.
    public let target: JobTarget
    public let startedByUID: UInt32
    public let startTime: UInt64
    /// `running`, `succeeded`, `failed`, `cancelled`.
    public var state: String
    public var progress: Double
    public var progressValid: Bool
    public var error: String
    /// One line for a person: what the job is doing now (empty when it says nothing).
    public var status: String
    public var result: [String: JobValue]
    /// Past the point where cancelling could leave things half-done.
    public var committed: Bool
}

/// One piece of long work. Its body reports progress and checks for cancellation through
/// this object; ``JobManager`` runs it.
public final class Job: Sendable {
    public let id: UInt64
    private let state: Mutex<JobSnapshot>
    private let task = Mutex<Task<Void, Never>?>(nil)
    private let onChange: @Sendable (JobSnapshot) -> Void

    init(id: UInt64, operation: String, target: JobTarget, uid: UInt32, onChange: @escaping @Sendable (JobSnapshot) -> Void) {
        self.id = id
        self.onChange = onChange
        state = Mutex(JobSnapshot(id: id, operation: operation, target: target, startedByUID: uid,
                                  startTime: UInt64(Date().timeIntervalSince1970), state: "running", progress: 0,
                                  progressValid: false, error: "", status: "", result: [:], committed: false))
    }

    public var snapshot: JobSnapshot { state.withLock { $0 } }

    /// Reports progress (0…1); nil says progress is unknown.
    public func progress(_ fraction: Double?) {
        let s = state.withLock { s -> JobSnapshot in
            s.progressValid = fraction != nil
            s.progress = min(1, max(0, fraction ?? 0))
            return s
        }
        onChange(s)
    }

    /// Says what the job is doing now, in one line for a person (the Job's `Status`).
    public func status(_ text: String) {
        let s = state.withLock { s -> JobSnapshot? in
            guard s.status != text else { return nil }
            s.status = text
            return s
        }
        if let s { onChange(s) }
    }

    /// Marks the point after which the work must run to its end; Cancel then answers
    /// `InvalidState`.
    public func commit() {
        state.withLock { $0.committed = true }
    }

    /// Throws `Cancelled` when the job was cancelled (call between steps).
    public func checkCancelled() throws {
        if Task.isCancelled { throw ControllerError.cancelled("job \(id) was cancelled") }
    }

    func attach(_ t: Task<Void, Never>) { task.withLock { $0 = t } }

    /// Cancels the work unless it is past its commit point or finished.
    func cancel() throws {
        let s = snapshot
        guard s.state == "running" else { throw ControllerError.invalidState("job \(id) has already \(s.state)") }
        guard !s.committed else { throw ControllerError.invalidState("job \(id) is past its commit point and can no longer be cancelled") }
        task.withLock { $0?.cancel() }
    }

    func finish(_ outcome: Result<[String: JobValue], Error>) -> JobSnapshot {
        let s = state.withLock { s -> JobSnapshot in
            switch outcome {
            case .success(let result):
                s.state = "succeeded"
                s.result = result
                s.progress = 1
                s.progressValid = true
            case .failure(let error):
                let cancelled = (error as? ControllerError).map { if case .cancelled = $0 { return true } else { return false } } ?? (error is CancellationError)
                s.state = cancelled ? "cancelled" : "failed"
                s.error = (error as? ControllerError)?.message ?? "\(error)"
            }
            return s
        }
        onChange(s)
        return s
    }
}

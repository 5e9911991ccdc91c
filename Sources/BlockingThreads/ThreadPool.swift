import Dispatch
import Synchronization

/// Thrown by ``ThreadPool/run(_:)`` when the queue is full.
public struct ThreadPoolFull: Error, Sendable {
    public let pool: String
    public let limit: Int
}

/// A fixed set of dedicated threads for blocking C calls (libvirt, polkit, libguestfs), so
/// they never occupy Swift's cooperative pool or the bus thread.
public final class ThreadPool: Sendable {
    public let name: String
    private let maxQueued: Int
    private let state = Mutex<[@Sendable () -> Void]>([])
    private let wake = DispatchSemaphore(value: 0)

    /// - Parameters:
    ///   - threads: number of worker threads.
    ///   - maxQueued: jobs waiting beyond this are refused with ``ThreadPoolFull``.
    ///   - setup: runs once on each new worker thread before it takes jobs.
    public init(name: String, threads: Int, maxQueued: Int = .max, setup: @escaping @Sendable () -> Void = {}) {
        self.name = name
        self.maxQueued = maxQueued
        for index in 0..<max(1, threads) {
            NamedThread.start("\(name)-\(index)") { [self] in
                setup()
                while true {
                    wake.wait()
                    let job = state.withLock { $0.isEmpty ? nil : $0.removeFirst() }
                    job?()
                }
            }
        }
    }

    /// Jobs waiting for a thread.
    public var queued: Int { state.withLock { $0.count } }

    /// Runs `body` on one of the pool's threads and returns its result.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let accepted = state.withLock { queue -> Bool in
                guard queue.count < maxQueued else { return false }
                queue.append { continuation.resume(with: Result { try body() }) }
                return true
            }
            if accepted {
                wake.signal()
            } else {
                continuation.resume(throwing: ThreadPoolFull(pool: name, limit: maxQueued))
            }
        }
    }
}

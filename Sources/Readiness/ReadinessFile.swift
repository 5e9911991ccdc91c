import BlockingThreads
import FoundationEssentials
import HostSystem
import Logging
import Synchronization

/// Saves the guests' readiness (state_dir/readiness.json) on a thread of its own, so the
/// file's fsync never sits between a guest's line and the next one: the VM manager hands
/// over each new encoding and goes on. The newest encoding wins; writes never overlap and
/// each is atomic (HostRoot's write: temporary file, fsync, rename).
public final class ReadinessFile: Sendable {
    public let path: String
    private let logger: Logger
    private let thread = ThreadPool(name: "readiness-save", threads: 1)
    /// The encoding not yet written, and whether a write job is queued or running.
    private let state = Mutex<(pending: Data?, scheduled: Bool)>((nil, false))

    public init(path: String, logger: Logger) {
        self.path = path
        self.logger = logger
    }

    /// Queues `data` to be written; returns at once.
    public func save(_ data: Data) {
        let start = state.withLock { s -> Bool in
            s.pending = data
            guard !s.scheduled else { return false }
            s.scheduled = true
            return true
        }
        guard start else { return }
        Task { [self] in try? await thread.run { self.drain() } }
    }

    /// Returns once every encoding handed over before the call is on disk (at shutdown).
    public func flush() async {
        try? await thread.run { self.drain() }
    }

    private func drain() {
        while let data = state.withLock({ s -> Data? in
            guard let d = s.pending else { s.scheduled = false; return nil }
            s.pending = nil
            return d
        }) {
            do {
                try? FileManager.default.createDirectory(atPath: parentDirectory(of: path), withIntermediateDirectories: true)
                try HostRoot("/").write(path, String(decoding: data, as: UTF8.self) + "\n", newFileMode: 0o600)
            } catch {
                logger.error("cannot save \(path): \(error)")
            }
        }
    }
}

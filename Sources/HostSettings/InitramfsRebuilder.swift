import HostSystem
import Logging

/// Runs the initramfs rebuild command, coalescing requests: a request made while a rebuild
/// waits to start joins it; a request made while one runs queues exactly one more (the
/// running one may have read the modules file before the change).
public actor InitramfsRebuilder {
    private let command: [String]
    private let settleDelay: Duration
    private let logger: Logger
    private var running: Task<RebuildOutcome, Never>?
    private var queued: Task<RebuildOutcome, Never>?
    private var unfinished = 0
    /// How many times the command ran (for logs and tests).
    public private(set) var runs = 0

    /// The result of one run of the command.
    public struct RebuildOutcome: Sendable, Equatable {
        public let success: Bool
        public let detail: String
    }

    public init(command: [String], settleDelay: Duration = .milliseconds(250), logger: Logger) {
        self.command = command
        self.settleDelay = settleDelay
        self.logger = logger
    }

    /// True while a rebuild is queued or running.
    public var isPending: Bool { unfinished > 0 }

    /// Requests a rebuild and waits for the run that covers it.
    public func rebuild() async -> RebuildOutcome {
        if let queued { return await queued.value }
        let previous = running
        unfinished += 1
        let task = Task { [settleDelay] in
            try? await Task.sleep(for: settleDelay)
            _ = await previous?.value
            return await self.runNow()
        }
        queued = task
        return await task.value
    }

    private func runNow() async -> RebuildOutcome {
        let mine = queued
        queued = nil
        running = mine
        runs += 1
        defer { unfinished -= 1 }
        guard let path = command.first else { return RebuildOutcome(success: false, detail: "no rebuild command configured") }
        logger.notice("rebuilding the initramfs: \(command.joined(separator: " "))")
        let start = ContinuousClock.now
        do {
            let result = try await ChildProcess.run(path, Array(command.dropFirst()))
            let took = ContinuousClock.now - start
            if result.status == 0 {
                logger.notice("initramfs rebuilt in \(took.components.seconds) s")
                return RebuildOutcome(success: true, detail: "initramfs rebuilt")
            }
            logger.error("initramfs rebuild failed (exit \(result.status)): \(result.stderrExcerpt)")
            return RebuildOutcome(success: false, detail: "initramfs rebuild failed (exit \(result.status)): \(result.stderrExcerpt)")
        } catch {
            logger.error("cannot run \(path): \(error)")
            return RebuildOutcome(success: false, detail: "cannot run \(path): \(error)")
        }
    }
}

import FoundationEssentials

/// Keeps appliances for reuse and bounds how many run at once.
///
/// Launching an appliance costs seconds, so a read-only handle opened for one file
/// operation on an image stays up for ``idle`` and serves the following ones (concurrent
/// callers wait for the same launch). A read-write handle serves the writes queued for it
/// and is then synced and closed: it holds qemu's write lock on the image. At most ``maxAppliances`` run at once, cached and one-off together: a
/// new one first evicts the least recently used idle cached handle, otherwise waits.
/// A cached handle is read-write or read-only; a read-write one also serves reads.
public actor ApplianceCache {
    public nonisolated let settings: GuestfsSettings
    public nonisolated let maxAppliances: Int
    public nonisolated let idle: Duration
    private let log: @Sendable (String) -> Void

    private final class Entry: Sendable {
        let handle: GuestfsHandle
        let readonly: Bool
        let ready: Task<Void, any Error>
        init(handle: GuestfsHandle, readonly: Bool, ready: Task<Void, any Error>) {
            self.handle = handle
            self.readonly = readonly
            self.ready = ready
        }
    }

    private var cached: [String: Entry] = [:]
    private var users: [String: Int] = [:]
    private var lastUsed: [String: ContinuousClock.Instant] = [:]
    private var oneOff = 0
    private var launches = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    /// - Parameter log: receives one line per launch and close (for the daemon's log).
    public init(settings: GuestfsSettings, maxAppliances: Int, idle: Duration, log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.settings = settings
        self.maxAppliances = max(1, maxAppliances)
        self.idle = idle
        self.log = log
    }

    /// Appliances running now (cached and one-off).
    public var running: Int { cached.count + oneOff }
    /// Appliances launched since start (a figure for benchmarks and tests).
    public var launchCount: Int { launches }

    /// Runs `body` on the cached appliance for `path`, launching one (then `prepare`, e.g.
    /// mounting) if none is up. `readonly` adds the image behind a throw-away overlay.
    public func withCached<T: Sendable>(path: String, format: String, readonly: Bool,
                                        prepare: @escaping @Sendable (GuestfsSession, Bool) throws -> Void,
                                        _ body: @escaping @Sendable (GuestfsSession) throws -> T) async throws -> T {
        let entry = try await entry(for: path, format: format, readonly: readonly, prepare: prepare)
        users[path, default: 0] += 1
        let result: Result<T, any Error>
        do {
            try await entry.ready.value
            result = .success(try await entry.handle.run(body))
        } catch {
            result = .failure(error)
        }
        users[path, default: 1] -= 1
        lastUsed[path] = .now
        let launched = (try? await entry.ready.value) != nil
        if entry.handle.wasKilled || !launched {
            await drop(path, entry)
        } else if !entry.readonly && users[path, default: 0] == 0 {
            // A read-write appliance holds qemu's write lock on the image, which would make
            // a VM start by anyone (virsh too) fail: synced and closed as soon as no write
            // waits for it. Read-only ones take no lock and stay for the idle time.
            await drop(path, entry)
        } else {
            scheduleIdleClose(path)
        }
        return try result.get()
    }

    private func entry(for path: String, format: String, readonly: Bool,
                       prepare: @escaping @Sendable (GuestfsSession, Bool) throws -> Void) async throws -> Entry {
        while true {
            if let e = cached[path] {
                if !e.readonly || readonly { return e }
                // A read-only appliance cannot write: replace it.
                await release(path)
                continue
            }
            await acquireSlot()
            if cached[path] != nil { releaseSlot(); continue }
            let handle = GuestfsHandle(settings: settings, label: path)
            launches += 1
            log("launching \(readonly ? "read-only" : "read-write") appliance for \(path)")
            let ready = Task {
                try await handle.run { s in
                    try s.addDrive(path, format: format, readonly: readonly)
                    try s.launch()
                    try prepare(s, readonly)
                }
            }
            let e = Entry(handle: handle, readonly: readonly, ready: ready)
            cached[path] = e
            oneOff -= 1 // the slot now belongs to the cached entry
            return e
        }
    }

    /// Runs `body` on a fresh appliance that is closed afterwards; it counts towards the
    /// limit. Task cancellation kills the appliance. `body` adds the drives and launches.
    public func withOneOff<T: Sendable>(label: String, _ body: @escaping @Sendable (GuestfsSession) throws -> T) async throws -> T {
        await acquireSlot()
        let handle = GuestfsHandle(settings: settings, label: label)
        launches += 1
        log("launching appliance for \(label)")
        let result = await Result(catching: { try await handle.runCancellable(body) })
        // Closed before returning: the image is free (qemu's lock released) for the next step.
        await handle.close()
        releaseSlot()
        return try result.get()
    }

    /// Syncs and closes the cached appliance for `path`, after its current users finish.
    /// Called before anything else opens the image for writing (a VM start, a copy, a
    /// resize), since a read-write appliance holds qemu's write lock on it.
    public func release(_ path: String) async {
        while let e = cached[path] {
            if users[path, default: 0] == 0 {
                await drop(path, e)
                return
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Kills the cached appliance for `path` at once (a cancelled job): its current call
    /// fails and the handle is dropped.
    public func kill(_ path: String) async {
        guard let e = cached[path] else { return }
        e.handle.kill()
        await drop(path, e)
    }

    /// Closes every cached appliance (shutdown).
    public func releaseAll() async {
        for path in cached.keys { await release(path) }
    }

    private func drop(_ path: String, _ e: Entry) async {
        guard cached[path] === e else { return }
        cached[path] = nil
        users[path] = nil
        lastUsed[path] = nil
        await e.handle.close()
        log("closed appliance for \(path)")
        wakeOne()
    }

    private func scheduleIdleClose(_ path: String) {
        let idle = self.idle
        Task {
            try? await Task.sleep(for: idle)
            await self.closeIfIdle(path)
        }
    }

    private func closeIfIdle(_ path: String) async {
        guard let e = cached[path], users[path, default: 0] == 0,
              let last = lastUsed[path], ContinuousClock.now - last >= idle else { return }
        await drop(path, e)
    }

    /// Waits for room for one more appliance, evicting an idle cached one if that helps.
    /// The slot is counted in `oneOff` until a cached entry takes it over.
    private func acquireSlot() async {
        while running >= maxAppliances {
            if let victim = cached.filter({ users[$0.key, default: 0] == 0 })
                .min(by: { (lastUsed[$0.key] ?? .now) < (lastUsed[$1.key] ?? .now) }) {
                await drop(victim.key, victim.value)
                continue
            }
            await withCheckedContinuation { waiters.append($0) }
        }
        oneOff += 1
    }

    private func releaseSlot() {
        oneOff -= 1
        wakeOne()
    }

    private func wakeOne() {
        guard running < maxAppliances else { return }
        if !waiters.isEmpty { waiters.removeFirst().resume() }
    }
}

extension Result where Failure == any Error {
    /// Captures the outcome of an async throwing body.
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}

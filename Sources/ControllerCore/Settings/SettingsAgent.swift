import HostSettings
import FoundationEssentials
import HostSystem
import Logging
import Synchronization

/// Keeps the host in the desired state: checks every setting, watches the files behind
/// them with inotify, reports drift and, when enforcing, reverts it.
///
/// Events are debounced (a burst of writes from one tool is one check), a setting being
/// applied ignores the events of its own writes, and a setting reverted more than
/// `flap_limit_per_minute` times in a minute stops being enforced until Apply or
/// SetEnforcing(true) re-arms it. The enforcing switch survives restarts (state directory).
public actor SettingsAgent {
    /// What the bus shows for one setting.
    public struct Status: Sendable, Equatable {
        public let id: String
        public let description: String
        public let compliant: Bool
        public let detail: String
    }

    /// What the agent reports to the bus layer.
    public enum Event: Sendable {
        case statuses([Status], lastCheck: UInt64)
        case drifted(id: String, detail: String)
        case reverted(id: String, success: Bool, detail: String)
        case enforcing(Bool)
    }

    /// The result of applying one setting.
    public struct ApplyResult: Sendable, Equatable {
        public let id: String
        public let changed: Bool
        public let detail: String
    }

    public nonisolated let settings: [any HostSetting]
    public let context: SettingsContext
    let stateFile: String
    let logger: Logger
    private let debounce: Duration
    private var watcher: InotifyWatcher?
    var onEvent: (@Sendable (Event) async -> Void)?
    private var tasks: [Task<Void, Never>] = []

    public internal(set) var enforcing: Bool
    var suspended: [String: String] = [:]
    var checks: [String: SettingCheck] = [:]
    public private(set) var lastCheck: UInt64 = 0
    var revertTimes: [String: [ContinuousClock.Instant]] = [:]
    private var locked: Set<String> = []
    private var waiters: [String: [CheckedContinuation<Void, Never>]] = [:]
    private var dirty: Set<String> = []
    private var debounceTask: Task<Void, Never>?
    private var watchMap: [String: [(name: String, id: String)]] = [:]
    /// Where Apply runs as a job (nil: Apply runs within the call, as in unit tests).
    let jobs: JobManager?

    /// The settings of API version 1, in the order the bus lists them.
    public static func standardSettings() -> [any HostSetting] {
        [UserGroupsSetting(), InitramfsModulesSetting(), EntropyRngdSetting(), LibvirtdEnabledSetting()]
    }

    public init(config: SettingsConfig, root: HostRoot, stateDirectory: String, logger: Logger,
                settings: [any HostSetting] = SettingsAgent.standardSettings(), debounce: Duration = .milliseconds(100),
                jobs: JobManager? = nil) {
        self.settings = settings
        self.jobs = jobs
        self.logger = logger
        self.debounce = debounce
        self.context = SettingsContext(root: root, config: config,
                                       rebuilder: InitramfsRebuilder(command: config.initramfsUpdateCommand, logger: logger),
                                       logger: logger)
        self.stateFile = stateDirectory + "/settings.state"
        self.enforcing = config.enforcing
        if let saved = Self.loadEnforcing(stateFile) { self.enforcing = saved }
    }

    // MARK: Life

    /// Checks everything, starts watching and the periodic check. Drift found now is
    /// reported and, when enforcing, reverted like any other.
    public func start(onEvent: @escaping @Sendable (Event) async -> Void) async throws {
        self.onEvent = onEvent
        let watcher = try InotifyWatcher()
        self.watcher = watcher
        logger.info("host root \(context.root.path), enforcing \(enforcing), user '\(context.config.user)', groups \(context.config.groups.joined(separator: ","))")
        removeStaleTemporaryFiles()
        for setting in settings { await recheck(setting.id, announce: true) }
        rewatch()
        tasks.append(Task { [weak self] in
            for await event in watcher.events { await self?.handle(event) }
        })
        let interval = Duration.seconds(context.config.checkIntervalSeconds)
        tasks.append(Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard let self else { return }
                await self.checkAll()
            }
        })
    }

    /// Stops watching and checking.
    public func stop() {
        for task in tasks { task.cancel() }
        debounceTask?.cancel()
        watcher?.stop()
    }

    // MARK: Queries and requests

    /// The current status of every setting (from the last check).
    public var statuses: [Status] {
        settings.map { setting in
            let check = checks[setting.id] ?? SettingCheck(false, "not checked yet")
            var detail = check.detail
            if let reason = suspended[setting.id] { detail += " — \(reason)" }
            return Status(id: setting.id, description: setting.description, compliant: check.compliant, detail: detail)
        }
    }

    /// Checks every setting now (drift found is handled as if inotify had seen it).
    @discardableResult
    public func checkAll() async -> [Status] {
        for setting in settings { await recheck(setting.id, announce: true) }
        return statuses
    }

    // MARK: Watching

    /// Removes temporary files an earlier run left when it was killed between creating and
    /// renaming them (`.NAME.mvtmp-XXXXXX` next to the files it edits).
    private func removeStaleTemporaryFiles() {
        var directories = Set<String>()
        for setting in settings {
            for path in setting.watchedPaths(context) {
                directories.insert("/" + path.split(separator: "/").dropLast().joined(separator: "/"))
            }
        }
        for directory in directories.sorted() {
            for name in context.root.list(directory) where name.hasPrefix(".") && name.contains(".mvtmp-") {
                let hostPath = directory + "/" + name
                if (try? Files.remove(context.root.real(hostPath))) != nil { logger.notice("removed stale temporary file \(hostPath)") }
            }
        }
    }

    /// Watches the parent directory of every watched path (or its nearest existing
    /// ancestor, to notice the directory being created).
    private func rewatch() {
        var map: [String: [(name: String, id: String)]] = [:]
        for setting in settings {
            for path in setting.watchedPaths(context) {
                var components = path.split(separator: "/").map(String.init)
                var name = components.removeLast()
                var directory = "/" + components.joined(separator: "/")
                while context.root.kind(directory) != .directory, directory != "/" {
                    name = String(directory.split(separator: "/").last!)
                    directory = "/" + directory.split(separator: "/").dropLast().joined(separator: "/")
                }
                map[context.root.real(directory), default: []].append((name, setting.id))
            }
        }
        watchMap = map
        watcher?.watch(directories: Set(map.keys))
    }

    private func handle(_ event: InotifyWatcher.Event) {
        if event.directory.isEmpty {
            dirty.formUnion(settings.map(\.id))
        } else {
            let name = event.name
            if name.contains(".mvtmp-") || name.hasSuffix(".lock") || name.hasSuffix("+") || name.hasSuffix("-") { return }
            for entry in watchMap[event.directory] ?? [] where entry.name == "*" || entry.name == name || name.isEmpty {
                dirty.insert(entry.id)
            }
        }
        guard !dirty.isEmpty, debounceTask == nil else { return }
        debounceTask = Task { [debounce] in
            try? await Task.sleep(for: debounce)
            await self.processDirty()
        }
    }

    private func processDirty() async {
        debounceTask = nil
        let ids = dirty
        dirty = []
        try? await UserGroupsSetting.waitForShadowLocks(context.root)
        for setting in settings where ids.contains(setting.id) && !locked.contains(setting.id) {
            await recheck(setting.id, announce: true)
        }
        rewatch()
    }

    // MARK: Checking and reverting

    /// Checks one setting, publishes the result; with `announce`, a new drift is reported
    /// with Drifted and, when enforcing, reverted.
    func recheck(_ id: String, announce: Bool) async {
        guard let setting = settings.first(where: { $0.id == id }) else { return }
        let previous = checks[id]
        let check = await setting.check(context)
        checks[id] = check
        lastCheck = UInt64(Date().timeIntervalSince1970)
        await publish()
        guard !check.compliant else {
            if previous?.compliant == false { logger.info("\(id) compliant again: \(check.detail)") }
            return
        }
        guard announce, previous != check else { return }
        logger.warning("\(id) drifted: \(check.detail)")
        await onEvent?(.drifted(id: id, detail: check.detail + (suspended[id].map { " — \($0)" } ?? "")))
        if enforcing, suspended[id] == nil { startRevert(id) }
    }

    func startRevert(_ id: String) {
        let now = ContinuousClock.now
        var times = (revertTimes[id] ?? []).filter { now - $0 < .seconds(60) }
        if times.count >= context.config.flapLimitPerMinute {
            let reason = "enforcement suspended: reverted \(times.count) times within a minute and something keeps changing it; Apply or SetEnforcing(true) re-arms it"
            suspended[id] = reason
            revertTimes[id] = times
            logger.error("\(id): \(reason)")
            Task { await self.publish() }
            return
        }
        times.append(now)
        revertTimes[id] = times
        Task { await self.revert(id) }
    }

    private func revert(_ id: String) async {
        var success = false
        var detail: String
        do {
            let change = try await applyLocked(id)
            let after = checks[id]
            success = after?.compliant ?? false
            detail = success ? change.detail : "\(change.detail), but still not compliant: \(after?.detail ?? "")"
        } catch {
            detail = "revert failed: \(Self.message(error))"
        }
        if success { logger.notice("enforcer reverted \(id): \(detail)") } else { logger.error("enforcer could not revert \(id): \(detail)") }
        await onEvent?(.reverted(id: id, success: success, detail: detail))
    }

    /// Applies one setting with its lock held, then re-checks it.
    func applyLocked(_ id: String) async throws -> SettingChange {
        guard let setting = settings.first(where: { $0.id == id }) else { throw ControllerError.invalidArgs("unknown setting '\(id)'") }
        await lock(id)
        defer { unlock(id) }
        let change = try await setting.apply(context)
        let check = await setting.check(context)
        checks[id] = check
        lastCheck = UInt64(Date().timeIntervalSince1970)
        return change
    }

    func publish() async {
        await onEvent?(.statuses(statuses, lastCheck: lastCheck))
    }

    func lock(_ id: String) async {
        while locked.contains(id) {
            await withCheckedContinuation { waiters[id, default: []].append($0) }
        }
        locked.insert(id)
    }

    func unlock(_ id: String) {
        locked.remove(id)
        if var queue = waiters[id], !queue.isEmpty {
            queue.removeFirst().resume()
            waiters[id] = queue
        }
    }
}

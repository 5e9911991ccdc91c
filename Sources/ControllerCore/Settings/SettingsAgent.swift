import FoundationEssentials
import Glibc
import Logging

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
    private let logger: Logger
    private let debounce: Duration
    private var watcher: InotifyWatcher?
    private var onEvent: (@Sendable (Event) async -> Void)?
    private var tasks: [Task<Void, Never>] = []

    public private(set) var enforcing: Bool
    private var suspended: [String: String] = [:]
    private var checks: [String: SettingCheck] = [:]
    public private(set) var lastCheck: UInt64 = 0
    private var revertTimes: [String: [ContinuousClock.Instant]] = [:]
    private var locked: Set<String> = []
    private var waiters: [String: [CheckedContinuation<Void, Never>]] = [:]
    private var dirty: Set<String> = []
    private var debounceTask: Task<Void, Never>?
    private var watchMap: [String: [(name: String, id: String)]] = [:]

    /// The settings of API version 1, in the order the bus lists them.
    public static func standardSettings() -> [any HostSetting] {
        [UserGroupsSetting(), InitramfsModulesSetting(), EntropyRngdSetting(), LibvirtdEnabledSetting()]
    }

    public init(config: SettingsConfig, root: HostRoot, stateDirectory: String, logger: Logger,
                settings: [any HostSetting] = SettingsAgent.standardSettings(), debounce: Duration = .milliseconds(100)) {
        self.settings = settings
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

    /// Applies `ids` (all when empty) for `requester`; re-arms flapping ones. Returns what
    /// changed; throws when a setting could not be applied (the others are still applied).
    /// Every id of an Apply names a known setting (`InvalidArgs` naming the first that does not).
    /// The ids Apply is to fix, each once and in the order given: every id must be known
    /// (`InvalidArgs` naming the first that is not), so what reaches the authorization's
    /// details is at most the list of settings, whatever the caller sent.
    public nonisolated func checkApply(_ ids: [String]) throws -> [String] {
        let known = settings.map(\.id)
        var seen = Set<String>()
        var unique: [String] = []
        for id in ids where seen.insert(id).inserted {
            guard known.contains(id) else {
                throw ControllerError.invalidArgs("unknown setting \(DiskName.quoted(id)) (known: \(known.joined(separator: ", ")))")
            }
            unique.append(id)
        }
        return unique
    }

    public func apply(_ ids: [String], requester: String) async throws -> [ApplyResult] {
        var seen = Set<String>()
        let targets = ids.isEmpty ? settings.map(\.id) : ids.filter { seen.insert($0).inserted }
        for id in targets where !settings.contains(where: { $0.id == id }) {
            throw ControllerError.invalidArgs("unknown setting '\(id)' (known: \(settings.map(\.id).joined(separator: ", ")))")
        }
        var results: [ApplyResult] = []
        var failures: [(String, Error)] = []
        for id in targets {
            if suspended.removeValue(forKey: id) != nil {
                revertTimes[id] = []
                logger.notice("enforcement of \(id) re-armed by Apply from \(requester)")
            }
            do {
                let change = try await applyLocked(id)
                logger.notice("Apply \(id) by \(requester): \(change.changed ? "changed" : "unchanged"): \(change.detail)")
                results.append(ApplyResult(id: id, changed: change.changed, detail: change.detail))
            } catch {
                logger.error("Apply \(id) by \(requester) failed: \(error)")
                failures.append((id, error))
            }
        }
        await publish()
        if let (id, error) = failures.first {
            if failures.count == 1, let e = error as? ControllerError {
                throw Self.prefixed(e, "\(id): ")
            }
            throw ControllerError.io(failures.map { "\($0.0): \(Self.message($0.1))" }.joined(separator: "; "))
        }
        return results
    }

    /// Turns enforcement on or off (kept across restarts). On re-arms every setting and
    /// reverts what has drifted.
    public func setEnforcing(_ on: Bool, requester: String) async throws {
        try saveEnforcing(on)
        let was = enforcing
        enforcing = on
        if on {
            suspended.removeAll()
            revertTimes.removeAll()
        }
        logger.notice("enforcing \(was) → \(on), requested by \(requester)")
        if was != on { await onEvent?(.enforcing(on)) }
        await publish()
        if on {
            for setting in settings where checks[setting.id]?.compliant == false { startRevert(setting.id) }
        }
    }

    /// Checks an AddUserToGroups request: groups from the allow-list, user and groups exist.
    /// Returns the group names as they exist on the host.
    public func validateAddUser(_ user: String, groups: [String]) throws -> [String] {
        guard SettingsConfig.isValidName(user) else {
            throw ControllerError.invalidArgs("'\(user)' is not a valid user name")
        }
        guard !groups.isEmpty else { throw ControllerError.invalidArgs("no groups given") }
        guard groups.count <= 64 else { throw ControllerError.limitsExceeded("\(groups.count) groups given; at most 64") }
        let allowed = context.config.allowedGroups
        for group in groups where !allowed.contains(group) {
            throw ControllerError.invalidArgs("group '\(group)' is not in allowed_groups (\(allowed.joined(separator: ", ")))")
        }
        let database = try GroupDatabase.load(context.root)
        guard database.users[user] != nil else { throw ControllerError.invalidArgs("no user named '\(user)'") }
        return try groups.map { name in
            guard let group = database.resolve(name) else { throw ControllerError.invalidArgs("group '\(name)' does not exist on this host") }
            return group.name
        }
    }

    /// Adds `user` to `groups` (already validated) for `requester`.
    public func addUser(_ user: String, to groups: [String], requester: String) async throws -> Bool {
        let database = try GroupDatabase.load(context.root)
        let toAdd = groups.filter { name in database.resolve(name).map { !database.isMember(user, of: $0) } ?? true }
        guard !toAdd.isEmpty else {
            logger.notice("AddUserToGroups \(user) \(groups.joined(separator: ",")) by \(requester): already a member")
            return false
        }
        await lock("user-groups")
        defer { unlock("user-groups") }
        try await UserGroupsSetting.addUser(user, to: toAdd, context)
        logger.notice("AddUserToGroups by \(requester): added '\(user)' to \(toAdd.joined(separator: ", "))")
        await recheck("user-groups", announce: false)
        return true
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
                if unlink(context.root.real(hostPath)) == 0 { logger.notice("removed stale temporary file \(hostPath)") }
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
    private func recheck(_ id: String, announce: Bool) async {
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

    private func startRevert(_ id: String) {
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
    private func applyLocked(_ id: String) async throws -> SettingChange {
        guard let setting = settings.first(where: { $0.id == id }) else { throw ControllerError.invalidArgs("unknown setting '\(id)'") }
        await lock(id)
        defer { unlock(id) }
        let change = try await setting.apply(context)
        let check = await setting.check(context)
        checks[id] = check
        lastCheck = UInt64(Date().timeIntervalSince1970)
        return change
    }

    private func publish() async {
        await onEvent?(.statuses(statuses, lastCheck: lastCheck))
    }

    private func lock(_ id: String) async {
        while locked.contains(id) {
            await withCheckedContinuation { waiters[id, default: []].append($0) }
        }
        locked.insert(id)
    }

    private func unlock(_ id: String) {
        locked.remove(id)
        if var queue = waiters[id], !queue.isEmpty {
            queue.removeFirst().resume()
            waiters[id] = queue
        }
    }
}

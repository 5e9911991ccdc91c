import FoundationEssentials
import Glibc
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
    /// Where Apply runs as a job (nil: Apply runs within the call, as in unit tests).
    private let jobs: JobManager?

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

    /// A checked Apply: the settings to apply, each once and in the order given (empty: all).
    public struct ApplyPlan: Sendable {
        public let ids: [String]
        /// What polkit is asked with (settings.modify): at most the list of settings,
        /// whatever the caller sent.
        public var details: [String: String] { ["setting": ids.isEmpty ? "all" : ids.joined(separator: ",")] }
    }

    /// Checks an Apply: every id must name a known setting (`InvalidArgs` naming the first
    /// that does not); repeats are dropped.
    public nonisolated func checkApply(_ ids: [String]) throws -> ApplyPlan {
        let known = settings.map(\.id)
        var seen = Set<String>()
        var unique: [String] = []
        for id in ids where seen.insert(id).inserted {
            guard known.contains(id) else {
                throw ControllerError.invalidArgs("unknown setting \(DiskName.quoted(id)) (known: \(known.joined(separator: ", ")))")
            }
            unique.append(id)
        }
        return ApplyPlan(ids: unique)
    }

    /// Applies the plan's settings for `requester` (uid `uid`) as the job `ApplySettings` on
    /// the service — its status names the setting being applied (an initramfs rebuild takes
    /// a while), its progress counts them, its Result lists `changed` and `unchanged` — and
    /// returns the results once it has ended (Settings.Apply replies then, so its signature
    /// stays). Each setting is written atomically, so the job is past its commit point from
    /// the start: a Cancel is refused rather than leaving a setting half-applied. Re-arms
    /// flapping settings. Throws when a setting could not be applied (the others still are).
    public func runApply(_ plan: ApplyPlan, requester: String, uid: UInt32) async throws -> [ApplyResult] {
        guard let jobs else { return try await apply(plan.ids, requester: requester, job: nil) }
        let outcome = Mutex<Result<[ApplyResult], any Error>?>(nil)
        let started = try await jobs.start(operation: "ApplySettings", target: .service, uid: uid) { [self] job in
            job.commit()
            do {
                let results = try await apply(plan.ids, requester: requester, job: job)
                outcome.withLock { $0 = .success(results) }
                return ["changed": .strings(results.filter(\.changed).map(\.id)),
                        "unchanged": .strings(results.filter { !$0.changed }.map(\.id))]
            } catch {
                outcome.withLock { $0 = .failure(error) }
                throw error
            }
        }
        _ = await jobs.ended(started.id)
        guard let result = outcome.withLock({ $0 }) else { throw ControllerError.io("Apply (job \(started.id)) ended without a result") }
        return try result.get()
    }

    private func apply(_ ids: [String], requester: String, job: Job?) async throws -> [ApplyResult] {
        let targets = ids.isEmpty ? settings.map(\.id) : ids
        var results: [ApplyResult] = []
        var failures: [(String, Error)] = []
        job?.progress(0)
        for (index, id) in targets.enumerated() {
            job?.status("applying \(id)")
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
            job?.progress(Double(index + 1) / Double(targets.count))
        }
        job?.status("done")
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

    /// A checked AddUserToGroups: a valid user name and groups from `allowed_groups`.
    public struct AddUserPlan: Sendable {
        public let user: String
        public let groups: [String]
        public var details: [String: String] { ["user": user, "groups": groups.joined(separator: ",")] }
    }

    /// Checks an AddUserToGroups request without looking at the host: the user name's
    /// syntax and every group in the allow-list (what the host has is looked at only after
    /// authorization, so a refused caller learns nothing about its users).
    public nonisolated func checkAddUser(_ user: String, groups: [String]) throws -> AddUserPlan {
        guard SettingsConfig.isValidName(user) else {
            throw ControllerError.invalidArgs("'\(user)' is not a valid user name")
        }
        guard !groups.isEmpty else { throw ControllerError.invalidArgs("no groups given") }
        guard groups.count <= 64 else { throw ControllerError.limitsExceeded("\(groups.count) groups given; at most 64") }
        let allowed = context.config.allowedGroups
        for group in groups where !allowed.contains(group) {
            throw ControllerError.invalidArgs("group '\(group)' is not in allowed_groups (\(allowed.joined(separator: ", ")))")
        }
        return AddUserPlan(user: user, groups: groups)
    }

    /// Adds the plan's user to its groups for `requester`: both must exist on the host
    /// (`InvalidArgs` naming the missing one). Returns whether anything changed.
    @discardableResult
    public func runAddUser(_ plan: AddUserPlan, requester: String) async throws -> Bool {
        let (user, groups) = (plan.user, plan.groups)
        let database = try GroupDatabase.load(context.root)
        guard database.users[user] != nil else { throw ControllerError.invalidArgs("no user named '\(user)'") }
        let resolved = try groups.map { name in
            guard let group = database.resolve(name) else { throw ControllerError.invalidArgs("group '\(name)' does not exist on this host") }
            return group.name
        }
        let toAdd = resolved.filter { name in database.resolve(name).map { !database.isMember(user, of: $0) } ?? true }
        guard !toAdd.isEmpty else {
            logger.notice("AddUserToGroups \(user) \(resolved.joined(separator: ",")) by \(requester): already a member")
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

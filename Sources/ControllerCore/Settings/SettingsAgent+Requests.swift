import HostSettings
import FoundationEssentials
import Logging
import Synchronization

/// Settings.Apply, SetEnforcing and AddUserToGroups on check → plan → run: the checks
/// look at the request only, the runs at the host (after authorization).
extension SettingsAgent {
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
                throw ControllerError.invalidArgs("unknown setting \(CallerText.quoted(id)) (known: \(known.joined(separator: ", ")))")
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
            if failures.count == 1, let e = ControllerError.mapped(error) as? ControllerError {
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
}

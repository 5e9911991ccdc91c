import FoundationEssentials
import HostSystem

/// `user-groups`: the configured user is in every configured group.
/// Apply runs `usermod -a -G GROUPS -- USER` (with `--prefix` under a sandbox root); it
/// never creates users or groups.
public struct UserGroupsSetting: HostSetting {
    public let id = "user-groups"
    public let description = "The controller user belongs to the groups that manage VMs"
    public static let usermod = "/usr/sbin/usermod"

    public init() {}

    public func watchedPaths(_ context: SettingsContext) -> [String] {
        ["/etc/group", "/etc/gshadow", "/etc/passwd"]
    }

    public func check(_ context: SettingsContext) async -> SettingCheck {
        let user = context.config.user
        let database: GroupDatabase
        do { database = try GroupDatabase.load(context.root) } catch {
            return SettingCheck(false, "cannot read the user database: \(error)")
        }
        guard database.users[user] != nil else {
            return SettingCheck(false, "user '\(user)' does not exist")
        }
        var missingGroups: [String] = []
        var notMember: [String] = []
        var present: [String] = []
        for name in context.config.groups {
            guard let group = database.resolve(name) else { missingGroups.append(name); continue }
            if database.isMember(user, of: group) { present.append(group.name) } else { notMember.append(group.name) }
        }
        var problems: [String] = []
        if !missingGroups.isEmpty { problems.append("group(s) \(missingGroups.joined(separator: ", ")) do not exist") }
        if !notMember.isEmpty { problems.append("user '\(user)' is not in \(notMember.joined(separator: ", "))") }
        if problems.isEmpty {
            return SettingCheck(true, "user '\(user)' is in \(present.joined(separator: ", "))")
        }
        return SettingCheck(false, problems.joined(separator: "; "))
    }

    public func apply(_ context: SettingsContext) async throws -> SettingChange {
        let user = context.config.user
        let database = try GroupDatabase.load(context.root)
        guard database.users[user] != nil else {
            throw SettingError.missingOnHost("user '\(user)' does not exist; the agent does not create users")
        }
        var missing: [String] = []
        var toAdd: [String] = []
        for name in context.config.groups {
            guard let group = database.resolve(name) else { missing.append(name); continue }
            if !database.isMember(user, of: group) { toAdd.append(group.name) }
        }
        if !missing.isEmpty {
            throw SettingError.missingOnHost("group(s) \(missing.joined(separator: ", ")) do not exist; the agent does not create groups")
        }
        guard !toAdd.isEmpty else { return SettingChange(changed: false, "user '\(user)' already in every group") }
        try await Self.addUser(user, to: toAdd, context)
        return SettingChange(changed: true, "added '\(user)' to \(toAdd.joined(separator: ", "))")
    }

    /// Adds `user` to `groups` with usermod, after shadow's lock files are gone.
    public static func addUser(_ user: String, to groups: [String], _ context: SettingsContext) async throws {
        try await waitForShadowLocks(context.root)
        var arguments = ["-a", "-G", groups.joined(separator: ",")]
        if !context.root.isRealRoot { arguments = ["--prefix", context.root.path] + arguments }
        arguments += ["--", user]
        try await context.run(usermod, arguments)
    }

    /// Waits (up to `timeout`) while another tool holds shadow's lock files, so usermod
    /// does not fail on a lock held by a concurrent gpasswd or vipw. Woken by inotify when
    /// an entry of /etc goes; nothing polls.
    public static func waitForShadowLocks(_ root: HostRoot, timeout: Duration = .seconds(5)) async throws {
        let locks = ["/etc/group.lock", "/etc/gshadow.lock", "/etc/passwd.lock", "/etc/shadow.lock"]
        @Sendable func held() -> [String] { locks.filter { root.kind($0) != .missing } }
        guard !held().isEmpty else { return }
        let watcher = try InotifyWatcher()
        defer { watcher.stop() }
        watcher.watch(directories: [root.real("/etc")])
        let released = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                if held().isEmpty { return true }   // released before the watch began
                for await _ in watcher.events where held().isEmpty { return true }
                return false
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        guard released else {
            throw SettingError.busy("the user database is locked (\(held().joined(separator: ", "))) for more than \(timeout)")
        }
    }
}

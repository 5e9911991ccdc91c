import SDBus

/// `org.multiverse.Controller.Settings` at `/org/multiverse/Controller/settings`.
public enum SettingsInterface {
    public static let name = ControllerNames.interfacePrefix + "Settings"
    typealias A = Arg

    public static let check = APIMethod("Check", in: [A.options], out: [A.a("settings", "a(ssbs)")],
        doc: """
            Checks every setting now: id, description, compliant, detail.\n\nThe settings are user-groups, \
            initramfs-modules, entropy-rngd and libvirtd-enabled, configured in the [settings] section of controller.toml \
            (see controller.toml(5)).
            """)
    public static let apply = APIMethod("Apply", in: [A.a("ids", "as"), A.options], out: [A.a("results", "a(sbs)")], action: .settingsModify,
        doc: """
            Makes the given settings (all when empty) hold; replies when done, initramfs rebuild included.\n\nFiles are \
            written atomically and only when their contents change, so applying twice makes one change; changed says which \
            settings changed. Applying a setting that stopped being enforced because it flapped re-arms it.\n\nThe work \
            runs as a job, operation ApplySettings on the service (it counts against [jobs] max_concurrent: \
            LimitsExceeded when that many run): while the call waits, the Job object's Status names the setting being \
            applied and Progress counts them, so a client shows progress by watching InterfacesAdded for it. Its Result \
            holds changed as and unchanged as; the reply carries the same results. It cannot be cancelled: each setting \
            is written atomically.
            """)
    public static let setEnforcing = APIMethod("SetEnforcing", in: [A.a("enabled", "b"), A.options], action: .settingsModify,
        doc: """
            Turns automatic reverting on or off (kept across restarts).\n\nWhile enforcing, a setting that drifts is \
            restored at once and Reverted is sent. A setting reverted more than [settings] flap_limit_per_minute times in \
            a minute stops being enforced (the others stay enforced); SetEnforcing(true) re-arms it.
            """)
    public static let addUserToGroups = APIMethod("AddUserToGroups", in: [A.a("user", "s"), A.a("groups", "as"), A.options],
        action: .settingsModify, doc: """
            Adds user to groups from the configured allow-list.\n\nOnly groups in [settings] allowed_groups are accepted; \
            the service never creates users or groups.
            """)

    public static let drifted = APISignal("Drifted", [A.a("id", "s"), A.a("detail", "s")], doc: "A setting stopped holding (seen by inotify or by the full check every [settings] check_interval_s).")
    public static let reverted = APISignal("Reverted", [A.a("id", "s"), A.a("success", "b"), A.a("detail", "s")],
        doc: "The service restored a setting (or failed to). For initramfs-modules it comes when the rebuild has finished.")

    public static let declaration = APIInterface(name,
        methods: [check, apply, setEnforcing, addUserToGroups],
        properties: [
            APIProperty("Enforcing", "b", doc: "Whether drift is reverted automatically."),
            APIProperty("Settings", "a(ssbs)", doc: "The last result of each setting's check."),
            APIProperty("LastCheck", "t", doc: "Time of the last check."),
        ],
        signals: [drifted, reverted])
}

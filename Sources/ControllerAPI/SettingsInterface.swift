import SDBus

/// `org.multiverse.Controller.Settings` at `/org/multiverse/Controller/settings`.
public enum SettingsInterface {
    public static let name = ControllerNames.interfacePrefix + "Settings"
    typealias A = Arg

    public static let check = APIMethod("Check", in: [A.options], out: [A.a("settings", "a(ssbs)")],
        doc: "Checks every setting now: id, description, compliant, detail.")
    public static let apply = APIMethod("Apply", in: [A.a("ids", "as"), A.options], out: [A.a("results", "a(sbs)")], action: .settingsModify,
        doc: "Makes the given settings (all when empty) hold; replies when done, initramfs rebuild included.")
    public static let setEnforcing = APIMethod("SetEnforcing", in: [A.a("enabled", "b"), A.options], action: .settingsModify,
        doc: "Turns automatic reverting on or off (kept across restarts).")
    public static let addUserToGroups = APIMethod("AddUserToGroups", in: [A.a("user", "s"), A.a("groups", "as"), A.options],
        action: .settingsModify, doc: "Adds user to groups from the configured allow-list.")

    public static let drifted = APISignal("Drifted", [A.a("id", "s"), A.a("detail", "s")], doc: "A setting stopped holding.")
    public static let reverted = APISignal("Reverted", [A.a("id", "s"), A.a("success", "b"), A.a("detail", "s")],
        doc: "The service restored a setting (or failed to).")

    public static let declaration = APIInterface(name,
        methods: [check, apply, setEnforcing, addUserToGroups],
        properties: [
            APIProperty("Enforcing", "b", doc: "Whether drift is reverted automatically."),
            APIProperty("Settings", "a(ssbs)", doc: "The last result of each setting's check."),
            APIProperty("LastCheck", "t", doc: "Time of the last check."),
        ],
        signals: [drifted, reverted])
}

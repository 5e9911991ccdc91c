/// The details each privileged call passes to polkit (what rules read with
/// `action.lookup(key)`), by method as `Interface.Method`: one list, printed with each
/// method in the API reference and checked against what the service passes
/// (ControllerAPITests/PolkitDetailsTests builds the service's plans and compares).
/// `also` names the further checks a call may need, with their details.
public enum PolkitDetails {
    public struct Entry: Sendable {
        public let keys: [String]
        /// A further action the call is checked for in some cases, and its details.
        public let also: [(action: PolkitAction, keys: [String], when: String)]

        init(_ keys: [String], also: [(action: PolkitAction, keys: [String], when: String)] = []) {
            self.keys = keys
            self.also = also
        }
    }

    static let disk = ["disk", "operation"]
    static let vm = ["vm", "operation"]
    static let networkStart = (action: PolkitAction.networkManage, keys: ["network", "operation", "vm"],
                               when: "when inactive networks must be started first")

    public static let byMethod: [String: Entry] = [
        "Manager.DefineVM": Entry(vm + ["profile", "seclabel", "disks", "shares", "networks", "base_disk"],
                                  also: [(.networkManage, ["network", "operation", "kind", "vm"], "when the internal network must be created")]),
        "Manager.DefineVMFromXML": Entry(vm + ["profile", "disks", "shares", "kernel", "networks", "base_disk"]),
        "Manager.StartAll": Entry(["operation"], also: [(.networkManage, ["network", "operation"], "when inactive networks must be started first")]),
        "Manager.StopAll": Entry(["operation"]),
        "Manager.CreateDisk": Entry(disk),
        "Manager.AdoptDisk": Entry(disk + ["format"]),
        "Manager.DefineNetwork": Entry(["network", "operation", "kind"]),
        "VM.Start": Entry(vm, also: [networkStart]),
        "VM.Shutdown": Entry(vm), "VM.Destroy": Entry(vm), "VM.Reboot": Entry(vm), "VM.Suspend": Entry(vm), "VM.Resume": Entry(vm),
        "VM.Undefine": Entry(vm + ["disks"], also: [(.diskManage, ["vm", "operation", "disk"], "with delete_disks, naming the disks it deletes")]),
        "VM.AttachDisk": Entry(vm + ["disk", "target"]),
        "VM.DetachDisk": Entry(vm),
        "VM.AddShare": Entry(vm + ["share", "tag"]),
        "VM.RemoveShare": Entry(vm), "VM.SetAutostart": Entry(vm), "VM.SetResources": Entry(vm),
        "VM.CreateSnapshot": Entry(vm), "VM.RevertSnapshot": Entry(vm), "VM.DeleteSnapshot": Entry(vm),
        "VM.Backup": Entry(vm + ["mode", "disks"]), "VM.Restore": Entry(vm + ["backup", "disks"]),
        "Disk.Resize": Entry(disk + ["size"]),
        "Disk.Clone": Entry(disk + ["new_name"]),
        "Disk.Backup": Entry(disk + ["mode"]),
        "Disk.VerifyBackup": Entry(disk + ["backup"]),
        "Disk.DeleteBackup": Entry(disk + ["backup"]),
        "Disk.SetBackupPolicy": Entry(disk),
        "Disk.Restore": Entry(disk + ["backup", "new_name"]),
        "Disk.CreateSnapshot": Entry(disk + ["snapshot"]), "Disk.RevertSnapshot": Entry(disk + ["snapshot"]),
        "Disk.DeleteSnapshot": Entry(disk + ["snapshot"]),
        "Disk.Format": Entry(disk + ["fstype"]),
        "Disk.Inspect": Entry(disk), "Disk.GetInspection": Entry(disk), "Disk.GetFilesystemUsage": Entry(disk),
        "Disk.ListFiles": Entry(disk + ["path"]), "Disk.ListDirectory": Entry(disk + ["path"]), "Disk.ReadFile": Entry(disk + ["path"]),
        "Disk.WriteFile": Entry(disk + ["path"]),
        "Disk.SetAutoGrow": Entry(disk), "Disk.SetVersioning": Entry(disk), "Disk.Delete": Entry(disk),
        "Job.Cancel": Entry(["operation", "job"]),
        "Network.Start": Entry(["network", "operation"]), "Network.Stop": Entry(["network", "operation"]),
        "Network.Undefine": Entry(["network", "operation"]), "Network.SetAutostart": Entry(["network", "operation", "enabled"]),
        "Settings.Apply": Entry(["setting"]), "Settings.SetEnforcing": Entry(["setting", "enabled"]),
        "Settings.AddUserToGroups": Entry(["user", "groups"]),
    ]

    /// The entry of `method` of the interface whose last name component is `interface`.
    public static func of(_ interface: String, _ method: String) -> Entry? { byMethod["\(interface).\(method)"] }

    /// The line the reference prints under the method.
    public static func line(_ entry: Entry) -> String {
        var text = "polkit details: " + entry.keys.joined(separator: ", ") + "."
        for also in entry.also {
            text += " Also \(also.action.rawValue) \(also.when): " + also.keys.joined(separator: ", ") + "."
        }
        return text
    }
}

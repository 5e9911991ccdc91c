import ControllerCore
import SDBus

/// The API reference, `org.multiverse.Controller(5)`: generated from the same interface
/// declarations that build the vtables, plus one line of documentation and the polkit
/// action for every member. A member without documentation is a test failure, and the
/// checked-in page must equal what this generates, so the page cannot drift.
public enum APIReference {
    /// (interface, member) → what it does.
    static let docs: [String: String] = [
        "Manager.ListVMs": "Object paths of every VM, sorted by name.",
        "Manager.GetVMByName": "The object path of the VM named name (NoSuchVM otherwise).",
        "Manager.ListProfiles": "The profiles VMs can be defined from: name and description.",
        "Manager.DefineVM": "Defines a VM from a profile. Options: memory_mib t, vcpus u, disks as, networks as, shares a(ss), base_disk s, ephemeral b, autostart b, seclabel s.",
        "Manager.DefineVMFromXML": "Defines a VM from libvirt domain XML (qemu:commandline and host devices refused unless allowed).",
        "Manager.StartAll": "A job starting the VMs whose autostart flag is set: network controllers, interface controllers, the rest.",
        "Manager.ListDisks": "Object paths of every managed disk.",
        "Manager.GetDiskByName": "The object path of the disk named name (NoSuchDisk otherwise).",
        "Manager.CreateDisk": "Creates a qcow2 or raw image. Options: backing s, preallocation s.",
        "Manager.ListJobs": "Object paths of running and recently finished jobs.",
        "Manager.Version": "The service's version.",
        "Manager.APIVersion": "The API version (1).",
        "Manager.LibvirtURI": "The libvirt connection URI.",
        "Manager.LibvirtConnected": "Whether libvirt is reachable now.",
        "Manager.ImageDirectory": "Directory of the managed disk images.",
        "Manager.BackupDirectory": "Directory of the disk backups.",
        "VM.Start": "Starts a shut-off VM.",
        "VM.Shutdown": "Asks the guest to power off. Options: timeout_s u (wait), force b (destroy when the timeout passes).",
        "VM.Destroy": "Stops the VM at once.",
        "VM.Reboot": "Reboots a running VM.",
        "VM.Suspend": "Pauses a running VM.",
        "VM.Resume": "Resumes a paused VM.",
        "VM.Undefine": "Removes a shut-off VM's definition. Options: delete_disks b (managed disks only).",
        "VM.AttachDisk": "Attaches a managed disk or an image under an allowed root. Options: live b, persistent b, readonly b, bus s.",
        "VM.DetachDisk": "Detaches the disk at target; a live detach waits for the guest. Options: live b, persistent b, timeout_s u.",
        "VM.AddShare": "Adds a 9p share of host_path under tag to a shut-off VM. Options: readonly b.",
        "VM.RemoveShare": "Removes the 9p share tagged tag from a shut-off VM.",
        "VM.SetAutostart": "Sets the service's own autostart flag (used by StartAll).",
        "VM.SetResources": "Changes memory and vCPUs of the definition. Options: memory_mib t, vcpus u.",
        "VM.GetXML": "The domain XML. Options: inactive b (the persistent definition).",
        "VM.CreateSnapshot": "A job taking snapshot vm-NAME on every managed qcow2 disk of the shut-off VM.",
        "VM.RevertSnapshot": "A job returning every managed disk to vm-NAME.",
        "VM.DeleteSnapshot": "Deletes vm-NAME from every managed disk.",
        "VM.ListSnapshots": "The VM's snapshots: name and creation time.",
        "VM.Name": "The VM's name.",
        "VM.UUID": "The domain UUID.",
        "VM.State": "running, paused, shutoff, shutdown, crashed, pmsuspended, blocked or nostate.",
        "VM.StateReason": "libvirt's reason for the state, e.g. booted, user, destroyed.",
        "VM.Profile": "The profile it was defined from (empty for VMs defined elsewhere).",
        "VM.VCPUs": "Number of vCPUs.",
        "VM.MemoryMiB": "Memory in MiB.",
        "VM.Autostart": "The service's autostart flag.",
        "VM.Persistent": "Whether libvirt keeps a persistent definition.",
        "VM.Ephemeral": "Whether the VM is discarded (with its overlay) when it stops.",
        "VM.Disks": "target, source path, format and managed disk object (or /) of each disk.",
        "VM.Shares": "host path and tag of each 9p share.",
        "VM.StateChanged": "Sent from libvirt's lifecycle events, whoever caused the change.",
        "Disk.Resize": "A job resizing the image to size bytes with its last partition and filesystem (ext2/3/4, xfs, btrfs), on a copy renamed over the disk at the end. Options: shrink b (required to shrink; ext* and btrfs only, refused below the filesystem minimum plus a margin), filesystem b (false: image only). On a disk a running VM uses: grow only, live, image only. Result: old_size, new_size, filesystem_grown, filesystem_shrunk, filesystem, live, note.",
        "Disk.Format": "A job writing a partition table and a filesystem (ext2, ext3, ext4, xfs, btrfs, vfat). Options: partition_table s (gpt, mbr, none; default gpt), label s.",
        "Disk.Inspect": "A job recognising the operating system and measuring the filesystems; updates FilesystemUsage. Result: os_type, distro, version, product_name, hostname, filesystems a(ss), usage a(sttt).",
        "Disk.ListFiles": "Entries of a directory inside the image: name, type, size, mode, mtime. guest_path absolute, no '..'.",
        "Disk.ReadFile": "The bytes of a regular file inside the image (at most 16 MiB, else LimitsExceeded). Read-only; crash-consistent on a disk a running VM uses.",
        "Disk.WriteFile": "Replaces or creates a file inside the image atomically (temporary file, rename), keeping owner and mode. Options: mode u. At most 16 MiB. Busy while a running VM uses the disk.",
        "Disk.SetAutoGrow": "Sets the AutoGrow policy (keys: enabled b, threshold d, step t, max t; missing keys keep their value).",
        "Disk.SetVersioning": "Sets the versioning policy (keys: enabled b, interval_s u, keep u, on_stop b; qcow2 only): auto-<UTC time> snapshots, oldest pruned to keep.",
        "Disk.Clone": "A job copying the disk to new_name (sparse), or with linked b a qcow2 overlay on it.",
        "Disk.Backup": "A job writing a checksummed backup (sha256 of the backup file). Uncompressed backups of a standalone image are sparse byte copies, internal snapshots included; compressed ones and overlays go through qemu-img convert. Refused (Busy) while a running VM uses the disk. Options: compress b. Result: backup_id, size, sha256.",
        "Disk.ListBackups": "The disk's backups: id, creation time, size, sha256.",
        "Disk.Restore": "A job verifying backup_id's checksum and replacing the disk with it.",
        "Disk.CreateSnapshot": "Takes an internal snapshot (qcow2; names vm-* and auto-* are reserved).",
        "Disk.RevertSnapshot": "Returns the disk to a snapshot.",
        "Disk.DeleteSnapshot": "Deletes a snapshot.",
        "Disk.Delete": "Deletes the image (Busy while other disks or a VM use it).",
        "Disk.Name": "The disk's name (its file name in the image directory).",
        "Disk.Path": "The image's absolute path.",
        "Disk.ImageFormat": "qcow2 or raw.",
        "Disk.VirtualSize": "Virtual size in bytes.",
        "Disk.AllocatedSize": "Bytes allocated on the host.",
        "Disk.BackingDisk": "Name of the backing disk, or empty.",
        "Disk.Overlays": "Disks built on this one.",
        "Disk.AttachedTo": "VMs that use this disk.",
        "Disk.Snapshots": "Internal snapshots: name and creation time.",
        "Disk.FilesystemUsage": "Mounted filesystems from the last sample: device, size, used, available (bytes).",
        "Disk.UsageSampled": "When FilesystemUsage was sampled (seconds since the epoch; 0 = never).",
        "Disk.AutoGrow": "The AutoGrow policy: enabled, threshold, step, max.",
        "Disk.Versioning": "The versioning policy: enabled, interval_s, keep, on_stop.",
        "Disk.UsageHigh": "A usage sample reached the AutoGrow threshold (fraction used of the fullest filesystem).",
        "Settings.Check": "Checks every setting now: id, description, compliant, detail.",
        "Settings.Apply": "Makes the given settings (all when empty) hold; replies when done, initramfs rebuild included.",
        "Settings.SetEnforcing": "Turns automatic reverting on or off (kept across restarts).",
        "Settings.AddUserToGroups": "Adds user to groups from the configured allow-list.",
        "Settings.Enforcing": "Whether drift is reverted automatically.",
        "Settings.Settings": "The last result of each setting's check.",
        "Settings.LastCheck": "Time of the last check.",
        "Settings.Drifted": "A setting stopped holding.",
        "Settings.Reverted": "The service restored a setting (or failed to).",
        "Job.Cancel": "Cancels the job (another uid's job needs job.cancel-other; InvalidState past the commit point).",
        "Job.Operation": "What the job does.",
        "Job.Target": "The object it works on.",
        "Job.StartedByUID": "Who started it.",
        "Job.StartTime": "When it started.",
        "Job.State": "running, succeeded, failed or cancelled.",
        "Job.Progress": "0 to 1 when ProgressValid.",
        "Job.ProgressValid": "Whether Progress means something.",
        "Job.Error": "Why it failed.",
        "Job.Result": "What it produced.",
        "Job.Completed": "Sent once when the job ends.",
    ]

    /// The polkit action guarding each privileged method; methods not listed need none.
    static let actions: [String: PolkitAction] = [
        "Manager.DefineVM": .vmConfigure, "Manager.DefineVMFromXML": .vmConfigure, "Manager.StartAll": .vmControl,
        "Manager.CreateDisk": .diskManage,
        "VM.Start": .vmControl, "VM.Shutdown": .vmControl, "VM.Destroy": .vmControl, "VM.Reboot": .vmControl,
        "VM.Suspend": .vmControl, "VM.Resume": .vmControl, "VM.CreateSnapshot": .vmControl,
        "VM.Undefine": .vmConfigure, "VM.AttachDisk": .vmConfigure, "VM.DetachDisk": .vmConfigure, "VM.AddShare": .vmConfigure,
        "VM.RemoveShare": .vmConfigure, "VM.SetAutostart": .vmConfigure, "VM.SetResources": .vmConfigure,
        "VM.RevertSnapshot": .vmConfigure, "VM.DeleteSnapshot": .vmConfigure,
        "Disk.Resize": .diskManage, "Disk.Format": .diskManage, "Disk.SetAutoGrow": .diskManage, "Disk.SetVersioning": .diskManage,
        "Disk.Inspect": .diskInspect, "Disk.ListFiles": .diskInspect, "Disk.ReadFile": .diskInspect, "Disk.WriteFile": .diskWrite,
        "Disk.Clone": .diskManage, "Disk.Backup": .diskManage, "Disk.Restore": .diskManage, "Disk.CreateSnapshot": .diskManage,
        "Disk.RevertSnapshot": .diskManage, "Disk.DeleteSnapshot": .diskManage, "Disk.Delete": .diskManage,
        "Settings.Apply": .settingsModify, "Settings.SetEnforcing": .settingsModify, "Settings.AddUserToGroups": .settingsModify,
        "Job.Cancel": .jobCancelOther,
    ]

    static func key(_ interface: DBusInterface, _ member: String) -> String {
        "\(interface.name.split(separator: ".").last ?? "").\(member)"
    }

    /// Members of the declarations that have no documentation (must be empty).
    public static func undocumented() -> [String] {
        Interfaces.all.flatMap { i in
            (i.methods.map(\.name) + i.properties.map(\.name) + i.signals.map(\.name)).map { key(i, $0) }
        }.filter { docs[$0] == nil }
    }

    static func roff(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\e").replacingOccurrences(of: "-", with: "\\-")
    }

    /// The man page `org.multiverse.Controller(5)`.
    public static func manPage() -> String {
        var out: [String] = [
            ".TH ORG.MULTIVERSE.CONTROLLER 5 \"\" \"multiverse-controller \(ControllerVersion.version)\" \"D-Bus interfaces\"",
            ".SH NAME",
            "org.multiverse.Controller \\- the Multiverse controller service's D\\-Bus API (version \(ControllerVersion.apiVersion))",
            ".SH INTRODUCTION",
            "The service owns \\fBorg.multiverse.Controller\\fR on the system bus. The root object \\fB/org/multiverse/Controller\\fR implements \\fBorg.freedesktop.DBus.ObjectManager\\fR; VMs, disks, jobs and the settings object are its children. Every method ends with an \\fBa{sv}\\fR options argument; unknown keys or wrongly typed values are \\fBInvalidArgs\\fR. Privileged methods are authorized by polkit with the caller's unique bus name as subject; reading needs no authorization.",
        ]
        for interface in Interfaces.all {
            out.append(".SH \"\(interface.name)\"")
            if !interface.methods.isEmpty {
                out.append(".SS Methods")
                for m in interface.methods {
                    let args = m.inputs.map { "in \($0.signature) \($0.name)" } + m.outputs.map { "out \($0.signature) \($0.name)" }
                    out.append(".TP")
                    out.append("\\fB\(m.name)\\fR(\(roff(args.joined(separator: ", "))))")
                    var text = roff(docs[key(interface, m.name)] ?? "")
                    if let action = actions[key(interface, m.name)] { text += " Polkit action: \\fB\(roff(action.rawValue))\\fR." }
                    out.append(text)
                }
            }
            if !interface.properties.isEmpty {
                out.append(".SS Properties")
                for p in interface.properties {
                    let change: String
                    switch p.change {
                    case .const: change = "constant"
                    case .emitsChange: change = "emits PropertiesChanged"
                    case .emitsInvalidation: change = "emits PropertiesChanged without the value"
                    case .none: change = "changes without signal"
                    }
                    out.append(".TP")
                    out.append("\\fB\(p.name)\\fR \(roff(p.signature)) (\(change)\(p.writable ? ", writable" : ""))")
                    out.append(roff(docs[key(interface, p.name)] ?? ""))
                }
            }
            if !interface.signals.isEmpty {
                out.append(".SS Signals")
                for s in interface.signals {
                    out.append(".TP")
                    out.append("\\fB\(s.name)\\fR(\(roff(s.arguments.map { "\($0.signature) \($0.name)" }.joined(separator: ", "))))")
                    out.append(roff(docs[key(interface, s.name)] ?? ""))
                }
            }
        }
        out += [
            ".SH ERRORS",
            "Standard: \\fBorg.freedesktop.DBus.Error.InvalidArgs\\fR (the message names the bad value), \\fBAccessDenied\\fR, \\fBInteractiveAuthorizationRequired\\fR, \\fBLimitsExceeded\\fR. Own, under \\fBorg.multiverse.Controller.Error.\\fR: NoSuchVM, NoSuchDisk, NoSuchSnapshot, NoSuchBackup, AlreadyExists, Busy, InvalidState, Libvirt, Guestfs, Io, Cancelled, NotSupported.",
            ".SH POLKIT ACTIONS",
        ]
        for action in PolkitAction.allCases {
            out.append(".TP")
            out.append("\\fB\(roff(action.rawValue))\\fR")
            let guarded = actions.filter { $0.value == action }.map(\.key).sorted()
            out.append(roff(guarded.joined(separator: ", ")))
        }
        out += [".SH SEE ALSO", "\\fBmultiverse\\-controllerd\\fR(8), \\fBmvctl\\fR(1), \\fBbusctl\\fR(1), \\fBpolkit\\fR(8)"]
        return out.joined(separator: "\n") + "\n"
    }
}

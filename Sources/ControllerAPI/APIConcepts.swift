/// The prose sections of the API reference that belong to no single member: what names,
/// sizes and object paths look like, how jobs and errors behave. Rendered by
/// ``APIReference/manPage()`` after the introduction, each paragraph as one roff paragraph.
public enum APIConcepts {
    /// A section of the reference: its title and its paragraphs (plain text; the renderer
    /// escapes roff).
    public struct Section: Sendable {
        public let title: String
        public let paragraphs: [String]

        public init(title: String, paragraphs: [String]) {
            self.title = title
            self.paragraphs = paragraphs
        }
    }

    public static let sections: [Section] = [
        Section(title: "Objects and names", paragraphs: [
            """
                The root object /org/multiverse/Controller carries the Manager. Below it are one VM object per libvirt domain \
                at /org/multiverse/Controller/vm/UUID, one Disk object per managed image at \
                /org/multiverse/Controller/disk/NAME, one Job object per running or recently finished job at \
                /org/multiverse/Controller/job/N, one Network object per libvirt network at \
                /org/multiverse/Controller/network/NAME, and the Settings object at /org/multiverse/Controller/settings.
                """,
            """
                UUIDs, disk and network names are escaped into their path segment as sd_bus_path_encode does it: every byte \
                other than A-Z, a-z and 0-9 becomes _ followed by two hex digits, so the disk demo.qcow2 is \
                /org/multiverse/Controller/disk/demo_2eqcow2. GetDiskByName and GetVMByName return the path of a name.
                """,
            """
                Disk names are 1-64 characters of A-Z a-z 0-9 . _ -, not starting with . or -; the disk NAME is the file \
                ImageDirectory/NAME. VM names, snapshot names and backup ids follow the same rules; 9p share tags are 1-31 of \
                the same characters.
                """,
            """
                The root object implements org.freedesktop.DBus.ObjectManager: one GetManagedObjects call returns every VM, \
                disk and job and the settings object with their properties, and VMs, disks and jobs come and go with \
                InterfacesAdded and InterfacesRemoved. The introspection XML of each interface is installed in \
                /usr/share/dbus-1/interfaces.
                """,
        ]),
        Section(title: "Arguments", paragraphs: [
            """
                Every method ends with an a{sv} argument (options, or policy for SetAutoGrow and SetVersioning) whose keys the \
                method lists. An unknown key or a value of the wrong type is InvalidArgs; a key left out means its default \
                (for the policies: the current value).
                """,
            """
                Sizes are bytes. Disk sizes given to CreateDisk and Resize are multiples of 512 and at most [disks] max_size \
                (64 TiB by default). Memory is in MiB (memory_mib, MemoryMiB). Times are seconds since the epoch.
                """,
        ]),
        Section(title: "Authorization", paragraphs: [
            """
                Methods without a polkit action (the List and Get methods except ListFiles, and Check), properties and \
                introspection need no authorization. Every other method names its action below. The service checks after it \
                has parsed and validated the call and before it touches anything. The polkit subject is always the caller's \
                unique bus name (system-bus-name), never a PID. root is authorized without a rule.
                """,
            """
                Defaults (allow_any, allow_inactive, allow_active): auth_admin, auth_admin, auth_admin_keep for vm.control, \
                vm.configure, disk.manage and disk.inspect; auth_admin for all three for disk.write, settings.modify and \
                job.cancel-other. The actions are declared in /usr/share/polkit-1/actions/org.multiverse.controller.policy.
                """,
            """
                With each check the service passes details that polkit rules read with action.lookup(). Disks: disk (the name) \
                and operation, one of create, delete, resize (with size), format (with fstype), clone (with new_name), backup, \
                restore (with backup), create-snapshot, revert-snapshot and delete-snapshot (with snapshot), set-autogrow, \
                set-versioning, inspect, get-inspection, get-filesystem-usage, list-files, read-file and write-file (with \
                path).
                """,
            """
                VMs: vm (the name) and operation, one of start, shutdown, destroy, reboot, suspend, resume, define, \
                define-xml, undefine, autostart, resources, attach-disk, detach-disk, add-share, remove-share, \
                create-snapshot, revert-snapshot and delete-snapshot; StartAll passes operation start-all alone. What a call \
                touches is named too, so a rule can scope a grant: define and define-xml pass profile, disks (the managed \
                disks' paths), shares (the host paths as given), networks (network:NAME, bridge:BR, direct:DEV) and base_disk, \
                define also seclabel (dynamic or none), define-xml also kernel (kernel and initrd paths); attach-disk passes \
                disk (a managed disk's name, or the path as given) and target; add-share share (the path as given) and tag; \
                undefine disks (the managed disks delete_disks deletes, joined by commas), and such an Undefine is also \
                checked for org.multiverse.controller.disk.manage with operation delete and disk (the same list). Cancel of \
                another uid's job: operation (the job's) and job (its number). Settings: setting (the ids joined by commas, or \
                all; enforcing for SetEnforcing, with enabled), and user and groups (joined by commas) for AddUserToGroups.
                """,
            """
                When polkit would ask for a password (auth_admin and auth_admin_keep), the answer depends on the call. With \
                the allow-interactive-authorization flag, polkit asks through the caller's authentication agent, and the call \
                fails with AccessDenied when there is none or the user gives up. Without the flag the service answers \
                InteractiveAuthorizationRequired at once, so a frontend can retry with the flag after telling the user. busctl \
                sets the flag by default (busctl --allow-interactive-authorization=no does not); mvctl sets it only when its \
                standard input is a terminal and --no-ask-password is absent.
                """,
            """
                If polkit cannot be reached or does not answer within [polkit] timeout_s, the call is denied (AccessDenied). A \
                call that arrives while [polkit] max_pending checks wait is refused with LimitsExceeded. Every decision is \
                logged as one audit line with the caller, the action and the details.
                """,
        ]),
        Section(title: "Jobs", paragraphs: [
            """
                Long operations (Resize, Clone, Backup, Restore, Format, Inspect, StartAll, and a VM's CreateSnapshot and \
                RevertSnapshot) reply at once with the path of a Job object, which exists when the reply arrives. Its State \
                goes from running to succeeded, failed or cancelled; Progress and ProgressValid follow the work; Error and \
                Result hold the outcome, and Completed is sent once at the end.
                """,
            """
                At most [jobs] max_concurrent jobs (4) run at once; one more is refused with LimitsExceeded. Finished jobs \
                stay listed (ListJobs, their objects) for [jobs] retention_s (600 s) and then go with InterfacesRemoved.
                """,
            """
                Resize, Format and Restore have a commit point, when the new image replaces the disk: a Cancel before it \
                leaves the disk as it was, and after it Cancel is InvalidState. On SIGTERM the daemon cancels the running \
                jobs; a job past its commit point is let finish.
                """,
        ]),
        Section(title: "VMs", paragraphs: [
            """
                The VM objects mirror the domains of the libvirt connection ([daemon] libvirt_uri) and are kept current by \
                libvirt's lifecycle events, whoever caused a change (virsh too). While libvirt is unreachable \
                (LibvirtConnected false), VM calls fail at once with Libvirt.
                """,
            """
                What the service knows about a VM (profile, autostart, ephemeral, base disk, boot order) is kept in the \
                domain's metadata element under the namespace https://multiverse-os.org/controller/1. Domain XML is built and \
                read with libxml2 (strict parse, no network, no external entities), never by string interpolation.
                """,
        ]),
        Section(title: "Disks", paragraphs: [
            """
                A managed disk is a regular file in the image directory ([daemon] image_dir); symlinks, other file types and \
                badly named entries there are skipped, never followed. Internal snapshots need qcow2; on a raw disk they are \
                NotSupported.
                """,
            """
                Changing a disk that a running VM uses, or that other disks are built on, is Busy: snapshots, Restore, Format \
                and WriteFile (Resize grows the disk of a running VM live instead). So is any change while another operation \
                holds the disk, and Delete while other disks are built on the disk or any VM's definition uses it.
                """,
            "The AutoGrow and versioning policies and the last usage samples are kept in [daemon] state_dir/disk-policies.json, written atomically.",
        ]),
        Section(title: "Disk leases", paragraphs: [
            """
                Every operation on a managed disk holds a lease on it while it works, from before its job exists until after \
                its body ended (Disk.HeldBy shows them; a job's lease is gone before it reports its end). Leases of several \
                disks are taken all at once or none, never waiting while holding one. A call checks the leases before \
                the authorization (Busy names the holder in the way) and takes them after it, then checks again what it \
                planned: a disk changed during the authorization (resized, reverted, replaced) is InvalidState. A VM start \
                takes its VM's leases with it (Busy when a job rewrites one of its disks); a VM started outside the service \
                (virsh) gets its leases when libvirt reports it. When the service starts, the VMs' leases are rebuilt from \
                libvirt's running domains before any call's lease is granted (a call that needs one before then waits up to \
                20 s, then is Busy); after libvirt comes back they follow its listing again. While the service copies a disk (Clone, Backup) or builds the image that will replace it (offline \
                Resize, Format, Restore), it also holds the byte-range locks qemu checks before it opens an image for \
                writing, so a VM started outside the service meanwhile fails to open the image; an image another process \
                already has open for writing makes the job fail Busy, the disk unchanged.
                """,
        ] + DiskInterface.leaseKinds.map { kind in
            "Lease \(kind.kind): held by \(kind.heldBy). Can share a disk with: \(kind.compatibleWith.isEmpty ? "nothing" : kind.compatibleWith.joined(separator: ", "))."
        }),
        Section(title: "Inside images", paragraphs: [
            """
                Format, Resize, Inspect, ListFiles, ReadFile, WriteFile and the usage sampler look inside images through \
                libguestfs appliances (small VMs; [guestfs] in controller.toml). At most [guestfs] max_appliances run at once.
                """,
            """
                Guest paths are absolute and normalised; .. components and NUL bytes are InvalidArgs. The operating system's \
                own mountpoints are used when inspection finds one, otherwise the first filesystem is mounted at /. ReadFile \
                and WriteFile move at most 16 MiB (LimitsExceeded).
                """,
            """
                A read-only appliance stays up [guestfs] idle_s (30 s) after a read and serves the next reads of the same disk \
                (ten ReadFile calls cost one launch); it takes no lock on the image. A disk a running VM uses is opened \
                read-only (crash-consistent) for reads. Backup, Clone, Resize, Restore, snapshots and a VM start through the \
                service close a cached appliance first.
                """,
        ]),
        Section(title: "Failures", paragraphs: [
            """
                A failed call answers one of the error names listed under ERRORS, with a message naming the value or object \
                concerned. InvalidArgs: a bad argument or option. AccessDenied: polkit said no or could not be reached. \
                InteractiveAuthorizationRequired: polkit would ask for a password and the call did not allow it. \
                LimitsExceeded: too many jobs or pending authorization checks, a file over 16 MiB, or a start the host cannot \
                hold (memory or CPUs).
                """,
            """
                NoSuchVM, NoSuchDisk, NoSuchSnapshot, NoSuchBackup: no such object. AlreadyExists: the name or target is \
                taken. Busy: something else uses the object, for example deleting a disk other disks use as backing file. \
                InvalidState: the object's state does not allow the call (checked before any authorization). Libvirt, Guestfs, \
                Io: libvirt, libguestfs or a file operation failed. Cancelled: the operation was cancelled. NotSupported: the \
                disk's format or filesystem cannot do it (snapshots of raw disks, shrinking XFS).
                """,
        ]),
        Section(title: "Examples", paragraphs: [
            "With busctl (against scripts/demo in a checkout of the source, after the export DBUS_SYSTEM_BUS_ADDRESS=... line it prints):",
            "busctl --system tree org.multiverse.Controller",
            """
                busctl --system call org.multiverse.Controller /org/multiverse/Controller org.multiverse.Controller.Manager \
                CreateDisk 'stsa{sv}' demo.qcow2 1073741824 qcow2 0
                """,
            "busctl --system get-property org.multiverse.Controller /org/multiverse/Controller/disk/demo_2eqcow2 org.multiverse.Controller.Disk VirtualSize",
            "busctl --system call org.multiverse.Controller /org/multiverse/Controller org.freedesktop.DBus.ObjectManager GetManagedObjects",
            "busctl --system call org.multiverse.Controller /org/multiverse/Controller/disk/demo_2eqcow2 org.multiverse.Controller.Disk Delete 'a{sv}' 0",
        ]),
    ]
}

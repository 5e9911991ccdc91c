import ArgumentParser
import ControllerAPI
import Foundation
import SDBus

struct VM: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm",
        abstract: "Define, start, stop and inspect virtual machines.",
        subcommands: [List.self, Show.self, Profiles.self, Define.self, DefineXML.self, Simple<StartAction>.self, Stop.self,
                      Simple<DestroyAction>.self, Simple<RebootAction>.self, Simple<SuspendAction>.self, Simple<ResumeAction>.self, Undefine.self, AttachDisk.self, DetachDisk.self, Share.self,
                      Snapshot.self, Backup.self, Restore.self, Backups.self, StartAll.self, StopAll.self, Autostart.self, Resources.self, XML.self,
                      Watch.self])

    static let interface = VMInterface.name

    /// A VM command that looks the VM up by name and calls one method.
    static func call(_ global: GlobalOptions, _ name: String, _ member: String, _ args: [DBusValue], done: String) async throws {
        try await Client.run(global) { client in
            let path = try await client.vmPath(name)
            _ = try await client.call(path, VM.interface, member, args, privileged: true)
            if global.json { Output.json(["vm": name, "done": member]) } else { print(done) }
        }
    }

    /// The READY column: "yes", "waiting", "stopping", or "-" for a VM without the channel
    /// or not running.
    static func readiness(_ v: [String: DBusValue]) -> String {
        switch v["Readiness"]?.string ?? "none" {
        case "ready": return "yes"
        case "none": return "-"
        case let other: return other
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List VMs with state, readiness, profile and resources.",
            discussion: "READY: yes once the guest sent READY=1 on its readiness channel, waiting until then, - for a VM that is not running or has no channel.")
        @OptionGroup var global: GlobalOptions
        @Flag(help: ArgumentHelp("Only the names, one per line (for shell completion).", visibility: .hidden)) var names = false

        func run() async throws {
            try await Client.run(global) { client in
                let vms = try await client.managedObjects(interface: VM.interface)
                    .map(\.value).sorted { ($0["Name"]?.string ?? "") < ($1["Name"]?.string ?? "") }
                if names { for v in vms { print(v["Name"]?.string ?? "") }; return }
                if global.json { Output.json(vms.map { $0.mapValues(Output.plain) }); return }
                Output.table(["NAME", "STATE", "READY", "PROFILE", "VCPUS", "MEMORY", "AUTOSTART"], vms.map { v in
                    [v["Name"]?.string ?? "", v["State"]?.string ?? "", VM.readiness(v), v["Profile"]?.string ?? "",
                     String(v["VCPUs"]?.uint32 ?? 0), "\(v["MemoryMiB"]?.uint64 ?? 0) MiB", (v["Autostart"]?.bool ?? false) ? "yes" : "no"]
                })
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one VM's properties.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "VM name.", completion: .shellCommand("mvctl vm list --names 2>/dev/null")) var name: String

        func run() async throws {
            try await Client.run(global) { client in
                let path = try await client.vmPath(name)
                Output.object(path: path, try await client.properties(path, VM.interface), json: global.json)
            }
        }
    }

    struct Profiles: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the profiles VMs can be defined from.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await Client.run(global) { client in
                let reply = try await client.callManager(ManagerInterface.listProfiles.name, [.emptyOptions])
                let rows: [[String]] = (reply.first?.arrayElements ?? []).compactMap {
                    guard case .structure(let f) = $0, f.count == 2 else { return nil }
                    return [f[0].string ?? "", f[1].string ?? ""]
                }
                if global.json { Output.json(rows.map { ["name": $0[0], "description": $0[1]] }) } else { Output.table(["PROFILE", "DESCRIPTION"], rows) }
            }
        }
    }

    struct Define: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Define a VM from a profile.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "VM name: 1-64 of A-Z a-z 0-9 . _ -, not starting with '.' or '-'.") var name: String
        @Argument(help: "Profile (see 'mvctl vm profiles').") var profile: String
        @Option(help: "Memory in MiB.") var memory: UInt64?
        @Option(help: "Number of vCPUs.") var vcpus: UInt32?
        @Option(help: "Managed disk to attach (repeatable), in order vda, vdb, ...") var disk: [String] = []
        @Option(help: ArgumentHelp("A NIC (repeatable, in order; replaces the profile's wiring): network:NAME or NAME, bridge:BR, direct:DEV.",
                                   discussion: """
                                       Without it a network-controller gets the uplink and the internal network, the others the internal network \
                                       ([vms] uplink, internal_network).
                                       """)) var network: [String] = []
        @Option(help: "MAC of the next NIC (repeatable, in order; libvirt picks the others).") var mac: [String] = []
        @Option(help: "9p share HOST_PATH:TAG (repeatable; replaces the profile's).") var share: [String] = []
        @Option(help: "Boot from a new copy-on-write overlay NAME-root.qcow2 of this managed disk.") var baseDisk: String?
        @Flag(help: "Undefine the VM and delete its overlay when it stops.") var ephemeral = false
        @Flag(help: "Start it with 'start-all' (the service's ordered start).") var autostart = false
        @Option(help: "Security label: dynamic (default) or none.") var seclabel: String?
        @Option(help: "The VM 'start-all' starts in this one's place when it is not ready in time.") var fallback: String?
        @Option(help: ArgumentHelp("How long 'start-all' waits for its READY=1 (default: [vms] ready_timeout_s).", valueName: "SECONDS")) var readyTimeout: UInt32?

        func run() async throws {
            var options: [String: DBusValue] = [:]
            if let memory { options["memory_mib"] = .uint64(memory) }
            if let vcpus { options["vcpus"] = .uint32(vcpus) }
            if !disk.isEmpty { options["disks"] = .strings(disk) }
            if !network.isEmpty { options["networks"] = .strings(network) }
            if !mac.isEmpty { options["macs"] = .strings(mac) }
            if let baseDisk { options["base_disk"] = .string(baseDisk) }
            if ephemeral { options["ephemeral"] = .boolean(true) }
            if !share.isEmpty {
                options["shares"] = .array(elementSignature: "(ss)", try share.map { entry in
                    let parts = entry.split(separator: ":", maxSplits: 1).map(String.init)
                    guard parts.count == 2 else { throw ValidationError("--share '\(entry)': use HOST_PATH:TAG") }
                    return .structure([.string(parts[0]), .string(parts[1])])
                })
            }
            if autostart { options["autostart"] = .boolean(true) }
            if let seclabel { options["seclabel"] = .string(seclabel) }
            if let fallback { options["fallback"] = .string(fallback) }
            if let readyTimeout { options["ready_timeout_s"] = .uint32(readyTimeout) }
            try await Client.run(global) { client in
                let reply = try await client.callManager(ManagerInterface.defineVM.name, [.string(name), .string(profile), .vardict(options)], privileged: true)
                let path = reply.first?.string ?? ""
                if global.json { Output.json(["ObjectPath": path, "Name": name]) } else { print("defined VM \(name) (\(path))") }
            }
        }
    }

    struct DefineXML: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "define-xml", abstract: "Define a VM from a libvirt domain XML file ('-' reads stdin).",
            discussion: """
                The document is checked against the service's allowlist (org.multiverse.Controller(5), DOMAIN XML \
                ALLOWLIST): disks are managed disks, shares lie under [vms] share_roots, kernels under [vms] \
                kernel_roots. The service's own metadata comes from the options below, never from the document: \
                for the XML of a VM the service made (mvctl vm xml --inactive), remove its mv:controller element.
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Domain XML file.") var file: String
        @Option(help: "The profile whose role the topology rules use (default: none, an app VM).") var profile: String?
        @Flag(help: "Set the service's autostart flag ('start-all' starts it).") var autostart = false
        @Option(help: ArgumentHelp("Order for 'start-all', 0-9 (default: the profile's, else 3).", valueName: "N")) var bootOrder: UInt32?
        @Option(help: "The VM 'start-all' starts in this one's place when it is not ready in time.") var fallback: String?
        @Option(help: ArgumentHelp("How long 'start-all' waits for its READY=1 (default: [vms] ready_timeout_s).", valueName: "SECONDS")) var readyTimeout: UInt32?
        @Flag(help: "Log the first serial console to [vms] console_log_dir/NAME-console.log.") var consoleLog = false
        @Option(help: "Boot from a new copy-on-write overlay of this managed disk, attached as vda.") var baseDisk: String?
        @Flag(help: "Undefine the VM and delete its overlay when it stops.") var ephemeral = false

        func run() async throws {
            let data = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: file))
            let xml = String(decoding: data, as: UTF8.self)
            var options: [String: DBusValue] = [:]
            if let profile { options["profile"] = .string(profile) }
            if autostart { options["autostart"] = .boolean(true) }
            if let bootOrder { options["boot_order"] = .uint32(bootOrder) }
            if let fallback { options["fallback"] = .string(fallback) }
            if let readyTimeout { options["ready_timeout_s"] = .uint32(readyTimeout) }
            if consoleLog { options["console_log"] = .boolean(true) }
            if let baseDisk { options["base_disk"] = .string(baseDisk) }
            if ephemeral { options["ephemeral"] = .boolean(true) }
            try await Client.run(global) { client in
                let reply = try await client.callManager(ManagerInterface.defineVMFromXML.name, [.string(xml), .vardict(options)], privileged: true)
                let path = reply.first?.string ?? ""
                if global.json { Output.json(["ObjectPath": path]) } else { print("defined \(path)") }
            }
        }
    }


    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask a VM to shut down (ACPI).",
            discussion: "With --timeout, waits for it to stop; with --force as well, destroys it when the timeout passes.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "VM name.", completion: .shellCommand("mvctl vm list --names 2>/dev/null")) var name: String
        @Option(name: .customLong("timeout"), help: ArgumentHelp("Seconds to wait for the VM to stop.", valueName: "SECONDS")) var wait: UInt32?
        @Flag(help: "Destroy the VM when it has not stopped after --timeout seconds.") var force = false

        func validate() throws {
            if force && wait == nil { throw ValidationError("--force needs --timeout SECONDS") }
        }

        func run() async throws {
            var options: [String: DBusValue] = [:]
            if let wait { options["timeout_s"] = .uint32(wait) }
            if force { options["force"] = .boolean(true) }
            try await VM.call(global, name, VMInterface.shutdown.name, [.vardict(options)], done: wait == nil ? "asked \(name) to shut down" : "\(name) stopped")
        }
    }





    struct Undefine: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a shut-off VM's definition.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "VM name.", completion: .shellCommand("mvctl vm list --names 2>/dev/null")) var name: String
        @Flag(help: "Also delete its managed disks (never other files).") var deleteDisks = false
        func run() async throws {
            try await VM.call(global, name, VMInterface.undefine.name, [.vardict(deleteDisks ? ["delete_disks": .boolean(true)] : [:])], done: "undefined \(name)")
        }
    }

    struct Snapshot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Snapshots of all of a shut-off VM's managed qcow2 disks at one point in time.",
            subcommands: [Create.self, Revert.self, Delete.self, List.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Take a snapshot (a job; progress on stderr).")
            @OptionGroup var global: GlobalOptions
            @Argument(help: "VM name.", completion: .shellCommand("mvctl vm list --names 2>/dev/null")) var name: String
            @Argument(help: "Snapshot name.") var snapshot: String
            func run() async throws { try await VM.job(global, name, VMInterface.createSnapshot.name, [.string(snapshot), .emptyOptions], done: "snapshot \(snapshot) of \(name) taken") }
        }

        struct Revert: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Return every managed disk to a snapshot (a job).")
            @OptionGroup var global: GlobalOptions
            @Argument(help: "VM name.", completion: .shellCommand("mvctl vm list --names 2>/dev/null")) var name: String
            @Argument(help: "Snapshot name.") var snapshot: String
            func run() async throws { try await VM.job(global, name, VMInterface.revertSnapshot.name, [.string(snapshot), .emptyOptions], done: "\(name) reverted to \(snapshot)") }
        }

        struct Delete: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Delete a snapshot.")
            @OptionGroup var global: GlobalOptions
            @Argument(help: "VM name.", completion: .shellCommand("mvctl vm list --names 2>/dev/null")) var name: String
            @Argument(help: "Snapshot name.") var snapshot: String
            func run() async throws { try await VM.call(global, name, VMInterface.deleteSnapshot.name, [.string(snapshot), .emptyOptions], done: "deleted snapshot \(snapshot) of \(name)") }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List a VM's snapshots.")
            @OptionGroup var global: GlobalOptions
            @Argument(help: "VM name.", completion: .shellCommand("mvctl vm list --names 2>/dev/null")) var name: String
            func run() async throws {
                try await Client.run(global) { client in
                    let path = try await client.vmPath(name)
                    let reply = try await client.call(path, VM.interface, VMInterface.listSnapshots.name, [.emptyOptions])
                    let rows: [(String, UInt64)] = (reply.first?.arrayElements ?? []).compactMap {
                        guard case .structure(let f) = $0, f.count == 2 else { return nil }
                        return (f[0].string ?? "", f[1].uint64 ?? 0)
                    }
                    if global.json { Output.json(rows.map { ["name": $0.0, "created": $0.1] as [String: Any] }); return }
                    let formatter = ISO8601DateFormatter()
                    Output.table(["SNAPSHOT", "CREATED"], rows.map { [$0.0, formatter.string(from: Date(timeIntervalSince1970: TimeInterval($0.1)))] })
                }
            }
        }
    }

    struct Resources: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change memory and vCPUs (from the next start).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "VM name.", completion: .shellCommand("mvctl vm list --names 2>/dev/null")) var name: String
        @Option(help: "Memory in MiB.") var memory: UInt64?
        @Option(help: "Number of vCPUs.") var vcpus: UInt32?
        func validate() throws { if memory == nil && vcpus == nil { throw ValidationError("give --memory and/or --vcpus") } }
        func run() async throws {
            var options: [String: DBusValue] = [:]
            if let memory { options["memory_mib"] = .uint64(memory) }
            if let vcpus { options["vcpus"] = .uint32(vcpus) }
            try await VM.call(global, name, VMInterface.setResources.name, [.vardict(options)], done: "changed \(name)")
        }
    }

    struct XML: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "xml", abstract: "Print a VM's libvirt domain XML.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "VM name.", completion: .shellCommand("mvctl vm list --names 2>/dev/null")) var name: String
        @Flag(help: "The persistent definition instead of the running configuration.") var inactive = false
        func run() async throws {
            try await Client.run(global) { client in
                let path = try await client.vmPath(name)
                let reply = try await client.call(path, VM.interface, VMInterface.getXML.name, [.vardict(inactive ? ["inactive": .boolean(true)] : [:])])
                print(reply.first?.string ?? "", terminator: "")
            }
        }
    }

}

/// A command that names one object and calls one of its methods without options (vm start,
/// destroy, reboot, …; network start, stop, undefine).
protocol SimpleAction {
    static var command: String { get }
    static var abstract: String { get }
    static var method: String { get }
    static var done: String { get }
}

enum StartAction: SimpleAction {
    static let command = "start", abstract = "Start a VM.", method = VMInterface.start.name, done = "started"
}
enum DestroyAction: SimpleAction {
    static let command = "destroy", abstract = "Stop a VM at once (like pulling the plug).", method = VMInterface.destroy.name, done = "destroyed"
}
enum RebootAction: SimpleAction {
    static let command = "reboot", abstract = "Reboot a running VM.", method = VMInterface.reboot.name, done = "rebooting"
}
enum SuspendAction: SimpleAction {
    static let command = "suspend", abstract = "Pause a running VM.", method = VMInterface.suspend.name, done = "paused"
}
enum ResumeAction: SimpleAction {
    static let command = "resume", abstract = "Resume a paused VM.", method = VMInterface.resume.name, done = "resumed"
}

extension VM {
    struct Simple<Action: SimpleAction>: AsyncParsableCommand {
        static var configuration: CommandConfiguration { CommandConfiguration(commandName: Action.command, abstract: Action.abstract) }
        @OptionGroup var global: GlobalOptions
        @Argument(help: "VM name.", completion: .shellCommand("mvctl vm list --names 2>/dev/null")) var name: String
        func run() async throws { try await VM.call(global, name, Action.method, [.emptyOptions], done: "\(Action.done) \(name)") }
    }
}

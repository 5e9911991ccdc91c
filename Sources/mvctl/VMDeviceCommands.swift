import ArgumentParser
import ControllerAPI
import Foundation
import SDBus

/// `mvctl vm attach-disk`, `detach-disk` and `share`: the devices of a VM.
extension VM {
    struct AttachDisk: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "attach-disk",
            abstract: "Attach a managed disk (or an image path under an allowed root) to a VM.",
            discussion: "A running VM gets the disk live and in its definition; a shut-off VM in its definition.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "VM name.", completion: .shellCommand("mvctl vm list --names 2>/dev/null")) var name: String
        @Argument(help: "Managed disk name or absolute image path.", completion: diskNameCompletion) var disk: String
        @Argument(help: "Target device: vdX (virtio), sdX (sata) or hdX (ide).") var target: String
        @Flag(help: "Attach read-only.") var readonly = false
        @Option(help: "Bus: virtio, scsi, sata, ide or usb.") var bus: String?
        @Option(help: "Image format, raw or qcow2 (needed for a path; the service never guesses it).") var format: String?
        @Flag(help: "Only the running VM, not its definition.") var liveOnly = false
        @Flag(help: "Only the definition, not the running VM.") var configOnly = false

        func run() async throws {
            var options: [String: DBusValue] = [:]
            if readonly { options["readonly"] = .boolean(true) }
            if let bus { options["bus"] = .string(bus) }
            if let format { options["format"] = .string(format) }
            if liveOnly { options["persistent"] = .boolean(false) }
            if configOnly { options["live"] = .boolean(false) }
            try await VM.call(global, name, VMInterface.attachDisk.name, [.string(disk), .string(target), .vardict(options)], done: "attached \(disk) to \(name) as \(target)")
        }
    }

    struct DetachDisk: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "detach-disk",
            abstract: "Detach a disk from a VM; a running guest must release it (waits up to --wait seconds).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "VM name.", completion: .shellCommand("mvctl vm list --names 2>/dev/null")) var name: String
        @Argument(help: "Target device, e.g. vdb.") var target: String
        @Option(help: ArgumentHelp("Seconds to wait for a running guest to release the disk.", valueName: "SECONDS")) var wait: UInt32?

        func run() async throws {
            var options: [String: DBusValue] = [:]
            if let wait { options["timeout_s"] = .uint32(wait) }
            try await VM.call(global, name, VMInterface.detachDisk.name, [.string(target), .vardict(options)], done: "detached \(target) from \(name)")
        }
    }

    struct Share: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add or remove 9p shares of a shut-off VM.",
            subcommands: [Add.self, Remove.self])

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Share a host directory with a VM under a tag.")
            @OptionGroup var global: GlobalOptions
            @Argument(help: "VM name.", completion: .shellCommand("mvctl vm list --names 2>/dev/null")) var name: String
            @Argument(help: "Host directory (under an allowed share root).") var hostPath: String
            @Argument(help: "Mount tag seen by the guest.") var tag: String
            @Flag(help: "Read-only share.") var readonly = false
            func run() async throws {
                try await VM.call(global, name, VMInterface.addShare.name, [.string(hostPath), .string(tag), .vardict(readonly ? ["readonly": .boolean(true)] : [:])],
                                  done: "shared \(hostPath) with \(name) as \(tag)")
            }
        }

        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove a share by its tag.")
            @OptionGroup var global: GlobalOptions
            @Argument(help: "VM name.", completion: .shellCommand("mvctl vm list --names 2>/dev/null")) var name: String
            @Argument(help: "Mount tag.") var tag: String
            func run() async throws {
                try await VM.call(global, name, VMInterface.removeShare.name, [.string(tag), .emptyOptions], done: "removed share \(tag) from \(name)")
            }
        }
    }

    /// Calls a VM method that returns a Job and follows it.
    static func job(_ global: GlobalOptions, _ name: String, _ member: String, _ args: [DBusValue], done: String) async throws {
        try await Client.run(global) { client in
            let path = try await client.vmPath(name)
            let job = try await client.call(path, VM.interface, member, args, privileged: true).first?.string ?? ""
            let result = try await client.follow(job: job, quiet: global.json)
            if global.json { Output.json(["job": job, "result": result.mapValues(Output.plain)]) } else { print(done) }
        }
    }
}

import ArgumentParser
import Foundation
import SDBus

struct Disk: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage disk images in the service's image directory.",
        subcommands: [List.self, Show.self, Create.self, Delete.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List managed disks.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await Client.run(global) { client in
                let disks = try await client.managedObjects(interface: Client.disk)
                    .map(\.value).sorted { ($0["Name"]?.string ?? "") < ($1["Name"]?.string ?? "") }
                if global.json {
                    Output.json(disks.map { $0.mapValues(Output.plain) })
                    return
                }
                Output.table(["NAME", "FORMAT", "VIRTUAL", "ALLOCATED", "BACKING"], disks.map { d in
                    [d["Name"]?.string ?? "", d["ImageFormat"]?.string ?? "", Output.size(d["VirtualSize"]?.uint64 ?? 0),
                     Output.size(d["AllocatedSize"]?.uint64 ?? 0), d["BackingDisk"]?.string ?? ""]
                })
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one disk's properties.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Disk name.") var name: String

        func run() async throws {
            try await Client.run(global) { client in
                let path = try await client.diskPath(name)
                let props = try await client.properties(path, Client.disk)
                Output.object(path: path, props, json: global.json) { key, value in
                    guard key.hasSuffix("Size"), let n = value.uint64 else { return nil }
                    return "\(Output.size(n)) (\(n) bytes)"
                }
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a disk image.",
            discussion: "SIZE is bytes or a number with K, M, G or T (powers of 1024), e.g. 20G.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Disk name: 1-64 of A-Z a-z 0-9 . _ -, not starting with '.' or '-'.") var name: String
        @Argument(help: "Virtual size, e.g. 10G.") var size: String
        @Option(help: "Image format: qcow2 or raw.") var format = "qcow2"
        @Option(help: "Managed disk to use as backing file (qcow2 overlay).") var backing: String?
        @Option(help: "Preallocation: off, metadata (qcow2), falloc or full.") var preallocation: String?

        func run() async throws {
            guard let bytes = Output.parseSize(size) else {
                throw ValidationError("invalid size '\(size)': use bytes or a number with K, M, G or T")
            }
            var options: [String: DBusValue] = [:]
            if let backing { options["backing"] = .string(backing) }
            if let preallocation { options["preallocation"] = .string(preallocation) }
            try await Client.run(global) { client in
                let reply = try await client.callManager("CreateDisk", [.string(name), .uint64(bytes), .string(format), .vardict(options)], privileged: true)
                let path = reply.first?.string ?? ""
                if global.json { Output.json(["ObjectPath": path, "Name": name]) } else { print("created disk \(name) (\(path))") }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a disk image.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Disk name.") var name: String

        func run() async throws {
            try await Client.run(global) { client in
                let path = try await client.diskPath(name)
                _ = try await client.call(path, Client.disk, "Delete", [.emptyOptions], privileged: true)
                if global.json { Output.json(["Deleted": name]) } else { print("deleted disk \(name)") }
            }
        }
    }
}

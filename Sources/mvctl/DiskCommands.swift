import ArgumentParser
import ControllerAPI
import Foundation
import SDBus

/// Shell completion of managed disk names (asks the service).
let diskNameCompletion = CompletionKind.shellCommand("mvctl disk list --names 2>/dev/null")

struct Disk: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage disk images in the service's image directory.",
        subcommands: [List.self, Show.self, Create.self, Adopt.self, Delete.self, Resize.self, Clone.self, Backup.self, Backups.self, Verify.self, DeleteBackup.self, BackupPolicy.self, Restore.self,
                      Snapshot.self, Format.self, Inspect.self, Ls.self, Cat.self, Put.self, Autogrow.self, Versioning.self,
                      Jobs.self, JobCancel.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List managed disks.")
        @OptionGroup var global: GlobalOptions
        @Flag(help: ArgumentHelp("Only the names, one per line (for shell completion).", visibility: .hidden)) var names = false

        func run() async throws {
            try await Client.run(global) { client in
                let disks = try await client.managedObjects(interface: Client.disk)
                    .map(\.value).sorted { ($0["Name"]?.string ?? "") < ($1["Name"]?.string ?? "") }
                if names { for d in disks { print(d["Name"]?.string ?? "") }; return }
                if global.json {
                    Output.json(disks.map { $0.mapValues(Output.plain) })
                    return
                }
                Output.table(["NAME", "FORMAT", "VIRTUAL", "ALLOCATED", "BACKING", "PROBLEMS"], disks.map { d in
                    let format = d["ImageFormat"]?.string ?? ""
                    let problems = (d["Problems"]?.arrayElements ?? []).compactMap(\.string)
                    return [d["Name"]?.string ?? "", format.isEmpty ? "-" : format, Output.size(d["VirtualSize"]?.uint64 ?? 0),
                            Output.size(d["AllocatedSize"]?.uint64 ?? 0), d["BackingDisk"]?.string ?? "",
                            problems.isEmpty ? "" : "\(problems.count) (mvctl disk show)"]
                })
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one disk's properties.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Disk name.", completion: diskNameCompletion) var name: String

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
                let reply = try await client.callManager(ManagerInterface.createDisk.name, [.string(name), .uint64(bytes), .string(format), .vardict(options)], privileged: true)
                let path = reply.first?.string ?? ""
                if global.json { Output.json(["ObjectPath": path, "Name": name]) } else { print("created disk \(name) (\(path))") }
            }
        }
    }

    struct Adopt: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record the format of an image placed in the image directory by hand, so the service uses it.",
            discussion: """
                The service records each disk's format when it makes an image and never guesses it from the \
                image's bytes (a guest can write any header into its raw disk). An image copied in by hand has \
                no record: it is listed with FORMAT '-' and a problem, and nothing but delete works on it until \
                it is adopted. A raw image whose first bytes are another format's header is refused unless \
                --force; a qcow2 image's backing file must be a managed disk.
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Disk name (the image's file name in the image directory).", completion: diskNameCompletion) var name: String
        @Argument(help: "Its format: raw or qcow2.") var format: String
        @Flag(help: "Adopt as raw even though the image starts with another format's header.") var force = false

        func run() async throws {
            var options: [String: DBusValue] = [:]
            if force { options["force"] = .boolean(true) }
            try await Client.run(global) { client in
                let reply = try await client.callManager(ManagerInterface.adoptDisk.name, [.string(name), .string(format), .vardict(options)], privileged: true)
                let path = reply.first?.string ?? ""
                if global.json { Output.json(["ObjectPath": path, "Name": name, "ImageFormat": format]) } else { print("adopted disk \(name) as \(format) (\(path))") }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a disk image.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Disk name.", completion: diskNameCompletion) var name: String

        func run() async throws {
            try await Client.run(global) { client in
                let path = try await client.diskPath(name)
                _ = try await client.call(path, Client.disk, DiskInterface.delete.name, [.emptyOptions], privileged: true)
                if global.json { Output.json(["Deleted": name]) } else { print("deleted disk \(name)") }
            }
        }
    }

    struct Clone: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy a disk to a new one (a job; progress on stderr).",
            discussion: "A full copy keeps sparseness; --linked makes a qcow2 overlay on the source instead.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Source disk.", completion: diskNameCompletion) var name: String
        @Argument(help: "New disk name.") var newName: String
        @Flag(help: "Make a copy-on-write overlay instead of a full copy.") var linked = false

        func run() async throws {
            try await Client.run(global) { client in
                let path = try await client.diskPath(name)
                let job = try await client.call(path, Client.disk, DiskInterface.clone.name, [.string(newName), .vardict(linked ? ["linked": .boolean(true)] : [:])],
                                                privileged: true).first?.string ?? ""
                let result = try await client.follow(job: job, quiet: global.json)
                if global.json { Output.json(result.mapValues(Output.plain)) } else { print("cloned \(name) to \(newName)") }
            }
        }
    }

    struct Backup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Back a disk up: the next point of its backup chain (a job).",
            discussion: """
                The first point of a disk is full; the next ones hold only the blocks written since the point before \
                (qcow2 disks; raw disks get full points only). The result says which kind was made and, when a full \
                point was made where an incremental one was possible, why (the disk was restored, reverted, resized...).
                --mode image makes the whole-copy backups from before chains (--compress: compressed, qcow2).
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Disk name.", completion: diskNameCompletion) var name: String
        @Option(help: "auto (default: incremental when the chain is intact, else full), full, incremental or image.") var mode: String?
        @Flag(help: "Compress (image backups only; the backup is then qcow2).") var compress = false
        func run() async throws {
            try await Client.run(global) { client in
                var options: [String: DBusValue] = [:]
                if compress { options["compress"] = .boolean(true) }
                if let mode { options["mode"] = .string(mode) }
                let job = try await client.call(try await client.diskPath(name), Client.disk, DiskInterface.backup.name,
                                                [.vardict(options)], privileged: true).first?.string ?? ""
                let result = try await client.follow(job: job, quiet: global.json)
                if global.json { Output.json(result.mapValues(Output.plain)); return }
                let kind = result["kind"]?.string ?? ""
                let parent = result["parent"]?.string.map { " on \($0)" } ?? ""
                print("backup \(result["backup_id"]?.string ?? "") of \(name) done (\(kind)\(parent), \(Output.size(result["size"]?.uint64 ?? 0)))")
                if let reason = result["reason"]?.string { print("full because \(reason)") }
                if case .array(_, let pruned)? = result["pruned"], !pruned.isEmpty {
                    print("pruned (keep_last): \(pruned.compactMap(\.string).joined(separator: ", "))")
                }
            }
        }
    }

    struct Backups: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a disk's backups: the points of its chain and image backups.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Disk name.", completion: diskNameCompletion) var name: String
        func run() async throws {
            try await Client.run(global) { client in
                let path = try await client.diskPath(name)
                let reply = try await client.call(path, Client.disk, DiskInterface.listBackups.name, [.emptyOptions])
                let rows: [(String, UInt64, UInt64, String)] = (reply.first?.arrayElements ?? []).compactMap {
                    guard case .structure(let f) = $0, f.count == 4 else { return nil }
                    return (f[0].string ?? "", f[1].uint64 ?? 0, f[2].uint64 ?? 0, f[3].string ?? "")
                }
                let pointReply = try await client.call(path, Client.disk, DiskInterface.listBackupPoints.name, [.emptyOptions])
                var points: [String: (kind: String, parent: String)] = [:]
                for case .structure(let f) in pointReply.first?.arrayElements ?? [] where f.count == 6 {
                    points[f[0].string ?? ""] = (f[1].string ?? "", f[2].string ?? "")
                }
                if global.json {
                    Output.json(rows.map {
                        ["id": $0.0, "created": $0.1, "size": $0.2, "sha256": $0.3, "kind": points[$0.0]?.kind ?? "image",
                         "parent": points[$0.0]?.parent ?? ""] as [String: Any]
                    })
                    return
                }
                let formatter = ISO8601DateFormatter()
                Output.table(["BACKUP", "KIND", "PARENT", "CREATED", "SIZE", "DIGEST"], rows.map {
                    [$0.0, points[$0.0]?.kind ?? "image", points[$0.0]?.parent ?? "", formatter.string(from: Date(timeIntervalSince1970: TimeInterval($0.1))),
                     Output.size($0.2), String($0.3.prefix(16)) + "…"]
                })
            }
        }
    }

    struct DeleteBackup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "delete-backup",
            abstract: "Delete a backup (a job); a point's data the next point needs is merged into it first.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Disk name.", completion: diskNameCompletion) var name: String
        @Argument(help: "Backup id (see 'mvctl disk backups').") var backup: String
        func run() async throws {
            try await Client.run(global) { client in
                let job = try await client.call(try await client.diskPath(name), Client.disk, DiskInterface.deleteBackup.name, [.string(backup), .emptyOptions],
                                                privileged: true).first?.string ?? ""
                _ = try await client.follow(job: job, quiet: global.json)
                if global.json { Output.json(["disk": name, "deleted": backup]) } else { print("deleted backup \(backup) of \(name)") }
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-check a backup without touching the disk (a job).",
            discussion: "A point is checked with every point of its chain, block by block against their indexes; an image backup against its sha256.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Disk name.", completion: diskNameCompletion) var name: String
        @Argument(help: "Backup id (see 'mvctl disk backups').") var backup: String
        func run() async throws {
            try await Client.run(global) { client in
                let job = try await client.call(try await client.diskPath(name), Client.disk, DiskInterface.verifyBackup.name, [.string(backup), .emptyOptions],
                                                privileged: true).first?.string ?? ""
                let result = try await client.follow(job: job, quiet: global.json)
                if global.json { Output.json(result.mapValues(Output.plain)); return }
                print("backup \(backup) of \(name) is intact (\(result["points_checked"]?.uint64 ?? 0) points checked, digest \(result["digest"]?.string ?? ""))")
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore a disk from any point of its chain or an image backup (checked bit-exact; a job).",
            discussion: """
                Without --as the disk is replaced (it must not be in use). With --as NAME the backup becomes a new disk NAME \
                of the same format and the disk itself is not touched (it may be in use by a running VM).
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Disk name.", completion: diskNameCompletion) var name: String
        @Argument(help: "Backup id (see 'mvctl disk backups').") var backup: String
        @Option(name: .customLong("as"), help: ArgumentHelp("Make a new disk of this name instead of replacing the disk.", valueName: "name")) var newName: String?
        func run() async throws {
            try await Client.run(global) { client in
                let options: DBusValue = newName.map { .vardict(["new_name": .string($0)]) } ?? .emptyOptions
                let job = try await client.call(try await client.diskPath(name), Client.disk, DiskInterface.restore.name, [.string(backup), options],
                                                privileged: true).first?.string ?? ""
                _ = try await client.follow(job: job, quiet: global.json)
                if global.json {
                    Output.json(["disk": newName ?? name, "restored": backup])
                } else if let newName {
                    print("restored \(backup) of \(name) as new disk \(newName)")
                } else {
                    print("restored \(name) from \(backup)")
                }
            }
        }
    }

    struct Snapshot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Internal snapshots of a qcow2 disk.",
            subcommands: [Create.self, Revert.self, Delete.self, List.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Take a snapshot (names vm-* and auto-* are reserved).")
            @OptionGroup var global: GlobalOptions
            @Argument(help: "Disk name.", completion: diskNameCompletion) var name: String
            @Argument(help: "Snapshot name.") var snapshot: String
            func run() async throws { try await Disk.snapshotCall(global, name, DiskInterface.createSnapshot.name, snapshot, done: "snapshot \(snapshot) of \(name) taken") }
        }

        struct Revert: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Return the disk to a snapshot.")
            @OptionGroup var global: GlobalOptions
            @Argument(help: "Disk name.", completion: diskNameCompletion) var name: String
            @Argument(help: "Snapshot name.") var snapshot: String
            func run() async throws { try await Disk.snapshotCall(global, name, DiskInterface.revertSnapshot.name, snapshot, done: "\(name) reverted to \(snapshot)") }
        }

        struct Delete: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Delete a snapshot.")
            @OptionGroup var global: GlobalOptions
            @Argument(help: "Disk name.", completion: diskNameCompletion) var name: String
            @Argument(help: "Snapshot name.") var snapshot: String
            func run() async throws { try await Disk.snapshotCall(global, name, DiskInterface.deleteSnapshot.name, snapshot, done: "deleted snapshot \(snapshot) of \(name)") }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List a disk's snapshots.")
            @OptionGroup var global: GlobalOptions
            @Argument(help: "Disk name.", completion: diskNameCompletion) var name: String
            func run() async throws {
                try await Client.run(global) { client in
                    let props = try await client.properties(try await client.diskPath(name), Client.disk)
                    let rows: [(String, UInt64)] = (props["Snapshots"]?.arrayElements ?? []).compactMap {
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

    static func snapshotCall(_ global: GlobalOptions, _ name: String, _ member: String, _ snapshot: String, done: String) async throws {
        try await Client.run(global) { client in
            _ = try await client.call(try await client.diskPath(name), Client.disk, member, [.string(snapshot), .emptyOptions], privileged: true)
            if global.json { Output.json(["disk": name, "snapshot": snapshot]) } else { print(done) }
        }
    }

    struct Jobs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the service's jobs (running and recently finished).")
        @OptionGroup var global: GlobalOptions
        func run() async throws {
            try await Client.run(global) { client in
                let jobs = try await client.managedObjects(interface: JobInterface.name).sorted { $0.key < $1.key }
                if global.json {
                    Output.json(jobs.map { path, props in var out = props.mapValues(Output.plain); out["ObjectPath"] = path; return out })
                    return
                }
                Output.table(["JOB", "OPERATION", "STATE", "PROGRESS", "ERROR"], jobs.map { path, p in
                    [String(path.split(separator: "/").last ?? ""), p["Operation"]?.string ?? "", p["State"]?.string ?? "",
                     (p["ProgressValid"]?.bool ?? false) ? "\(Int((p["Progress"]?.double ?? 0) * 100))%" : "-", p["Error"]?.string ?? ""]
                })
            }
        }
    }

    struct JobCancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "job-cancel", abstract: "Cancel a running job (another user's needs job.cancel-other).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Job number (see 'mvctl disk jobs').") var job: UInt64
        func run() async throws {
            try await Client.run(global) { client in
                _ = try await client.call(ObjectPaths.job(job), JobInterface.name, JobInterface.cancel.name, [.emptyOptions], privileged: true)
                if global.json { Output.json(["cancelled": job]) } else { print("cancel requested for job \(job)") }
            }
        }
    }
}

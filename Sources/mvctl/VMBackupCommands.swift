import ArgumentParser
import ControllerAPI
import Foundation
import SDBus

/// `mvctl vm backup`, `vm restore`, `vm backups`: points of all of a VM's disks at once.
extension VM {
    struct Backup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Back up every managed disk of a VM together: one point of each (a job).",
            discussion: """
                While the VM runs, the points are taken through its qemu in one transaction (consistent across disks as \
                a power cut would leave them); while it is stopped, one after the other. Each disk point is also a point \
                of that disk's chain ('mvctl disk backups').
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "VM name.", completion: .shellCommand("mvctl vm list --names 2>/dev/null")) var name: String
        @Option(help: "auto (default: incremental where a disk's chain is intact, else full), full or incremental.") var mode: String?
        func run() async throws {
            try await Client.run(global) { client in
                var options: [String: DBusValue] = [:]
                if let mode { options["mode"] = .string(mode) }
                let job = try await client.call(try await client.vmPath(name), VM.interface, VMInterface.backup.name, [.vardict(options)],
                                                privileged: true).first?.string ?? ""
                let result = try await client.follow(job: job, quiet: global.json)
                if global.json { Output.json(result.mapValues(Output.plain)); return }
                let disks = result["disks"]?.arrayElements?.compactMap(\.string) ?? []
                let kinds = result["kinds"]?.arrayElements?.compactMap(\.string) ?? []
                let each = zip(disks, kinds).map { "\($0) \($1)" }.joined(separator: ", ")
                print("backup \(result["backup_id"]?.string ?? "") of \(name) done (\(each); \(Output.size(result["size"]?.uint64 ?? 0)))")
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Restore every disk of a shut-off VM from one of its backups (checked bit-exact; a job).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "VM name.", completion: .shellCommand("mvctl vm list --names 2>/dev/null")) var name: String
        @Argument(help: "Backup id (see 'mvctl vm backups').") var backup: String
        func run() async throws { try await VM.job(global, name, VMInterface.restore.name, [.string(backup), .emptyOptions], done: "restored \(name) from \(backup)") }
    }

    struct Backups: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a VM's backups (made by 'mvctl vm backup') and the disk points each holds.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "VM name.", completion: .shellCommand("mvctl vm list --names 2>/dev/null")) var name: String
        func run() async throws {
            try await Client.run(global) { client in
                let reply = try await client.call(try await client.vmPath(name), VM.interface, VMInterface.listBackups.name, [.emptyOptions])
                let rows: [(String, UInt64, [String])] = (reply.first?.arrayElements ?? []).compactMap {
                    guard case .structure(let f) = $0, f.count == 3 else { return nil }
                    return (f[0].string ?? "", f[1].uint64 ?? 0, f[2].arrayElements?.compactMap(\.string) ?? [])
                }
                if global.json { Output.json(rows.map { ["id": $0.0, "created": $0.1, "points": $0.2] as [String: Any] }); return }
                let formatter = ISO8601DateFormatter()
                Output.table(["BACKUP", "CREATED", "POINTS"], rows.map { [$0.0, formatter.string(from: Date(timeIntervalSince1970: TimeInterval($0.1))), $0.2.joined(separator: " ")] })
            }
        }
    }
}

import ArgumentParser
import ControllerAPI
import Foundation
import SDBus

extension Disk {
    struct Resize: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Grow or shrink a disk with its last partition and filesystem (a job).",
            discussion: """
                SIZE is the new virtual size: bytes or a number with K, M, G or T, or +N/-N relative \
                to the current size. Growing also grows the last partition and its ext2/3/4, xfs or \
                btrfs filesystem (--image-only skips that). Shrinking needs --shrink, checks the \
                filesystem first and is refused below its minimum size plus a margin; XFS cannot \
                shrink. On a disk a running VM uses, only growing works: the image grows live and \
                the guest grows its own filesystem. The work happens on a copy that replaces the \
                disk at the end, so a cancel or failure leaves the disk as it was.
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Disk name.", completion: diskNameCompletion) var name: String
        @Argument(help: "New size, e.g. 20G, +5G or -1G.") var size: String
        @Flag(help: "Allow making the disk smaller.") var shrink = false
        @Flag(help: "Change the image only, not the partition and filesystem.") var imageOnly = false

        func run() async throws {
            try await Client.run(global) { client in
                let path = try await client.diskPath(name)
                let current = try await client.properties(path, Client.disk)["VirtualSize"]?.uint64 ?? 0
                guard let bytes = Output.parseSize(size, relativeTo: current) else {
                    throw ValidationError("invalid size '\(size)': use bytes, a number with K, M, G or T, or +N/-N")
                }
                var options: [String: DBusValue] = [:]
                if shrink { options["shrink"] = .boolean(true) }
                if imageOnly { options["filesystem"] = .boolean(false) }
                let job = try await client.call(path, Client.disk, DiskInterface.resize.name, [.uint64(bytes), .vardict(options)], privileged: true).first?.string ?? ""
                let result = try await client.follow(job: job, quiet: global.json)
                if global.json { Output.json(result.mapValues(Output.plain)); return }
                let fs = result["filesystem"]?.string ?? ""
                let changed = result["filesystem_grown"]?.bool == true ? "grown" : result["filesystem_shrunk"]?.bool == true ? "shrunk" : "unchanged"
                print("resized \(name) to \(Output.size(bytes))\(fs.isEmpty ? "" : "; \(fs) filesystem \(changed)")")
                if let note = result["note"]?.string, !note.isEmpty { print("note: \(note)") }
            }
        }
    }

    struct Format: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a partition table and a filesystem onto a disk (a job; erases it).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Disk name.", completion: diskNameCompletion) var name: String
        @Argument(help: "Filesystem: ext2, ext3, ext4, xfs, btrfs or vfat.") var fstype: String
        @Option(help: "Partition table: gpt, mbr or none (filesystem on the whole disk).") var partitionTable = "gpt"
        @Option(help: "Filesystem label.") var label: String?

        func run() async throws {
            var options: [String: DBusValue] = ["partition_table": .string(partitionTable)]
            if let label { options["label"] = .string(label) }
            try await Client.run(global) { client in
                let path = try await client.diskPath(name)
                let job = try await client.call(path, Client.disk, DiskInterface.format.name, [.string(fstype), .vardict(options)], privileged: true).first?.string ?? ""
                let result = try await client.follow(job: job, quiet: global.json)
                if global.json { Output.json(result.mapValues(Output.plain)) } else {
                    print("formatted \(name): \(partitionTable), \(fstype) on \(result["device"]?.string ?? "?")")
                }
            }
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Recognise the operating system on a disk and measure its filesystems (a job).",
            discussion: """
                Runs an Inspect job, then prints what it found (GetInspection): the operating \
                system and the filesystems with their usage. --last prints the last inspection \
                without a new one. Both need the disk.inspect action: what a guest wrote is shown \
                only to those allowed to look inside its disk, and escaped on a terminal.
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Disk name.", completion: diskNameCompletion) var name: String
        @Flag(help: "Show the last inspection instead of inspecting again.") var last = false

        func run() async throws {
            try await Client.run(global) { client in
                let path = try await client.diskPath(name)
                if !last {
                    let job = try await client.call(path, Client.disk, DiskInterface.inspect.name, [.emptyOptions], privileged: true).first?.string ?? ""
                    _ = try await client.follow(job: job, quiet: global.json)
                }
                let found = try await client.call(path, Client.disk, DiskInterface.getInspection.name, [.emptyOptions], privileged: true)
                    .first?.stringKeyedDictionary ?? [:]
                if global.json { Output.json(found.mapValues(Output.plain)); return }
                guard let when = found["inspected"]?.uint64 else { print("\(name) was never inspected (or was formatted since)"); return }
                let os = found["os_type"]?.string ?? ""
                if os.isEmpty { print("operating system: none recognised") } else {
                    let text = """
                        \(found["product_name"]?.string ?? "") (\(os), \(found["distro"]?.string ?? ""), version \
                        \(found["version"]?.string ?? ""), hostname \(found["hostname"]?.string ?? ""))
                        """
                    print("operating system: " + TerminalText.escape(text))
                }
                if last { print("inspected: \(Output.date(when))") }
                Output.table(["FILESYSTEM", "SIZE", "USED", "AVAILABLE", "USE"], usageRows(found["usage"]))
            }
        }
    }

    struct Ls: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a directory inside a disk image (a symlink shows as NAME -> TARGET).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Disk name.", completion: diskNameCompletion) var name: String
        @Argument(help: "Absolute directory inside the image.") var guestPath = "/"

        func run() async throws {
            try await Client.run(global) { client in
                let path = try await client.diskPath(name)
                let entries = try await client.call(path, Client.disk, DiskInterface.listDirectory.name, [.string(guestPath), .emptyOptions],
                                                    privileged: true).first?.arrayElements ?? []
                let rows = entries.compactMap { e -> [String]? in
                    guard case .structure(let f) = e, f.count == 6 else { return nil }
                    return [String(format: "%06o", Int(f[3].uint64 ?? 0)), Output.size(f[2].uint64 ?? 0), f[1].string ?? "",
                            Output.date(f[4].uint64 ?? 0), f[0].string ?? "", f[5].string ?? ""]
                }
                if global.json {
                    Output.json(rows.map { ["mode": $0[0], "size": $0[1], "type": $0[2], "mtime": $0[3], "name": $0[4], "target": $0[5]] })
                } else {
                    Output.table(["MODE", "SIZE", "TYPE", "MODIFIED", "NAME"],
                                 rows.map { Array($0[0..<4]) + [$0[5].isEmpty ? $0[4] : "\($0[4]) -> \($0[5])"] })
                }
            }
        }
    }

    struct Cat: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a file from inside a disk image (at most 16 MiB).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Disk name.", completion: diskNameCompletion) var name: String
        @Argument(help: "Absolute path of the file inside the image.") var guestPath: String
        @Flag(help: "Write control characters to a terminal as they are (by default they are shown escaped there).") var raw = false

        func run() async throws {
            try await Client.run(global) { client in
                let path = try await client.diskPath(name)
                let bytes = try await client.call(path, Client.disk, DiskInterface.readFile.name, [.string(guestPath), .emptyOptions], privileged: true)
                    .first?.byteArray ?? []
                // To a terminal the bytes are shown, not obeyed (escape sequences a guest
                // wrote into the file); to a pipe or file they are written exactly.
                if isatty(STDOUT_FILENO) == 1 && !raw {
                    FileHandle.standardOutput.write(Data(TerminalText.escapeContent(bytes).utf8))
                } else {
                    FileHandle.standardOutput.write(Data(bytes))
                }
            }
        }
    }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a file inside a disk image from a local file or stdin (atomic; at most 16 MiB).",
            discussion: "An existing file keeps its owner and mode unless --mode is given; a new one gets 0644.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Disk name.", completion: diskNameCompletion) var name: String
        @Argument(help: "Absolute path of the file inside the image.") var guestPath: String
        @Argument(help: "Local file to copy ('-' or omitted: standard input).", completion: .file()) var source = "-"
        @Option(help: "Permission bits in octal, e.g. 0600.") var mode: String?

        func run() async throws {
            var options: [String: DBusValue] = [:]
            if let mode {
                guard let bits = UInt32(mode, radix: 8), bits <= 0o7777 else { throw ValidationError("invalid mode '\(mode)': octal, up to 7777") }
                options["mode"] = .uint32(bits)
            }
            let data: Data
            if source == "-" { data = FileHandle.standardInput.readDataToEndOfFile() } else {
                guard let d = FileManager.default.contents(atPath: source) else { throw ValidationError("cannot read \(source)") }
                data = d
            }
            try await Client.run(global) { client in
                let path = try await client.diskPath(name)
                _ = try await client.call(path, Client.disk, DiskInterface.writeFile.name, [.string(guestPath), .bytes([UInt8](data)), .vardict(options)], privileged: true)
                if !global.json { print("wrote \(data.count) bytes to \(guestPath) in \(name)") }
            }
        }
    }

    struct Autogrow: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show or set a disk's AutoGrow policy.",
            discussion: """
                When a usage sample (or Inspect) finds a filesystem fuller than --threshold, the \
                service signals UsageHigh and, if enabled, grows the disk and its filesystem by \
                --step, never past --max: at once when no VM runs on the disk, otherwise when the \
                VM stops. Without options: shows the policy and the last usage sample (the sample \
                only to those allowed the disk.inspect action: it comes from inside the image).
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Disk name.", completion: diskNameCompletion) var name: String
        @Option(help: "on or off.") var enabled: String?
        @Option(help: "Fraction used that triggers growth, 0.05-0.99.") var threshold: Double?
        @Option(help: "How much to grow each time, e.g. 2G.") var step: String?
        @Option(help: "Largest size to grow to, e.g. 100G.") var max: String?

        func run() async throws {
            var policy: [String: DBusValue] = [:]
            if let enabled { policy["enabled"] = .boolean(try onOff(enabled, "--enabled")) }
            if let threshold { policy["threshold"] = .double(threshold) }
            for (key, text) in [("step", step), ("max", max)] {
                guard let text else { continue }
                guard let bytes = Output.parseSize(text) else { throw ValidationError("invalid --\(key) '\(text)'") }
                policy[key] = .uint64(bytes)
            }
            try await setPolicy(global, disk: name, DiskInterface.setAutoGrow.name, policy, show: ["AutoGrow", "UsageSampled"], usage: true)
        }
    }

    struct Versioning: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show or set a disk's automatic snapshot policy (qcow2).",
            discussion: """
                Snapshots named auto-<UTC time> are taken every --interval seconds while no running \
                VM uses the disk and the image changed since the last one, and (--on-stop on) each \
                time the VM using it stops; the oldest auto-* are deleted beyond --keep. Snapshots \
                you create yourself are never deleted: that is how a version is kept.
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Disk name.", completion: diskNameCompletion) var name: String
        @Option(help: "on or off.") var enabled: String?
        @Option(help: "Seconds between snapshots (0: only at VM stop; otherwise at least 5).") var interval: UInt32?
        @Option(help: "How many auto-* snapshots to keep (1-1000).") var keep: UInt32?
        @Option(help: "on or off: take one whenever the VM using the disk stops.") var onStop: String?

        func run() async throws {
            var policy: [String: DBusValue] = [:]
            if let enabled { policy["enabled"] = .boolean(try onOff(enabled, "--enabled")) }
            if let onStop { policy["on_stop"] = .boolean(try onOff(onStop, "--on-stop")) }
            if let interval { policy["interval_s"] = .uint32(interval) }
            if let keep { policy["keep"] = .uint32(keep) }
            try await setPolicy(global, disk: name, DiskInterface.setVersioning.name, policy, show: ["Versioning", "Snapshots"])
        }
    }
}

extension Disk {
    struct BackupPolicy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "backup-policy",
            abstract: "Show or set a disk's backup policy: retention, full points, a schedule.",
            discussion: """
                --keep-last N deletes the oldest points after each backup until N are left (their data \
                merged into the next point, which stays restorable); --full-every N makes every Nth point \
                of a chain full; --max-chain N makes a point full when a restore would read N points; \
                --interval S backs the disk up every S seconds (at least 60) while no VM runs on it. \
                0 turns each off.
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Disk name.", completion: diskNameCompletion) var name: String
        @Option(help: "Points to keep (0: all).") var keepLast: UInt32?
        @Option(help: "Every Nth point is full (0: off).") var fullEvery: UInt32?
        @Option(help: "Longest chain a restore reads (0: no limit).") var maxChain: UInt32?
        @Option(help: "Seconds between scheduled backups (0: none; else 60 or more).") var interval: UInt32?

        func run() async throws {
            var policy: [String: DBusValue] = [:]
            if let keepLast { policy["keep_last"] = .uint32(keepLast) }
            if let fullEvery { policy["full_every"] = .uint32(fullEvery) }
            if let maxChain { policy["max_chain"] = .uint32(maxChain) }
            if let interval { policy["interval_s"] = .uint32(interval) }
            try await setPolicy(global, disk: name, DiskInterface.setBackupPolicy.name, policy, show: ["BackupPolicy"])
        }
    }
}

/// `on` → true, `off` → false, anything else a usage error naming `flag`.
func onOff(_ value: String, _ flag: String) throws -> Bool {
    guard value == "on" || value == "off" else { throw ValidationError("\(flag) takes on or off, not '\(value)'") }
    return value == "on"
}

/// Sends a policy (if any key was given) and shows the resulting properties `show`.
/// Sets a disk policy (when `policy` has keys) and shows the properties named in `show`;
/// `usage` adds the last usage sample as FilesystemUsage, when the caller may read it
/// (GetFilesystemUsage, disk.inspect; without it the figures are left out, said on stderr).
func setPolicy(_ global: GlobalOptions, disk name: String, _ method: String, _ policy: [String: DBusValue], show: [String],
               usage: Bool = false) async throws {
    try await Client.run(global) { client in
        let path = try await client.diskPath(name)
        if !policy.isEmpty { _ = try await client.call(path, Client.disk, method, [.vardict(policy)], privileged: true) }
        var props = try await client.properties(path, Client.disk).filter { show.contains($0.key) }
        if usage {
            do {
                let reply = try await client.call(path, Client.disk, DiskInterface.getFilesystemUsage.name, [.emptyOptions], privileged: true)
                props["FilesystemUsage"] = reply.count == 2 ? reply[1] : nil
            } catch let error as DBusError where Client.exitCode(for: error) == 4 {
                FileHandle.standardError.write(Data("filesystem usage not shown: \(error.message)\n".utf8))
            }
        }
        Output.object(path: path, props, json: global.json) { _, _ in nil }
    }
}

/// `a(sttt)` usage rows as table rows: device (escaped), size, used, available, use %.
func usageRows(_ value: DBusValue?) -> [[String]] {
    (value?.arrayElements ?? []).compactMap { row -> [String]? in
        guard case .structure(let f) = row, f.count == 4 else { return nil }
        let size = f[1].uint64 ?? 0, used = f[2].uint64 ?? 0
        return [f[0].string ?? "", Output.size(size), Output.size(used), Output.size(f[3].uint64 ?? 0), size == 0 ? "-" : "\(used * 100 / size)%"]
    }
}

import ArgumentParser
import ControllerAPI
import Foundation
import SDBus

struct Settings: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check, apply and enforce the host settings controllers need.",
        discussion: """
            Settings: user-groups (the configured user is in kvm, libvirt, libvirt-dbus), \
            initramfs-modules (9p modules load at boot), entropy-rngd (rngd feeds /dev/random \
            from the hardware RNG), libvirtd-enabled (libvirtd starts at boot). \
            The service watches them and, while enforcing, reverts drift on its own.
            """,
        subcommands: [Check.self, Apply.self, Enforce.self, AddUserToGroups.self, Watch.self])

    static let path = ObjectPaths.settings
    static let interface = SettingsInterface.name

    /// `(id, description, compliant, detail)` rows of an `a(ssbs)` value.
    static func rows(_ value: DBusValue?) -> [(id: String, description: String, compliant: Bool, detail: String)] {
        guard case .array(_, let items)? = value else { return [] }
        return items.compactMap { item in
            guard case .structure(let f) = item, f.count == 4 else { return nil }
            return (f[0].string ?? "", f[1].string ?? "", f[2].bool ?? false, f[3].string ?? "")
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every setting now.",
            discussion: "Exit code 2 when a setting is not compliant (0 when all are).")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            var allCompliant = true
            try await Client.run(global) { client in
                let reply = try await client.call(Settings.path, Settings.interface, SettingsInterface.check.name, [.emptyOptions])
                let rows = Settings.rows(reply.first)
                allCompliant = rows.allSatisfy(\.compliant)
                if global.json {
                    Output.json(rows.map { ["id": $0.id, "description": $0.description, "compliant": $0.compliant, "detail": $0.detail] as [String: Any] })
                } else {
                    let props = try await client.properties(Settings.path, Settings.interface)
                    Output.table(["", "SETTING", "DETAIL"], rows.map { [$0.compliant ? "✓" : "✗", $0.id, $0.detail] })
                    print("enforcing: \((props["Enforcing"]?.bool ?? false) ? "on" : "off")")
                }
            }
            if !allCompliant { throw ExitCode(2) }
        }
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make settings hold now (all when no ID is given); waits for an initramfs rebuild.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Setting ids: user-groups, initramfs-modules, entropy-rngd, libvirtd-enabled.") var ids: [String] = []

        func run() async throws {
            try await Client.run(global) { client in
                let reply = try await client.call(Settings.path, Settings.interface, SettingsInterface.apply.name, [.strings(ids), .emptyOptions], privileged: true)
                guard case .array(_, let items)? = reply.first else { return }
                let results: [(String, Bool, String)] = items.compactMap {
                    guard case .structure(let f) = $0, f.count == 3 else { return nil }
                    return (f[0].string ?? "", f[1].bool ?? false, f[2].string ?? "")
                }
                if global.json {
                    Output.json(results.map { ["id": $0.0, "changed": $0.1, "detail": $0.2] as [String: Any] })
                } else {
                    Output.table(["SETTING", "CHANGED", "DETAIL"], results.map { [$0.0, $0.1 ? "yes" : "no", $0.2] })
                }
            }
        }
    }

    struct Enforce: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn automatic reverting on or off (kept across restarts); 'on' also re-arms settings stopped for flapping.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "on or off.") var state: String

        func validate() throws {
            guard ["on", "off"].contains(state) else { throw ValidationError("expected 'on' or 'off', got '\(state)'") }
        }

        func run() async throws {
            try await Client.run(global) { client in
                _ = try await client.call(Settings.path, Settings.interface, SettingsInterface.setEnforcing.name, [.boolean(state == "on"), .emptyOptions], privileged: true)
                if global.json { Output.json(["enforcing": state == "on"]) } else { print("enforcing \(state)") }
            }
        }
    }

    struct AddUserToGroups: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add-user-to-groups",
            abstract: "Add a user to groups from the service's allow-list (allowed_groups).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "User name.") var user: String
        @Argument(help: "Groups, e.g. kvm libvirt.") var groups: [String]

        func run() async throws {
            try await Client.run(global) { client in
                _ = try await client.call(Settings.path, Settings.interface, SettingsInterface.addUserToGroups.name,
                                          [.string(user), .strings(groups), .emptyOptions], privileged: true)
                if global.json { Output.json(["user": user, "groups": groups]) } else { print("\(user) is in \(groups.joined(separator: ", "))") }
            }
        }
    }

    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print Drifted and Reverted signals as they arrive (Ctrl-C stops).")
        @OptionGroup var global: GlobalOptions
        @Option(help: ArgumentHelp("Exit after this many signals.", valueName: "N")) var count: Int?

        func run() async throws {
            try await Client.run(global) { client in
                let (stream, continuation) = AsyncStream<ReceivedSignal>.makeStream()
                _ = try await client.bus.subscribe(
                    match: "type='signal',sender='\(Client.service)',path='\(Settings.path)',interface='\(Settings.interface)'") {
                    continuation.yield($0)
                }
                // The match is in place once the bus driver answered a later call.
                _ = try await client.bus.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                                              interface: "org.freedesktop.DBus", member: "GetId")
                if !global.json { print("watching settings (Ctrl-C to stop)") }
                fflush(nil)
                var seen = 0
                for await signal in stream where signal.member == "Drifted" || signal.member == "Reverted" {
                    let a = signal.arguments
                    let time = ISO8601DateFormatter().string(from: Date())
                    if global.json {
                        var line: [String: Any] = ["time": time, "signal": signal.member, "id": a.first?.string ?? ""]
                        if signal.member == "Reverted" {
                            line["success"] = a.count > 1 ? (a[1].bool ?? false) : false
                            line["detail"] = a.count > 2 ? (a[2].string ?? "") : ""
                        } else {
                            line["detail"] = a.count > 1 ? (a[1].string ?? "") : ""
                        }
                        if let data = try? JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]) {
                            Swift.print(String(decoding: data, as: UTF8.self))   // JSON lines stay exact
                        }
                    } else if signal.member == "Drifted" {
                        print("\(time) drifted  \(a.first?.string ?? ""): \(a.count > 1 ? a[1].string ?? "" : "")")
                    } else {
                        let ok = a.count > 1 ? (a[1].bool ?? false) : false
                        print("\(time) reverted \(a.first?.string ?? "") \(ok ? "ok" : "FAILED"): \(a.count > 2 ? a[2].string ?? "" : "")")
                    }
                    fflush(nil)
                    seen += 1
                    if let count, seen >= count { break }
                }
            }
        }
    }
}

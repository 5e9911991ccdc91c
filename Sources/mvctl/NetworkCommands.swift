import ArgumentParser
import ControllerAPI
import Foundation
import SDBus

struct Network: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network",
        abstract: "Define, start, stop and inspect the host's virtual networks (libvirt networks).",
        discussion: """
            An isolated network has no host address and no DHCP: the VMs on it reach each \
            other and nothing else (the internal link of a router and its interface \
            controllers). A nat network is libvirt's NAT to the host, for a router's outside \
            NIC. Changing networks needs the polkit action org.multiverse.controller.network.manage.
            """,
        subcommands: [List.self, Show.self, Define.self, Simple<NetworkStart>.self, Simple<NetworkStop>.self,
                      Simple<NetworkUndefine>.self, Autostart.self])

    static let interface = NetworkInterface.name

    /// A network command that looks the network up by name and calls one method.
    static func call(_ global: GlobalOptions, _ name: String, _ member: String, _ args: [DBusValue], done: String) async throws {
        try await Client.run(global) { client in
            let path = try await client.networkPath(name)
            _ = try await client.call(path, interface, member, args, privileged: true)
            if global.json { Output.json(["network": name, "done": member]) } else { print(done) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the networks with kind, bridge, state, whether the host is kept out of an isolated one, and the VMs on them.")
        @OptionGroup var global: GlobalOptions
        @Flag(help: ArgumentHelp("Only the names, one per line (for shell completion).", visibility: .hidden)) var names = false

        func run() async throws {
            try await Client.run(global) { client in
                let vmNames = try await client.managedObjects(interface: VM.interface).mapValues { $0["Name"]?.string ?? "" }
                let networks = try await client.managedObjects(interface: Network.interface)
                    .map(\.value).sorted { ($0["Name"]?.string ?? "") < ($1["Name"]?.string ?? "") }
                if names { for n in networks { print(n["Name"]?.string ?? "") }; return }
                if global.json { Output.json(networks.map { $0.mapValues(Output.plain) }); return }
                // HOST-ISOLATED: whether the host takes no part in a running isolated network's bridge.
                Output.table(["NAME", "KIND", "BRIDGE", "ACTIVE", "AUTOSTART", "HOST-ISOLATED", "VMS"], networks.map { n in
                    let vms = (n["ConnectedVMs"]?.arrayElements ?? []).compactMap { $0.string.flatMap { vmNames[$0] } }
                    let active = n["Active"]?.bool ?? false
                    let sealed = n["Kind"]?.string == "isolated" && active ? ((n["HostIsolated"]?.bool ?? false) ? "yes" : "no") : "-"
                    return [n["Name"]?.string ?? "", n["Kind"]?.string ?? "", n["Bridge"]?.string ?? "",
                            active ? "yes" : "no", (n["Autostart"]?.bool ?? false) ? "yes" : "no", sealed,
                            vms.joined(separator: ",")]
                })
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one network's properties.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Network name.", completion: .shellCommand("mvctl network list --names 2>/dev/null")) var name: String

        func run() async throws {
            try await Client.run(global) { client in
                let path = try await client.networkPath(name)
                Output.object(path: path, try await client.properties(path, Network.interface), json: global.json)
            }
        }
    }

    struct Define: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Define and start a network.",
            discussion: "Examples: mvctl network define multiverse isolated; mvctl network define outside nat --ipv4 10.10.0.1/24")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Network name (1-64 characters of A-Z a-z 0-9 . _ -).") var name: String
        @Argument(help: "isolated or nat.") var kind: String
        @Option(help: ArgumentHelp("The host's address and prefix on a nat network, e.g. 10.10.0.1/24.", valueName: "CIDR")) var ipv4: String?
        @Option(help: ArgumentHelp("DHCP on a nat network: on (the default) or off.", valueName: "on|off")) var dhcp: String?
        @Option(help: ArgumentHelp("The host bridge's name (libvirt picks virbrN otherwise).", valueName: "NAME")) var bridge: String?
        @Flag(help: "Do not set libvirt's autostart flag.") var noAutostart = false
        @Flag(help: "Define it without starting it.") var noStart = false

        func validate() throws {
            if let dhcp, !["on", "off"].contains(dhcp) { throw ValidationError("--dhcp: expected 'on' or 'off', got '\(dhcp)'") }
        }

        func run() async throws {
            var options: [String: DBusValue] = [:]
            if let ipv4 { options["ipv4"] = .string(ipv4) }
            if let dhcp { options["dhcp"] = .boolean(dhcp == "on") }
            if let bridge { options["bridge"] = .string(bridge) }
            if noAutostart { options["autostart"] = .boolean(false) }
            if noStart { options["start"] = .boolean(false) }
            try await Client.run(global) { client in
                let path = try await client.callManager(ManagerInterface.defineNetwork.name, [.string(name), .string(kind), .vardict(options)],
                                                        privileged: true).first?.string ?? ""
                if global.json { Output.json(["network": name, "path": path]) } else { print("defined network \(name) (\(kind))") }
            }
        }
    }

    /// start, stop and undefine: look the network up, call one method.
    struct Simple<Action: SimpleAction>: AsyncParsableCommand {
        static var configuration: CommandConfiguration { CommandConfiguration(commandName: Action.command, abstract: Action.abstract) }
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Network name.", completion: .shellCommand("mvctl network list --names 2>/dev/null")) var name: String
        func run() async throws { try await Network.call(global, name, Action.method, [.emptyOptions], done: "\(Action.done) network \(name)") }
    }

    struct Autostart: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set libvirt's autostart flag of a network.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Network name.", completion: .shellCommand("mvctl network list --names 2>/dev/null")) var name: String
        @Argument(help: "on or off.") var state: String
        func validate() throws { guard ["on", "off"].contains(state) else { throw ValidationError("expected 'on' or 'off', got '\(state)'") } }
        func run() async throws {
            try await Network.call(global, name, NetworkInterface.setAutostart.name, [.boolean(state == "on"), .emptyOptions],
                                   done: "autostart of network \(name) \(state)")
        }
    }
}

enum NetworkStart: SimpleAction {
    static let command = "start", abstract = "Start a network.", method = NetworkInterface.start.name, done = "started"
}
enum NetworkStop: SimpleAction {
    static let command = "stop", abstract = "Stop a network (refused while a running VM uses it).", method = NetworkInterface.stop.name, done = "stopped"
}
enum NetworkUndefine: SimpleAction {
    static let command = "undefine", abstract = "Remove a network (refused while a running VM uses it).", method = NetworkInterface.undefine.name,
                done = "undefined"
}

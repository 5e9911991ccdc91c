import ArgumentParser
import Foundation
import SDBus

@main
struct MVCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mvctl",
        abstract: "Control the Multiverse controller service (org.multiverse.Controller) over D-Bus.",
        discussion: """
            Privileged commands are authorized by polkit. When standard input is a terminal, \
            mvctl allows interactive authorization and runs pkttyagent so polkit can ask for a \
            password; use --no-ask-password to fail instead.

            Exit codes: 0 success, 1 the service returned an error, 64 usage error, \
            2 a setting is not compliant (settings check), 3 no such object, 4 not authorized \
            (AccessDenied or InteractiveAuthorizationRequired), 5 the bus or the service cannot \
            be reached.
            """,
        version: "0.1.0",
        subcommands: [Status.self, VM.self, Disk.self, Network.self, Settings.self])
}

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("D-Bus address of the system bus to use (default: the system bus).", valueName: "ADDR"))
    var busAddress: String?

    @Flag(name: .long, help: "Print JSON for scripts instead of tables.")
    var json = false

    @Flag(name: .long, help: "Never ask for a password; fail with exit code 4 when polkit wants one.")
    var noAskPassword = false

    @Option(name: .long, help: ArgumentHelp("Reply timeout in seconds for calls that change things (default 600).", valueName: "SECONDS"))
    var callTimeout: Int = 600
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the service's version, libvirt connection and directories.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await Client.run(global) { client in
            let props = try await client.properties(Client.root, Client.manager)
            let rows: [(String, String)] = [
                ("Version", props["Version"]?.string ?? ""),
                ("API version", String(props["APIVersion"]?.uint32 ?? 0)),
                ("libvirt URI", props["LibvirtURI"]?.string ?? ""),
                ("libvirt connected", (props["LibvirtConnected"]?.bool ?? false) ? "yes" : "no"),
                ("Image directory", props["ImageDirectory"]?.string ?? ""),
                ("Backup directory", props["BackupDirectory"]?.string ?? ""),
            ]
            if global.json {
                Output.json(props.mapValues(Output.plain))
            } else {
                for (k, v) in rows { print("\(k.padding(toLength: 18, withPad: " ", startingAt: 0)) \(v)") }
            }
        }
    }
}

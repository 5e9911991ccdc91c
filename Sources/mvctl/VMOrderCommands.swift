import ArgumentParser
import ControllerAPI
import Foundation
import SDBus

// The service's ordered start and stop, the autostart flag that feeds them, and watching
// VMs change state and become ready.
extension VM {
    struct StartAll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "start-all",
            abstract: "Start the VMs with autostart on, in order: network controllers, interface controllers, the rest.",
            discussion: """
                Each group starts only when the one before is ready: running, and for a VM with a \
                readiness channel, its guest sent READY=1 (within the VM's ready timeout, default \
                [vms] ready_timeout_s). A VM not ready in time is destroyed and its fallback started \
                in its place ('mvctl vm autostart NAME on --fallback OTHER').
                """)
        @OptionGroup var global: GlobalOptions
        func run() async throws {
            try await Client.run(global) { client in
                let job = try await client.callManager(ManagerInterface.startAll.name, [.emptyOptions], privileged: true).first?.string ?? ""
                let result = try await client.follow(job: job, quiet: global.json)
                if global.json { Output.json(result.mapValues(Output.plain)); return }
                let started = result["started"]?.stringArray ?? []
                let already = result["already_running"]?.stringArray ?? []
                let ready = result["ready"]?.stringArray ?? []
                print("started: \(started.isEmpty ? "none" : started.joined(separator: ", "))")
                if !already.isEmpty { print("already running: \(already.joined(separator: ", "))") }
                if !ready.isEmpty { print("ready: \(ready.joined(separator: ", "))") }
                for pair in result["replaced"]?.arrayElements ?? [] {
                    guard case .structure(let f) = pair, f.count == 2 else { continue }
                    print("\(f[0].string ?? "") was not ready in time: replaced by \(f[1].string ?? "")")
                }
            }
        }
    }

    struct StopAll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stop-all",
            abstract: "Shut every running VM down in the reverse order: the rest, interface controllers, network controllers.",
            discussion: "The VMs of a group are asked to power off together; one still running after the timeout is destroyed.")
        @OptionGroup var global: GlobalOptions
        @Option(name: .customLong("timeout"), help: ArgumentHelp("Seconds each group gets before its VMs are destroyed (default: [vms] stop_timeout_s).", valueName: "SECONDS"))
        var wait: UInt32?
        func run() async throws {
            try await Client.run(global) { client in
                let options: [String: DBusValue] = wait.map { ["timeout_s": .uint32($0)] } ?? [:]
                let job = try await client.callManager(ManagerInterface.stopAll.name, [.vardict(options)], privileged: true).first?.string ?? ""
                let result = try await client.follow(job: job, quiet: global.json)
                if global.json { Output.json(result.mapValues(Output.plain)); return }
                let stopped = result["stopped"]?.stringArray ?? []
                let destroyed = result["destroyed"]?.stringArray ?? []
                print("stopped: \(stopped.isEmpty ? "none" : stopped.joined(separator: ", "))")
                if !destroyed.isEmpty { print("destroyed after the timeout: \(destroyed.joined(separator: ", "))") }
            }
        }
    }

    struct Autostart: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Include a VM in the service's ordered start, or not; set its fallback and ready timeout.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "VM name.", completion: .shellCommand("mvctl vm list --names 2>/dev/null")) var name: String
        @Argument(help: "on or off.") var state: String
        @Option(help: "The VM 'start-all' starts in this one's place when it is not ready in time ('' clears it).") var fallback: String?
        @Option(help: ArgumentHelp("How long 'start-all' waits for its READY=1 (0: [vms] ready_timeout_s).", valueName: "SECONDS")) var readyTimeout: UInt32?
        func validate() throws { guard ["on", "off"].contains(state) else { throw ValidationError("expected 'on' or 'off', got '\(state)'") } }
        func run() async throws {
            var options: [String: DBusValue] = [:]
            if let fallback { options["fallback"] = .string(fallback) }
            if let readyTimeout { options["ready_timeout_s"] = .uint32(readyTimeout) }
            try await VM.call(global, name, VMInterface.setAutostart.name, [.boolean(state == "on"), .vardict(options)], done: "autostart of \(name) \(state)")
        }
    }

    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print VM state changes and guests becoming ready as they arrive (Ctrl-C stops).",
            discussion: "A line per StateChanged signal (the state and libvirt's reason) and per Ready signal (with the guest's STATUS= line).")
        @OptionGroup var global: GlobalOptions
        @Option(help: ArgumentHelp("Exit after this many changes.", valueName: "N")) var count: Int?

        func run() async throws {
            try await Client.run(global) { client in
                let (stream, continuation) = AsyncStream<ReceivedSignal>.makeStream()
                for member in ["StateChanged", VMInterface.ready.name] {
                    _ = try await client.bus.subscribe(match: "type='signal',sender='\(Client.service)',interface='\(VM.interface)',member='\(member)'") {
                        continuation.yield($0)
                    }
                }
                _ = try await client.bus.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                                              interface: "org.freedesktop.DBus", member: "GetId")
                var names: [String: String] = [:]
                for (path, props) in try await client.managedObjects(interface: VM.interface) { names[path] = props["Name"]?.string }
                if !global.json { print("watching VM state changes and readiness (Ctrl-C to stop)") }
                fflush(nil)
                var seen = 0
                for await signal in stream {
                    let props = signal.member == VMInterface.ready.name || names[signal.path] == nil
                        ? try? await client.properties(signal.path, VM.interface) : nil
                    if let name = props?["Name"]?.string { names[signal.path] = name }
                    let name = names[signal.path] ?? signal.path
                    let state: String, reason: String
                    if signal.member == VMInterface.ready.name {
                        state = "ready"
                        reason = props?["GuestStatus"]?.string ?? ""
                    } else {
                        state = signal.arguments.first?.string ?? ""
                        reason = signal.arguments.count > 1 ? signal.arguments[1].string ?? "" : ""
                    }
                    let time = ISO8601DateFormatter().string(from: Date())
                    if global.json {
                        if let data = try? JSONSerialization.data(withJSONObject: ["time": time, "vm": name, "state": state, "reason": reason], options: [.sortedKeys]) {
                            Swift.print(String(decoding: data, as: UTF8.self))   // JSON lines stay exact
                        }
                    } else {
                        print("\(time) \(name) \(state)\(reason.isEmpty ? "" : " (\(reason))")")
                    }
                    fflush(nil)
                    seen += 1
                    if let count, seen >= count { break }
                }
            }
        }
    }
}

import ArgumentParser
import ControllerAPI
import Foundation
import SDBus

/// A connection to the service with mvctl's error handling and polkit agent.
struct Client {
    static let service = ControllerNames.busName
    static let root = ObjectPaths.root
    static let manager = ManagerInterface.name
    static let disk = DiskInterface.name

    let bus: BusConnection
    let global: GlobalOptions
    /// Whether privileged calls may ask for a password.
    let interactive: Bool

    /// Connects, runs `body`, and turns errors into one clear line and a meaningful exit code.
    static func run(_ global: GlobalOptions, _ body: (Client) async throws -> Void) async throws {
        let bus: BusConnection
        do {
            bus = try await BusConnection.openSystemBus(address: global.busAddress)
        } catch {
            printError("mvctl: cannot connect to the system bus: \(error)")
            throw ExitCode(5)
        }
        let client = Client(bus: bus, global: global, interactive: !global.noAskPassword && isatty(0) == 1)
        do {
            try await body(client)
            await bus.drainAndClose(timeout: .seconds(1))
        } catch let error as DBusError {
            printError("mvctl: \(error.name): \(error.message)")
            throw ExitCode(exitCode(for: error))
        }
    }

    static func exitCode(for error: DBusError) -> Int32 {
        switch error.name {
        case ErrorName.accessDenied.rawValue, ErrorName.interactiveAuthorizationRequired.rawValue: return 4
        case let n where n.hasPrefix(ControllerNames.errorPrefix + "NoSuch"): return 3
        case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner",
             "org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Disconnected": return 5
        default: return 1
        }
    }

    /// Calls a method; privileged calls get the long timeout and, on a terminal, a polkit agent.
    func call(_ path: String, _ interface: String, _ member: String, _ args: [DBusValue], privileged: Bool = false) async throws -> [DBusValue] {
        var agent: PolkitAgent?
        if privileged && interactive { agent = await PolkitAgent.start(for: bus) }
        defer { agent?.stop() }
        return try await bus.call(destination: Self.service, path: path, interface: interface, member: member, args,
                                  timeout: privileged ? .seconds(global.callTimeout) : .seconds(25),
                                  allowInteractiveAuthorization: privileged && interactive)
    }

    func callManager(_ member: String, _ args: [DBusValue], privileged: Bool = false) async throws -> [DBusValue] {
        try await call(Self.root, Self.manager, member, args, privileged: privileged)
    }

    func properties(_ path: String, _ interface: String) async throws -> [String: DBusValue] {
        try await bus.getAllProperties(destination: Self.service, path: path, interface: interface)
    }

    /// Follows a Job until it ends, printing progress to stderr; returns its Result, or
    /// prints its error and exits 1 when it failed or was cancelled.
    func follow(job path: String, quiet: Bool) async throws -> [String: DBusValue] {
        var bar = ProgressBar(terminal: isatty(STDERR_FILENO) == 1)
        while true {
            let props = try await properties(path, JobInterface.name)
            let state = props["State"]?.string ?? ""
            if !quiet {
                bar.show(props["Operation"]?.string ?? "job",
                         props["ProgressValid"]?.bool == true ? props["Progress"]?.double ?? 0 : nil,
                         status: props["Status"]?.string ?? "", done: state != "running")
            }
            if state != "running" {
                guard state == "succeeded" else {
                    printError("mvctl: job \(state): \(props["Error"]?.string ?? "")")
                    throw ExitCode(1)
                }
                return props["Result"]?.stringKeyedDictionary ?? [:]
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    func vmPath(_ name: String) async throws -> String {
        try await callManager(ManagerInterface.getVMByName.name, [.string(name), .emptyOptions]).first?.string ?? ""
    }

    func diskPath(_ name: String) async throws -> String {
        try await callManager(ManagerInterface.getDiskByName.name, [.string(name), .emptyOptions]).first?.string ?? ""
    }

    func networkPath(_ name: String) async throws -> String {
        try await callManager(ManagerInterface.getNetworkByName.name, [.string(name), .emptyOptions]).first?.string ?? ""
    }

    /// Objects implementing `interface`, with that interface's properties, from one GetManagedObjects call.
    func managedObjects(interface: String) async throws -> [String: [String: DBusValue]] {
        let reply = try await bus.call(destination: Self.service, path: Self.root,
                                       interface: "org.freedesktop.DBus.ObjectManager", member: "GetManagedObjects")
        guard case .dictionary(_, _, let objects)? = reply.first else { return [:] }
        var out: [String: [String: DBusValue]] = [:]
        for object in objects {
            guard let path = object.key.string, case .dictionary(_, _, let interfaces) = object.value,
                  let props = interfaces.first(where: { $0.key.string == interface })?.value.stringKeyedDictionary else { continue }
            out[path] = props
        }
        return out
    }
}

/// pkttyagent registered for this client's bus name, so polkit can ask for a password on
/// this terminal (as systemctl does).
struct PolkitAgent {
    let pid: pid_t

    static func start(for bus: BusConnection) async -> PolkitAgent? {
        let path = "/usr/bin/pkttyagent"
        guard FileManager.default.isExecutableFile(atPath: path) else { return nil }
        let name = await bus.uniqueName()
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return nil }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addclose(&actions, fds[0])
        let args = [path, "--notify-fd", String(fds[1]), "--fallback", "--system-bus-name", name]
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let r = posix_spawn(&pid, path, &actions, nil, &argv, environ)
        close(fds[1])
        guard r == 0 else { close(fds[0]); return nil }
        // The agent closes the fd once registered (or exits on failure): wait for EOF.
        var byte: UInt8 = 0
        while read(fds[0], &byte, 1) > 0 {}
        close(fds[0])
        return PolkitAgent(pid: pid)
    }

    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}

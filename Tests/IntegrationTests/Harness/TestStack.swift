import ControllerAPI
import Foundation
import SDBus

/// The real stack for one test suite: a private system bus with a default-deny policy that
/// includes our `dbus/org.multiverse.Controller.conf`, real polkitd in a private mount
/// namespace seeing our actions and a test rule, two test users (one granted by that rule,
/// one not), and the daemon itself on a temporary image directory with libvirt's test driver.
/// Everything is torn down in `stop()`, also when a test failed.
final class TestStack {
    static let grantedUser = "mvtest-granted"
    static let otherUser = "mvtest-other"
    /// Granted the VM actions (org.multiverse.controller.vm.*) only, not network.manage.
    static let vmOnlyUser = "mvtest-vmonly"
    /// The package's appliance user (sysusers): the daemon runs libguestfs' helper as it.
    static let applianceUser = "multiverse-guestfs"
    static let busName = ControllerNames.busName
    static let root = ObjectPaths.root
    static let managerInterface = ManagerInterface.name
    static let diskInterface = DiskInterface.name

    /// The repository (for scripts/ and dbus/).
    static let repo: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url
    }()
    /// libvirt's test driver on the test host file the demo uses too (32 GiB, 16 CPUs, the
    /// "test" VM and "default" network of test:///default).
    static let testHostURI = "test://" + repo.appendingPathComponent("scripts/lib/test-host.xml").path


    /// The built daemon, next to the test bundle.
    static let daemonPath: String = {
        if let p = ProcessInfo.processInfo.environment["MV_DAEMON"] { return p }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = bundle.deletingLastPathComponent()
        if dir.lastPathComponent == "MacOS" || dir.path.hasSuffix(".xctest/Contents") {
            for _ in 0..<3 { dir.deleteLastPathComponent() }
        }
        return dir.appendingPathComponent("multiverse-controllerd").path
    }()

    /// The built mvctl, next to the daemon.
    static var mvctlPath: String { URL(fileURLWithPath: daemonPath).deletingLastPathComponent().appendingPathComponent("mvctl").path }

    let dir: URL
    let imageDir: URL
    /// The sandbox host root (`--host-root`): copies of /etc files made by scripts/make-host-root.
    let hostRoot: URL
    /// Every run of the initramfs rebuild stand-in appends a line here.
    var rebuildLog: String { dir.appendingPathComponent("rebuilds.log").path }
    let libvirtURI: String
    /// The daemon's command line as `scripts/stack daemon prepare` made it (the launcher
    /// of the demo, the browser tests and the benchmarks); the stack runs it itself, to
    /// signal the daemon and read its exit status.
    private var daemonCommand: [String] = []
    /// The networks a real libvirtd (`qemu:///system`) had before this stack started: `stop`
    /// removes the ones the daemon made meanwhile (its internal network), so a run leaves none.
    let networksBefore: Set<String>
    let address: String
    private(set) var daemon: Child?
    /// The connection the typed reads use (`TypedReads.swift`): opened on first use, closed by `stop()`.
    var reader: BusConnection?
    var logPath: String { dir.appendingPathComponent("daemon.log").path }

    /// Starts bus, polkitd and the daemon. `prepareImages` runs before the daemon starts;
    /// the images it placed that `adopt` names (name: format) are adopted with
    /// Manager.AdoptDisk once the daemon runs (an image placed by hand has no format record).
    /// `rebuildSeconds`: how long the initramfs rebuild stand-in takes.
    init(settings: String = "", config: String = "", hostRootOptions: [String] = [], rebuildSeconds: Double = 0,
         libvirtURI: String = TestStack.testHostURI, adopt: [String: String] = [:],
         prepareImages: (URL) throws -> Void = { _ in }) throws {
        self.libvirtURI = libvirtURI
        networksBefore = Self.libvirtNetworks(libvirtURI)
        guard getuid() == 0 else { throw StackError("integration tests need root (users, bind mounts, polkitd)") }
        // The appliance user is the package's (sysusers); the daemon starts libguestfs' helper as it.
        for user in [Self.grantedUser, Self.otherUser, Self.vmOnlyUser, Self.applianceUser] where Command.run("id", ["-u", user]).status != 0 {
            let r = Command.run("/usr/sbin/useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "-G", "kvm", user])
            // A suite in the other lane of scripts/test may have added it just now.
            guard r.ok || Command.run("id", ["-u", user]).status == 0 else { throw StackError("useradd \(user): \(r.all)") }
        }
        dir = URL(fileURLWithPath: "/tmp/mvtest-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        imageDir = dir.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: imageDir, withIntermediateDirectories: true)
        // Every daemon of the suite works on a sandbox host root, never on the real /etc
        // (made by scripts/stack daemon prepare, below).
        hostRoot = dir.appendingPathComponent("hostroot")
        let rule = dir.appendingPathComponent("50-mvtest.rules")
        try """
            // Test rule: the granted test user may do everything of the controller, the VM-only
            // user the VM actions; nobody else gets a rule.
            polkit.addRule(function(action, subject) {
                if (action.id.indexOf("org.multiverse.controller.") == 0 && subject.user == "\(Self.grantedUser)")
                    return polkit.Result.YES;
                if (action.id.indexOf("org.multiverse.controller.vm.") == 0 && subject.user == "\(Self.vmOnlyUser)")
                    return polkit.Result.YES;
            });
            """.write(to: rule, atomically: true, encoding: .utf8)
        let stack = Command.run(Self.repo.appendingPathComponent("scripts/stack").path,
                                ["start", dir.appendingPathComponent("bus").path, "--rule", rule.path])
        guard stack.ok, let line = stack.stdout.split(separator: "\n").last, line.hasPrefix("DBUS_SYSTEM_BUS_ADDRESS=") else {
            throw StackError("scripts/stack start failed: \(stack.all)")
        }
        address = String(line.dropFirst("DBUS_SYSTEM_BUS_ADDRESS=".count))
        do {
            // [settings] lines (@HOSTROOT@: the sandbox host root) and further tables
            // (@DIR@: this stack's directory); polkit's timeout for every suite.
            let settingsFile = dir.appendingPathComponent("settings.toml")
            try settings.write(to: settingsFile, atomically: true, encoding: .utf8)
            let configFile = dir.appendingPathComponent("config.toml")
            try "[polkit]\ntimeout_s = 20\n\n\(config)\n".write(to: configFile, atomically: true, encoding: .utf8)
            var prepare = ["daemon", "prepare", dir.path, "--bus", dir.appendingPathComponent("bus").path,
                           "--daemon", Self.daemonPath, "--libvirt-uri", libvirtURI, "--settings", settingsFile.path,
                           "--config", configFile.path, "--rebuild-seconds", "\(rebuildSeconds)", "--log-level", "debug"]
            for option in hostRootOptions { prepare += ["--host-root-option", option] }
            let prepared = Command.run(Self.repo.appendingPathComponent("scripts/stack").path, prepare)
            guard prepared.ok else { throw StackError("scripts/stack daemon prepare failed: \(prepared.all)") }
            daemonCommand = prepared.stdout.split(separator: "\n").map(String.init)
            try prepareImages(imageDir)
            try startDaemon()
            for (name, format) in adopt.sorted(by: { $0.key < $1.key }) {
                let r = manager("AdoptDisk", ["ssa{sv}", name, format, "0"])
                guard r.ok else { throw StackError("AdoptDisk \(name) \(format): \(r.all)") }
            }
        } catch {
            stop()
            throw error
        }
    }

    /// Starts the daemon; `environment` is added to the tests' own (a crash point, for
    /// instance: `MULTIVERSE_CRASH_AT`).
    func startDaemon(environment extra: [String: String] = [:]) throws {
        guard let program = daemonCommand.first else { throw StackError("the daemon's command line was not prepared") }
        let environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        let process = try Child(program, Array(daemonCommand.dropFirst()), environment: environment, stdout: logPath, stderr: logPath)
        daemon = process
        for _ in 0..<300 {
            if busctl(["status", Self.busName]).ok { return }
            guard process.isRunning else { throw StackError("daemon exited: \(log(tail: 20))") }
            usleep(50_000)
        }
        throw StackError("daemon did not take the name in 15 s: \(log(tail: 20))")
    }

    /// Waits up to `timeout` for the daemon to exit by itself (a crash point); its exit
    /// status, or nil when it still ran (it is then killed, as a failed test leaves it).
    func daemonExit(within timeout: TimeInterval) -> Int32? {
        guard let daemon else { return nil }
        guard IntegrationTests.waitFor(timeout, interval: 0.05, { !daemon.isRunning }) else {
            daemon.wait(timeout: 0)
            return nil
        }
        return daemon.exitStatus
    }

    /// Sends SIGTERM and waits; returns the exit status.
    @discardableResult
    func stopDaemon(signal: Int32 = SIGTERM, timeout: TimeInterval = 30) -> Int32? {
        guard let daemon else { return nil }
        guard daemon.isRunning else { return daemon.exitStatus }
        kill(daemon.pid, signal)
        return daemon.wait(timeout: timeout)
    }

    func stop() {
        if let reader { try? Self.waitFor { await reader.drainAndClose(timeout: .seconds(1)) } }
        reader = nil
        stopDaemon()
        for network in Self.libvirtNetworks(libvirtURI).subtracting(networksBefore).sorted() {
            _ = Command.run("/usr/bin/virsh", ["-c", libvirtURI, "net-destroy", network])
            _ = Command.run("/usr/bin/virsh", ["-c", libvirtURI, "net-undefine", network])
        }
        _ = Command.run(Self.repo.appendingPathComponent("scripts/stack").path, ["stop", dir.appendingPathComponent("bus").path])
        if ProcessInfo.processInfo.environment["MV_KEEP_TEST_DIRS"] == nil {
            try? FileManager.default.removeItem(at: dir)
        }
    }

    /// The names of the networks of a real libvirtd (none for the test driver, whose
    /// networks live and die in the daemon's process).
    static func libvirtNetworks(_ uri: String) -> Set<String> {
        guard uri == "qemu:///system" else { return [] }
        let r = Command.run("/usr/bin/virsh", ["-c", uri, "net-list", "--all", "--name"])
        return Set(r.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
    }

    func log(tail lines: Int) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["DBUS_SYSTEM_BUS_ADDRESS"] = address
        return env
    }

    /// Runs `busctl --system ARGS`, as root or as `user` (through runuser).
    func busctl(_ arguments: [String], as user: String? = nil, interactive: Bool = true) -> CommandResult {
        var args = ["--system"]
        if !interactive { args.append("--allow-interactive-authorization=no") }
        args += arguments
        if let user {
            return Command.run("/usr/sbin/runuser", ["-u", user, "--", "/usr/bin/env", "DBUS_SYSTEM_BUS_ADDRESS=\(address)",
                                                     "/usr/bin/busctl"] + args)
        }
        return Command.run("/usr/bin/busctl", args, environment: environment)
    }

    /// Runs `mvctl ARGS --bus-address ADDR`, as root or as `user`.
    func mvctl(_ arguments: [String], as user: String? = nil) -> CommandResult {
        let args = arguments + ["--bus-address", address]
        if let user { return Command.run("/usr/sbin/runuser", ["-u", user, "--", Self.mvctlPath] + args) }
        return Command.run(Self.mvctlPath, args)
    }

    /// `busctl call` on our service.
    func call(_ path: String = TestStack.root, _ interface: String = TestStack.managerInterface, _ method: String,
              _ signatureAndArgs: [String], as user: String? = nil, interactive: Bool = true) -> CommandResult {
        busctl(["--timeout=300", "call", Self.busName, path, interface, method] + signatureAndArgs, as: user, interactive: interactive)
    }

    /// `busctl call` of a Manager method.
    func manager(_ method: String, _ signatureAndArgs: [String], as user: String? = nil, interactive: Bool = true) -> CommandResult {
        call(Self.root, Self.managerInterface, method, signatureAndArgs, as: user, interactive: interactive)
    }

    /// CreateDisk through busctl.
    func createDisk(_ name: String, size: UInt64 = 1 << 20, format: String = "qcow2", as user: String? = nil,
                    interactive: Bool = true) -> CommandResult {
        manager("CreateDisk", ["stsa{sv}", name, String(size), format, "0"], as: user, interactive: interactive)
    }

    func imageFiles() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: imageDir.path)) ?? []).sorted()
    }

    /// A client connection of our own (as root), for signals and typed calls.
    func client() async throws -> BusConnection {
        try await BusConnection.openSystemBus(address: address)
    }
}

struct StackError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

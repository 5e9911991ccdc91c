import CLinux
import ArgumentParser
import ControllerAPI
import ControllerBus
import ControllerCore
import FoundationEssentials
import Glibc
import Logging
import Polkit
import SDBus

@main
struct Daemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "multiverse-controllerd",
        abstract: "Multiverse OS controller service: VMs, disks and host settings over D-Bus.",
        discussion: """
            Owns org.multiverse.Controller on the system bus. Every privileged method is
            authorized through polkit (actions org.multiverse.controller.*). Settings come from
            the configuration file (see controller.toml.example); flags override it.
            Logs go to stderr with syslog priority prefixes. SIGTERM or SIGINT stops taking
            calls, lets in-flight calls finish (shutdown_timeout_s), releases the name and exits 0.
            """,
        version: ControllerVersion.version)

    @Option(name: .long, help: ArgumentHelp("Configuration file.", valueName: "FILE"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("D-Bus address to use as the system bus (tests, demo). Default: the system bus.", valueName: "ADDR"))
    var busAddress: String?

    @Option(name: .long, help: ArgumentHelp("libvirt connection URI (default qemu:///system).", valueName: "URI"))
    var libvirtUri: String?

    @Option(name: .long, help: ArgumentHelp("Directory of managed disk images (default /var/lib/multiverse/images).", valueName: "DIR"))
    var imageDir: String?

    @Option(name: .long, help: ArgumentHelp("Directory of disk backups (default /var/lib/multiverse/backups).", valueName: "DIR"))
    var backupDir: String?

    @Option(name: .long, help: ArgumentHelp("Prefix under which host files such as /etc/group are read and edited (default /).", valueName: "DIR"))
    var hostRoot: String?

    @Option(name: .long, help: ArgumentHelp("Directory for state kept across restarts, such as the Settings enforcing switch (default /var/lib/multiverse/state).", valueName: "DIR"))
    var stateDir: String?

    @Option(name: .long, help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error, critical.", valueName: "LEVEL"))
    var logLevel: String?

    @Flag(name: .long, help: "Print the introspection XML of every interface (or of --interface) and exit.")
    var printIntrospection = false

    @Option(name: .long, help: ArgumentHelp("With --print-introspection: only this interface.", valueName: "NAME"))
    var interface: String?

    @Flag(name: .long, help: "Print the API reference man page org.multiverse.Controller(5) (roff) and exit.")
    var printApiReference = false

    func resolvedConfig() throws -> ControllerConfig {
        var c = try ControllerConfig.load(path: config ?? ControllerConfig.defaultPath, explicit: config != nil)
        func absolute(_ flag: String, _ value: String) throws -> String {
            guard value.hasPrefix("/"), !value.split(separator: "/").contains("..") else {
                throw ValidationError("--\(flag) '\(value)' must be an absolute path without '..'")
            }
            return value.count > 1 && value.hasSuffix("/") ? String(value.dropLast()) : value
        }
        if let v = busAddress { c.busAddress = v }
        if let v = libvirtUri {
            guard v.contains(":") else { throw ValidationError("--libvirt-uri '\(v)' is not a libvirt URI") }
            c.libvirtURI = v
        }
        if let v = imageDir { c.imageDirectory = try absolute("image-dir", v) }
        if let v = backupDir { c.backupDirectory = try absolute("backup-dir", v) }
        if let v = hostRoot { c.hostRoot = try absolute("host-root", v) }
        if let v = stateDir { c.stateDirectory = try absolute("state-dir", v) }
        if let v = logLevel {
            guard ControllerConfig.logLevels.contains(v) else {
                throw ValidationError("--log-level '\(v)' is not one of \(ControllerConfig.logLevels.joined(separator: ", "))")
            }
            c.logLevel = v
        }
        return c
    }

    func run() async throws {
        if printApiReference {
            let missing = APIReference.undocumented()
            guard missing.isEmpty else { throw ValidationError("members without documentation: \(missing.joined(separator: ", "))") }
            print(APIReference.manPage(appendix: ControllerReference.appendix), terminator: "")
            return
        }
        if printIntrospection {
            var selected = ControllerInterfaces.dbus
            if let interface {
                selected = selected.filter { $0.name == interface }
                guard !selected.isEmpty else { throw ValidationError("unknown interface '\(interface)'") }
            }
            print(Introspection.xml(for: selected), terminator: "")
            return
        }
        // The daemon waits on I/O, children and appliances; glibc's default of eight malloc
        // arenas per core only holds memory. Two keep the resident size down and stop it
        // ratcheting up with the number of threads that ever allocated under load.
        _ = mv_limit_malloc_arenas(2)
        // Buffers of 256 KiB and more (guest file reads, large replies) are mapped and
        // returned to the system when freed, so a burst of big calls does not leave the
        // idle daemon larger.
        _ = mv_fix_malloc_mmap_threshold(256 << 10)
        let config: ControllerConfig
        do { config = try resolvedConfig() } catch let e as ConfigError {
            throw ValidationError("bad configuration: \(e)")
        }
        // Before any sd-bus or GLib use: this address is the system bus for the whole process.
        if let address = config.busAddress { setenv("DBUS_SYSTEM_BUS_ADDRESS", address, 1) }
        signal(SIGPIPE, SIG_IGN)

        let level = Logger.Level(configName: config.logLevel) ?? .info
        LoggingSystem.bootstrap { label in SyslogLogHandler(label: label, logLevel: level) }
        let logger = Logger(label: "multiverse-controllerd")
        try await Runtime(config: config, logger: logger).run()
    }
}

/// The parts of the API reference that Core's rules produce.
enum ControllerReference {
    static var appendix: [APIConcepts.Section] {
        let allowlist = DomainAllowlist.documentation
        return [APIConcepts.Section(title: allowlist.title, paragraphs: allowlist.paragraphs)]
    }
}

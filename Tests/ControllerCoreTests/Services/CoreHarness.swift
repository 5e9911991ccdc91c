@testable import ControllerCore
import Foundation
import Guestfs
import HostSystem
import Logging
import Synchronization
import XCTest

/// The Core services as the daemon wires them (CoreServices, the one composition root),
/// without a bus, polkitd or root: a temporary image directory with real qemu-img, libvirt's
/// in-process test driver, real jobs. Core's events are recorded as the bus layer would
/// receive them.
final class CoreHarness: Sendable {
    let dir: URL
    let core: CoreServices
    var store: DiskStore { core.store }
    var libvirt: LibvirtMonitor { core.libvirt }
    var vmManager: VMManager { core.vmManager }
    var networkManager: NetworkManager { core.networkManager }
    var jobs: JobManager { core.jobs }
    var disks: DiskService { core.disks }
    var vms: VMService { core.vms }
    var qemuImg: QemuImg { core.qemuImg }
    private let recorded = EventLog()

    /// libvirt's test driver on the test host file the demo uses too (32 GiB, 16 CPUs).
    static let testHostURI = "test://" + URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scripts/lib/test-host.xml").path

    /// `profiles`: profile files (name → TOML text) written before the profiles load;
    /// `copyRate`: `[disks] copy_rate_mib_s`; `configure` changes the `[vms]` configuration.
    init(shareRoot: String? = nil, uri: String = CoreHarness.testHostURI, profiles: [String: String] = [:],
         copyRate: CopyRate = .unlimited, configure: (inout VMConfig) -> Void = { _ in }) async throws {
        dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("mvcore-\(UUID().uuidString.prefix(8))")
        var config = ControllerConfig()
        config.libvirtURI = uri
        config.imageDirectory = dir.appendingPathComponent("images").path
        config.backupDirectory = dir.appendingPathComponent("backups").path
        config.stateDirectory = dir.appendingPathComponent("state").path
        config.hostRoot = dir.appendingPathComponent("host").path
        config.maxDiskSize = 1 << 40
        config.copyRate = copyRate
        config.jobRetentionSeconds = 60
        config.guestfs.memoryMiB = 256
        config.guestfs.maxAppliances = 1
        config.guestfs.idleSeconds = 5
        config.guestfs.usageIntervalSeconds = 0
        // The sandbox host root is empty: the settings are checked, never written.
        config.settings.enforcing = false
        config.vms.profilesDirectory = dir.appendingPathComponent("profiles").path
        config.vms.startAllOnBoot = false
        if let shareRoot { config.vms.shareRoots = [shareRoot] }
        configure(&config.vms)
        for d in [config.imageDirectory, config.backupDirectory, config.stateDirectory, config.hostRoot, config.vms.profilesDirectory] {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        }
        for (name, text) in profiles { try text.write(toFile: config.vms.profilesDirectory + "/\(name).toml", atomically: true, encoding: .utf8) }
        Self.ensureApplianceUser()
        core = try await CoreServices.make(config: config, logger: Logger(label: "core-test"))
        let connected = AsyncStream<Bool>.makeStream()
        recorded.connected = connected.continuation
        try await core.start(observer: recorded)
        for await up in connected.stream where up { break }
    }

    func close() async {
        await core.stop(timeout: .seconds(10))
        await core.disconnect()
        try? FileManager.default.removeItem(at: dir)
    }

    var events: [DiskEvent] { recorded.events.withLock { $0 } }
    func clearEvents() { recorded.events.withLock { $0.removeAll() } }

    /// Names of the disks the events announced as added.
    var added: [String] { events.compactMap { if case .added(let v) = $0 { return v.info.name } else { return nil } } }
    var removed: [String] { events.compactMap { if case .removed(let n) = $0 { return n } else { return nil } } }

    /// Creates a disk through the service's two halves.
    @discardableResult
    func create(_ name: String, size: UInt64 = 64 << 20, format: String = "qcow2", backing: String? = nil) async throws -> DiskInfo {
        try await disks.runCreate(try await disks.checkCreate(CreateDiskRequest(name: name, size: size, format: format, backing: backing)))
    }

    /// Waits for a job to end and returns its last snapshot.
    func finished(_ job: JobSnapshot, timeout: Duration = .seconds(60)) async throws -> JobSnapshot {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let s = await jobs.job(job.id)?.snapshot, s.state != "running" { return s }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw NSError(domain: "job", code: 1, userInfo: [NSLocalizedDescriptionKey: "job \(job.id) \(job.operation) still running after \(timeout)"])
    }

    /// Run as root, the appliances run as the package's appliance user: made here if missing
    /// (as an unprivileged user they run as that user).
    static func ensureApplianceUser() {
        guard getuid() == 0, ApplianceUser.lookUp(GuestfsSettings.defaultUser) == nil else { return }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/sbin/useradd")
        p.arguments = ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "-G", "kvm", GuestfsSettings.defaultUser]
        try? p.run()
        p.waitUntilExit()
    }

    /// `qemu-img info --output=json` of an image, as its own tool reports it.
    func qemuInfo(_ path: String) throws -> [String: Any] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
        p.arguments = ["info", "--output=json", "-U", path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0, let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw NSError(domain: "qemu-img", code: Int(p.terminationStatus), userInfo: [NSLocalizedDescriptionKey: "qemu-img info \(path) failed"])
        }
        return json
    }
}

/// The disk events the service reported, in order; says when libvirt is connected.
final class EventLog: CoreObserver {
    let events = Mutex<[DiskEvent]>([])
    let stream = Mutex<AsyncStream<Bool>.Continuation?>(nil)
    var connected: AsyncStream<Bool>.Continuation? {
        get { stream.withLock { $0 } }
        set { stream.withLock { $0 = newValue } }
    }

    func coreEvent(_ event: CoreEvent) async {
        switch event {
        case .disk(let change): events.withLock { $0.append(change) }
        case .libvirtConnected(let up): connected?.yield(up)
        default: break
        }
    }
}

/// Asserts that `body` throws a ``ControllerError`` of `kind` whose message contains `naming`.
func assertError<T>(_ kind: String, naming: String, file: StaticString = #filePath, line: UInt = #line,
                    _ body: () async throws -> T) async {
    do {
        _ = try await body()
        XCTFail("no error; expected \(kind) naming \(naming)", file: file, line: line)
    } catch let error as ControllerError {
        XCTAssertEqual(error.kind, kind, "\(error)", file: file, line: line)
        XCTAssertTrue(error.message.contains(naming), "\(error) does not name \(naming)", file: file, line: line)
    } catch {
        XCTFail("not a ControllerError: \(error)", file: file, line: line)
    }
}

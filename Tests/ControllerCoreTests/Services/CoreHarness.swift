@testable import ControllerCore
import Foundation
import Guestfs
import Logging
import Synchronization
import XCTest

/// The Core services as the daemon wires them, without a bus, polkitd or root: a temporary
/// image directory with real qemu-img, libvirt's in-process test driver, real jobs. The
/// disks' events are recorded as the bus layer would receive them.
final class CoreHarness: Sendable {
    let dir: URL
    let store: DiskStore
    let libvirt: LibvirtMonitor
    let vmManager: VMManager
    let networkManager: NetworkManager
    let jobs: JobManager
    let disks: DiskService
    let vms: VMService
    let qemuImg = QemuImg(path: "/usr/bin/qemu-img")
    private let recorded = EventLog()

    /// libvirt's test driver on the test host file the demo uses too (32 GiB, 16 CPUs).
    static let testHostURI = "test://" + URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scripts/lib/test-host.xml").path

    /// `profiles`: profile files (name → TOML text) written before the profiles load;
    /// `configure` changes the `[vms]` configuration.
    init(shareRoot: String? = nil, uri: String = CoreHarness.testHostURI, profiles: [String: String] = [:],
         configure: (inout VMConfig) -> Void = { _ in }) async throws {
        dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("mvcore-\(UUID().uuidString.prefix(8))")
        let images = dir.appendingPathComponent("images").path
        let backups = dir.appendingPathComponent("backups").path
        for d in [images, backups] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        let logger = Logger(label: "core-test")
        store = DiskStore(directory: images, qemuImg: qemuImg, logger: logger)
        try await store.scan()
        let backupStore = BackupStore(directory: backups, qemuImg: qemuImg, logger: logger)
        try await backupStore.scan()
        libvirt = LibvirtMonitor(uri: uri, logger: logger)
        var config = VMConfig()
        config.profilesDirectory = dir.appendingPathComponent("profiles").path
        if let shareRoot { config.shareRoots = [shareRoot] }
        configure(&config)
        try FileManager.default.createDirectory(atPath: config.profilesDirectory, withIntermediateDirectories: true)
        for (name, text) in profiles { try text.write(toFile: config.profilesDirectory + "/\(name).toml", atomically: true, encoding: .utf8) }
        let (profiles, _) = ProfileStore.load(directory: config.profilesDirectory, logger: logger)
        vmManager = VMManager(monitor: libvirt, config: config, profiles: profiles, logger: logger)
        jobs = JobManager(maxConcurrent: 4, retention: .seconds(60), logger: logger)
        Self.ensureApplianceUser()
        let appliances = ApplianceCache(settings: GuestfsSettings(backend: "direct", backendSettings: [], memoryMiB: 256),
                                        maxAppliances: 1, idle: .seconds(5))
        let policies = DiskPolicyStore(stateDirectory: dir.appendingPathComponent("state").path)
        try await policies.load()
        disks = DiskService(context: DiskContext(
            store: store, backups: backupStore, guests: GuestImages(cache: appliances), policies: policies, vms: vmManager,
            jobs: jobs, qemuImg: qemuImg, maxSize: 1 << 40, usageIntervalSeconds: 0, logger: logger))
        networkManager = NetworkManager(monitor: libvirt, logger: logger)
        vms = VMService(vms: vmManager, disks: disks, networks: NetworkService(networks: networkManager, vms: vmManager, logger: logger),
                        jobs: jobs, qemuImg: qemuImg, imageDirectory: images, logger: logger)
        disks.setObserver(self.recorded)
        let (vmManager, vms, networkManager) = (self.vmManager, self.vms, self.networkManager)
        await vmManager.setObserver { change in await vms.vmChanged(change) }
        let connected = AsyncStream<Bool>.makeStream()
        await libvirt.start { up in
            if up {
                await vmManager.resync()
                await networkManager.resync()
            }
            connected.continuation.yield(up)
        }
        for await up in connected.stream where up { break }
    }

    func close() async {
        await vmManager.stop()
        await networkManager.stop()
        await libvirt.stop()
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

/// The disk events the service reported, in order.
final class EventLog: DiskObserver {
    let events = Mutex<[DiskEvent]>([])
    func diskChanged(_ event: DiskEvent) async { events.withLock { $0.append(event) } }
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

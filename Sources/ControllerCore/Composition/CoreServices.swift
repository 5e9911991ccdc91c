import Guestfs
import HostSystem
import Logging
import Synchronization

/// The composition root: every Core service built from the configuration and wired in one
/// place. The daemon, the Core tests and the bench make Core with ``make(config:)``, then
/// ``start(observer:)`` once the observer is ready for events, and ``stop()`` at the end.
public final class CoreServices: Sendable {
    public let config: ControllerConfig
    public let qemuImg: QemuImg
    public let store: DiskStore
    public let backups: BackupStore
    public let libvirt: LibvirtMonitor
    public let vmManager: VMManager
    public let networkManager: NetworkManager
    public let jobs: JobManager
    public let appliances: ApplianceCache
    public let disks: DiskService
    public let networks: NetworkService
    public let vms: VMService
    public let settings: SettingsAgent
    /// The observer, once started (a reference: the appliance cache's callback holds it too).
    private let observer = ObserverSlot()
    private let bootStart: Atomic<Bool>
    private let runtimeDirectory: String?
    private let logger: Logger

    /// Builds every service: scans the image and backup directories and loads the state
    /// files (disk policies, overlays). Nothing runs until ``start(observer:)``.
    /// - Parameter runtimeDirectory: where the once-per-boot StartAll mark is kept (the
    ///   unit's RuntimeDirectory; nil: the state directory's boot id file only).
    public static func make(config: ControllerConfig, runtimeDirectory: String? = nil, logger: Logger = Logger(label: "core")) async throws -> CoreServices {
        let qemuImg = QemuImg(path: config.qemuImgPath)
        let store = DiskStore(directory: config.imageDirectory, qemuImg: qemuImg, copyRate: config.copyRate, logger: Logger(label: "disks"))
        try await store.scan()
        let backups = BackupStore(directory: config.backupDirectory, qemuImg: qemuImg, copyRate: config.copyRate, logger: Logger(label: "backups"))
        do { try await backups.scan() } catch { throw ControllerError.io("backup directory \(config.backupDirectory): \(error)") }
        let policies = DiskPolicyStore(stateDirectory: config.stateDirectory)
        try await policies.load()
        try await policies.retain(only: Set(await store.list().map(\.name)))
        let overlays = OverlayOwners(stateDirectory: config.stateDirectory)
        do { try await overlays.load() } catch { logger.error("\(error); no overlay will be deleted with its ephemeral VM until it is fixed") }
        return CoreServices(config: config, qemuImg: qemuImg, store: store, backups: backups, policies: policies, overlays: overlays,
                            runtimeDirectory: runtimeDirectory, logger: logger)
    }

    private init(config: ControllerConfig, qemuImg: QemuImg, store: DiskStore, backups: BackupStore, policies: DiskPolicyStore,
                 overlays: OverlayOwners, runtimeDirectory: String?, logger: Logger) {
        self.config = config
        self.qemuImg = qemuImg
        self.store = store
        self.backups = backups
        self.runtimeDirectory = runtimeDirectory
        self.logger = logger
        bootStart = Atomic(config.vms.startAllOnBoot)
        libvirt = LibvirtMonitor(uri: config.libvirtURI, logger: Logger(label: "libvirt"))
        let (profiles, _) = ProfileStore.load(directory: config.vms.profilesDirectory, logger: Logger(label: "profiles"))
        vmManager = VMManager(monitor: libvirt, config: config.vms, profiles: profiles, logger: Logger(label: "vms"),
                              stateDirectory: config.stateDirectory)
        networkManager = NetworkManager(monitor: libvirt, logger: Logger(label: "networks"))
        jobs = JobManager(maxConcurrent: config.maxConcurrentJobs, retention: .seconds(config.jobRetentionSeconds), logger: Logger(label: "jobs"))
        let g = config.guestfs
        let observer = self.observer
        let guestfsLog = Logger(label: "guestfs")
        appliances = ApplianceCache(
            settings: GuestfsSettings(backend: g.backend, backendSettings: g.backendSettings, memoryMiB: g.memoryMiB, user: g.user),
            maxAppliances: g.maxAppliances, idle: .seconds(g.idleSeconds)) { change in
            guestfsLog.info("\(change)")
            guard let observer = observer.current else { return }
            Task { await observer.coreEvent(.appliance(change)) }
        }
        disks = DiskService(context: DiskContext(
            store: store, backups: backups, guests: GuestImages(cache: appliances), policies: policies, vms: vmManager, jobs: jobs,
            qemuImg: qemuImg, maxSize: config.maxDiskSize, usageIntervalSeconds: g.usageIntervalSeconds,
            trackingIntervalSeconds: config.trackingIntervalSeconds, logger: Logger(label: "disks")))
        networks = NetworkService(networks: networkManager, vms: vmManager, logger: Logger(label: "networks"))
        vms = VMService(vms: vmManager, disks: disks, networks: networks, jobs: jobs, qemuImg: qemuImg,
                        imageDirectory: config.imageDirectory, overlays: overlays, logger: Logger(label: "vms"))
        settings = SettingsAgent(config: config.settings, root: HostRoot(config.hostRoot), stateDirectory: config.stateDirectory,
                                 logger: Logger(label: "settings"), jobs: jobs)
    }

    /// Starts the work: every service reports to `observer` from now on (in order, awaited),
    /// the host settings are checked and watched, the disk policies run, and libvirt is
    /// connected (the caches rebuilt, then `.libvirtConnected`, then — once per host boot
    /// when configured — StartAll).
    public func start(observer: any CoreObserver) async throws {
        self.observer.current = observer
        await jobs.setObserver { change in await observer.coreEvent(.job(change)) }
        disks.setObserver(observer)
        try await settings.start { event in await observer.coreEvent(.settings(event)) }
        let vms = self.vms
        await vmManager.setObserver { change in
            // Core's own consequences first (disks learn their users, ephemeral VMs go),
            // then the mirror, with everything it shows.
            guard let event = await vms.vmChanged(change) else { return }
            await observer.coreEvent(.vm(event))
        }
        await networkManager.setObserver { change in await observer.coreEvent(.network(change)) }
        disks.policies.start()
        // Deletions of backup points a restart interrupted: in the background (a merge can
        // outlast the start-up timeout); each holds its disk's points meanwhile.
        let backups = self.backups
        Task { await backups.resumeDeletions() }
        let (vmManager, networkManager) = (self.vmManager, self.networkManager)
        await libvirt.start { [weak self] connected in
            // What follows needs a listing of the VMs that worked: without one, nothing says
            // which VMs run, use a disk or are gone.
            var listed = false
            if connected {
                listed = await vmManager.resync()
                // The VMs' leases before any other lease is granted (jobs wait for this).
                if listed { await vms.rebuildVMLeases() }
                await networkManager.resync()
                // Images of an older version have no format record: take what libvirt knew.
                if listed { await vms.recordKnownFormats() }
            }
            await observer.coreEvent(.libvirtConnected(connected))
            // The service's ordered start, once per host boot, when libvirt is first listed.
            guard listed, let self, bootStart.exchange(false, ordering: .acquiringAndReleasing) else { return }
            let log = logger
            let once = BootOnce(stateDirectory: config.stateDirectory, runtimeDirectory: runtimeDirectory)
            do {
                guard try once.claim() else {
                    log.notice("start-up: StartAll already ran in this boot (\(once.bootID ?? "?"), \(once.file)); leaving the VMs as they are")
                    return
                }
                let job = try await vms.runStartAll(try await vms.checkStartAll(), uid: 0)
                log.notice("start-up: StartAll runs as job \(job.id)")
            } catch {
                log.error("start-up: cannot run StartAll: \(error)")
            }
        }
    }

    /// Cancels the jobs (waiting up to `timeout` for them), closes the appliances, and
    /// stops following libvirt and the host settings.
    public func stop(timeout: Duration) async {
        await jobs.cancelAll(timeout: timeout)
        await appliances.releaseAll()
    }

    /// Stops following libvirt and the host settings (after the bus is closed).
    public func disconnect() async {
        await vmManager.stop()
        await networkManager.stop()
        await libvirt.stop()
        await settings.stop()
    }
}

/// Where CoreServices keeps its observer once started.
private final class ObserverSlot: Sendable {
    private let slot = Mutex<(any CoreObserver)?>(nil)
    var current: (any CoreObserver)? {
        get { slot.withLock { $0 } }
        set { slot.withLock { $0 = newValue } }
    }
}

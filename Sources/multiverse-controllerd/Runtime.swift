import ControllerAPI
import ControllerBus
import ControllerCore
import Dispatch
import FoundationEssentials
import Glibc
import Guestfs
import Logging
import Polkit
import SDBus
import Synchronization

/// The daemon's life: start the parts in order, own the name, wait for a signal, stop cleanly.
struct Runtime {
    let config: ControllerConfig
    let logger: Logger

    func run() async throws {
        logger.info("starting multiverse-controllerd \(ControllerVersion.version): libvirt \(config.libvirtURI), images \(config.imageDirectory), host root \(config.hostRoot)")
        let stopping = Atomic<Bool>(false)
        let signals = SignalWaiter([SIGTERM, SIGINT])

        let disks = DiskStore(directory: config.imageDirectory, qemuImg: QemuImg(path: config.qemuImgPath),
                              copyRate: config.copyRate, logger: Logger(label: "disks"))
        try await disks.scan()

        let bus: BusConnection
        do {
            let log = logger
            bus = try await BusConnection.openSystemBus(address: config.busAddress) { code in
                guard !stopping.load(ordering: .acquiring) else { return }
                log.critical("lost the bus connection (\(code)); exiting")
                exit(1)
            }
        } catch {
            throw ControllerError.io("cannot connect to the system bus: \(error)")
        }
        await bus.limitCallsInFlight(perSender: config.maxCallsPerClient)
        // polkit is asked on the service's own connection: checks hold no thread.
        let polkit = PolkitAuthority(
            bus: bus, maxPending: config.polkitMaxPending, maxInteractivePerUser: config.polkitMaxInteractivePerUser,
            timeout: .seconds(config.polkitTimeoutSeconds), interactiveTimeout: .seconds(config.polkitInteractiveTimeoutSeconds))
        let authorizer = Authorizer(polkit: polkit, audit: Logger(label: "audit"))
        let settings = SettingsAgent(config: config.settings, root: HostRoot(config.hostRoot),
                                     stateDirectory: config.stateDirectory, logger: Logger(label: "settings"))
        let libvirt = LibvirtMonitor(uri: config.libvirtURI, logger: Logger(label: "libvirt"))
        let (profiles, _) = ProfileStore.load(directory: config.vms.profilesDirectory, logger: Logger(label: "profiles"))
        let vms = VMManager(monitor: libvirt, config: config.vms, profiles: profiles, logger: Logger(label: "vms"),
                            stateDirectory: config.stateDirectory)
        let jobs = JobManager(maxConcurrent: config.maxConcurrentJobs, retention: .seconds(config.jobRetentionSeconds),
                              logger: Logger(label: "jobs"))
        let backups = BackupStore(directory: config.backupDirectory, qemuImg: QemuImg(path: config.qemuImgPath),
                                  copyRate: config.copyRate, logger: Logger(label: "backups"))
        do { try await backups.scan() } catch { throw ControllerError.io("backup directory \(config.backupDirectory): \(error)") }
        let trimmer = MemoryTrimmer()
        let guestfsLog = Logger(label: "guestfs")
        let g = config.guestfs
        let appliances = ApplianceCache(
            settings: GuestfsSettings(backend: g.backend, backendSettings: g.backendSettings, memoryMiB: g.memoryMiB, user: g.user),
            maxAppliances: g.maxAppliances, idle: .seconds(g.idleSeconds)) {
            // The cache reports each launch and close: a closed handle's buffers can go back.
            guestfsLog.info("\($0)")
            trimmer.request()
        }
        let policies = DiskPolicyStore(stateDirectory: config.stateDirectory)
        try await policies.load()
        try await policies.retain(only: Set(await disks.list().map(\.name)))
        let qemuImg = QemuImg(path: config.qemuImgPath)
        let diskService = DiskService(context: DiskContext(
            store: disks, backups: backups, guests: GuestImages(cache: appliances), policies: policies, vms: vms, jobs: jobs,
            qemuImg: qemuImg, maxSize: config.maxDiskSize, usageIntervalSeconds: config.guestfs.usageIntervalSeconds,
            logger: Logger(label: "disks")))
        let networks = NetworkManager(monitor: libvirt, logger: Logger(label: "networks"))
        let networkService = NetworkService(networks: networks, vms: vms, logger: Logger(label: "networks"))
        let overlays = OverlayOwners(stateDirectory: config.stateDirectory)
        do { try await overlays.load() } catch { logger.error("\(error); no overlay will be deleted with its ephemeral VM until it is fixed") }
        let vmService = VMService(vms: vms, disks: diskService, networks: networkService, jobs: jobs, qemuImg: qemuImg,
                                  imageDirectory: config.imageDirectory, overlays: overlays, logger: Logger(label: "vms"))
        let objects = ControllerObjects(bus: bus, authorizer: authorizer, disks: diskService, vms: vmService,
                                        networks: networkService, jobs: jobs,
                                        settings: settings, libvirtURI: config.libvirtURI, imageDirectory: config.imageDirectory,
                                        backupDirectory: config.backupDirectory, logger: logger)
        await jobs.setObserver { change in
            await objects.jobChanged(change)
            if case .finished = change { trimmer.request() }
        }
        diskService.setObserver(objects)
        try await objects.export(libvirtConnected: false)
        try await settings.start { event in await objects.settingsEvent(event) }

        await vms.setObserver { change in
            await objects.vmChanged(change)
            await vmService.vmChanged(change)
            trimmer.request()
        }
        await networks.setObserver { change in await objects.networkChanged(change) }
        diskService.policies.start()
        let bootStart = Atomic<Bool>(config.vms.startAllOnBoot)
        let stateDirectory = config.stateDirectory
        let runtimeDirectory = getenv("RUNTIME_DIRECTORY").map { String(cString: $0) }
        let log = logger
        await libvirt.start { connected in
            if connected {
                await vms.resync()
                await networks.resync()
                // Images of an older version have no format record: take what libvirt knew.
                await vmService.recordKnownFormats()
            }
            await objects.setLibvirtConnected(connected)
            // The service's ordered start, once per host boot, when libvirt is first reachable.
            if connected, bootStart.exchange(false, ordering: .acquiringAndReleasing) {
                let once = BootOnce(stateDirectory: stateDirectory, runtimeDirectory: runtimeDirectory)
                do {
                    guard try once.claim() else {
                        log.notice("start-up: StartAll already ran in this boot (\(once.bootID ?? "?"), \(once.file)); leaving the VMs as they are")
                        return
                    }
                    let job = try await vmService.runStartAll(await vmService.checkStartAll(), uid: 0)
                    log.notice("start-up: StartAll runs as job \(job.id)")
                } catch {
                    log.error("start-up: cannot run StartAll: \(error)")
                }
            }
        }

        // Objects first, then the name: an activated call never finds the name without objects.
        try await bus.requestName(ControllerNames.busName)
        ServiceNotifier.notify("READY=1\nSTATUS=Serving \(ControllerNames.busName)")
        let unique = await bus.uniqueName()
        logger.notice("ready: owns \(ControllerNames.busName) as \(unique)")

        let signal = await signals.next()
        stopping.store(true, ordering: .releasing)
        logger.notice("received signal \(signal): stopping")
        ServiceNotifier.notify("STOPPING=1")
        await bus.releaseName(ControllerNames.busName)
        await jobs.cancelAll(timeout: .seconds(config.shutdownTimeoutSeconds))
        await appliances.releaseAll()
        let inFlight = await bus.inFlightCalls()
        if inFlight > 0 { logger.notice("waiting up to \(config.shutdownTimeoutSeconds) s for \(inFlight) call(s) in flight") }
        await bus.drainAndClose(timeout: .seconds(config.shutdownTimeoutSeconds),
                                reply: DBusError(name: ErrorName.busy.rawValue, message: "the service is shutting down"))
        await vms.stop()
        await networks.stop()
        await libvirt.stop()
        await settings.stop()
        logger.notice("stopped")
    }
}

/// Turns SIGTERM/SIGINT into an awaitable event.
final class SignalWaiter: Sendable {
    private let stream: AsyncStream<Int32>
    private let sources: Mutex<[any DispatchSourceSignal]>

    init(_ numbers: [Int32]) {
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        self.stream = stream
        var made: [any DispatchSourceSignal] = []
        for number in numbers {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            made.append(source)
        }
        sources = Mutex(made)
    }

    func next() async -> Int32 {
        for await number in stream { return number }
        return 0
    }
}

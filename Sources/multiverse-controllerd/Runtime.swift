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

        let core = try await CoreServices.make(config: config, runtimeDirectory: getenv("RUNTIME_DIRECTORY").map { String(cString: $0) },
                                               logger: logger)
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
        let objects = ControllerObjects(bus: bus, authorizer: authorizer, core: core, logger: logger)
        try await objects.export(libvirtConnected: false)
        try await core.start(observer: DaemonObserver(objects: objects, trimmer: MemoryTrimmer()))

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
        await core.stop(timeout: .seconds(config.shutdownTimeoutSeconds))
        let inFlight = await bus.inFlightCalls()
        if inFlight > 0 { logger.notice("waiting up to \(config.shutdownTimeoutSeconds) s for \(inFlight) call(s) in flight") }
        await bus.drainAndClose(timeout: .seconds(config.shutdownTimeoutSeconds),
                                reply: DBusError(name: ErrorName.busy.rawValue, message: "the service is shutting down"))
        await core.disconnect()
        logger.notice("stopped")
    }
}

/// The daemon's observer of Core: the bus objects mirror every event, and memory freed by a
/// finished job, a VM change or an appliance launch or close is handed back to the system.
final class DaemonObserver: CoreObserver {
    let objects: ControllerObjects
    let trimmer: MemoryTrimmer

    init(objects: ControllerObjects, trimmer: MemoryTrimmer) {
        self.objects = objects
        self.trimmer = trimmer
    }

    func coreEvent(_ event: CoreEvent) async {
        await objects.coreEvent(event)
        switch event {
        case .job(.finished), .vm, .appliance: trimmer.request()
        default: break
        }
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

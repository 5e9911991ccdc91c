import BlockingThreads
import Libvirt
import Logging

/// The libvirt networks of the connection: a cache rebuilt on every (re)connect and kept
/// current by libvirt's network lifecycle events (a `virsh net-destroy` behind the service's
/// back shows up). Blocking libvirt calls run on a thread pool of their own.
public actor NetworkManager {
    private let monitor: LibvirtMonitor
    private let logger: Logger
    private let pool = ThreadPool(name: "libvirt-net", threads: 1, maxQueued: 256)
    private var networks: [String: NetworkInfo] = [:]
    private var observer: (@Sendable (NetworkChange) async -> Void)?
    private var registered: ObjectIdentifier?
    private var events: AsyncStream<NetworkLifecycleEvent>.Continuation?
    private var eventTask: Task<Void, Never>?
    private let seal: HostBridgeSeal
    /// "network bridge" pairs whose seal failure was logged (once each).
    private var sealWarned: Set<String> = []

    /// `sysctl` is where the host's sysctl tree is (tests may point elsewhere).
    public init(monitor: LibvirtMonitor, logger: Logger, sysctl: String = "/proc/sys") {
        self.monitor = monitor
        self.logger = logger
        self.seal = HostBridgeSeal(root: sysctl)
    }

    public func setObserver(_ observer: @escaping @Sendable (NetworkChange) async -> Void) {
        self.observer = observer
        let (stream, continuation) = AsyncStream<NetworkLifecycleEvent>.makeStream()
        events = continuation
        eventTask = Task { [weak self] in
            for await event in stream { await self?.refresh(event.name) }
        }
    }

    public func stop() {
        eventTask?.cancel()
        events?.finish()
    }

    public func list() -> [NetworkInfo] { networks.values.sorted { $0.name < $1.name } }
    public func network(named name: String) -> NetworkInfo? { networks[name] }

    /// Rebuilds the cache from libvirt (after every connect).
    public func resync() async {
        guard let connection = await monitor.current else { return }
        if registered != ObjectIdentifier(connection) {
            let continuation = events
            do {
                try await pool.run { try connection.onNetworkLifecycleEvents { event in continuation?.yield(event) } }
                registered = ObjectIdentifier(connection)
            } catch {
                logger.error("cannot register for libvirt network events: \(error)")
            }
        }
        let fresh: [NetworkInfo]
        do {
            fresh = try await pool.run { try connection.allNetworks().compactMap { try? Self.describe($0) } }
        } catch {
            logger.error("cannot list libvirt networks: \(error)")
            return
        }
        let seen = Set(fresh.map(\.name))
        for info in fresh { await upsert(info) }
        for name in networks.keys.sorted() where !seen.contains(name) {
            networks[name] = nil
            await observer?(.removed(name: name))
        }
        logger.info("libvirt: \(fresh.count) network(s)")
    }

    /// Reads one network (blocking).
    static func describe(_ network: LibvirtNetwork) throws -> NetworkInfo {
        let (kind, bridge) = try NetworkXML.read(try network.xml())
        return NetworkInfo(name: network.name, uuid: network.uuid, kind: kind, bridge: bridge,
                           active: network.isActive, autostart: (try? network.autostart()) ?? false)
    }

    private func upsert(_ fresh: NetworkInfo) async {
        var info = fresh
        info.hostIsolated = sealIfIsolated(info)
        let old = networks[info.name]
        guard old != info else { return }
        networks[info.name] = info
        await observer?(old == nil ? .added(info) : .updated(info))
    }

    /// Keeps the host out of a running isolated network's bridge (``HostBridgeSeal``), on
    /// every re-read of the network, so a bridge libvirt made again is sealed again. Only
    /// bridges of this host: libvirt's test driver names bridges that do not exist here.
    private func sealIfIsolated(_ info: NetworkInfo) -> Bool {
        guard info.kind == "isolated", info.active, !monitor.uri.hasPrefix("test:"),
              HostBridgeSeal.isHostBridge(info.bridge) else { return false }
        let outcome = seal.apply(info.bridge)
        if !outcome.changed.isEmpty {
            logger.info("network \(info.name): the host takes no part in bridge \(info.bridge) (\(outcome.changed.joined(separator: ", ")))")
        }
        let key = "\(info.name) \(info.bridge)"
        if outcome.held {
            sealWarned.remove(key)
        } else if sealWarned.insert(key).inserted {
            let wanted = HostBridgeSeal.settings.map { "\(HostBridgeSeal.sysctlName($0.path, info.bridge))=\($0.value)" }
            logger.warning("network \(info.name): cannot keep the host out of bridge \(info.bridge): \(outcome.failures.joined(separator: "; ")); the host may answer guests on it; set \(wanted.joined(separator: " ")) (sysctl -w)")
        }
        return outcome.held
    }

    /// Re-reads one network; removes it when libvirt no longer knows it.
    @discardableResult
    func refresh(_ name: String) async -> NetworkInfo? {
        guard let connection = await monitor.current else { return networks[name] }
        do {
            guard let network = try await pool.run({ try connection.network(named: name) }) else {
                if networks.removeValue(forKey: name) != nil { await observer?(.removed(name: name)) }
                return nil
            }
            let info = try await pool.run { try Self.describe(network) }
            await upsert(info)
            return info
        } catch {
            logger.warning("cannot re-read network \(name): \(error)")
            return networks[name]
        }
    }

    /// Runs a blocking libvirt call, mapping libvirt's errors to the API's, then re-reads
    /// the network `name` (events follow too, but the caller sees the result at once).
    func perform<T: Sendable>(_ name: String, _ what: String, _ body: @escaping @Sendable (LibvirtConnection) throws -> T) async throws -> T {
        guard let connection = await monitor.current else {
            throw ControllerError.libvirt("not connected to libvirt at \(monitor.uri); the service keeps reconnecting")
        }
        let result: T
        do {
            result = try await pool.run { try body(connection) }
        } catch let error as LibvirtError {
            throw Self.mapped(error, what)
        } catch is ThreadPoolFull {
            throw ControllerError.limitsExceeded("too many libvirt calls queued; try again")
        }
        await refresh(name)
        return result
    }

    static func mapped(_ error: LibvirtError, _ what: String) -> ControllerError {
        switch error.code {
        case LibvirtError.noNetwork: return .noSuchNetwork("\(what): \(error.message)")
        case LibvirtError.networkExists: return .alreadyExists("\(what): \(error.message)")
        case LibvirtError.invalidArgument, LibvirtError.xmlError, LibvirtError.xmlDetail:
            return .invalidArgs("\(what): \(error.message)")
        case LibvirtError.operationInvalid: return .invalidState("\(what): \(error.message)")
        default: return .libvirt("\(what): \(error.message)")
        }
    }
}

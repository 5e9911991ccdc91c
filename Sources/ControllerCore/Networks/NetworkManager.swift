import BlockingThreads
import Libvirt
import Logging

/// The libvirt networks of the connection: a cache rebuilt on every (re)connect and kept
/// current by libvirt's network lifecycle events (a `virsh net-destroy` behind the service's
/// back shows up). Blocking libvirt calls run on a thread pool of their own.
public actor NetworkManager {
    private let logger: Logger
    /// The networks by name, libvirt's events and the resync (shared with the VM cache).
    private var mirror: LibvirtMirror<NetworkInfo, NetworkLifecycleEvent>
    private var networks: [String: NetworkInfo] { mirror.objects }
    private var libvirt: LibvirtCalls { mirror.calls }
    private var observer: (@Sendable (NetworkChange) async -> Void)?
    private let seal: HostBridgeSeal
    private let firewall: HostBridgeFirewall
    /// "network bridge" pairs whose seal failure was logged (once each).
    private var sealWarned: Set<String> = []
    /// The bridges the firewall tables were last written for (nil: not written yet).
    private var firewalled: [String]?
    /// Whether the firewall's last apply or check failed (logged once until it holds again).
    private var firewallWarned = false
    private var checkTask: Task<Void, Never>?

    /// `sysctl` is where the host's sysctl tree is (tests may point elsewhere).
    public init(monitor: LibvirtMonitor, logger: Logger, sysctl: String = "/proc/sys", firewall: HostBridgeFirewall = HostBridgeFirewall()) {
        mirror = LibvirtMirror("network", calls: LibvirtCalls(monitor: monitor, pool: "libvirt-net", threads: 1, maxQueued: 256)) { $0.name }
        self.logger = logger
        self.seal = HostBridgeSeal(root: sysctl)
        self.firewall = firewall
    }

    public func setObserver(_ observer: @escaping @Sendable (NetworkChange) async -> Void) {
        self.observer = observer
        mirror.start { [weak self] event in await self?.refresh(event.name) }
        // Sysctls and firewall tables can be changed behind the service's back (sysctl -w,
        // `systemctl restart nftables`, whose nftables.conf flushes the ruleset): re-checked.
        checkTask = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: HostBridgeFirewall.checkInterval)
                await self?.recheckIsolation()
            }
        }
    }

    public func stop() {
        mirror.stop()
        checkTask?.cancel()
    }

    public func list() -> [NetworkInfo] { networks.values.sorted { $0.name < $1.name } }
    public func network(named name: String) -> NetworkInfo? { networks[name] }

    /// Rebuilds the cache from libvirt (after every connect).
    public func resync() async {
        let since = mirror.beginReading()
        guard let reading = await mirror.resync(logger: logger,
                                                register: { connection, feed in try connection.onNetworkLifecycleEvents(feed) },
                                                list: { try $0.allNetworks().compactMap { try? Self.describe($0) } }),
              let fresh = reading.fresh else { return }
        // What was read or removed while libvirt listed is newer than the listing.
        let gone = mirror.keys(notIn: fresh, since: since)
        for info in fresh where !mirror.isNewer(info.name, than: since) { await upsert(info, reading: since) }
        // An event may have removed one meanwhile: each removal is signalled once.
        for name in gone where mirror.remove(name, reading: since) != nil { await observer?(.removed(name: name)) }
        mirror.settle(since: since)
        _ = await syncFirewall(networks.values.filter(isIsolatedHostBridge).map(\.bridge).sorted())
    }

    /// Reads one network (blocking).
    static func describe(_ network: LibvirtNetwork) throws -> NetworkInfo {
        let (kind, bridge) = try NetworkXML.read(try network.xml())
        return NetworkInfo(name: network.name, uuid: network.uuid, kind: kind, bridge: bridge,
                           active: network.isActive, autostart: (try? network.autostart()) ?? false)
    }

    /// `reading`: the stamp of the reading of libvirt `fresh` comes from (nil: the cached
    /// network checked again).
    private func upsert(_ fresh: NetworkInfo, reading stamp: UInt64?) async {
        var info = fresh
        let sealed = sealIfIsolated(info)
        var bridges = Set(networks.values.filter { $0.name != info.name && isIsolatedHostBridge($0) }.map(\.bridge))
        if isIsolatedHostBridge(info) { bridges.insert(info.bridge) }
        let walled = await syncFirewall(bridges.sorted())
        info.hostIsolated = sealed && walled
        // The seal and firewall waited: a reading begun later may have been cached meanwhile.
        if let stamp, mirror.isNewer(info.name, than: stamp) { return }
        switch mirror.put(info, reading: stamp) {
        case nil: return
        case .added: await observer?(.added(info))
        case .updated: await observer?(.updated(info))
        }
    }

    /// A running isolated network whose bridge is a bridge of this host (libvirt's test
    /// driver names bridges that do not exist here).
    private func isIsolatedHostBridge(_ info: NetworkInfo) -> Bool {
        info.kind == "isolated" && info.active && !libvirt.monitor.uri.hasPrefix("test:") && HostBridgeSeal.isHostBridge(info.bridge)
    }

    /// Makes the firewall tables hold the rules for `bridges` (written when the set changed
    /// or the tables differ); whether they hold now.
    private func syncFirewall(_ bridges: [String]) async -> Bool {
        if bridges.isEmpty && (firewalled == nil || firewalled == []) { return true }
        if firewalled == bridges, await firewall.holds(bridges) { return true }
        do {
            try await firewall.apply(bridges)
            let changedBehind = firewalled == bridges
            firewalled = bridges
            if changedBehind {
                logger.warning("nftables table \(HostBridgeFirewall.table) was changed behind the service's back; written again for \(bridges.joined(separator: ", "))")
            } else {
                logger.info("""
                    nftables table \(HostBridgeFirewall.table): \
                    \(bridges.isEmpty ? "removed (no isolated network runs)" : "drops what the host would receive from \(bridges.joined(separator: ", "))")
                    """)
            }
            firewallWarned = false
            return true
        } catch {
            if !firewallWarned {
                logger.warning("cannot keep the host out of \(bridges.joined(separator: ", ")) with nftables: \(error); the host may answer guests there")
                firewallWarned = true
            }
            firewalled = nil
            return false
        }
    }

    /// Checks every running isolated network's sysctls and the firewall again (see
    /// ``HostBridgeFirewall/checkInterval``), restoring what changed.
    func recheckIsolation() async {
        let isolated = networks.values.filter(isIsolatedHostBridge)
        guard !isolated.isEmpty || !(firewalled ?? []).isEmpty else { return }
        for info in isolated.sorted(by: { $0.name < $1.name }) { await upsert(info, reading: nil) }
        if isolated.isEmpty { _ = await syncFirewall([]) }
    }

    /// Keeps the host out of a running isolated network's bridge (``HostBridgeSeal``), on
    /// every re-read of the network, so a bridge libvirt made again is sealed again. Only
    /// bridges of this host: libvirt's test driver names bridges that do not exist here.
    private func sealIfIsolated(_ info: NetworkInfo) -> Bool {
        guard isIsolatedHostBridge(info) else { return false }
        let outcome = seal.apply(info.bridge)
        if !outcome.changed.isEmpty {
            logger.info("network \(info.name): the host takes no part in bridge \(info.bridge) (\(outcome.changed.joined(separator: ", ")))")
        }
        let key = "\(info.name) \(info.bridge)"
        if outcome.held {
            sealWarned.remove(key)
        } else if sealWarned.insert(key).inserted {
            let wanted = HostBridgeSeal.settings.map { "\(HostBridgeSeal.sysctlName($0.path, info.bridge))=\($0.value)" }
            logger.warning("""
                network \(info.name): cannot keep the host out of bridge \(info.bridge): \
                \(outcome.failures.joined(separator: "; ")); the host may answer guests on it; set \
                \(wanted.joined(separator: " ")) (sysctl -w)
                """)
        }
        return outcome.held
    }

    /// Re-reads one network; removes it when libvirt no longer knows it.
    @discardableResult
    func refresh(_ name: String) async -> NetworkInfo? {
        // As for VMs: a re-read that began before another's reading was cached gives way.
        let since = mirror.beginReading()
        guard let connection = try? await libvirt.connection() else { return networks[name] }
        do {
            guard let network = try await libvirt.read(connection, { try $0.network(named: name) }) else {
                guard !mirror.isNewer(name, than: since) else { return networks[name] }
                if mirror.remove(name, reading: since) != nil {
                    await observer?(.removed(name: name))
                    _ = await syncFirewall(networks.values.filter(isIsolatedHostBridge).map(\.bridge).sorted())
                }
                return nil
            }
            let info = try await libvirt.read(connection) { _ in try Self.describe(network) }
            guard !mirror.isNewer(name, than: since) else { return networks[name] }
            await upsert(info, reading: since)
            return info
        } catch {
            logger.warning("cannot re-read network \(name): \(error)")
            return networks[name]
        }
    }

    /// Runs a blocking libvirt call, mapping libvirt's errors to the API's, then re-reads
    /// the network `name` (events follow too, but the caller sees the result at once).
    func perform<T: Sendable>(_ name: String, _ what: String, _ body: @escaping @Sendable (LibvirtConnection) throws -> T) async throws -> T {
        let result = try await libvirt.call(what, body)
        await refresh(name)
        return result
    }
}

import Readiness
import BlockingThreads
import FoundationEssentials
import Libvirt
import Logging

/// A change the bus layer shows: objects come and go, properties and state change.
public enum VMChange: Sendable {
    case added(VMInfo)
    case updated(VMInfo, stateChanged: Bool)
    case removed(uuid: String)
    /// An ephemeral VM stopped (or was found stopped at start-up): undefine it and discard its overlay.
    case ephemeralStopped(VMInfo)
    /// The guest sent `READY=1` (after the `.updated` that shows it).
    case ready(VMInfo)
}

/// The VMs of the libvirt connection: a cache rebuilt from libvirt on every (re)connect and
/// kept current by lifecycle events (also for changes made by others, e.g. `virsh`).
/// Blocking libvirt calls run on a pool of threads, so one slow call never delays others.
public actor VMManager {
    public nonisolated let config: VMConfig
    let logger: Logger
    /// The VMs by UUID, libvirt's events and the resync (shared with the network cache).
    private var mirror: LibvirtMirror<VMInfo, DomainLifecycleEvent>
    var vms: [String: VMInfo] { mirror.objects }
    private var libvirt: LibvirtCalls { mirror.calls }
    /// The UUID of each VM name in `vms` (kept by `store`), so a lookup by name does not
    /// scan every VM.
    private var uuidByName: [String: String] = [:]
    var observer: (@Sendable (VMChange) async -> Void)?
    /// Domain type for new VMs, from the configuration or the connection's capabilities.
    public private(set) var domainType = "qemu"
    /// The emulators the connection's capabilities name: the only `<emulator>` caller XML may give.
    public private(set) var emulators: [String] = []
    /// The host's memory and CPUs as libvirt reports them (0 until first connected).
    public private(set) var host = HostResources(memoryMiB: 0, cpus: 0)
    /// VMs being started now, counted against the host's budget until they run.
    var starting: [String: VMInfo] = [:]
    public private(set) var profiles: [VMProfile]
    /// The guests' readiness channels (nil if the reader could not start: no readiness then).
    let channels: ReadinessChannels?
    /// What each running VM's guest reported during its current boot.
    var readiness: ReadinessTracker
    /// The boots (UUID and domain ID) whose channel is being retried.
    var channelRetries: Set<ReadinessChannels.Key> = []
    private var channelTask: Task<Void, Never>?
    /// Pending waits on the cache (VMManager+Waits.swift), by id.
    /// Job-completed events per VM (``VMInfo/jobsEnded``), by uuid.
    var jobsEnded: [String: UInt64] = [:]
    var waiters: [UInt64: Waiter] = [:]
    var nextWaiterID: UInt64 = 0

    /// - Parameter stateDirectory: where the guests' readiness is kept across restarts (nil: not kept).
    public init(monitor: LibvirtMonitor, config: VMConfig, profiles: [VMProfile], logger: Logger, stateDirectory: String? = nil) {
        mirror = LibvirtMirror("domain", calls: LibvirtCalls(monitor: monitor, pool: "libvirt-call", threads: 4, maxQueued: 512)) { $0.uuid }
        self.config = config
        self.profiles = profiles
        self.logger = logger
        do { channels = try ReadinessChannels() } catch {
            logger.error("readiness channels disabled: \(error)")
            channels = nil
        }
        readiness = ReadinessTracker(file: stateDirectory.map { ReadinessFile(path: $0 + "/readiness.json", logger: logger) },
                                     logger: logger)
    }

    public func setObserver(_ observer: @escaping @Sendable (VMChange) async -> Void) {
        self.observer = observer
        mirror.start { [weak self] event in await self?.handle(event) }
        if let channels {
            channelTask = Task { [weak self] in
                for await event in channels.events { await self?.guestEvent(event) }
            }
        }
    }

    /// Stops handling events; returns once the guests' readiness is saved.
    public func stop() async {
        mirror.stop()
        channelTask?.cancel()
        await readiness.flush()
    }

    // MARK: reading

    public func list() -> [VMInfo] { vms.values.sorted { $0.name < $1.name } }
    public func vm(uuid: String) -> VMInfo? { vms[uuid] }
    public func vm(named name: String) -> VMInfo? { uuidByName[name].flatMap { vms[$0] } }

    /// Which VMs use each image: its path → the VMs' UUIDs, ordered by VM name (Disk
    /// `AttachedTo`). One pass over the cache, nothing sorted but each image's few users.
    public func diskUsers() -> [String: [String]] {
        var users: [String: [(name: String, uuid: String)]] = [:]
        for vm in vms.values {
            for disk in vm.disks { users[disk.source, default: []].append((vm.name, vm.uuid)) }
        }
        return users.mapValues { $0.sorted { $0.name < $1.name }.map(\.uuid) }
    }

    /// Puts `info` in the cache (nil: removes the VM `uuid`), keeping the name index, and
    /// wakes the waits on the VM; the change, nil when there is none. When the VM leaves a
    /// name that another cached VM still has (two entries can share one for a moment: a
    /// stale read racing a define), the name passes to that one.
    @discardableResult
    func store(_ info: VMInfo?, uuid: String, reading stamp: UInt64?) -> LibvirtMirror<VMInfo, DomainLifecycleEvent>.Change? {
        let left = vms[uuid].map(\.name).flatMap { $0 != info?.name && uuidByName[$0] == uuid ? $0 : nil }
        let change: LibvirtMirror<VMInfo, DomainLifecycleEvent>.Change?
        if let info {
            change = mirror.put(info, reading: stamp)
            guard change != nil else { return nil }
        } else {
            guard mirror.remove(uuid, reading: stamp ?? 0) != nil else { return nil }
            change = nil
        }
        if let left { uuidByName[left] = vms.first { $0.value.name == left }?.key }
        if let info { uuidByName[info.name] = uuid }
        wakeWaiters(uuid, info)
        return change
    }
    public func profile(named name: String) -> VMProfile? { profiles.first { $0.name == name } }

    /// Rebuilds the cache from libvirt (after every connect): registers for events on a new
    /// connection, adds, updates and removes objects. False when libvirt could not be listed
    /// (the cache is then as it was).
    @discardableResult
    public func resync() async -> Bool {
        let since = mirror.beginReading()
        guard let reading = await mirror.resync(logger: logger,
                                                register: { connection, feed in try connection.onLifecycleEvents(feed) },
                                                list: { try $0.allDomains().compactMap { try? Self.describe($0) } }) else { return false }
        let connection = reading.connection
        if reading.newConnection {
            let configured = config.domainType
            let (capabilities, node) = (try? await libvirt.read(connection) { (try $0.capabilities(), try $0.nodeResources()) })
                ?? ("", (memoryKiB: 0, cpus: 0))
            let types = DomainXML.domainTypes(capabilities: capabilities)
            emulators = DomainXML.emulators(capabilities: capabilities)
            host = HostResources(memoryMiB: node.memoryKiB >> 10, cpus: node.cpus)
            domainType = !configured.isEmpty ? configured
                : types.contains("kvm") && FileManager.default.fileExists(atPath: "/dev/kvm") ? "kvm"
                : types.contains("qemu") ? "qemu" : types.first ?? "qemu"
            logger.info("new VMs use domain type \(domainType) (offered: \(types.joined(separator: ", ")); host: \(host.memoryMiB) MiB, \(host.cpus) CPUs)")
        }
        guard let fresh = reading.fresh else { return false }
        // What was read or removed while libvirt listed (a VM defined or undefined meanwhile)
        // is newer than the listing: the listing neither removes nor replaces it.
        let gone = mirror.keys(notIn: fresh, since: since)
        readiness.forget(except: Set(vms.keys).subtracting(gone).union(fresh.map(\.uuid)))
        for info in fresh where !mirror.isNewer(info.uuid, than: since) { await upsert(info, reading: since) }
        // An event may have removed one meanwhile: each removal is signalled once.
        for uuid in gone where vms[uuid] != nil {
            store(nil, uuid: uuid, reading: since)
            await observer?(.removed(uuid: uuid))
        }
        mirror.settle(since: since)
        return true
    }

    /// Reads one domain's state and XML into a VMInfo (blocking).
    static func describe(_ domain: LibvirtDomain) throws -> VMInfo {
        var info = VMInfo(uuid: domain.uuid, name: domain.name)
        let (state, reason) = try domain.state()
        info.state = VMState(code: state)
        info.stateReason = DomainStateNames.reason(state: state, reason: reason)
        info.persistent = domain.isPersistent
        let active = state != 5 && state != 0
        info.domainID = active ? domain.id : -1
        try DomainXML.read(try domain.xml(inactive: info.persistent && !active), into: &info)
        return info
    }

    /// Caches what the reading stamped `stamp` found.
    private func upsert(_ fresh: VMInfo, reading stamp: UInt64) async {
        var info = fresh
        applyReadiness(&info)
        info.jobsEnded = jobsEnded[info.uuid] ?? 0
        let old: VMInfo?
        switch store(info, uuid: info.uuid, reading: stamp) {
        case nil:
            return
        case .added:
            old = nil
            await observer?(.added(info))
        case .updated(let before, _):
            old = before
            await observer?(.updated(info, stateChanged: before.state != info.state || before.stateReason != info.stateReason))
        }
        // A stopped ephemeral VM is discarded. "shutoff" with reason "unknown" is a VM that
        // never ran (just defined), which stays.
        if info.ephemeral, info.state == .shutoff, info.stateReason != "unknown", old?.state != .shutoff || old == nil {
            logger.notice("ephemeral VM \(info.name) stopped (\(info.stateReason)): discarding it")
            await observer?(.ephemeralStopped(info))
        }
    }

    private func handle(_ event: DomainLifecycleEvent) async {
        logger.debug("libvirt event \(event.event)/\(event.detail) for \(event.name) (\(event.uuid))")
        if event.event == DomainLifecycleEvent.rebooted { guestRebooted(event.uuid, name: event.name) }
        if event.event == DomainLifecycleEvent.jobCompleted { jobsEnded[event.uuid, default: 0] &+= 1 }
        await refresh(event.uuid)
    }

    /// Re-reads one domain and returns it as now cached; removes it when libvirt no longer
    /// knows it.
    @discardableResult
    func refresh(_ uuid: String) async -> VMInfo? {
        // Re-reads run side by side on the pool: one that began before another's reading
        // was cached may have asked libvirt before it too, so it gives way (a later change
        // brings its own event and re-read).
        let since = mirror.beginReading()
        guard let connection = try? await libvirt.connection() else { return vms[uuid] }
        do {
            let info = try await libvirt.read(connection) { try Self.describe(try $0.domain(uuid: uuid)) }
            guard !mirror.isNewer(uuid, than: since) else { return vms[uuid] }
            await upsert(info, reading: since)
            // As cached: with its guest's readiness (`info` is libvirt's view alone).
            return vms[uuid] ?? info
        } catch let error as LibvirtError where error.code == LibvirtError.noDomain {
            guard !mirror.isNewer(uuid, than: since) else { return vms[uuid] }
            readiness.forget(except: Set(vms.keys).subtracting([uuid]))
            if vms[uuid] != nil {
                store(nil, uuid: uuid, reading: since)
                await observer?(.removed(uuid: uuid))
            }
            return nil
        } catch {
            logger.warning("cannot re-read domain \(uuid): \(error)")
            return vms[uuid]
        }
    }

    // MARK: changing

    /// The connection, or a clear error at once while libvirt is unreachable.
    func connection() async throws -> LibvirtConnection { try await libvirt.connection() }

    /// Runs a blocking libvirt call on the pool, mapping libvirt's errors to the API's.
    func call<T: Sendable>(_ what: String, _ body: @escaping @Sendable (LibvirtConnection) throws -> T) async throws -> T {
        try await libvirt.call(what, body)
    }

    /// Checks a VM name is free.
    public func precheckName(_ name: String) throws {
        if vm(named: name) != nil { throw ControllerError.alreadyExists("a VM named \(name) already exists") }
    }

    /// Memory above the host's is refused.
    public func precheckResources(memoryMiB: UInt64?, vcpus: UInt32?) throws {
        if let memoryMiB {
            guard memoryMiB >= 16 else { throw ControllerError.invalidArgs("memory_mib \(memoryMiB) is below 16") }
            if host.memoryMiB > 0, memoryMiB > host.memoryMiB {
                throw ControllerError.invalidArgs("memory_mib \(memoryMiB) is more than the host's \(host.memoryMiB) MiB")
            }
        }
        if let vcpus {
            guard (1...4096).contains(vcpus) else { throw ControllerError.invalidArgs("vcpus \(vcpus) is outside 1...4096") }
        }
    }

    /// Defines a domain from complete XML and returns it as the cache now has it.
    public func define(xml: String, name: String) async throws -> VMInfo {
        let uuid = try await call("define \(name)") { try $0.define(xml: xml).uuid }
        logger.notice("defined VM \(name) (\(uuid))")
        guard let info = await refresh(uuid) else { throw ControllerError.libvirt("VM \(name) vanished right after it was defined") }
        return info
    }

    /// Runs a lifecycle operation on a VM and returns its state afterwards.
    @discardableResult
    func perform(_ uuid: String, _ operation: String, _ body: @escaping @Sendable (LibvirtDomain) throws -> Void) async throws -> VMInfo? {
        let name = vms[uuid]?.name ?? uuid
        try await call("\(operation) \(name)") { try body(try $0.domain(uuid: uuid)) }
        logger.notice("\(operation) VM \(name)")
        return await refresh(uuid)
    }

    /// Requests an ACPI shutdown; with a timeout, waits for the VM to stop and, with
    /// `force`, destroys it when the timeout passes.
    /// Returns whether the VM had to be destroyed (`force`).
    @discardableResult
    public func shutdown(_ uuid: String, timeout: Duration?, force: Bool) async throws -> Bool {
        try await perform(uuid, "shut down") { try $0.shutdown() }
        guard let timeout else { return false }
        // A transient VM is gone once it stopped.
        if try await wait(for: uuid, timeout: timeout, until: { $0 == nil || $0?.state == .shutoff }).met { return false }
        guard force else {
            throw ControllerError.busy("\(vms[uuid]?.name ?? uuid) did not shut down within \(timeout.components.seconds) s (pass force to destroy it then)")
        }
        logger.notice("VM \(vms[uuid]?.name ?? uuid) ignored the shutdown request for \(timeout.components.seconds) s: destroying it")
        try await perform(uuid, "destroy") { try $0.destroy() }
        return true
    }

    /// The domain XML (live, or the persistent definition with `inactive`).
    public func xml(_ uuid: String, inactive: Bool) async throws -> String {
        try await call("read the XML of \(vms[uuid]?.name ?? uuid)") { try $0.domain(uuid: uuid).xml(inactive: inactive) }
    }

    /// Rewrites the persistent definition with `transform` (metadata, resources).
    @discardableResult
    public func redefine(_ uuid: String, _ what: String, _ transform: @escaping @Sendable (String) throws -> String) async throws -> VMInfo? {
        guard let info = vms[uuid] else { throw ControllerError.noSuchVM("no VM with UUID \(uuid)") }
        guard info.persistent else { throw ControllerError.invalidState("\(info.name) is transient; \(what) needs a persistent VM") }
        try await call("\(what) \(info.name)") { connection in
            let domain = try connection.domain(uuid: uuid)
            _ = try connection.define(xml: try transform(try domain.xml(inactive: true)))
        }
        logger.notice("\(what) VM \(info.name)")
        return await refresh(uuid)
    }

    /// Undefines a shut-off VM (a running one is `InvalidState`).
    public func undefine(_ uuid: String) async throws {
        guard let info = vms[uuid] else { throw ControllerError.noSuchVM("no VM with UUID \(uuid)") }
        guard info.state == .shutoff || !info.persistent && info.state != .running else {
            throw ControllerError.invalidState("\(info.name) is \(info.state.rawValue); stop it before Undefine")
        }
        try await call("undefine \(info.name)") { try $0.domain(uuid: uuid).undefine() }
        logger.notice("undefined VM \(info.name)")
        await refresh(uuid)
    }

    // MARK: devices

    /// Adds a device live and/or to the persistent definition. Drivers without device calls
    /// (the test driver) get the persistent change by redefining the XML.
    public func attach(_ uuid: String, device: String, live: Bool, config: Bool, what: String) async throws {
        let name = vms[uuid]?.name ?? uuid
        try await call("\(what) \(name)") { connection in
            let domain = try connection.domain(uuid: uuid)
            do {
                try domain.attachDevice(device, live: live, config: config)
            } catch let error as LibvirtError where !live && Self.unsupported(error) {
                _ = try connection.define(xml: try DomainXML.adding(device: device, to: try domain.xml(inactive: true)))
            }
        }
        logger.notice("\(what) \(name)")
        await refresh(uuid)
    }

    /// Removes a device. A live removal needs the guest's consent: waits for it (up to
    /// `timeout`) and says clearly when the guest did not let go.
    public func detach(_ uuid: String, disk target: String? = nil, share tag: String? = nil, live: Bool, config: Bool,
                       timeout: Duration, what: String) async throws {
        let name = vms[uuid]?.name ?? uuid
        try await call("\(what) \(name)") { connection in
            let domain = try connection.domain(uuid: uuid)
            let source = try domain.xml(inactive: !live)
            guard let device = try DomainXML.device(in: source, disk: target, share: tag) else {
                throw ControllerError.invalidArgs("\(name) has no \(target.map { "disk at target \($0)" } ?? "share tagged \(tag ?? "")")")
            }
            do {
                try domain.detachDevice(device, live: live, config: config)
            } catch let error as LibvirtError where !live && Self.unsupported(error) {
                _ = try connection.define(xml: try DomainXML.removing(disk: target, share: tag, from: try domain.xml(inactive: true)))
            }
        }
        logger.notice("\(what) \(name) requested")
        guard live else { await refresh(uuid); return }
        // The guest's release arrives as libvirt's device-removed event (the cache re-reads the VM).
        let gone = try await wait(for: uuid, timeout: timeout) { info in
            guard let info else { return true }
            return target.map { t in !info.disks.contains { $0.target == t } } ?? !info.shares.contains { $0.tag == tag }
        }
        if gone.met { return }
        throw ControllerError.busy("""
            the guest in \(name) did not release \(target ?? tag ?? "the device") within \(timeout.components.seconds) s; \
            it stays attached until the guest lets go\(config ? " (it is gone from the persistent definition)" : "")
            """)
    }

    static func unsupported(_ error: LibvirtError) -> Bool {
        error.code == LibvirtError.noSupport || error.code == LibvirtError.operationUnsupported
    }

    // MARK: images

    /// Grows the image of the disk at `target` of a running VM (qemu's block resize).
    public func blockResize(_ uuid: String, target: String, bytes: UInt64) async throws {
        try await perform(uuid, "resize disk \(target) of") { try $0.blockResize(target, bytes: bytes) }
    }
}

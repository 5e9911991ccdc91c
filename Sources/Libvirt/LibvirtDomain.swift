import CLibvirt
import FoundationEssentials
import Glibc

/// A libvirt domain handle. Every call blocks: use it from a dedicated thread.
///
/// `@unchecked Sendable` is safe: libvirt's domain objects are reference-counted and
/// thread-safe (each call takes the driver's locks); the pointer is immutable and freed
/// once, in `deinit`, when no call can be running.
public final class LibvirtDomain: @unchecked Sendable {
    let pointer: virDomainPtr

    init(_ pointer: virDomainPtr) { self.pointer = pointer }

    deinit { virDomainFree(pointer) }

    /// The domain's UUID in its usual text form.
    public var uuid: String {
        libvirtUUID { virDomainGetUUIDString(pointer, $0) }
    }

    public var name: String { virDomainGetName(pointer).map { String(cString: $0) } ?? "" }

    /// The running domain's ID (new at every start), or -1 when it is not running.
    public var id: Int32 {
        let id = virDomainGetID(pointer)
        return id == UInt32.max ? -1 : Int32(truncatingIfNeeded: id)
    }

    public var isPersistent: Bool { virDomainIsPersistent(pointer) == 1 }
    public var isActive: Bool { virDomainIsActive(pointer) == 1 }

    /// The domain XML; `inactive` gives the persistent definition rather than the live one.
    public func xml(inactive: Bool = false) throws -> String {
        let flags = inactive ? UInt32(VIR_DOMAIN_XML_INACTIVE.rawValue) : 0
        guard let text = virDomainGetXMLDesc(pointer, flags) else { throw LibvirtError.last("cannot read the XML of \(name)") }
        defer { free(text) }
        return String(cString: text)
    }

    /// State and reason codes (`virDomainState`, per-state reason enums).
    public func state() throws -> (state: Int32, reason: Int32) {
        var state: Int32 = 0
        var reason: Int32 = 0
        guard virDomainGetState(pointer, &state, &reason, 0) == 0 else { throw LibvirtError.last("cannot read the state of \(name)") }
        return (state, reason)
    }

    public func start() throws { try check(virDomainCreate(pointer), "start") }
    public func shutdown() throws { try check(virDomainShutdown(pointer), "shut down") }
    public func destroy() throws { try check(virDomainDestroy(pointer), "destroy") }
    public func reboot() throws { try check(virDomainReboot(pointer, 0), "reboot") }
    public func suspend() throws { try check(virDomainSuspend(pointer), "suspend") }
    public func resume() throws { try check(virDomainResume(pointer), "resume") }
    /// Grows the image behind disk `target` of a running domain (qemu's block_resize).
    public func blockResize(_ target: String, bytes: UInt64) throws {
        try check(virDomainBlockResize(pointer, target, bytes, UInt32(VIR_DOMAIN_BLOCK_RESIZE_BYTES.rawValue)), "resize disk \(target) of")
    }

    /// Removes the persistent definition, with managed save, snapshot and checkpoint
    /// metadata and NVRAM (what a user removing a VM means).
    public func undefine() throws {
        let flags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE.rawValue | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA.rawValue
            | VIR_DOMAIN_UNDEFINE_NVRAM.rawValue | VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA.rawValue
        if virDomainUndefineFlags(pointer, UInt32(flags)) == 0 { return }
        // Drivers that refuse some of these flags (the test driver) undefine without them;
        // a real failure fails again below and reports its own error.
        virResetLastError()
        try check(virDomainUndefine(pointer), "undefine")
    }

    private func check(_ result: Int32, _ what: String) throws {
        guard result == 0 else { throw LibvirtError.last("cannot \(what) \(name)") }
    }
}

extension LibvirtConnection {
    /// Every domain, active and inactive.
    public func allDomains() throws -> [LibvirtDomain] {
        let conn = try handle()
        var list: UnsafeMutablePointer<virDomainPtr?>?
        let count = virConnectListAllDomains(conn, &list, 0)
        guard count >= 0, let list else { throw LibvirtError.last("cannot list domains") }
        defer { free(list) }
        return (0..<Int(count)).compactMap { list[$0].map(LibvirtDomain.init) }
    }

    public func domain(uuid: String) throws -> LibvirtDomain {
        guard let d = virDomainLookupByUUIDString(try handle(), uuid) else { throw LibvirtError.last("no domain with UUID \(uuid)") }
        return LibvirtDomain(d)
    }

    public func domain(name: String) throws -> LibvirtDomain {
        guard let d = virDomainLookupByName(try handle(), name) else { throw LibvirtError.last("no domain named \(name)") }
        return LibvirtDomain(d)
    }

    /// Defines (or redefines, same UUID) a persistent domain from XML.
    public func define(xml: String) throws -> LibvirtDomain {
        guard let d = virDomainDefineXML(try handle(), xml) else { throw LibvirtError.last("cannot define the domain") }
        return LibvirtDomain(d)
    }

    /// The hypervisor capabilities XML.
    public func capabilities() throws -> String {
        guard let text = virConnectGetCapabilities(try handle()) else { throw LibvirtError.last("cannot read capabilities") }
        defer { free(text) }
        return String(cString: text)
    }
}

extension LibvirtConnection {
    /// The host's memory in KiB and its active CPUs (`virNodeGetInfo`).
    public func nodeResources() throws -> (memoryKiB: UInt64, cpus: UInt32) {
        var info = virNodeInfo()
        guard virNodeGetInfo(try handle(), &info) == 0 else { throw LibvirtError.last("cannot read node info") }
        return (UInt64(info.memory), UInt32(info.cpus))
    }
}

extension LibvirtDomain {
    /// Adds a device (`<disk>`, `<filesystem>` XML) to the running domain (`live`) and/or its
    /// persistent definition (`config`).
    public func attachDevice(_ xml: String, live: Bool, config: Bool) throws {
        try checkDevice(virDomainAttachDeviceFlags(pointer, xml, deviceFlags(live: live, config: config)), "attach a device to")
    }

    /// Asks to remove a device; a live removal completes when the guest lets go.
    public func detachDevice(_ xml: String, live: Bool, config: Bool) throws {
        try checkDevice(virDomainDetachDeviceFlags(pointer, xml, deviceFlags(live: live, config: config)), "detach a device from")
    }

    private func deviceFlags(live: Bool, config: Bool) -> UInt32 {
        (live ? UInt32(VIR_DOMAIN_AFFECT_LIVE.rawValue) : 0) | (config ? UInt32(VIR_DOMAIN_AFFECT_CONFIG.rawValue) : 0)
    }

    private func checkDevice(_ result: Int32, _ what: String) throws {
        guard result == 0 else { throw LibvirtError.last("cannot \(what) \(name)") }
    }
}

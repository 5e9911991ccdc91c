import CLibvirt
import Synchronization

/// A domain lifecycle event (`VIR_DOMAIN_EVENT_ID_LIFECYCLE`).
public struct DomainLifecycleEvent: Sendable {
    public let uuid: String
    public let name: String
    /// `virDomainEventType`: 0 defined, 1 undefined, 2 started, 3 suspended, 4 resumed,
    /// 5 stopped, 6 shutdown, 7 pmsuspended, 8 crashed.
    public let event: Int32
    public let detail: Int32

    /// Not a libvirt lifecycle code: a device was removed (`VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED`,
    /// e.g. a guest acknowledged a disk unplug).
    public static let deviceRemoved: Int32 = -1
    /// Not a libvirt lifecycle code: the guest rebooted (`VIR_DOMAIN_EVENT_ID_REBOOT`); with
    /// `on_reboot=restart` the domain keeps running and no lifecycle event is sent.
    public static let rebooted: Int32 = -2
    /// Not a libvirt lifecycle code: a job of the domain ended, a backup's included
    /// (`VIR_DOMAIN_EVENT_ID_JOB_COMPLETED`; its figures are read with the job's stats).
    public static let jobCompleted: Int32 = -3
    public static let defined: Int32 = 0
    public static let undefined: Int32 = 1
    public static let stopped: Int32 = 5
}

/// Receives the events of one connection; kept alive by the connection.
final class EventSink: Sendable {
    let handler: @Sendable (DomainLifecycleEvent) -> Void
    init(_ handler: @escaping @Sendable (DomainLifecycleEvent) -> Void) { self.handler = handler }
}

private let lifecycleTrampoline: @convention(c) (virConnectPtr?, virDomainPtr?, Int32, Int32, UnsafeMutableRawPointer?) -> Int32 = {
    _, domain, event, detail, opaque in
    guard let domain, let opaque else { return 0 }
    let sink = Unmanaged<EventSink>.fromOpaque(opaque).takeUnretainedValue()
    let uuid = libvirtUUID { virDomainGetUUIDString(domain, $0) }
    let name = virDomainGetName(domain).map { String(cString: $0) } ?? ""
    sink.handler(DomainLifecycleEvent(uuid: uuid, name: name, event: event, detail: detail))
    return 0
}

private let deviceRemovedTrampoline: @convention(c) (virConnectPtr?, virDomainPtr?, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = {
    _, domain, alias, opaque in
    guard let domain, let opaque else { return }
    let sink = Unmanaged<EventSink>.fromOpaque(opaque).takeUnretainedValue()
    let uuid = libvirtUUID { virDomainGetUUIDString(domain, $0) }
    let name = alias.map { String(cString: $0) } ?? ""
    sink.handler(DomainLifecycleEvent(uuid: uuid, name: name, event: DomainLifecycleEvent.deviceRemoved, detail: 0))
}

private let rebootTrampoline: @convention(c) (virConnectPtr?, virDomainPtr?, UnsafeMutableRawPointer?) -> Void = {
    _, domain, opaque in
    guard let domain, let opaque else { return }
    let sink = Unmanaged<EventSink>.fromOpaque(opaque).takeUnretainedValue()
    let uuid = libvirtUUID { virDomainGetUUIDString(domain, $0) }
    let name = virDomainGetName(domain).map { String(cString: $0) } ?? ""
    sink.handler(DomainLifecycleEvent(uuid: uuid, name: name, event: DomainLifecycleEvent.rebooted, detail: 0))
}

private let jobCompletedTrampoline: @convention(c) (virConnectPtr?, virDomainPtr?, virTypedParameterPtr?, Int32, UnsafeMutableRawPointer?) -> Void = {
    _, domain, _, _, opaque in
    guard let domain, let opaque else { return }
    let sink = Unmanaged<EventSink>.fromOpaque(opaque).takeUnretainedValue()
    let uuid = libvirtUUID { virDomainGetUUIDString(domain, $0) }
    let name = virDomainGetName(domain).map { String(cString: $0) } ?? ""
    sink.handler(DomainLifecycleEvent(uuid: uuid, name: name, event: DomainLifecycleEvent.jobCompleted, detail: 0))
}

extension LibvirtConnection {
    /// Calls `handler` (on libvirt's event thread) for every lifecycle event of every
    /// domain of this connection, until the connection is closed.
    public func onLifecycleEvents(_ handler: @escaping @Sendable (DomainLifecycleEvent) -> Void) throws {
        let sink = EventSink(handler)
        let generic = unsafeBitCast(lifecycleTrampoline, to: virConnectDomainEventGenericCallback.self)
        let id = virConnectDomainEventRegisterAny(try handle(), nil, Int32(VIR_DOMAIN_EVENT_ID_LIFECYCLE.rawValue), generic,
                                                  Unmanaged.passUnretained(sink).toOpaque(), nil)
        guard id >= 0 else { throw LibvirtError.last("cannot register for domain events") }
        keep(sink, callbackID: id)
        // Device removals (a guest acknowledging an unplug); drivers without them are fine.
        let removed = unsafeBitCast(deviceRemovedTrampoline, to: virConnectDomainEventGenericCallback.self)
        let removedID = virConnectDomainEventRegisterAny(try handle(), nil, Int32(VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED.rawValue), removed,
                                                         Unmanaged.passUnretained(sink).toOpaque(), nil)
        if removedID >= 0 { keep(sink, callbackID: removedID) } else { virResetLastError() }
        // Guest reboots (readiness starts over); drivers without them are fine.
        let reboot = unsafeBitCast(rebootTrampoline, to: virConnectDomainEventGenericCallback.self)
        let rebootID = virConnectDomainEventRegisterAny(try handle(), nil, Int32(VIR_DOMAIN_EVENT_ID_REBOOT.rawValue), reboot,
                                                        Unmanaged.passUnretained(sink).toOpaque(), nil)
        if rebootID >= 0 { keep(sink, callbackID: rebootID) } else { virResetLastError() }
        // Ended jobs (a live backup's end); drivers without them are fine.
        let job = unsafeBitCast(jobCompletedTrampoline, to: virConnectDomainEventGenericCallback.self)
        let jobID = virConnectDomainEventRegisterAny(try handle(), nil, Int32(VIR_DOMAIN_EVENT_ID_JOB_COMPLETED.rawValue), job,
                                                     Unmanaged.passUnretained(sink).toOpaque(), nil)
        if jobID >= 0 { keep(sink, callbackID: jobID) } else { virResetLastError() }
    }
}

import Readiness
import FoundationEssentials
import Logging

/// The guests' readiness channels: each running VM's channel is connected, and what its
/// guest reports goes to the ``ReadinessTracker`` (the records, per boot) and is shown in
/// the VM's `VMInfo.guest`.
extension VMManager {
    /// Sets `info.guest` for the VM as libvirt now describes it: a new boot (another domain
    /// ID) starts over at `waiting`, a VM that stopped drops its record, and a running VM's
    /// channel is (re)connected.
    func applyReadiness(_ info: inout VMInfo) {
        let reachable = info.readinessReachable && channels != nil
        info.guest = readiness.record(uuid: info.uuid, domainID: info.domainID, reachable: reachable, name: info.name)
        guard reachable, let channels else {
            channels?.close(uuid: info.uuid)
            return
        }
        let key = ReadinessChannels.Key(uuid: info.uuid, domainID: info.domainID)
        if !channels.isOpen(key) { connect(key, path: info.readinessSocket, name: info.name) }
    }

    /// Connects a channel, retrying in the background (1 s, then up to 10 s apart) while the
    /// same boot is running: qemu may not listen yet right at the start event.
    private func connect(_ key: ReadinessChannels.Key, path: String, name: String) {
        guard let channels else { return }
        do {
            try channels.open(key, path: path)
            logger.debug("VM \(name): readiness channel \(path) connected")
        } catch {
            // Per boot: a retry left from the VM's previous boot must not stand in for this one's.
            guard channelRetries.insert(key).inserted else { return }
            logger.info("VM \(name): \((error as? ControllerError)?.message ?? "\(error)"); retrying")
            Task { await self.retry(key, path: path, name: name) }
        }
    }

    private func retry(_ key: ReadinessChannels.Key, path: String, name: String) async {
        var delay: Duration = .seconds(1)
        defer { channelRetries.remove(key) }
        while !Task.isCancelled {
            try? await Task.sleep(for: delay)
            guard let channels, vms[key.uuid]?.domainID == key.domainID else { return }
            if channels.isOpen(key) { return }
            if (try? channels.open(key, path: path)) != nil {
                logger.info("VM \(name): readiness channel connected")
                return
            }
            delay = min(delay * 2, .seconds(10))
        }
    }

    /// A line from a guest, or its channel closing.
    func guestEvent(_ event: ReadinessChannels.Event) async {
        switch event {
        case .closed(let key):
            guard let info = vms[key.uuid], info.domainID == key.domainID, info.readinessReachable else { return }
            logger.info("VM \(info.name): readiness channel closed while running; reconnecting")
            connect(key, path: info.readinessSocket, name: info.name)
        case .message(let key, let message):
            guard var info = vms[key.uuid], info.domainID == key.domainID, readiness.isCurrent(key) else { return }
            switch message {
            // The channel passes each kind of noise on once per boot (ReadinessNoiseFilter).
            case .unknownKey(let name):
                logger.notice("VM \(info.name): its guest sent the unknown key \(name) on the readiness channel; ignored (logged once)")
                return
            case .unknownKeysCapped:
                logger.notice("VM \(info.name): its guest sent more than \(ReadinessNoiseFilter.maxUnknownKeys) unknown keys on the readiness channel; no more are logged until it boots again")
                return
            case .oversizedLine:
                logger.warning("VM \(info.name): its guest sent a line over \(ReadinessDecoder.maxLineBytes) bytes on the readiness channel; dropped (logged once)")
                return
            case .errno(let n):
                logger.warning("VM \(info.name): its guest reports ERRNO=\(n)")
            default:
                break
            }
            guard let change = readiness.apply(message, to: key) else { return }
            let (before, guest, becameReady) = (change.before, change.after, change.becameReady)
            if becameReady { logger.notice("VM \(info.name) is ready\(guest.status.isEmpty ? "" : ": \(guest.status)")") }
            if guest.readiness == .stopping && before.readiness != .stopping { logger.info("VM \(info.name): its guest is stopping") }
            info.guest = guest
            store(info, uuid: key.uuid, reading: nil)
            await observer?(.updated(info, stateChanged: false))
            if becameReady { await observer?(.ready(info)) }
            // Saved after the signals, on another thread: no encoding or fsync on the path to Ready.
            if guest.readiness != before.readiness { readiness.save() }
        }
    }

    /// libvirt's reboot event: the guest starts over in the same domain.
    func guestRebooted(_ uuid: String, name: String) {
        if readiness.rebooted(uuid) { logger.info("VM \(name) rebooted: waiting for its guest's READY=1 again") }
    }
}

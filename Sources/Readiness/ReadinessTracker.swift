import HostSystem
import FoundationEssentials
import Logging

/// The guests' readiness, one record per VM: the boot it describes (the VM's UUID and
/// libvirt domain ID: a new ID is a new boot) and what that boot's guest reported, saved in
/// the state directory so it survives a restart. The VM cache owns one and asks it at each
/// re-read of a VM and at each line from a guest; apart from the save (on the readiness
/// file's own thread) these are rules on values, tested without libvirt.
public struct ReadinessTracker: Sendable {
    public private(set) var guests: [String: GuestReadiness]
    private let file: ReadinessFile?
    private let logger: Logger

    /// - Parameter file: where the records are kept (nil: not kept; they start empty).
    public init(file: ReadinessFile?, logger: Logger) {
        self.file = file
        self.logger = logger
        guests = Self.load(file?.path, logger: logger)
    }

    /// The record of VM `uuid` as libvirt now describes it: none while it has no channel
    /// the daemon can read (not running), `waiting` for a boot not seen before.
    public mutating func record(uuid: String, domainID: Int32, reachable: Bool, name: String) -> GuestReadiness {
        guard reachable else {
            if guests.removeValue(forKey: uuid) != nil { save() }
            return GuestReadiness()
        }
        if guests[uuid]?.domainID != domainID {
            guests[uuid] = .waiting(domainID: domainID)
            save()
            logger.info("VM \(name) (domain \(domainID)): waiting for its guest's READY=1")
        }
        return guests[uuid] ?? GuestReadiness()
    }

    /// What a guest's line changed.
    public struct Change: Sendable {
        public let before: GuestReadiness
        public let after: GuestReadiness
        public let becameReady: Bool
    }

    /// Applies a line of boot `key`: nil when the line is not for the boot on record or
    /// changes nothing. Not saved here: the caller saves (``save()``) once the change is
    /// shown, when the readiness itself changed, so no encoding sits on the path to Ready.
    public mutating func apply(_ message: ReadinessMessage, to key: ReadinessChannels.Key) -> Change? {
        guard var guest = guests[key.uuid], guest.domainID == key.domainID else { return nil }
        let before = guest
        let becameReady = guest.apply(message, now: Self.nowMicroseconds())
        guard guest != before else { return nil }
        guests[key.uuid] = guest
        return Change(before: before, after: guest, becameReady: becameReady)
    }

    /// Whether `key` is the boot on record (lines of other boots are stale).
    public func isCurrent(_ key: ReadinessChannels.Key) -> Bool { guests[key.uuid]?.domainID == key.domainID }

    /// libvirt's reboot event: the guest starts over in the same domain. False when the VM
    /// has no record.
    public mutating func rebooted(_ uuid: String) -> Bool {
        guard let guest = guests[uuid] else { return false }
        guests[uuid] = .waiting(domainID: guest.domainID)
        save()
        return true
    }

    /// Drops the records of VMs libvirt no longer has.
    public mutating func forget(except uuids: Set<String>) {
        let before = guests.count
        guests = guests.filter { uuids.contains($0.key) }
        if guests.count != before { save() }
    }

    /// Returns once every record handed to the file is on disk (shutdown).
    public func flush() async { await file?.flush() }

    public static func nowMicroseconds() -> UInt64 {
        let now = HostFacts.wallClock()
        return UInt64(now.seconds) * 1_000_000 + UInt64(now.nanoseconds / 1000)
    }

    /// Hands the records to the readiness file's own thread (atomic write there; a failure
    /// is logged: readiness then does not survive a restart, nothing else changes).
    public func save() {
        guard let file else { return }
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            file.save(try encoder.encode(guests))
        } catch {
            logger.error("cannot encode the guests' readiness for \(file.path): \(error)")
        }
    }

    private static func load(_ path: String?, logger: Logger) -> [String: GuestReadiness] {
        guard let path, FileManager.default.fileExists(atPath: path) else { return [:] }
        do {
            return try JSONDecoder().decode([String: GuestReadiness].self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            logger.warning("cannot read \(path) (\(error)); the guests' readiness starts over")
            return [:]
        }
    }
}

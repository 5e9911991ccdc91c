/// Where a guest is in its boot, as its readiness channel told (the VM's `Readiness`).
public enum ReadinessState: String, Sendable, Codable {
    /// The VM is not running, or it has no readiness channel the daemon can read.
    case none
    /// Running with a channel; the guest has not sent `READY=1` during this boot.
    case waiting
    /// The guest sent `READY=1` during this boot.
    case ready
    /// The guest sent `STOPPING=1` (information only: it never delays a shutdown).
    case stopping
}

/// What one boot of a guest reported: kept per VM UUID and libvirt domain ID (a new ID is
/// a new boot) and saved in the state directory, so it survives a daemon restart.
public struct GuestReadiness: Sendable, Equatable, Codable {
    /// The domain ID of the boot this describes (-1: none).
    public var domainID: Int32 = -1
    public var readiness: ReadinessState = .none
    /// When `READY=1` arrived, in microseconds since the epoch (0: not ready).
    public var readySince: UInt64 = 0
    /// The guest's last `STATUS=` text, made safe to show.
    public var status = ""
    /// The guest's last `ERRNO=`, if any.
    public var errno: Int32?

    public init() {}

    /// A boot that has just begun, waiting for the guest.
    public static func waiting(domainID: Int32) -> GuestReadiness {
        var g = GuestReadiness()
        g.domainID = domainID
        g.readiness = .waiting
        return g
    }

    /// Applies one message; returns whether the guest became ready by it.
    public mutating func apply(_ message: ReadinessMessage, now: UInt64) -> Bool {
        switch message {
        case .ready:
            guard readiness != .ready else { return false }
            readiness = .ready
            readySince = now
            return true
        case .stopping:
            readiness = .stopping
            readySince = 0
        case .status(let text):
            status = text
        case .errno(let n):
            errno = n
        case .unknownKey, .oversizedLine, .unknownKeysCapped:
            break
        }
        return false
    }
}

/// What a guest reported on its readiness channel, one line at a time.
public enum ReadinessMessage: Sendable, Equatable {
    /// `READY=1`: the guest is up.
    case ready
    /// `STATUS=…`: free text, already made safe to show (see ``ReadinessDecoder``).
    case status(String)
    /// `STOPPING=1`: the guest is shutting down (information only).
    case stopping
    /// `ERRNO=N`: the guest reports a failure.
    case errno(Int32)
    /// A key the protocol does not know (the caller logs it once per VM and ignores it).
    case unknownKey(String)
    /// A line longer than ``ReadinessDecoder/maxLineBytes``, dropped whole.
    case oversizedLine
    /// The guest sent more distinct unknown keys than ``ReadinessNoiseFilter/maxUnknownKeys``;
    /// further ones are not reported (said once per boot).
    case unknownKeysCapped
}

/// What of a guest's noise reaches the daemon, per boot of a VM: each unknown key once, up
/// to ``maxUnknownKeys`` keys, then one ``ReadinessMessage/unknownKeysCapped``; one
/// ``ReadinessMessage/oversizedLine``; `ERRNO=` only when its value changes, at most
/// ``errnoBurst`` at once and then one per ``errnoIntervalSeconds`` (its log lines with it).
/// Its memory is bounded (at most `maxUnknownKeys` keys of at most 32 characters) and goes
/// with the boot's channel, so a guest that floods distinct keys costs a fixed amount, and
/// its noise never crowds out another VM's `READY=1` on the way to the service.
public struct ReadinessNoiseFilter: Sendable {
    public static let maxUnknownKeys = 16
    public static let errnoBurst = 3.0
    public static let errnoIntervalSeconds = 10.0

    public private(set) var unknownKeys: Set<String> = []
    private var capped = false
    private var oversized = false
    private var lastErrno: Int32?
    private var errnoBudget = ReadinessRateLimit(perSecond: 1 / errnoIntervalSeconds, burst: errnoBurst)

    public init() {}

    /// The message to pass on for `message` at `now`, or nil to drop it.
    public mutating func admit(_ message: ReadinessMessage, at now: ContinuousClock.Instant) -> ReadinessMessage? {
        switch message {
        case .unknownKey(let key):
            if unknownKeys.contains(key) { return nil }
            guard unknownKeys.count < Self.maxUnknownKeys else {
                if capped { return nil }
                capped = true
                return .unknownKeysCapped
            }
            unknownKeys.insert(key)
            return message
        case .oversizedLine:
            if oversized { return nil }
            oversized = true
            return message
        case .errno(let n):
            guard n != lastErrno, errnoBudget.allow(at: now) else { return nil }
            lastErrno = n
            return message
        case .unknownKeysCapped:
            return nil
        case .ready, .stopping, .status:
            return message
        }
    }
}

/// Turns the bytes a guest writes into messages. The guest is untrusted: lines are
/// newline-terminated `KEY=VALUE` in sd_notify's vocabulary, at most ``maxLineBytes`` each
/// (a longer line is dropped up to its newline, never buffered), values outside the
/// vocabulary are ignored, and `STATUS` text loses invalid UTF-8 and control characters and
/// is cut to ``maxStatusCharacters``. Memory stays bounded whatever the guest sends.
public struct ReadinessDecoder: Sendable {
    public static let maxLineBytes = 1024
    public static let maxStatusCharacters = 200

    private var line: [UInt8] = []
    private var discarding = false

    public init() {}

    /// Feeds received bytes; returns the messages of the lines they complete.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [ReadinessMessage] {
        var messages: [ReadinessMessage] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                if discarding {
                    discarding = false
                } else if let message = Self.decode(line) {
                    messages.append(message)
                }
                line.removeAll(keepingCapacity: true)
            } else if !discarding {
                if line.count == Self.maxLineBytes {
                    line.removeAll(keepingCapacity: true)
                    discarding = true
                    messages.append(.oversizedLine)
                } else {
                    line.append(byte)
                }
            }
        }
        return messages
    }

    /// One line without its newline; nil for an empty line or a value outside the vocabulary.
    static func decode(_ raw: [UInt8]) -> ReadinessMessage? {
        var bytes = raw[...]
        if bytes.last == UInt8(ascii: "\r") { bytes = bytes.dropLast() }
        guard !bytes.isEmpty else { return nil }
        guard let eq = bytes.firstIndex(of: UInt8(ascii: "=")) else { return .unknownKey(printable(bytes, limit: 32)) }
        let key = String(decoding: bytes[..<eq], as: UTF8.self)
        let value = bytes[bytes.index(after: eq)...]
        switch key {
        case "READY": return value.elementsEqual("1".utf8) ? .ready : nil
        case "STOPPING": return value.elementsEqual("1".utf8) ? .stopping : nil
        case "STATUS": return .status(printable(value, limit: maxStatusCharacters))
        case "ERRNO":
            guard value.count <= 6, let n = Int32(String(decoding: value, as: UTF8.self)), n >= 0 else { return nil }
            return .errno(n)
        default: return .unknownKey(printable(bytes[..<eq], limit: 32))
        }
    }

    /// `bytes` as text: invalid UTF-8 and control characters (C0, DEL, C1) dropped, at most
    /// `limit` characters.
    static func printable(_ bytes: some Collection<UInt8>, limit: Int) -> String {
        let text = String(decoding: bytes, as: UTF8.self)
        var out = String.UnicodeScalarView()
        var count = 0
        for scalar in text.unicodeScalars where count < limit {
            if scalar == "\u{FFFD}" || scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) { continue }
            out.append(scalar)
            count += 1
        }
        return String(out)
    }
}

/// A token bucket for a guest's lines: `burst` at once, then `perSecond`. Lines over the
/// rate are dropped (and counted), so a flooding guest costs the daemon a bounded amount.
public struct ReadinessRateLimit: Sendable {
    public let perSecond: Double
    public let burst: Double
    private var tokens: Double
    private var last: ContinuousClock.Instant?
    public private(set) var dropped = 0

    public init(perSecond: Double = 20, burst: Double = 40) {
        self.perSecond = perSecond
        self.burst = burst
        tokens = burst
    }

    /// Whether one more line may be handled at `now`.
    public mutating func allow(at now: ContinuousClock.Instant) -> Bool {
        if let last {
            let elapsed = (now - last).components
            tokens = min(burst, tokens + perSecond * (Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18))
        }
        last = now
        guard tokens >= 1 else { dropped += 1; return false }
        tokens -= 1
        return true
    }
}

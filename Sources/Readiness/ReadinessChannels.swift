import HostSystem

/// The daemon's side of the guests' readiness channels: a client connection to each running
/// VM's socket (qemu listens on it), read by ``StreamReaders``' thread, which sleeps until a
/// guest writes.
///
/// The guest is untrusted. Each channel decodes at most ``ReadinessDecoder/maxLineBytes`` per
/// line, passes on only what ``ReadinessNoiseFilter`` admits (bounded per boot), handles at
/// most `lines` per second and reads at most `chunks` × 4 KiB per second;
/// past either budget the channel is not read for a second, so the guest's own writes block
/// (back-pressure) and a flood costs the daemon a bounded, small amount of work.
public final class ReadinessChannels: Sendable {
    /// One boot of one VM: messages are only ever attributed to the domain they came from.
    public struct Key: Hashable, Sendable, CustomStringConvertible {
        public let uuid: String
        public let domainID: Int32
        public init(uuid: String, domainID: Int32) {
            self.uuid = uuid
            self.domainID = domainID
        }
        public var description: String { "\(uuid) (domain \(domainID))" }
    }

    public enum Event: Sendable {
        case message(Key, ReadinessMessage)
        /// The connection ended (the VM stopped, or qemu closed it).
        case closed(Key)
    }

    /// One boot's channel: its decoder and budgets, run on the reading thread.
    struct Channel: StreamConsumer {
        let key: Key
        var decoder = ReadinessDecoder()
        var noise = ReadinessNoiseFilter()
        var lines: ReadinessRateLimit
        var chunks: ReadinessRateLimit

        mutating func consume(_ bytes: ArraySlice<UInt8>, at now: ContinuousClock.Instant) -> (outputs: [Event], pause: Bool) {
            var pause = !chunks.allow(at: now)
            var out: [Event] = []
            for message in decoder.feed(bytes) {
                // Noise already reported costs nothing more; what passes spends the line budget.
                guard let passed = noise.admit(message, at: now) else { continue }
                if lines.allow(at: now) {
                    out.append(.message(key, passed))
                } else {
                    pause = true
                }
            }
            return (out, pause)
        }

        var closed: Event { .closed(key) }
    }

    public let events: AsyncStream<Event>
    private let readers: StreamReaders<Channel>
    private let linesPerSecond: Double
    private let chunksPerSecond: Double

    /// - Parameters: `linesPerSecond` and `chunksPerSecond` (4 KiB reads) bound each guest.
    public init(linesPerSecond: Double = 20, chunksPerSecond: Double = 16) throws {
        self.linesPerSecond = linesPerSecond
        self.chunksPerSecond = chunksPerSecond
        let readers = try StreamReaders<Channel>(threadName: "readiness")
        self.readers = readers
        events = readers.events
    }

    /// Connects to `path` for `key`, replacing any channel of the same VM. Throws `Io` naming
    /// the path when nothing listens there (yet).
    public func open(_ key: Key, path: String) throws {
        let channel = Channel(key: key, lines: ReadinessRateLimit(perSecond: linesPerSecond, burst: linesPerSecond * 2),
                              chunks: ReadinessRateLimit(perSecond: chunksPerSecond, burst: chunksPerSecond))
        try readers.open(path, what: "readiness channel of \(key)", consumer: channel) { $0.key.uuid == key.uuid }
    }

    /// Closes the channel of VM `uuid`, if any (no `closed` event).
    public func close(uuid: String) { readers.close { $0.key.uuid == uuid } }

    /// Whether a channel for exactly this boot is open.
    public func isOpen(_ key: Key) -> Bool { readers.contains { $0.key == key } }

    /// How many channels are open.
    public var count: Int { readers.count }
}

import BlockingThreads
import CLinux
import FoundationEssentials
import Glibc
import Synchronization

/// The daemon's side of the guests' readiness channels: a client connection to each running
/// VM's socket (qemu listens on it), read by one thread that sleeps in `poll` until a guest
/// writes — no polling, no cost for idle channels.
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

    public let events: AsyncStream<Event>
    private let continuation: AsyncStream<Event>.Continuation

    private struct Channel {
        let key: Key
        var decoder = ReadinessDecoder()
        var noise = ReadinessNoiseFilter()
        var lines: ReadinessRateLimit
        var chunks: ReadinessRateLimit
        var pausedUntil: ContinuousClock.Instant?
    }

    private let channels = Mutex<[Int32: Channel]>([:])
    private let wake: Int32
    private let linesPerSecond: Double
    private let chunksPerSecond: Double
    static let chunkBytes = 4096

    /// - Parameters: `linesPerSecond` and `chunksPerSecond` (4 KiB reads) bound each guest.
    public init(linesPerSecond: Double = 20, chunksPerSecond: Double = 16) throws {
        wake = mv_eventfd()
        guard wake >= 0 else { throw ControllerError.io("eventfd failed: \(String(cString: strerror(errno)))") }
        self.linesPerSecond = linesPerSecond
        self.chunksPerSecond = chunksPerSecond
        (events, continuation) = AsyncStream<Event>.makeStream(bufferingPolicy: .bufferingNewest(4096))
        NamedThread.start("readiness") { [self] in loop() }
    }

    /// Connects to `path` for `key`, replacing any channel of the same VM. Throws `Io` naming
    /// the path when nothing listens there (yet).
    public func open(_ key: Key, path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFSOCK else {
            throw ControllerError.io("readiness channel \(path) of \(key) is not a socket")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControllerError.io("socket failed: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            Glibc.close(fd)
            throw ControllerError.io("readiness channel path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard status == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw ControllerError.io("cannot connect to readiness channel \(path) of \(key): \(reason)")
        }
        let channel = Channel(key: key, lines: ReadinessRateLimit(perSecond: linesPerSecond, burst: linesPerSecond * 2),
                              chunks: ReadinessRateLimit(perSecond: chunksPerSecond, burst: chunksPerSecond))
        channels.withLock { all in
            for (other, c) in all where c.key.uuid == key.uuid {
                Glibc.close(other)
                all[other] = nil
            }
            all[fd] = channel
        }
        poke()
    }

    /// Closes the channel of VM `uuid`, if any (no `closed` event).
    public func close(uuid: String) {
        let closed = channels.withLock { all in
            let fds = all.filter { $0.value.key.uuid == uuid }.map(\.key)
            for fd in fds { Glibc.close(fd); all[fd] = nil }
            return !fds.isEmpty
        }
        if closed { poke() }
    }

    /// Whether a channel for exactly this boot is open.
    public func isOpen(_ key: Key) -> Bool { channels.withLock { all in all.values.contains { $0.key == key } } }

    /// How many channels are open.
    public var count: Int { channels.withLock { $0.count } }

    private func poke() {
        var one: UInt64 = 1
        _ = Glibc.write(wake, &one, 8)
    }

    private func loop() {
        var buffer = [UInt8](repeating: 0, count: Self.chunkBytes)
        while true {
            let now = ContinuousClock.now
            var timeout: Int32 = -1
            var fds = [pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
            channels.withLock { all in
                for (fd, c) in all {
                    if let until = c.pausedUntil, until > now {
                        let ms = Int32(clamping: (until - now).components.seconds * 1000 + (until - now).components.attoseconds / 1_000_000_000_000_000 + 1)
                        timeout = timeout < 0 ? ms : min(timeout, ms)
                    } else {
                        fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
                    }
                }
            }
            let n = poll(&fds, nfds_t(fds.count), timeout)
            if n < 0 && errno != EINTR { return }
            if fds[0].revents != 0 {
                var value: UInt64 = 0
                _ = Glibc.read(wake, &value, 8)
            }
            var out: [Event] = []
            for p in fds.dropFirst() where p.revents != 0 {
                channels.withLock { all in
                    guard var c = all[p.fd] else { return }
                    let count = buffer.withUnsafeMutableBytes { Glibc.read(p.fd, $0.baseAddress, $0.count) }
                    if count < 0 && (errno == EAGAIN || errno == EINTR) { return }
                    if count <= 0 {
                        Glibc.close(p.fd)
                        all[p.fd] = nil
                        out.append(.closed(c.key))
                        return
                    }
                    let at = ContinuousClock.now
                    var pause = !c.chunks.allow(at: at)
                    for message in c.decoder.feed(buffer[..<count]) {
                        // Noise already reported costs nothing more; what passes spends the line budget.
                        guard let passed = c.noise.admit(message, at: at) else { continue }
                        if c.lines.allow(at: at) {
                            out.append(.message(c.key, passed))
                        } else {
                            pause = true
                        }
                    }
                    c.pausedUntil = pause ? at + .seconds(1) : nil
                    all[p.fd] = c
                }
            }
            for event in out { continuation.yield(event) }
        }
    }
}

import BlockingThreads
import CLinux
import Glibc
import Synchronization

/// What a ``StreamReaders`` connection does with the bytes read from it: one value per
/// connection, owned by the reading thread, which decides what to pass on and whether the
/// connection is read again at once or only after a second's pause (back-pressure: the
/// writer then blocks).
public protocol StreamConsumer: Sendable {
    associatedtype Output: Sendable
    /// Takes one read's bytes (at most ``StreamReaders/chunkBytes``) at `now`.
    mutating func consume(_ bytes: ArraySlice<UInt8>, at now: ContinuousClock.Instant) -> (outputs: [Output], pause: Bool)
    /// What to pass on when the peer closes the connection.
    var closed: Output { get }
}

/// Client connections to unix stream sockets that a peer writes to (qemu's side of a guest
/// channel), read by one thread that sleeps in `poll(2)` until one of them has data: no
/// polling, no cost for an idle connection. Each connection's bytes go to its consumer;
/// what the consumers pass on (and their `closed` when a peer closes)
/// arrives on ``events`` in order.
public final class StreamReaders<Consumer: StreamConsumer>: Sendable {
    /// The bytes read at once.
    public static var chunkBytes: Int { 4096 }

    public let events: AsyncStream<Consumer.Output>
    private let continuation: AsyncStream<Consumer.Output>.Continuation

    private struct Connection {
        var consumer: Consumer
        var pausedUntil: ContinuousClock.Instant?
    }

    private let connections = Mutex<[Int32: Connection]>([:])
    private let wake: Int32

    /// Starts the reading thread, named `threadName`.
    public init(threadName: String) throws(SystemError) {
        wake = mv_eventfd()
        guard wake >= 0 else { throw .failed("eventfd failed") }
        (events, continuation) = AsyncStream<Consumer.Output>.makeStream(bufferingPolicy: .bufferingNewest(4096))
        NamedThread.start(threadName) { [self] in loop() }
    }

    /// Connects to the socket at `path` (refused when it is not a socket: a final symlink
    /// is not followed) and reads it into `consumer`, closing first every connection whose
    /// consumer `replacing` selects. `what` names the socket in errors.
    public func open(_ path: String, what: String, consumer: Consumer, replacing: (Consumer) -> Bool) throws(SystemError) {
        guard Files.kind(path) == .socket else { throw .io("\(what) \(path) is not a socket") }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .failed("socket failed") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            Glibc.close(fd)
            throw .io("\(what) path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard status == 0 else {
            let error = SystemError.failed("cannot connect to \(what) \(path)")
            Glibc.close(fd)
            throw error
        }
        connections.withLock { all in
            for (other, c) in all where replacing(c.consumer) {
                Glibc.close(other)
                all[other] = nil
            }
            all[fd] = Connection(consumer: consumer)
        }
        poke()
    }

    /// Closes every connection whose consumer `selected` picks (no `closed` event); returns
    /// whether there was one.
    @discardableResult
    public func close(where selected: (Consumer) -> Bool) -> Bool {
        let closed = connections.withLock { all in
            let fds = all.filter { selected($0.value.consumer) }.map(\.key)
            for fd in fds { Glibc.close(fd); all[fd] = nil }
            return !fds.isEmpty
        }
        if closed { poke() }
        return closed
    }

    /// Whether a connection's consumer matches `selected`.
    public func contains(where selected: (Consumer) -> Bool) -> Bool {
        connections.withLock { all in all.values.contains { selected($0.consumer) } }
    }

    /// How many connections are open.
    public var count: Int { connections.withLock { $0.count } }

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
            connections.withLock { all in
                for (fd, c) in all {
                    if let until = c.pausedUntil, until > now {
                        let left = (until - now).components
                        let ms = Int32(clamping: left.seconds * 1000 + left.attoseconds / 1_000_000_000_000_000 + 1)
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
            var out: [Consumer.Output] = []
            for p in fds.dropFirst() where p.revents != 0 {
                connections.withLock { all in
                    guard var c = all[p.fd] else { return }
                    let count = buffer.withUnsafeMutableBytes { Glibc.read(p.fd, $0.baseAddress, $0.count) }
                    if count < 0 && (errno == EAGAIN || errno == EINTR) { return }
                    if count <= 0 {
                        Glibc.close(p.fd)
                        all[p.fd] = nil
                        out.append(c.consumer.closed)
                        return
                    }
                    let at = ContinuousClock.now
                    let (outputs, pause) = c.consumer.consume(buffer[..<count], at: at)
                    out.append(contentsOf: outputs)
                    c.pausedUntil = pause ? at + .seconds(1) : nil
                    all[p.fd] = c
                }
            }
            for event in out { continuation.yield(event) }
        }
    }
}

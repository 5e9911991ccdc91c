import FoundationEssentials
import Glibc

/// A QMP (QEMU Machine Protocol) client on a unix socket: one JSON object per line each
/// way. Blocking, for one thread: ``StorageDaemon/session(_:)`` runs it on a thread of its
/// own. Events that arrive while a command waits for its reply are kept for
/// ``nextEvent(timeout:)``.
public final class QMPConnection {
    /// An asynchronous message from qemu: its name and its `data` object as JSON.
    public struct Event: Sendable {
        public var name: String
        public var data: Data
    }

    private let fd: Int32
    private var buffer: [UInt8] = []
    private var pending: [Event] = []
    private let stop: @Sendable () -> Bool
    /// What the connection is to (for error messages).
    let what: String

    /// Connects to `path`, reads the greeting and leaves capabilities negotiation.
    init(path: String, what: String, stop: @escaping @Sendable () -> Bool) throws {
        self.what = what
        self.stop = stop
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError.failed("socket for \(what)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        // On a throw from here on, deinit closes the socket (every property is set).
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw SystemError.invalidInput("the socket path \(path) is too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let e = errno
            throw SystemError.io("cannot connect to \(what) at \(path): \(String(cString: strerror(e)))", code: e)
        }
        _ = try readMessage(timeout: 10)
        try execute("qmp_capabilities")
    }

    deinit { if fd >= 0 { close(fd) } }

    private struct Command<A: Encodable>: Encodable {
        let execute: String
        let arguments: A?
        let id: String
    }

    /// The id of the next command: replies carry it back, so a late reply to a command that
    /// timed out is never taken for another's.
    private var nextID = 0

    private struct NoArguments: Encodable {}

    private struct Reply<R: Decodable>: Decodable {
        struct Failure: Decodable {
            let `class`: String
            let desc: String
        }
        let `return`: R?
        let error: Failure?
        let id: String?
    }

    private struct ReplyID: Decodable {
        let id: String?
    }

    private struct Envelope: Decodable {
        let event: String?
    }

    private struct EventData<D: Decodable>: Decodable {
        let data: D?
    }

    /// An empty reply (`{}`), or one whose content is not needed.
    public struct Ignored: Decodable {
        public init(from decoder: Decoder) throws {}
    }

    /// Runs `command` without arguments, ignoring what it returns.
    public func execute(_ command: String, timeout: Double = 30) throws {
        _ = try execute(command, NoArguments?.none, returning: Ignored.self, timeout: timeout)
    }

    /// Runs `command` with `arguments`, ignoring what it returns.
    public func execute<A: Encodable>(_ command: String, _ arguments: A, timeout: Double = 30) throws {
        _ = try execute(command, arguments, returning: Ignored.self, timeout: timeout)
    }

    /// Runs `command` with `arguments` and decodes its `return`. A QMP error is an `Io`
    /// error carrying qemu's description.
    public func execute<A: Encodable, R: Decodable>(_ command: String, _ arguments: A?, returning: R.Type, timeout: Double = 30) throws -> R {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        nextID += 1
        let id = "mv-\(nextID)"
        var line = Array(try encoder.encode(Command(execute: command, arguments: arguments, id: id)))
        line.append(UInt8(ascii: "\n"))
        try write(line)
        while true {
            let message = try readMessage(timeout: timeout)
            if let event = try? JSONDecoder().decode(Envelope.self, from: message).event {
                pending.append(Event(name: event, data: message))
                continue
            }
            // A reply to an earlier command that was given up on.
            if (try? JSONDecoder().decode(ReplyID.self, from: message))?.id != id { continue }
            let reply: Reply<R>
            do { reply = try JSONDecoder().decode(Reply<R>.self, from: message) } catch {
                throw SystemError.io("\(what) answered \(command) with unexpected JSON: \(error)")
            }
            if let failure = reply.error { throw SystemError.io("\(what): \(command) failed: \(failure.desc)") }
            guard let value = reply.return else { throw SystemError.io("\(what) answered \(command) without a result") }
            return value
        }
    }

    /// The next event (kept from before, or read within `timeout` seconds); nil when none
    /// came in time.
    public func nextEvent(timeout: Double) throws -> Event? {
        if !pending.isEmpty { return pending.removeFirst() }
        guard let message = try readLine(timeout: timeout, orNil: true) else { return nil }
        if let event = try? JSONDecoder().decode(Envelope.self, from: message).event { return Event(name: event, data: message) }
        return nil
    }

    /// Decodes an event's `data`.
    public static func data<D: Decodable>(of event: Event, as type: D.Type) -> D? {
        (try? JSONDecoder().decode(EventData<D>.self, from: event.data))?.data
    }

    private func write(_ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw SystemError.io("\(what) closed its socket: \(String(cString: strerror(errno)))") }
            done += n
        }
    }

    /// One line from the socket. Waits in slices of 0.2 s so that `stop` is honoured
    /// (`CancellationError`).
    private func readLine(timeout: Double, orNil: Bool) throws -> Data? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Data(buffer[..<newline])
                buffer.removeSubrange(...newline)
                return line
            }
            if stop() { throw CancellationError() }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 {
                if orNil { return nil }
                throw SystemError.io("\(what) did not answer within \(Int(timeout)) s")
            }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, Int32(min(200, max(1, left * 1000))))
            if ready < 0, errno == EINTR { continue }
            guard ready > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw SystemError.io("\(what) ended before it answered (was it killed?)") }
            buffer.append(contentsOf: chunk[..<n])
        }
    }

    @discardableResult
    private func readMessage(timeout: Double) throws -> Data {
        try readLine(timeout: timeout, orNil: false)!
    }
}

import Foundation
import SDBus
import Synchronization

/// Records the signals of one match on a client connection; tests wait for the ones they
/// expect with a deadline.
final class SignalCollector: Sendable {
    let client: BusConnection
    private let received = Mutex<[ReceivedSignal]>([])

    /// Subscribes and waits until the bus has installed the match.
    init(stack: TestStack, match: String) async throws {
        client = try await stack.client()
        _ = try await client.subscribe(match: match) { [self] signal in record(signal) }
        // A reply from the bus driver comes after it processed AddMatch.
        _ = try await client.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                                  interface: "org.freedesktop.DBus", member: "GetId")
    }

    private func record(_ signal: ReceivedSignal) { received.withLock { $0.append(signal) } }

    var all: [ReceivedSignal] { received.withLock { $0 } }

    /// Members and first arguments so far, for failure messages.
    var summary: String { all.map { "\($0.member)(\($0.arguments.map { "\($0)" }.joined(separator: ", ")))" }.joined(separator: "; ") }

    func clear() { received.withLock { $0.removeAll() } }

    /// The first signal (from index `after`) matching, waiting up to `timeout` seconds.
    func wait(timeout: TimeInterval = 5, after: Int = 0, _ matches: (ReceivedSignal) -> Bool) async -> ReceivedSignal? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let snapshot = all
            if snapshot.count > after, let hit = snapshot[after...].first(where: matches) { return hit }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    /// The first signal (from index `after`) for which `matches`, an asynchronous check
    /// (a read on the bus), holds; each signal is checked once. Waits up to `timeout` seconds.
    func first(timeout: TimeInterval, after: Int = 0, _ matches: (ReceivedSignal) async -> Bool) async -> ReceivedSignal? {
        let deadline = Date().addingTimeInterval(timeout)
        var checked = after
        while Date() < deadline {
            let snapshot = all
            while checked < snapshot.count {
                let signal = snapshot[checked]
                checked += 1
                if await matches(signal) { return signal }
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    /// A property read on the collector's own connection (for the checks of ``first``: a
    /// blocking read of the stack's would hold one of the few threads async code runs on).
    func property(_ path: String, _ interface: String, _ name: String) async -> DBusValue? {
        try? await client.getProperty(destination: TestStack.busName, path: path, interface: interface, name: name)
    }

    func close() async { await client.drainAndClose(timeout: .seconds(1)) }
}

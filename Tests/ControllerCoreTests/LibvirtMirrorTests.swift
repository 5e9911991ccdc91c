@testable import ControllerCore
import Libvirt
import Logging
import Synchronization
import XCTest

/// The one libvirt cache type: its table's changes (what the caches turn into Added,
/// Changed and Removed) and its resync against libvirt's test driver.
final class LibvirtMirrorTests: XCTestCase {
    struct Item: Sendable, Equatable {
        let key: String
        var value: Int
    }

    func mirror(_ uri: String = "test:///default") -> (LibvirtMirror<Item, NetworkLifecycleEvent>, LibvirtMonitor) {
        let monitor = LibvirtMonitor(uri: uri, logger: Logger(label: "test"))
        let calls = LibvirtCalls(monitor: monitor, pool: "mirror-test", threads: 1, maxQueued: 16)
        return (LibvirtMirror("item", calls: calls) { $0.key }, monitor)
    }

    func testPutSaysWhatChangedAndRemoveWhatWasThere() {
        var (m, _) = mirror()
        guard case .added(let a)? = m.put(Item(key: "a", value: 1)) else { return XCTFail("a new object is not .added") }
        XCTAssertEqual(a, Item(key: "a", value: 1))
        XCTAssertNil(m.put(Item(key: "a", value: 1)), "an equal reading is a change")
        guard case .updated(let old, let new)? = m.put(Item(key: "a", value: 2)) else { return XCTFail("a changed object is not .updated") }
        XCTAssertEqual(old.value, 1)
        XCTAssertEqual(new.value, 2)
        XCTAssertEqual(m["a"]?.value, 2)
        _ = m.put(Item(key: "b", value: 1))
        _ = m.put(Item(key: "c", value: 1))
        XCTAssertEqual(m.keys(notIn: [Item(key: "b", value: 9)]), ["a", "c"])
        XCTAssertEqual(m.remove("a")?.value, 2)
        XCTAssertNil(m.remove("a"), "a second removal removed something")
        XCTAssertEqual(m.objects.keys.sorted(), ["b", "c"])
    }

    /// A resync registers the callbacks once per connection and reads every object; while
    /// libvirt is unreachable it reads nothing.
    func testResyncRegistersOncePerConnectionAndListsEverything() async throws {
        let (unconnected, _) = mirror()
        let none = await unconnected.resync(logger: Logger(label: "test"), register: { _, _ in }, list: { _ in [] })
        XCTAssertNil(none, "a resync read something without a connection")

        var (m, monitor) = mirror()
        await monitor.start { _ in }
        for _ in 0..<100 where await !monitor.isConnected { try await Task.sleep(for: .milliseconds(20)) }
        m.start { _ in }
        let registrations = Counter()
        let list: @Sendable (LibvirtConnection) throws -> [Item] = { try $0.allNetworks().map { Item(key: $0.name, value: 0) } }
        let first = await m.resync(logger: Logger(label: "test"), register: { _, _ in registrations.add() }, list: list)
        XCTAssertEqual(first?.newConnection, true)
        XCTAssertEqual(first?.fresh?.map(\.key), ["default"], "test:///default has one network")
        let second = await m.resync(logger: Logger(label: "test"), register: { _, _ in registrations.add() }, list: list)
        XCTAssertEqual(second?.newConnection, false)
        XCTAssertEqual(registrations.value, 1, "the callbacks were registered again on the same connection")
        struct ListingFailed: Error {}
        let failed = await m.resync(logger: Logger(label: "test"), register: { _, _ in }, list: { _ in throw ListingFailed() })
        XCTAssertNotNil(failed, "a failed listing hid the connection (the cache reads its facts from it)")
        XCTAssertNil(failed?.fresh)
        m.stop()
        await monitor.stop()
    }
}

private final class Counter: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

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
        guard case .added(let a)? = m.put(Item(key: "a", value: 1), reading: m.beginReading()) else { return XCTFail("a new object is not .added") }
        XCTAssertEqual(a, Item(key: "a", value: 1))
        XCTAssertNil(m.put(Item(key: "a", value: 1), reading: m.beginReading()), "an equal reading is a change")
        guard case .updated(let old, let new)? = m.put(Item(key: "a", value: 2), reading: m.beginReading()) else {
            return XCTFail("a changed object is not .updated")
        }
        XCTAssertEqual(old.value, 1)
        XCTAssertEqual(new.value, 2)
        XCTAssertEqual(m["a"]?.value, 2)
        _ = m.put(Item(key: "b", value: 1), reading: m.beginReading())
        _ = m.put(Item(key: "c", value: 1), reading: m.beginReading())
        XCTAssertEqual(m.keys(notIn: [Item(key: "b", value: 9)], since: m.beginReading()), ["a", "c"])
        XCTAssertEqual(m.remove("a", reading: m.beginReading())?.value, 2)
        XCTAssertNil(m.remove("a", reading: m.beginReading()), "a second removal removed something")
        XCTAssertEqual(m.objects.keys.sorted(), ["b", "c"])
    }

    /// Readings run side by side and end in any order: one that began before a reading
    /// already cached for the same object gives way, whether it would replace, remove or
    /// bring back; a listing neither removes what a later reading found nor undoes it.
    func testAReadingBegunEarlierGivesWayToOneCachedLater() {
        var (m, _) = mirror()
        _ = m.put(Item(key: "old", value: 1), reading: m.beginReading())
        _ = m.put(Item(key: "undefined", value: 1), reading: m.beginReading())
        let listing = m.beginReading()
        let earlyReRead = m.beginReading()
        // While libvirt lists: "new" is defined, "undefined" goes, "old" changes (each found
        // by a re-read begun after the listing).
        _ = m.put(Item(key: "new", value: 1), reading: m.beginReading())
        m.remove("undefined", reading: m.beginReading())
        _ = m.put(Item(key: "old", value: 2), reading: m.beginReading())
        let stale = [Item(key: "old", value: 1), Item(key: "undefined", value: 1)]
        XCTAssertEqual(m.keys(notIn: stale, since: listing), [], "the listing removes what was defined while it ran")
        XCTAssertTrue(m.isNewer("old", than: listing), "the listing's stale reading would replace a newer one")
        XCTAssertTrue(m.isNewer("undefined", than: listing), "the listing would bring back what was removed while it ran")
        XCTAssertTrue(m.isNewer("old", than: earlyReRead), "a re-read begun earlier would replace one begun later")
        XCTAssertFalse(m.isNewer("other", than: listing))
        // A re-read begun after the last cached one is applied.
        let late = m.beginReading()
        XCTAssertFalse(m.isNewer("old", than: late))
        m.settle(since: listing)
        XCTAssertTrue(m.isNewer("undefined", than: listing), "a removal found after the listing began was forgotten by its own resync")
        m.settle(since: m.beginReading())
        XCTAssertFalse(m.isNewer("undefined", than: 0), "removals are kept after a later resync")
        // A change of the cache's own (a guest's readiness) is no reading of libvirt.
        let before = m.beginReading()
        _ = m.put(Item(key: "new", value: 5), reading: nil)
        XCTAssertFalse(m.isNewer("new", than: before), "a re-read of libvirt would give way to the cache's own change")
        XCTAssertEqual(m["new"]?.value, 5)
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

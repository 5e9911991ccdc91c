import Foundation
import SDBus
import XCTest

/// polkitd stopped and started again under a running daemon: privileged calls during the
/// outage are denied (never allowed) and change nothing; afterwards they work without
/// restarting the daemon.
final class PolkitOutageTests: XCTestCase {
    func testPrivilegedCallsAreDeniedWhilePolkitIsDownAndWorkAfterwards() throws {
        let s = try TestStack()
        defer { s.stop() }
        let stack = TestStack.repo.appendingPathComponent("scripts/stack").path
        let busDir = s.dir.appendingPathComponent("bus").path
        XCTAssertTrue(s.createDisk("before", as: TestStack.grantedUser).ok)

        let stop = Command.run(stack, ["stop-polkitd", busDir])
        XCTAssertTrue(stop.ok, stop.all)
        for user in [TestStack.grantedUser, nil] {
            let r = s.createDisk("during-\(user ?? "root")", as: user)
            XCTAssertFalse(r.ok, r.all)
            XCTAssertTrue(r.stderr.contains("polkit unavailable") || r.stderr.contains("Access denied") || r.stderr.contains("not authorized"), r.all)
        }
        XCTAssertEqual(s.imageFiles(), ["before"])
        XCTAssertTrue(s.log(tail: 20).contains("decision=denied-polkit-unavailable"), s.log(tail: 20))
        // Reads keep working.
        XCTAssertTrue(s.manager("ListDisks", ["a{sv}", "0"], as: TestStack.otherUser).ok)

        let start = Command.run(stack, ["start-polkitd", busDir])
        XCTAssertTrue(start.ok, start.all)
        let after = s.createDisk("after", as: TestStack.grantedUser)
        XCTAssertTrue(after.ok, after.all)
        XCTAssertEqual(s.imageFiles(), ["after", "before"])
        // And the other user is still refused by a working polkit.
        XCTAssertFalse(s.createDisk("nope", as: TestStack.otherUser, interactive: false).ok)
        XCTAssertTrue(s.daemon?.isRunning ?? false)
    }

    /// polkitd restarted between two calls (the daemon's check threads keep their polkit
    /// proxies, bound to the old polkitd): every call afterwards is decided by the new one
    /// at once, on whichever check thread it lands.
    func testARestartOfPolkitBetweenCallsIsNoticed() throws {
        let s = try TestStack()
        defer { s.stop() }
        let stack = TestStack.repo.appendingPathComponent("scripts/stack").path
        let busDir = s.dir.appendingPathComponent("bus").path
        for i in 0..<6 { XCTAssertTrue(s.createDisk("before\(i)", as: TestStack.grantedUser).ok) }
        XCTAssertTrue(Command.run(stack, ["stop-polkitd", busDir]).ok)
        XCTAssertTrue(Command.run(stack, ["start-polkitd", busDir]).ok)
        for i in 0..<6 {
            let r = s.createDisk("after\(i)", as: TestStack.grantedUser)
            XCTAssertTrue(r.ok, r.all)
        }
        XCTAssertFalse(s.createDisk("nope", as: TestStack.otherUser, interactive: false).ok)
        XCTAssertEqual(s.imageFiles().filter { $0.hasPrefix("after") }.count, 6)
        XCTAssertFalse(s.imageFiles().contains("nope"))
    }

    /// Eight privileged calls at once on a fresh daemon, from one connection: the checks run
    /// on all the check threads at the same time through the one shared polkit object and
    /// every call succeeds. (The clash this sharing prevents — polkitd refusing a second
    /// check in flight with the same cancellation id from the same connection — needs a
    /// check held open by an authentication agent's prompt, which this suite has no agent
    /// for; polkitd answers these non-interactive checks one at a time.)
    func testConcurrentChecksAllSucceed() async throws {
        let s = try TestStack()
        defer { s.stop() }
        let client = try await s.client()
        defer { Task { await client.drainAndClose(timeout: .seconds(1)) } }
        let failures = await withTaskGroup(of: String?.self) { group in
            for i in 0..<8 {
                group.addTask {
                    do {
                        _ = try await client.call(destination: TestStack.busName, path: TestStack.root, interface: TestStack.managerInterface,
                                                  member: "CreateDisk", [.string("together\(i)"), .uint64(1 << 20), .string("raw"), .emptyOptions])
                        return nil
                    } catch {
                        return "together\(i): \(error)"
                    }
                }
            }
            var failures: [String] = []
            for await failure in group { if let failure { failures.append(failure) } }
            return failures
        }
        XCTAssertEqual(failures, [], s.log(tail: 20))
        XCTAssertEqual(s.imageFiles().count, 8)
    }
}

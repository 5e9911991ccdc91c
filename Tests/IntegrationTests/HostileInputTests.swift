import ControllerAPI
import Foundation
import SDBus
import XCTest

/// Hostile messages through the real bus: huge strings, huge option dictionaries, deep
/// nesting, huge arrays, empty values. Each reaches the daemon and is refused with the
/// D-Bus error expected for it (InvalidArgs or LimitsExceeded, and a message naming what was
/// wrong), nothing is created, and the daemon keeps answering throughout.
final class HostileInputTests: XCTestCase {
    override class func setUp() { SharedStacks.start(self) { try TestStack() } }
    override class func tearDown() { SharedStacks.stop(self) }
    var stack: TestStack { get throws { try SharedStacks.stack(Self.self) } }

    func testHostileMessagesAreRefusedAndTheDaemonStaysUp() async throws {
        let s = try stack
        let client = try await s.client()
        defer { Task { await client.drainAndClose(timeout: .seconds(1)) } }
        let root = TestStack.root
        let manager = TestStack.managerInterface
        let settings = SettingsInterface.name
        let invalidArgs = "org.freedesktop.DBus.Error.InvalidArgs"
        let limitsExceeded = "org.freedesktop.DBus.Error.LimitsExceeded"
        /// The call must fail with the D-Bus error `name` whose message contains `message` (the
        /// message tells the daemon's refusal from one by sd-bus in this process, which would
        /// carry the same name); any other outcome fails.
        func expectRefusal(_ label: String, _ name: String, _ message: String, _ path: String, _ interface: String, _ member: String,
                           _ args: [DBusValue]) async {
            do {
                _ = try await client.call(destination: TestStack.busName, path: path, interface: interface, member: member, args,
                                          timeout: .seconds(30))
                XCTFail("\(label): accepted")
            } catch let error as DBusError {
                XCTAssertEqual(error.name, name, "\(label): \(error.message)")
                XCTAssertTrue(error.message.contains(message), "\(label): expected '\(message)' in \(error.name): \(error.message)")
            } catch {
                XCTFail("\(label): failed with \(type(of: error)), not the D-Bus error \(name): \(error)")
            }
            let ping = try? await client.call(destination: TestStack.busName, path: root, interface: "org.freedesktop.DBus.Peer", member: "Ping")
            XCTAssertNotNil(ping, "\(label): the daemon stopped answering")
        }
        let huge = String(repeating: "a", count: 1 << 20)
        var manyOptions: [String: DBusValue] = [:]
        for i in 0..<10_000 { manyOptions["k\(i)"] = .string("v") }
        var nested: DBusValue = .string("x")
        for _ in 0..<60 { nested = .variant(nested) }

        await expectRefusal("1 MiB name", invalidArgs, "invalid disk name", root, manager, "CreateDisk",
                            [.string(huge), .uint64(1 << 20), .string("qcow2"), .emptyOptions])
        await expectRefusal("1 MiB format", invalidArgs, "invalid format", root, manager, "CreateDisk",
                            [.string("d1"), .uint64(1 << 20), .string(huge), .emptyOptions])
        await expectRefusal("1 MiB VM name", invalidArgs, "invalid VM name", root, manager, "GetVMByName", [.string(huge), .emptyOptions])
        await expectRefusal("2 MiB domain XML", limitsExceeded, "domain XML larger than 1 MiB", root, manager, "DefineVMFromXML",
                            [.string("<domain>" + huge + huge + "</domain>"), .emptyOptions])
        await expectRefusal("10000 option keys", invalidArgs, "ListDisks: unknown option", root, manager, "ListDisks", [.vardict(manyOptions)])
        await expectRefusal("nested variants", invalidArgs, "ListVMs: unknown option 'deep'", root, manager, "ListVMs", [.vardict(["deep": nested])])
        await expectRefusal("100000 setting ids", invalidArgs, "unknown setting 'x'", root + "/settings", settings, "Apply",
                            [.strings(Array(repeating: "x", count: 100_000)), .emptyOptions])
        await expectRefusal("100000 groups", limitsExceeded, "100000 groups given; at most 64", root + "/settings", settings, "AddUserToGroups",
                            [.string("user"), .strings(Array(repeating: "kvm", count: 100_000)), .emptyOptions])
        await expectRefusal("empty name", invalidArgs, "invalid disk name ''", root, manager, "CreateDisk", [.string(""), .uint64(0), .string(""), .emptyOptions])
        await expectRefusal("maximal size", invalidArgs, "invalid size 18446744073709551615", root, manager, "CreateDisk",
                            [.string("max"), .uint64(.max), .string("qcow2"), .emptyOptions])
        await expectRefusal("empty VM name", invalidArgs, "invalid VM name ''", root, manager, "DefineVM", [.string(""), .string(""), .emptyOptions])
        await expectRefusal("deep XML", invalidArgs, "the XML does not parse", root, manager, "DefineVMFromXML",
                            [.string(String(repeating: "<a>", count: 5000) + String(repeating: "</a>", count: 5000)), .emptyOptions])
        XCTAssertEqual(s.imageFiles(), [])
        XCTAssertTrue(s.daemon?.isRunning ?? false)
    }

    /// One connection may have [daemon] max_calls_per_client calls in flight; more are
    /// LimitsExceeded before anything is looked at, while other connections are served.
    /// Settings.Apply's ids are deduplicated before they reach the authorization's details.
    func testOneConnectionCannotQueueUnboundedWork() async throws {
        let s = try TestStack(config: "[daemon]\nmax_calls_per_client = 2\n")
        defer { s.stop() }
        let client = try await s.client()
        defer { Task { await client.drainAndClose(timeout: .seconds(1)) } }
        let outcomes = await withTaskGroup(of: String.self) { group in
            for i in 0..<40 {
                group.addTask {
                    do {
                        _ = try await client.call(destination: TestStack.busName, path: TestStack.root, interface: TestStack.managerInterface,
                                                  member: "CreateDisk", [.string("burst\(i)"), .uint64(1 << 20), .string("raw"), .emptyOptions])
                        return "ok"
                    } catch let error as DBusError {
                        return error.name + ": " + error.message
                    } catch {
                        return "\(error)"
                    }
                }
            }
            var all: [String] = []
            for await outcome in group { all.append(outcome) }
            return all
        }
        let refused = outcomes.filter { $0.hasPrefix("org.freedesktop.DBus.Error.LimitsExceeded") }
        XCTAssertFalse(refused.isEmpty, "40 calls at once from one connection, none refused: \(Set(outcomes))")
        XCTAssertTrue(refused.allSatisfy { $0.contains("calls in flight, the most one connection may have") }, "\(Set(refused))")
        XCTAssertEqual(outcomes.filter { $0 == "ok" }.count + refused.count, 40, "\(Set(outcomes))")
        XCTAssertEqual(s.imageFiles().count, outcomes.filter { $0 == "ok" }.count, "a refused call made a disk")
        // Another connection is served meanwhile and after.
        XCTAssertTrue(s.manager("ListDisks", ["a{sv}", "0"], as: TestStack.otherUser).ok)

        // 10000 copies of one setting id: one id in the audit's details.
        let ids = Array(repeating: "entropy-rngd", count: 10_000)
        let apply = try? await client.call(destination: TestStack.busName, path: TestStack.root + "/settings", interface: SettingsInterface.name,
                                           member: "Apply", [.strings(ids), .emptyOptions], timeout: .seconds(60))
        XCTAssertNotNil(apply, s.log(tail: 10))
        XCTAssertTrue(s.log(tail: 50).contains(#"action="org.multiverse.controller.settings.modify" setting="entropy-rngd" decision=allowed"#), s.log(tail: 20))
    }
}

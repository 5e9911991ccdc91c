import XCTest
@testable import SDBus

/// Objects served as a subtree (one fallback vtable per interface, a find callback and a
/// node enumerator) must look to a peer exactly like objects exported one by one: methods,
/// properties, PropertiesChanged, introspection, GetManagedObjects, InterfacesAdded and
/// InterfacesRemoved, and UnknownObject for a path that is not there (any more).
final class SubtreeTests: XCTestCase {
    static let item = DBusInterface(
        "org.example.Item",
        methods: [DBusMethod("Describe", out: [DBusArgument("text", "s")])],
        properties: [DBusProperty("Name", "s", change: .const), DBusProperty("Count", "u")])

    var bus: PrivateBus!
    var server: BusConnection!
    var client: BusConnection!

    func item(_ name: String, count: UInt32) -> ExportedInterface {
        ExportedInterface(Self.item, properties: ["Name": .string(name), "Count": .uint32(count)],
                          methods: ["Describe": { call in [.string("item at \(call.path)")] }])
    }

    override func setUp() async throws {
        bus = try PrivateBus()
        server = try await BusConnection.openSystemBus(address: bus.address)
        try await server.addObjectManager(at: "/org/example")
        try await server.serveSubtree("/org/example/items")
        for (name, count) in [("a", 1), ("b", 2)] {
            try await server.export(path: "/org/example/items/\(name)", interfaces: [item(name, count: UInt32(count))], announce: false)
        }
        try await server.requestName("org.example.Items")
        client = try await BusConnection.openSystemBus(address: bus.address)
    }

    override func tearDown() async throws {
        await client?.drainAndClose(timeout: .seconds(1))
        await server?.drainAndClose(timeout: .seconds(1))
        bus = nil
    }

    func get(_ path: String, _ property: String) async throws -> DBusValue? {
        try await client.call(destination: "org.example.Items", path: path, interface: "org.freedesktop.DBus.Properties",
                              member: "Get", [.string("org.example.Item"), .string(property)]).first?.unwrapped
    }

    func testObjectsAnswerLikeSingleExports() async throws {
        let registrations = await server.perObjectRegistrations
        XCTAssertEqual(registrations, 0, "subtree objects must not be registered with sd-bus one by one")
        let reply = try await client.call(destination: "org.example.Items", path: "/org/example/items/b",
                                          interface: "org.example.Item", member: "Describe")
        XCTAssertEqual(reply, [.string("item at /org/example/items/b")])
        let count = try await get("/org/example/items/a", "Count")
        XCTAssertEqual(count, .uint32(1))
        let all = try await client.call(destination: "org.example.Items", path: "/org/example/items/b",
                                        interface: "org.freedesktop.DBus.Properties", member: "GetAll", [.string("org.example.Item")])
        XCTAssertEqual(all.first?.stringKeyedDictionary?["Name"]?.unwrapped, .string("b"))

        let xml = try await client.call(destination: "org.example.Items", path: "/org/example/items",
                                        interface: "org.freedesktop.DBus.Introspectable", member: "Introspect").first?.string ?? ""
        XCTAssertTrue(xml.contains("<node name=\"a\"/>") && xml.contains("<node name=\"b\"/>"), xml)
        let child = try await client.call(destination: "org.example.Items", path: "/org/example/items/a",
                                          interface: "org.freedesktop.DBus.Introspectable", member: "Introspect").first?.string ?? ""
        XCTAssertTrue(child.contains("<interface name=\"org.example.Item\">"), child)

        let managed = try await client.call(destination: "org.example.Items", path: "/org/example",
                                            interface: "org.freedesktop.DBus.ObjectManager", member: "GetManagedObjects")
        guard case .dictionary(_, _, let entries)? = managed.first else { return XCTFail("bad reply \(managed)") }
        XCTAssertEqual(entries.map(\.key).compactMap(\.string).sorted(), ["/org/example/items/a", "/org/example/items/b"])
    }

    func testMissingObjectIsUnknown() async throws {
        do {
            _ = try await get("/org/example/items/nope", "Count")
            XCTFail("a property of a missing object was served")
        } catch let error as DBusError {
            XCTAssertEqual(error.name, "org.freedesktop.DBus.Error.UnknownObject", error.message)
        }
    }

    func testAddedChangedRemovedAreSignalled() async throws {
        let (stream, continuation) = AsyncStream<ReceivedSignal>.makeStream()
        _ = try await client.subscribe(match: "type='signal',sender='org.example.Items'") { continuation.yield($0) }
        _ = try await client.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                                  interface: "org.freedesktop.DBus.Peer", member: "Ping")
        try await server.export(path: "/org/example/items/c", interfaces: [item("c", count: 7)])
        await server.setProperties(path: "/org/example/items/c", interface: "org.example.Item", ["Count": .uint32(8)])
        await server.unexport(path: "/org/example/items/c")
        var seen = [String]()
        for await s in stream {
            let detail: String
            switch s.member {
            case "InterfacesAdded":
                let props = s.arguments[1].stringKeyedDictionary?["org.example.Item"]?.stringKeyedDictionary
                detail = "\(s.arguments[0].string ?? "") Count=\(props?["Count"]?.unwrapped.uint32.map(String.init) ?? "?")"
            case "PropertiesChanged":
                detail = "\(s.path) Count=\(s.arguments[1].stringKeyedDictionary?["Count"]?.unwrapped.uint32.map(String.init) ?? "?")"
            default:
                detail = s.arguments.first?.string ?? ""
            }
            seen.append("\(s.member) \(detail)")
            if seen.count == 3 { break }
        }
        XCTAssertEqual(seen, ["InterfacesAdded /org/example/items/c Count=7", "PropertiesChanged /org/example/items/c Count=8",
                              "InterfacesRemoved /org/example/items/c"])
        do {
            _ = try await get("/org/example/items/c", "Count")
            XCTFail("the removed object still answers")
        } catch let error as DBusError {
            XCTAssertEqual(error.name, "org.freedesktop.DBus.Error.UnknownObject", error.message)
        }
    }
}

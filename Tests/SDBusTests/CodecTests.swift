import XCTest
@testable import SDBus

final class CodecTests: XCTestCase {
    static let echo = DBusInterface(
        "org.example.Echo",
        methods: [
            DBusMethod("Echo", in: [DBusArgument("values", "av")], out: [DBusArgument("values", "av")]),
            DBusMethod("Fail", in: [DBusArgument("name", "s")]),
        ],
        properties: [
            DBusProperty("Constant", "s", change: .const),
            DBusProperty("Counter", "u"),
            DBusProperty("Label", "s", writable: true),
        ],
        signals: [DBusSignal("Ticked", [DBusArgument("count", "u")])])

    var bus: PrivateBus!
    var server: BusConnection!
    var client: BusConnection!

    override func setUp() async throws {
        bus = try PrivateBus()
        server = try await BusConnection.openSystemBus(address: bus.address)
        try await server.addObjectManager(at: "/org/example")
        try await server.export(path: "/org/example/echo", interfaces: [
            ExportedInterface(Self.echo, properties: ["Constant": .string("c"), "Counter": .uint32(1), "Label": .string("")],
                              methods: [
                                  "Echo": { call in call.arguments },
                                  "Fail": { call in
                                      throw DBusError(name: "org.example.Error.Named", message: "asked to fail: \(call.arguments.first?.string ?? "")")
                                  },
                              ],
                              setter: { _, value in
                                  guard value.string?.isEmpty == false else { throw DBusError.invalidArgs("Label must not be empty") }
                              }),
        ])
        try await server.requestName("org.example.Echo")
        client = try await BusConnection.openSystemBus(address: bus.address)
    }

    override func tearDown() async throws {
        await client?.drainAndClose(timeout: .seconds(1))
        await server?.drainAndClose(timeout: .seconds(1))
        bus = nil
    }

    func echo(_ values: [DBusValue]) async throws -> [DBusValue] {
        let wrapped = DBusValue.array(elementSignature: "v", values.map { .variant($0) })
        let reply = try await client.call(destination: "org.example.Echo", path: "/org/example/echo",
                                          interface: "org.example.Echo", member: "Echo", [wrapped])
        return reply.first?.arrayElements?.map(\.unwrapped) ?? []
    }

    func testRoundTripOfEveryType() async throws {
        let values: [DBusValue] = [
            .byte(7), .boolean(true), .int16(-3), .uint16(65535), .int32(Int32.min), .uint32(UInt32.max),
            .int64(Int64.min), .uint64(UInt64.max), .double(3.25), .string("grüße ✓"), .objectPath("/a/b_c"),
            .signature("a{sv}"), .bytes([0, 1, 255]),
            .array(elementSignature: "s", []),
            .array(elementSignature: "(ssso)", [.structure([.string("vda"), .string("/x"), .string("qcow2"), .objectPath("/")])]),
            .vardict(["a": .uint64(1), "b": .strings(["x", "y"]), "c": .vardict(["nested": .boolean(false)])]),
            .dictionary(keySignature: "u", valueSignature: "as", [DBusDictEntry(.uint32(1), .strings(["one"]))]),
            .structure([.int32(1), .structure([.string("deep"), .variant(.variant(.double(1)))])]),
        ]
        let back = try await echo(values)
        XCTAssertEqual(back, values)
    }

    func testUnixFDRoundTrip() async throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let back = try await echo([.unixFD(fds[1])])
        guard case .unixFD(let received) = back.first else { return XCTFail("no fd back: \(back)") }
        XCTAssertNotEqual(received, fds[1])
        XCTAssertEqual(write(received, "x", 1), 1)
        var byte: UInt8 = 0
        XCTAssertEqual(read(fds[0], &byte, 1), 1)
        XCTAssertEqual(byte, UInt8(ascii: "x"))
        close(received); close(fds[0]); close(fds[1])
    }

    func testMalformedValuesAreRejected() async throws {
        for bad: DBusValue in [.objectPath("not/a/path"), .objectPath("/trailing/"), .string("nul\0inside"),
                               .signature("a{vs}"), .array(elementSignature: "s", [.uint32(1)])] {
            do {
                _ = try await echo([bad])
                XCTFail("\(bad) was accepted")
            } catch let e as DBusError {
                XCTAssertEqual(e.name, "org.freedesktop.DBus.Error.InvalidArgs", "\(bad)")
            }
        }
    }

    func testWrongSignatureIsRefusedBySdBus() async throws {
        do {
            _ = try await client.call(destination: "org.example.Echo", path: "/org/example/echo",
                                      interface: "org.example.Echo", member: "Echo", [.string("nope")])
            XCTFail("accepted a wrong signature")
        } catch let e as DBusError {
            XCTAssertEqual(e.name, "org.freedesktop.DBus.Error.InvalidArgs")
        }
    }

    func testNamedErrorsAndProperties() async throws {
        do {
            _ = try await client.call(destination: "org.example.Echo", path: "/org/example/echo",
                                      interface: "org.example.Echo", member: "Fail", [.string("why")])
            XCTFail("no error")
        } catch let e as DBusError {
            XCTAssertEqual(e, DBusError(name: "org.example.Error.Named", message: "asked to fail: why"))
        }
        let all = try await client.getAllProperties(destination: "org.example.Echo", path: "/org/example/echo", interface: "org.example.Echo")
        XCTAssertEqual(all["Constant"], .string("c"))
        XCTAssertEqual(all["Counter"], .uint32(1))
    }

    func testPropertiesChangedAndSignals() async throws {
        let (stream, continuation) = AsyncStream<ReceivedSignal>.makeStream()
        _ = try await client.subscribe(match: "type='signal',sender='org.example.Echo'") { continuation.yield($0) }
        _ = try await client.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                                  interface: "org.freedesktop.DBus.Peer", member: "Ping")
        await server.setProperties(path: "/org/example/echo", interface: "org.example.Echo", ["Counter": .uint32(2)])
        try await server.emitSignal(path: "/org/example/echo", interface: "org.example.Echo", member: "Ticked", [.uint32(2)])
        var seen = [String]()
        for await s in stream {
            seen.append(s.member)
            if s.member == "PropertiesChanged" {
                XCTAssertEqual(s.arguments.first, .string("org.example.Echo"))
                XCTAssertEqual(s.arguments[1].stringKeyedDictionary?["Counter"], .uint32(2))
            }
            if seen.contains("Ticked") { break }
        }
        XCTAssertEqual(seen, ["PropertiesChanged", "Ticked"])
    }

    func testObjectManagerTracksObjects() async throws {
        let reply = try await client.call(destination: "org.example.Echo", path: "/org/example",
                                          interface: "org.freedesktop.DBus.ObjectManager", member: "GetManagedObjects")
        guard case .dictionary(_, _, let entries)? = reply.first else { return XCTFail("bad reply \(reply)") }
        XCTAssertEqual(entries.map(\.key), [.objectPath("/org/example/echo")])
        let (stream, continuation) = AsyncStream<ReceivedSignal>.makeStream()
        _ = try await client.subscribe(match: "type='signal',interface='org.freedesktop.DBus.ObjectManager'") { continuation.yield($0) }
        _ = try await client.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                                  interface: "org.freedesktop.DBus.Peer", member: "Ping")
        try await server.export(path: "/org/example/two", interfaces: [ExportedInterface(Self.echo, properties: ["Constant": .string("2"), "Counter": .uint32(0), "Label": .string("x")])])
        await server.unexport(path: "/org/example/two")
        var seen = [String]()
        for await s in stream {
            seen.append("\(s.member) \(s.arguments.first?.string ?? "")")
            if seen.count == 2 { break }
        }
        XCTAssertEqual(seen, ["InterfacesAdded /org/example/two", "InterfacesRemoved /org/example/two"])
    }

    func testIntrospectionCarriesArgumentNames() async throws {
        let reply = try await client.call(destination: "org.example.Echo", path: "/org/example/echo",
                                          interface: "org.freedesktop.DBus.Introspectable", member: "Introspect")
        let xml = reply.first?.string ?? ""
        XCTAssertTrue(xml.contains("<arg type=\"av\" name=\"values\" direction=\"in\"/>"), xml)
        XCTAssertTrue(xml.contains("<property name=\"Constant\" type=\"s\" access=\"read\">"), xml)
        XCTAssertTrue(xml.contains("<signal name=\"Ticked\">"), xml)
        let ours = Introspection.xml(for: [Self.echo])
        XCTAssertTrue(ours.contains("<arg type=\"av\" name=\"values\" direction=\"out\"/>"))
        XCTAssertTrue(ours.contains("value=\"const\""))
    }

    func testWritablePropertyGoesThroughSetter() async throws {
        func set(_ value: DBusValue) async throws {
            _ = try await client.call(destination: "org.example.Echo", path: "/org/example/echo", interface: "org.freedesktop.DBus.Properties",
                                      member: "Set", [.string("org.example.Echo"), .string("Label"), .variant(value)])
        }
        try await set(.string("hello"))
        let label = try await client.getProperty(destination: "org.example.Echo", path: "/org/example/echo", interface: "org.example.Echo", name: "Label")
        XCTAssertEqual(label, .string("hello"))
        do {
            try await set(.string(""))
            XCTFail("setter accepted an empty label")
        } catch let e as DBusError {
            XCTAssertEqual(e, .invalidArgs("Label must not be empty"))
        }
        do {
            _ = try await client.call(destination: "org.example.Echo", path: "/org/example/echo", interface: "org.freedesktop.DBus.Properties",
                                      member: "Set", [.string("org.example.Echo"), .string("Counter"), .variant(.uint32(5))])
            XCTFail("read-only property was written")
        } catch let e as DBusError {
            XCTAssertEqual(e.name, "org.freedesktop.DBus.Error.PropertyReadOnly")
        }
    }

    func testExportRefusesMissingOrMistypedProperties() async throws {
        do {
            try await server.export(path: "/org/example/incomplete", interfaces: [ExportedInterface(Self.echo, properties: ["Constant": .string("c")])])
            XCTFail("exported an object without all its property values")
        } catch let e as DBusError {
            XCTAssertTrue(e.message.contains("no value for property Counter"), e.message)
        }
        do {
            try await server.export(path: "/org/example/mistyped", interfaces: [ExportedInterface(Self.echo, properties: [
                "Constant": .string("c"), "Counter": .string("1"), "Label": .string("")])])
            XCTFail("exported a mistyped property")
        } catch let e as DBusError {
            XCTAssertTrue(e.message.contains("Counter"), e.message)
        }
    }

    func testSignatureParsing() throws {
        XCTAssertEqual(try DBusSignature.split("sa{sv}(ii)aay"), ["s", "a{sv}", "(ii)", "aay"])
        for bad in ["a", "(", "()", "a{vs}", "a{s}", "z", "(s", String(repeating: "a", count: 70) + "s"] {
            XCTAssertThrowsError(try DBusSignature.split(bad), bad)
        }
    }
}

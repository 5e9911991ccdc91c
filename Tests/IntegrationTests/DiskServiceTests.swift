import ControllerAPI
import Foundation
import SDBus
import XCTest

/// The service through the real stack: real bus policy, real polkitd, real users, real qemu-img.
final class DiskServiceTests: XCTestCase {

    override class func setUp() {
        SharedStacks.start(self) {
            try TestStack { images in
                // Present before start-up: one real image, and entries that must be skipped.
                let r = Command.run("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", images.appendingPathComponent("preexisting.qcow2").path, "2M"])
                precondition(r.ok, r.all)
                try FileManager.default.createSymbolicLink(atPath: images.appendingPathComponent("escape").path, withDestinationPath: "/etc/passwd")
                try FileManager.default.createDirectory(at: images.appendingPathComponent("subdir"), withIntermediateDirectories: false)
                try Data("x".utf8).write(to: images.appendingPathComponent("bad name"))
            }
        }
    }

    override class func tearDown() { SharedStacks.stop(self) }

    var stack: TestStack { get throws { try SharedStacks.stack(Self.self) } }

    func qemuInfo(_ name: String) throws -> [String: Any] {
        let r = Command.run("/usr/bin/qemu-img", ["info", "-U", "--output=json", try stack.imageDir.appendingPathComponent(name).path])
        XCTAssertTrue(r.ok, r.all)
        return (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? [:]
    }

    // MARK: name, tree, introspection

    func testNameIsOwnedAndTreeShowsObjects() throws {
        let s = try stack
        let tree = s.busctl(["tree", TestStack.busName])
        XCTAssertTrue(tree.ok, tree.all)
        XCTAssertTrue(tree.stdout.contains("/org/multiverse/Controller/disk/preexisting_2eqcow2"), tree.stdout)
        let list = s.manager("ListDisks", ["a{sv}", "0"])
        XCTAssertTrue(list.stdout.contains("preexisting_2eqcow2"), list.all)
        for skipped in ["escape", "subdir", "bad"] {
            XCTAssertFalse(list.stdout.contains(skipped), "\(skipped) must be skipped: \(list.stdout)")
        }
        XCTAssertTrue(s.log(tail: 200).contains("not a regular file"), "symlink skip is logged")
        let introspect = s.busctl(["introspect", "--xml-interface", TestStack.busName, TestStack.root])
        XCTAssertTrue(introspect.stdout.contains("<arg type=\"t\" name=\"size\" direction=\"in\"/>"), introspect.all)
        XCTAssertTrue(introspect.stdout.contains("org.freedesktop.DBus.ObjectManager"), introspect.all)
        XCTAssertEqual(s.property(TestStack.root, TestStack.managerInterface, "APIVersion"), .uint32(1))
    }

    func testLibvirtConnectedToTestDriver() throws {
        let s = try stack
        var value: DBusValue?
        for _ in 0..<100 {
            value = s.property(TestStack.root, TestStack.managerInterface, "LibvirtConnected")
            if value == .boolean(true) { break }
            usleep(100_000)
        }
        XCTAssertEqual(value, .boolean(true))
    }

    // MARK: CreateDisk and Delete by root, granted and other users

    func testRootCreatesQcow2Disk() throws {
        let s = try stack
        let r = s.createDisk("root-disk.qcow2", size: 64 << 20)
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "o \"/org/multiverse/Controller/disk/root_2ddisk_2eqcow2\"", r.all)
        let info = try qemuInfo("root-disk.qcow2")
        XCTAssertEqual(info["format"] as? String, "qcow2")
        XCTAssertEqual((info["virtual-size"] as? NSNumber)?.uint64Value, 64 << 20)
        XCTAssertEqual(s.property("/org/multiverse/Controller/disk/root_2ddisk_2eqcow2", TestStack.diskInterface, "VirtualSize"),
                       .uint64(64 << 20))
    }

    func testGrantedUserCreatesRawDiskAndDeletesIt() throws {
        let s = try stack
        let r = s.createDisk("granted-raw", size: 4 << 20, format: "raw", as: TestStack.grantedUser)
        XCTAssertTrue(r.ok, r.all)
        let info = try qemuInfo("granted-raw")
        XCTAssertEqual(info["format"] as? String, "raw")
        XCTAssertEqual((info["virtual-size"] as? NSNumber)?.uint64Value, 4 << 20)
        let path = "/org/multiverse/Controller/disk/granted_2draw"
        // The other user may not delete it: the file stays.
        let denied = s.call(path, TestStack.diskInterface, "Delete", ["a{sv}", "0"], as: TestStack.otherUser, interactive: false)
        XCTAssertFalse(denied.ok)
        XCTAssertTrue(denied.stderr.contains("needs authentication") || denied.stderr.contains("Access denied"), denied.all)
        XCTAssertTrue(s.imageFiles().contains("granted-raw"))
        let deleted = s.call(path, TestStack.diskInterface, "Delete", ["a{sv}", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(deleted.ok, deleted.all)
        XCTAssertFalse(s.imageFiles().contains("granted-raw"))
        XCTAssertFalse(s.busctl(["tree", TestStack.busName]).stdout.contains("granted_2draw"))
    }

    func testOtherUserIsRefusedAndNothingIsCreated() throws {
        let s = try stack
        // busctl sets the allow-interactive-authorization flag by default: polkit may then ask,
        // but no agent answers, so the result is AccessDenied.
        let withFlag = s.createDisk("other-1", as: TestStack.otherUser)
        XCTAssertFalse(withFlag.ok)
        XCTAssertTrue(withFlag.stderr.contains("Access denied") || withFlag.stderr.contains("not authorized"), withFlag.all)
        // Without the flag, a challenge becomes InteractiveAuthorizationRequired.
        let withoutFlag = s.createDisk("other-2", as: TestStack.otherUser, interactive: false)
        XCTAssertFalse(withoutFlag.ok)
        XCTAssertTrue(withoutFlag.stderr.contains("needs authentication"), withoutFlag.all)
        XCTAssertFalse(s.imageFiles().contains { $0.hasPrefix("other-") || $0.contains("creating") }, "\(s.imageFiles())")
        let audit = s.log(tail: 400)
        XCTAssertTrue(audit.contains("action=\"org.multiverse.controller.disk.manage\" disk=\"other-2\" operation=\"create\" decision=interactive-authorization-required"), audit)
        XCTAssertTrue(audit.contains("disk=\"other-1\" operation=\"create\" decision=denied"), audit)
    }

    func testErrorNamesThroughTypedClient() async throws {
        let s = try stack
        let client = try await s.client()
        defer { Task { await client.drainAndClose(timeout: .seconds(1)) } }
        func createError(_ name: String, _ size: UInt64 = 1 << 20, _ format: String = "qcow2",
                         _ options: [String: DBusValue] = [:]) async -> DBusError? {
            do {
                _ = try await client.call(destination: TestStack.busName, path: TestStack.root, interface: TestStack.managerInterface,
                                          member: "CreateDisk", [.string(name), .uint64(size), .string(format), .vardict(options)])
                return nil
            } catch let e as DBusError { return e } catch { return DBusError.failed("\(error)") }
        }
        let before = s.imageFiles()
        for bad in ["../x", "a/b", "", String(repeating: "a", count: 65), ".hidden", "-dash", "dïsk", "sp ace", "tab\t"] {
            let e = await createError(bad)
            XCTAssertEqual(e?.name, "org.freedesktop.DBus.Error.InvalidArgs", "name \(bad.debugDescription): \(String(describing: e))")
        }
        // A NUL cannot be carried in a D-Bus string at all: the client library refuses to send it.
        let nul = await createError("nul\0x")
        XCTAssertEqual(nul?.name, "org.freedesktop.DBus.Error.InvalidArgs")
        let e1 = await createError("ok-name", 1000)
        XCTAssertEqual(e1?.name, "org.freedesktop.DBus.Error.InvalidArgs", "size not a multiple of 512")
        let e2 = await createError("ok-name", 0)
        XCTAssertEqual(e2?.name, "org.freedesktop.DBus.Error.InvalidArgs")
        let e3 = await createError("ok-name", 1 << 20, "vmdk")
        XCTAssertEqual(e3?.name, "org.freedesktop.DBus.Error.InvalidArgs")
        let e4 = await createError("ok-name", 1 << 20, "qcow2", ["bogus": .boolean(true)])
        XCTAssertEqual(e4?.message, "CreateDisk: unknown option 'bogus'")
        let e5 = await createError("ok-name", 1 << 20, "qcow2", ["preallocation": .uint32(1)])
        XCTAssertEqual(e5?.name, "org.freedesktop.DBus.Error.InvalidArgs")
        let e6 = await createError("preexisting.qcow2")
        XCTAssertEqual(e6?.name, ErrorName.alreadyExists.rawValue)
        let e7 = await createError("ok-name", 1 << 20, "qcow2", ["backing": .string("missing")])
        XCTAssertEqual(e7?.name, ErrorName.noSuchDisk.rawValue)
        XCTAssertEqual(s.imageFiles(), before, "nothing may be created by refused calls")
        do {
            _ = try await client.call(destination: TestStack.busName, path: TestStack.root, interface: TestStack.managerInterface,
                                      member: "GetDiskByName", [.string("nope"), .emptyOptions])
            XCTFail("GetDiskByName of a missing disk succeeded")
        } catch let e as DBusError {
            XCTAssertEqual(e.name, ErrorName.noSuchDisk.rawValue)
        }
    }

    func testBackingOverlayAndDeleteOfBackingIsBusy() async throws {
        let s = try stack
        XCTAssertTrue(s.createDisk("base-img", size: 8 << 20).ok)
        let overlay = s.manager("CreateDisk", ["stsa{sv}", "overlay-img", String(8 << 20), "qcow2", "1", "backing", "s", "base-img"])
        XCTAssertTrue(overlay.ok, overlay.all)
        let info = try qemuInfo("overlay-img")
        XCTAssertEqual(info["backing-filename"] as? String, s.imageDir.appendingPathComponent("base-img").path)
        let busy = s.call("/org/multiverse/Controller/disk/base_2dimg", TestStack.diskInterface, "Delete", ["a{sv}", "0"])
        XCTAssertTrue(busy.stderr.contains("held by disk overlay-img, which is built on it"), busy.all)
        XCTAssertTrue(s.imageFiles().contains("base-img"))
    }

    // MARK: bus policy

    func testNonRootCannotOwnTheName() throws {
        let s = try stack
        let r = s.busctl(["call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName",
                          "su", TestStack.busName, "0"], as: TestStack.grantedUser)
        XCTAssertFalse(r.ok)
        XCTAssertTrue(r.stderr.contains("not allowed to own") || r.stderr.contains("Access denied"), r.all)
    }

    func testUnprivilegedReadsWork() throws {
        let s = try stack
        let r = s.manager("ListDisks", ["a{sv}", "0"], as: TestStack.otherUser)
        XCTAssertTrue(r.ok, r.all)
        let p = s.busctl(["get-property", TestStack.busName, TestStack.root, TestStack.managerInterface, "Version"], as: TestStack.otherUser)
        XCTAssertTrue(p.ok, p.all)
    }

    // MARK: ObjectManager

    func testObjectManagerTracksDisks() async throws {
        let s = try stack
        let client = try await s.client()
        defer { Task { await client.drainAndClose(timeout: .seconds(1)) } }
        let (stream, continuation) = AsyncStream<ReceivedSignal>.makeStream()
        _ = try await client.subscribe(match: "type='signal',sender='\(TestStack.busName)',interface='org.freedesktop.DBus.ObjectManager'") {
            continuation.yield($0)
        }
        // Make sure the match is installed before acting.
        _ = try await client.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus", member: "GetId")
        let created = try await client.call(destination: TestStack.busName, path: TestStack.root, interface: TestStack.managerInterface,
                                            member: "CreateDisk", [.string("om-disk"), .uint64(1 << 20), .string("qcow2"), .emptyOptions])
        XCTAssertEqual(created, [.objectPath("/org/multiverse/Controller/disk/om_2ddisk")])
        let managed = try await client.call(destination: TestStack.busName, path: TestStack.root,
                                            interface: "org.freedesktop.DBus.ObjectManager", member: "GetManagedObjects")
        guard case .dictionary(_, _, let objects)? = managed.first else { return XCTFail("bad reply") }
        let entry = objects.first { $0.key == .objectPath("/org/multiverse/Controller/disk/om_2ddisk") }
        guard case .dictionary(_, _, let ifaces)? = entry?.value else { return XCTFail("disk missing from GetManagedObjects") }
        let disk = ifaces.first { $0.key == .string(TestStack.diskInterface) }?.value.stringKeyedDictionary
        XCTAssertEqual(disk?["Name"], .string("om-disk"))
        XCTAssertEqual(disk?["ImageFormat"], .string("qcow2"))
        _ = try await client.call(destination: TestStack.busName, path: "/org/multiverse/Controller/disk/om_2ddisk",
                                  interface: TestStack.diskInterface, member: "Delete", [.emptyOptions])
        var seen = [String]()
        for await signal in stream {
            seen.append("\(signal.member) \(signal.arguments.first?.string ?? "")")
            if seen.count == 2 { break }
        }
        XCTAssertEqual(seen, ["InterfacesAdded /org/multiverse/Controller/disk/om_2ddisk",
                              "InterfacesRemoved /org/multiverse/Controller/disk/om_2ddisk"])
    }

    // MARK: robustness

    func testDaemonSurvivesClientThatDisconnectsMidCall() throws {
        let s = try stack
        // A fully preallocated raw image takes a moment to write; the caller is killed meanwhile.
        let process = try Child("/usr/bin/busctl", [
            "--system", "call", TestStack.busName, TestStack.root, TestStack.managerInterface, "CreateDisk",
            "stsa{sv}", "abandoned", String(512 << 20), "raw", "1", "preallocation", "s", "full"], environment: s.environment)
        usleep(150_000)
        kill(process.pid, SIGKILL)
        process.wait(timeout: 5)
        // Still answering, and the image is either complete or absent, never half-written.
        var files: [String] = []
        for _ in 0..<100 {
            XCTAssertTrue(s.busctl(["call", TestStack.busName, TestStack.root, "org.freedesktop.DBus.Peer", "Ping"]).ok)
            files = s.imageFiles()
            if !files.contains(where: { $0.contains("creating") }) { break }
            usleep(100_000)
        }
        XCTAssertFalse(files.contains { $0.contains("creating") }, "temporary file left: \(files)")
        if files.contains("abandoned") {
            let info = try qemuInfo("abandoned")
            XCTAssertEqual((info["virtual-size"] as? NSNumber)?.uint64Value, 512 << 20)
        }
        XCTAssertTrue(s.manager("ListDisks", ["a{sv}", "0"]).ok)
        XCTAssertTrue(s.daemon?.isRunning ?? false)
    }
}

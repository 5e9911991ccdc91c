import Foundation
import FoundationXML
import SDBus
import XCTest

/// VMs through the real stack on libvirt's test driver (in the daemon's process, so virsh
/// cannot see these VMs): real bus policy, real polkitd, real users.
final class VMServiceTests: XCTestCase {
    override class func setUp() {
        SharedStacks.start(self) {
            try TestStack(config: "[vms]\nprofiles_dir = \"@DIR@/profiles\"\nshare_roots = [\"@DIR@/shares\"]\nallow_unconfined = true\n[jobs]\nretention_s = 3\n") { images in
                let dir = images.deletingLastPathComponent()
                let profiles = dir.appendingPathComponent("profiles")
                try FileManager.default.createDirectory(at: profiles, withIntermediateDirectories: true)
                try FileManager.default.createDirectory(at: dir.appendingPathComponent("shares/music"), withIntermediateDirectories: true)
                try """
                    [profile]
                    description = "Tor gateway"
                    role = "network-controller"
                    memory_mib = 384
                    networks = ["default"]
                    boot_order = 0
                    """.write(to: profiles.appendingPathComponent("tor-gateway.toml"), atomically: true, encoding: .utf8)
                try "[profile]\nmemory_mib = \"lots\"\n".write(to: profiles.appendingPathComponent("broken.toml"), atomically: true, encoding: .utf8)
            }
        }
    }

    override class func tearDown() { SharedStacks.stop(self) }

    var stack: TestStack { get throws { try SharedStacks.stack(Self.self) } }

    // MARK: helpers

    func define(_ name: String, _ profile: String, _ options: [String] = ["0"], as user: String = TestStack.grantedUser) throws -> CommandResult {
        try stack.manager("DefineVM", ["ssa{sv}", name, profile] + options, as: user)
    }

    func xml(_ name: String) throws -> XMLElement {
        let r = try stack.vmCall(name, "GetXML", ["a{sv}", "1", "inactive", "b", "true"], as: nil)
        XCTAssertTrue(r.ok, r.all)
        // busctl prints `s "<escaped xml>"`: read it back through --json.
        let json = try stack.busctl(["--json=short", "call", TestStack.busName, try stack.vmPath(name) ?? "", TestStack.vmInterface, "GetXML", "a{sv}", "0"])
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let text = ((parsed?["data"] as? [Any])?.first as? String) ?? ""
        return try XMLDocument(xmlString: text, options: []).rootElement()!
    }

    func first(_ e: XMLElement, _ path: String) -> XMLElement? {
        var current: XMLElement? = e
        for part in path.split(separator: "/") { current = current?.elements(forName: String(part)).first }
        return current
    }

    // MARK: tests

    func testListsTheTestDriverVMAndProfiles() throws {
        let s = try stack
        let list = s.manager("ListVMs", ["a{sv}", "0"])
        XCTAssertTrue(list.ok, list.all)
        XCTAssertTrue(s.vmPath("test") != nil)
        XCTAssertEqual(s.vmProperty("test", "State"), .string("running"))
        XCTAssertEqual(s.vmProperty("test", "Profile"), .string(""))
        XCTAssertEqual(s.vmProperty("test", "Persistent"), .boolean(true))
        let uuid = s.vmProperty("test", "UUID")
        XCTAssertEqual(uuid, .string("6695eb01-f6a4-8304-79aa-97f2502e193f"))
        XCTAssertEqual(s.vmPath("test"), "/org/multiverse/Controller/vm/_36695eb01_2df6a4_2d8304_2d79aa_2d97f2502e193f")

        // Built-in profiles plus the administrator's file; the broken file is skipped and named.
        let profiles = s.manager("ListProfiles", ["a{sv}", "0"])
        for name in ["network-controller", "interface-controller", "app", "tor-gateway"] {
            XCTAssertTrue(profiles.stdout.contains("\"\(name)\""), profiles.stdout)
        }
        XCTAssertFalse(profiles.stdout.contains("\"broken\""), profiles.stdout)
        XCTAssertTrue(s.log(tail: 400).contains("broken.toml:2: [profile] memory_mib: expected an integer"), s.log(tail: 400))
        let mvctl = s.mvctl(["vm", "profiles"])
        XCTAssertTrue(mvctl.stdout.contains("tor-gateway"), mvctl.all)
        let vmList = s.mvctl(["vm", "list", "--json"])
        let rows = try JSONSerialization.jsonObject(with: Data(vmList.stdout.utf8)) as? [[String: Any]] ?? []
        XCTAssertTrue(rows.contains { $0["Name"] as? String == "test" && $0["State"] as? String == "running" }, vmList.stdout)
    }

    func testDefineFromProfileCarriesTheMultiverseDefaults() throws {
        let s = try stack
        let r = try define("router1", "network-controller")
        XCTAssertTrue(r.ok, r.all)
        XCTAssertTrue(r.stdout.hasPrefix("o \"/org/multiverse/Controller/vm/"), r.stdout)
        XCTAssertEqual(s.vmProperty("router1", "State"), .string("shutoff"))
        XCTAssertEqual(s.vmProperty("router1", "Profile"), .string("network-controller"))
        XCTAssertEqual(s.vmProperty("router1", "MemoryMiB"), .uint64(512))
        XCTAssertEqual(s.vmProperty("router1", "VCPUs"), .uint32(1))
        XCTAssertEqual(s.vmProperty("router1", "Autostart"), .boolean(false))
        let d = try xml("router1")
        XCTAssertEqual(d.attribute(forName: "type")?.stringValue, "test")   // follows the connection's capabilities
        XCTAssertEqual(first(d, "clock")?.attribute(forName: "offset")?.stringValue, "utc")
        XCTAssertEqual(first(d, "clock/timer")?.attribute(forName: "track")?.stringValue, "wall")
        XCTAssertNotNil(first(d, "features/acpi"))
        XCTAssertNotNil(first(d, "features/apic"))
        XCTAssertEqual(first(d, "features/pmu")?.attribute(forName: "state")?.stringValue, "off")
        XCTAssertEqual(first(d, "features/vmport")?.attribute(forName: "state")?.stringValue, "off")
        XCTAssertEqual(first(d, "on_poweroff")?.stringValue, "destroy")
        XCTAssertEqual(first(d, "on_reboot")?.stringValue, "restart")
        XCTAssertEqual(first(d, "on_crash")?.stringValue, "restart")
        XCTAssertEqual(first(d, "pm/suspend-to-mem")?.attribute(forName: "enabled")?.stringValue, "no")
        XCTAssertEqual(first(d, "pm/suspend-to-disk")?.attribute(forName: "enabled")?.stringValue, "no")
        XCTAssertNotNil(first(d, "memoryBacking/nosharepages"))
        XCTAssertEqual(first(d, "devices/rng")?.attribute(forName: "model")?.stringValue, "virtio")
        XCTAssertEqual(first(d, "devices/memballoon")?.attribute(forName: "model")?.stringValue, "none")
        XCTAssertEqual(first(d, "seclabel")?.attribute(forName: "type")?.stringValue, "dynamic")
        XCTAssertEqual(first(d, "cpu/model")?.stringValue, "qemu64")   // TCG-safe: not a KVM domain
        XCTAssertEqual(first(d, "devices")?.elements(forName: "interface").count, 2)
        XCTAssertNotNil(first(d, "devices/serial"))
        XCTAssertNil(first(d, "devices/graphics"))
        let metadata = first(d, "metadata")?.children?.first as? XMLElement
        XCTAssertEqual(metadata?.uri, "https://multiverse-os.org/controller/1")

        // The interface controller: graphics and the Multiverse share; options override the profile.
        let share = s.dir.appendingPathComponent("shares/music").path
        let ui = try define("desk1", "interface-controller", ["4", "memory_mib", "t", "1024", "vcpus", "u", "3",
                                                              "shares", "a(ss)", "1", share, "Music", "seclabel", "s", "none"])
        XCTAssertTrue(ui.ok, ui.all)
        let u = try xml("desk1")
        XCTAssertEqual(first(u, "devices/graphics")?.attribute(forName: "type")?.stringValue, "spice")
        XCTAssertEqual(first(u, "devices/filesystem/target")?.attribute(forName: "dir")?.stringValue, "Music")
        XCTAssertEqual(first(u, "devices/filesystem")?.attribute(forName: "accessmode")?.stringValue, "mapped")
        XCTAssertEqual(first(u, "seclabel")?.attribute(forName: "type")?.stringValue, "none")
        XCTAssertEqual(s.vmProperty("desk1", "VCPUs"), .uint32(3))
        XCTAssertEqual(s.vmProperty("desk1", "Shares"), .rows("(ss)", [[share, "Music"]]))
        // An administrator's profile.
        let tor = try define("tor1", "tor-gateway")
        XCTAssertTrue(tor.ok, tor.all)
        XCTAssertEqual(s.vmProperty("tor1", "MemoryMiB"), .uint64(384))
    }

    func testLifecycleSendsStateChanged() async throws {
        let s = try stack
        XCTAssertTrue(try define("life1", "app").ok)
        guard let path = s.vmPath("life1") else { return XCTFail("no VM") }
        let signals = try await SignalCollector(stack: s, match: "type='signal',path='\(path)',interface='\(TestStack.vmInterface)',member='StateChanged'")
        defer { Task { await signals.close() } }
        for method in ["Start", "Suspend", "Resume"] {
            let r = try stack.vmCall("life1", method)
            XCTAssertTrue(r.ok, "\(method): \(r.all)")
        }
        let stop = try stack.vmCall("life1", "Shutdown", ["a{sv}", "2", "timeout_s", "u", "10", "force", "b", "true"])
        XCTAssertTrue(stop.ok, stop.all)
        XCTAssertEqual(s.vmProperty("life1", "State"), .string("shutoff"))
        var seen: [String] = []
        for _ in 0..<40 {
            seen = signals.all.map { "\($0.arguments[0].string ?? "") \($0.arguments[1].string ?? "")" }
            if seen.count >= 4 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTAssertEqual(seen, ["running booted", "paused user", "running unpaused", "shutoff shutdown"])
        // Wrong state: InvalidState naming the VM and its state, before any authorization.
        let again = try stack.vmCall("life1", "Resume", as: TestStack.otherUser)
        XCTAssertTrue(again.stderr.contains("cannot resume life1: it is shutoff"), again.all)
        // The daemon's audit log holds one decision on resuming life1, the granted user's
        // above: the refused call never reached polkit.
        let resumeDecisions = s.log(tail: .max).split(separator: "\n")
            .filter { $0.contains("action=\"org.multiverse.controller.vm.control\" operation=\"resume\" vm=\"life1\" ") }
        XCTAssertEqual(resumeDecisions.count, 1, resumeDecisions.joined(separator: "\n"))
        XCTAssertTrue(resumeDecisions.first?.hasSuffix("decision=allowed") ?? false, resumeDecisions.joined(separator: "\n"))
        let destroy = try stack.vmCall("life1", "Destroy")
        XCTAssertTrue(destroy.stderr.contains("it is shutoff"), destroy.all)
    }

    func testUnauthorizedCallsChangeNothing() throws {
        let s = try stack
        XCTAssertTrue(try define("guarded", "app").ok)
        let xmlBefore = try stack.vmCall("guarded", "GetXML", as: nil).stdout
        for (method, args) in [("Start", ["a{sv}", "0"]), ("SetResources", ["a{sv}", "1", "vcpus", "u", "4"]),
                               ("SetAutostart", ["ba{sv}", "true", "0"]), ("Undefine", ["a{sv}", "0"])] {
            let quiet = try stack.vmCall("guarded", method, args, as: TestStack.otherUser, interactive: false)
            XCTAssertFalse(quiet.ok, "\(method) \(quiet.all)")
            XCTAssertTrue(quiet.stderr.contains("needs authentication") || quiet.stderr.contains("Interactive authentication"), quiet.all)
            let denied = try stack.vmCall("guarded", method, args, as: TestStack.otherUser)
            XCTAssertFalse(denied.ok, "\(method) \(denied.all)")
        }
        let defineDenied = try define("intruder", "app", as: TestStack.otherUser)
        XCTAssertFalse(defineDenied.ok)
        XCTAssertNil(s.vmPath("intruder"))
        XCTAssertEqual(s.vmProperty("guarded", "State"), .string("shutoff"))
        XCTAssertEqual(try stack.vmCall("guarded", "GetXML", as: nil).stdout, xmlBefore)
        // Reading needs no authorization.
        XCTAssertTrue(try stack.vmCall("guarded", "GetXML", as: TestStack.otherUser).ok)
        XCTAssertTrue(s.log(tail: 60).contains("action=\"org.multiverse.controller.vm.control\"") && s.log(tail: 60).contains("vm=\"guarded\""))
    }

    func testBadInputIsRefusedNamingTheValue() throws {
        let s = try stack
        let cases: [([String], String)] = [
            (["ssa{sv}", "bad<name>", "app", "0"], "invalid VM name 'bad<name>'"),
            (["ssa{sv}", "x'y", "app", "0"], "invalid VM name 'x\\u{27}y'"),
            (["ssa{sv}", "ok1", "no-such-profile", "0"], "unknown profile 'no-such-profile'"),
            (["ssa{sv}", "ok1", "app", "1", "colour", "s", "red"], "unknown option 'colour'"),
            (["ssa{sv}", "ok1", "app", "1", "memory_mib", "u", "512"], "option 'memory_mib' must be of type t, not u"),
            (["ssa{sv}", "ok1", "app", "1", "vcpus", "u", "0"], "vcpus 0 is outside 1...4096"),
            (["ssa{sv}", "ok1", "app", "1", "memory_mib", "t", "99999999"], "is more than the host's"),
            (["ssa{sv}", "ok1", "app", "1", "disks", "as", "1", "nope"], "no disk named nope"),
            (["ssa{sv}", "ok1", "app", "1", "shares", "a(ss)", "1", "/etc", "etc"], "is not under an allowed share root"),
            (["ssa{sv}", "ok1", "app", "1", "seclabel", "s", "selinux"], "seclabel 'selinux' is not"),
            (["ssa{sv}", "test", "app", "0"], "a VM named test already exists"),
        ]
        for (args, message) in cases {
            let r = s.manager("DefineVM", args, as: TestStack.grantedUser)
            XCTAssertFalse(r.ok, "\(args): \(r.all)")
            XCTAssertTrue(r.stderr.contains(message), "\(args): expected '\(message)' in \(r.stderr)")
        }
        XCTAssertNil(s.vmPath("ok1"))
        let xmlCases: [(String, String)] = [
            ("<domain", "the XML does not parse"),
            ("<network><name>n</name></network>", "root element is not <domain>"),
            ("<domain type='test'><name>a&amp;b</name></domain>", "invalid VM name 'a&b'"),
            ("<domain type='test' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><name>q1</name><memory>1024</memory><os><type>hvm</type></os><qemu:commandline><qemu:arg value='-x'/></qemu:commandline></domain>",
             "qemu command-line passthrough) is not allowed"),
            ("<domain type='test'><name>h1</name><memory>1024</memory><os><type>hvm</type></os><devices><hostdev mode='subsystem' type='pci'/></devices></domain>",
             "host device passthrough) is not allowed"),
        ]
        for (xml, message) in xmlCases {
            let r = s.manager("DefineVMFromXML", ["sa{sv}", xml, "0"], as: TestStack.grantedUser)
            XCTAssertTrue(r.stderr.contains(message), "\(xml): expected '\(message)' in \(r.all)")
        }
        XCTAssertNil(s.vmPath("q1"))
        XCTAssertNil(s.vmPath("h1"))
    }

    func testDefineFromXMLAutostartResourcesAndUndefineWithDisks() async throws {
        let s = try stack
        let xml = "<domain type='test'><name>plain1</name><memory unit='MiB'>128</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>"
        let defined = s.manager("DefineVMFromXML", ["sa{sv}", xml, "0"], as: TestStack.grantedUser)
        XCTAssertTrue(defined.ok, defined.all)
        XCTAssertEqual(s.vmProperty("plain1", "Profile"), .string(""))
        XCTAssertEqual(s.vmProperty("plain1", "MemoryMiB"), .uint64(128))

        XCTAssertTrue(try stack.vmCall("plain1", "SetAutostart", ["ba{sv}", "true", "0"]).ok)
        XCTAssertEqual(s.vmProperty("plain1", "Autostart"), .boolean(true))
        let metadata = try stack.vmCall("plain1", "GetXML", ["a{sv}", "1", "inactive", "b", "true"], as: nil).stdout
        XCTAssertTrue(metadata.contains("<mv:autostart>true</mv:autostart>"), metadata)
        let resources = try stack.vmCall("plain1", "SetResources", ["a{sv}", "2", "memory_mib", "t", "300", "vcpus", "u", "2"])
        XCTAssertTrue(resources.ok, resources.all)
        XCTAssertEqual(s.vmProperty("plain1", "MemoryMiB"), .uint64(300))
        XCTAssertEqual(s.vmProperty("plain1", "VCPUs"), .uint32(2))

        // A VM with a managed disk: Disks names the disk object; Undefine delete_disks removes it.
        XCTAssertTrue(s.createDisk("vmdisk.qcow2", as: TestStack.grantedUser).ok)
        XCTAssertTrue(try define("withdisk", "app", ["1", "disks", "as", "1", "vmdisk.qcow2"]).ok)
        let disks = s.vmProperty("withdisk", "Disks")
        XCTAssertEqual(disks, .vmDisks([("vda", "\(s.imageDir.path)/vmdisk.qcow2", "qcow2", "/org/multiverse/Controller/disk/vmdisk_2eqcow2")]))
        let signals = try await SignalCollector(stack: s, match: "type='signal',interface='org.freedesktop.DBus.ObjectManager'")
        defer { Task { await signals.close() } }
        let path = s.vmPath("withdisk") ?? ""
        let undefine = try stack.vmCall("withdisk", "Undefine", ["a{sv}", "1", "delete_disks", "b", "true"])
        XCTAssertTrue(undefine.ok, undefine.all)
        XCTAssertNil(s.vmPath("withdisk"))
        XCTAssertFalse(s.imageFiles().contains("vmdisk.qcow2"))
        let removed = await signals.wait { $0.member == "InterfacesRemoved" && $0.arguments.first?.string == path }
        XCTAssertNotNil(removed, signals.summary)
        // A running VM cannot be undefined.
        let running = try stack.vmCall("test", "Undefine")
        XCTAssertTrue(running.stderr.contains("cannot undefine test: it is running"), running.all)
    }

    func testAttachDetachDisksAndShares() throws {
        let s = try stack
        XCTAssertTrue(try define("dev1", "app").ok)
        XCTAssertTrue(s.createDisk("data1.qcow2", as: TestStack.grantedUser).ok)
        // Shut off: the persistent definition changes (the test driver has no device calls,
        // so the service redefines the XML).
        let attach = try stack.vmCall("dev1", "AttachDisk", ["ssa{sv}", "data1.qcow2", "vdb", "0"])
        XCTAssertTrue(attach.ok, attach.all)
        XCTAssertEqual(s.vmProperty("dev1", "Disks"),
                       .vmDisks([("vdb", "\(s.imageDir.path)/data1.qcow2", "qcow2", "/org/multiverse/Controller/disk/data1_2eqcow2")]))
        let attachedTo = { s.property("/org/multiverse/Controller/disk/data1_2eqcow2", TestStack.diskInterface, "AttachedTo") }
        XCTAssertEqual(attachedTo(), .objectPaths([s.vmPath("dev1") ?? ""]))
        let collision = try stack.vmCall("dev1", "AttachDisk", ["ssa{sv}", "data1.qcow2", "vdc", "0"])
        XCTAssertTrue(collision.stderr.contains("is already attached to dev1"), collision.all)
        let sameTarget = try stack.vmCall("dev1", "AttachDisk", ["ssa{sv}", "\(s.imageDir.path)/data1.qcow2", "vdb", "0"])
        XCTAssertTrue(sameTarget.stderr.contains("target vdb of dev1 is already used"), sameTarget.all)
        for (disk, target, message) in [("data1.qcow2", "xvda", "invalid target 'xvda'"), ("nope", "vdc", "no disk named nope"),
                                        ("/etc/passwd", "vdc", "is not under an allowed image root"),
                                        ("\(s.imageDir.path)/../../etc/passwd", "vdc", "without '..'")] {
            let r = try stack.vmCall("dev1", "AttachDisk", ["ssa{sv}", disk, target, "0"])
            XCTAssertTrue(r.stderr.contains(message), "\(disk) \(target): \(r.all)")
        }
        // A symlink in the image directory cannot lead out of it.
        XCTAssertEqual(symlink("/etc/shadow", s.imageDir.appendingPathComponent("sneaky").path), 0)
        let sneaky = try stack.vmCall("dev1", "AttachDisk", ["ssa{sv}", s.imageDir.appendingPathComponent("sneaky").path, "vdc", "1", "format", "s", "raw"])
        XCTAssertTrue(sneaky.stderr.contains("(/etc/shadow) is not under an allowed image root"), sneaky.all)
        unlink(s.imageDir.appendingPathComponent("sneaky").path)
        // Live on a shut-off VM is InvalidState; denied for the other user, nothing changed.
        let live = try stack.vmCall("dev1", "AttachDisk", ["ssa{sv}", "data1.qcow2", "vdc", "1", "live", "b", "true"])
        XCTAssertTrue(live.stderr.contains("cannot change dev1 live: it is shutoff"), live.all)
        XCTAssertFalse(try stack.vmCall("dev1", "DetachDisk", ["sa{sv}", "vdb", "0"], as: TestStack.otherUser).ok)
        XCTAssertTrue(s.vmProperty("dev1", "Disks").firstFields.contains("vdb"), s.vmProperty("dev1", "Disks").shown)
        let detach = try stack.vmCall("dev1", "DetachDisk", ["sa{sv}", "vdb", "0"])
        XCTAssertTrue(detach.ok, detach.all)
        XCTAssertEqual(s.vmProperty("dev1", "Disks"), .vmDisks([]))
        XCTAssertEqual(attachedTo(), .objectPaths([]))
        XCTAssertTrue(s.imageFiles().contains("data1.qcow2"), "detaching never deletes the image")

        // 9p shares on a shut-off VM; a running one cannot hot-plug them.
        let music = s.dir.appendingPathComponent("shares/music").path
        let add = try stack.vmCall("dev1", "AddShare", ["ssa{sv}", music, "Music", "1", "readonly", "b", "true"])
        XCTAssertTrue(add.ok, add.all)
        XCTAssertEqual(s.vmProperty("dev1", "Shares"), .rows("(ss)", [[music, "Music"]]))
        XCTAssertTrue(try stack.vmCall("dev1", "GetXML", ["a{sv}", "1", "inactive", "b", "true"], as: nil).stdout.contains("<readonly/>"))
        let dupe = try stack.vmCall("dev1", "AddShare", ["ssa{sv}", music, "Music", "0"])
        XCTAssertTrue(dupe.stderr.contains("already has a share tagged Music"), dupe.all)
        let outside = try stack.vmCall("dev1", "AddShare", ["ssa{sv}", "/etc", "etc", "0"])
        XCTAssertTrue(outside.stderr.contains("is not under an allowed share root"), outside.all)
        XCTAssertTrue(try stack.vmCall("dev1", "Start").ok)
        let hot = try stack.vmCall("dev1", "RemoveShare", ["sa{sv}", "Music", "0"])
        XCTAssertTrue(hot.stderr.contains("9p shares cannot be hot-unplugged; stop dev1 first"), hot.all)
        XCTAssertTrue(try stack.vmCall("dev1", "Destroy").ok)
        XCTAssertTrue(s.mvctl(["vm", "share", "remove", "dev1", "Music"], as: TestStack.grantedUser).ok)
        XCTAssertEqual(s.vmProperty("dev1", "Shares"), .rows("(ss)", []))
        XCTAssertTrue(s.mvctl(["vm", "attach-disk", "dev1", "data1.qcow2", "sda"], as: TestStack.grantedUser).ok)
        XCTAssertTrue(try stack.vmCall("dev1", "GetXML", ["a{sv}", "1", "inactive", "b", "true"], as: nil).stdout.contains("sata"))
    }

    func testEphemeralLaunchOnABaseDiskLeavesNothingBehind() async throws {
        let s = try stack
        XCTAssertTrue(s.createDisk("base.qcow2", size: 4 << 20, as: TestStack.grantedUser).ok)
        let signals = try await SignalCollector(stack: s, match: "type='signal',interface='org.freedesktop.DBus.ObjectManager'")
        defer { Task { await signals.close() } }
        let r = try define("eph1", "app", ["2", "base_disk", "s", "base.qcow2", "ephemeral", "b", "true"])
        XCTAssertTrue(r.ok, r.all)
        XCTAssertEqual(s.vmProperty("eph1", "Ephemeral"), .boolean(true))
        // A copy-on-write overlay of the base, attached as vda, a managed disk of its own.
        XCTAssertTrue(s.imageFiles().contains("eph1-root.qcow2"), "\(s.imageFiles())")
        let info = Command.run("/usr/bin/qemu-img", ["info", "-U", "--output=json", s.imageDir.appendingPathComponent("eph1-root.qcow2").path])
        XCTAssertTrue(info.stdout.contains("\"backing-filename\": \"\(s.imageDir.path)/base.qcow2\""), info.stdout)
        XCTAssertTrue(info.stdout.contains("\"virtual-size\": 4194304"), info.stdout)
        XCTAssertEqual(s.vmProperty("eph1", "Disks").rows.map { $0.prefix(2).compactMap(\.string) }, [["vda", "\(s.imageDir.path)/eph1-root.qcow2"]])
        XCTAssertEqual(s.property("/org/multiverse/Controller/disk/eph1_2droot_2eqcow2", TestStack.diskInterface, "BackingDisk"),
                       .string("base.qcow2"))
        let path = s.vmPath("eph1") ?? ""
        XCTAssertTrue(try stack.vmCall("eph1", "Start").ok)
        XCTAssertTrue(try stack.vmCall("eph1", "Destroy").ok)
        // Stopping discards it: the VM and its overlay go, the base stays.
        let gone = await signals.wait(timeout: 5) { $0.member == "InterfacesRemoved" && $0.arguments.first?.string == path }
        XCTAssertNotNil(gone, signals.summary)
        for _ in 0..<50 where s.imageFiles().contains("eph1-root.qcow2") { usleep(100_000) }
        XCTAssertNil(s.vmPath("eph1"))
        XCTAssertFalse(s.imageFiles().contains("eph1-root.qcow2"))
        XCTAssertTrue(s.imageFiles().contains("base.qcow2"))
        // Bad input is refused before any overlay is made.
        let bad = try define("eph2", "app", ["2", "base_disk", "s", "base.qcow2", "networks", "as", "1", "bad!net"])
        XCTAssertFalse(bad.ok)
        XCTAssertFalse(s.imageFiles().contains("eph2-root.qcow2"))
    }

    func testStartAllStartsAutostartVMsInBootOrderAsAJob() async throws {
        let s = try stack
        // Defined in the "wrong" order on purpose; app-b has no autostart flag.
        for (name, profile, autostart) in [("sa-app", "app", true), ("sa-ui", "interface-controller", true),
                                           ("sa-app-b", "app", false), ("sa-net", "network-controller", true)] {
            XCTAssertTrue(try define(name, profile, autostart ? ["1", "autostart", "b", "true"] : ["0"]).ok)
        }
        let denied = s.manager("StartAll", ["a{sv}", "0"], as: TestStack.otherUser)
        XCTAssertFalse(denied.ok)
        XCTAssertEqual(s.vmProperty("sa-net", "State"), .string("shutoff"))

        let signals = try await SignalCollector(stack: s, match: "type='signal',sender='\(TestStack.busName)'")
        defer { Task { await signals.close() } }
        let r = s.manager("StartAll", ["a{sv}", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(r.ok, r.all)
        let job = r.replyPath
        XCTAssertTrue(job.hasPrefix("/org/multiverse/Controller/job/"), r.stdout)
        let completed = await signals.wait(timeout: 10) { $0.member == "Completed" && $0.path == job }
        XCTAssertEqual(completed?.arguments.first, .boolean(true), signals.summary)
        // The order the VMs came up in: network controller, interface controller, the rest.
        let order = signals.all.filter { $0.member == "StateChanged" && $0.arguments.first?.string == "running" }.compactMap { signal in
            ["sa-net", "sa-ui", "sa-app"].first { s.vmPath($0) == signal.path }
        }
        XCTAssertEqual(order, ["sa-net", "sa-ui", "sa-app"], signals.summary)
        XCTAssertEqual(s.vmProperty("sa-app-b", "State"), .string("shutoff"))
        XCTAssertEqual(s.jobProperty(job, "Operation"), .string("StartAll"))
        XCTAssertEqual(s.jobProperty(job, "State"), .string("succeeded"))
        XCTAssertEqual(s.jobProperty(job, "Progress"), .double(1))
        XCTAssertEqual(s.jobProperty(job, "StartedByUID"), .uint32(UInt32(Command.run("/usr/bin/id", ["-u", TestStack.grantedUser]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0))
        // (VMs of other tests with autostart and without metadata, such as plain1, come after these.)
        let resultOrder = s.jobProperty(job, "Result")["order"]?.stringArray ?? []
        let first = resultOrder.firstIndex(of: "sa-net") ?? resultOrder.endIndex
        XCTAssertEqual(Array(resultOrder[first...].prefix(3)), ["sa-net", "sa-ui", "sa-app"], s.jobProperty(job, "Result").shown)
        XCTAssertTrue(s.manager("ListJobs", ["a{sv}", "0"]).stdout.contains(job))
        // Cancelling a finished job: InvalidState. Finished jobs vanish after retention_s.
        let cancel = s.call(job, TestStack.jobInterface, "Cancel", ["a{sv}", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(cancel.stderr.contains("has already succeeded"), cancel.all)
        let removed = await signals.wait(timeout: 10) { $0.member == "InterfacesRemoved" && $0.arguments.first?.string == job }
        XCTAssertNotNil(removed, signals.summary)
        XCTAssertFalse(s.manager("ListJobs", ["a{sv}", "0"]).stdout.contains(job))
        for name in ["sa-net", "sa-ui", "sa-app"] { _ = try stack.vmCall(name, "Destroy") }
    }

    func testSnapshotsCoverEveryManagedDiskAndRevertTheirContents() async throws {
        let s = try stack
        XCTAssertTrue(s.createDisk("snap-a.qcow2", size: 1 << 20, as: TestStack.grantedUser).ok)
        XCTAssertTrue(s.createDisk("snap-b.qcow2", size: 1 << 20, as: TestStack.grantedUser).ok)
        XCTAssertTrue(try define("snap1", "app", ["1", "disks", "as", "2", "snap-a.qcow2", "snap-b.qcow2"]).ok)
        let a = s.imageDir.appendingPathComponent("snap-a.qcow2").path
        let b = s.imageDir.appendingPathComponent("snap-b.qcow2").path
        let signals = try await SignalCollector(stack: s, match: "type='signal',sender='\(TestStack.busName)',member='Completed'")
        defer { Task { await signals.close() } }

        let create = try stack.vmCall("snap1", "CreateSnapshot", ["sa{sv}", "before", "0"])
        XCTAssertTrue(create.ok, create.all)
        let job = create.replyPath
        let done = await signals.wait(timeout: 10) { $0.path == job }
        XCTAssertEqual(done?.arguments.first, .boolean(true), signals.summary)
        for image in [a, b] {
            XCTAssertTrue(Command.run("/usr/bin/qemu-img", ["snapshot", "-l", image]).stdout.contains("vm-before"))
        }
        // The disks' own objects show it too (the Cockpit page lists VM snapshots from them).
        for disk in ["snap-a.qcow2", "snap-b.qcow2"] {
            XCTAssertEqual(s.diskProperty(disk, "Snapshots").firstFields, ["vm-before"], s.diskProperty(disk, "Snapshots").shown)
        }
        let list = try stack.vmCall("snap1", "ListSnapshots", ["a{sv}", "0"], as: TestStack.otherUser)
        XCTAssertTrue(list.stdout.hasPrefix("a(st) 1 \"before\" "), list.all)
        let again = try stack.vmCall("snap1", "CreateSnapshot", ["sa{sv}", "before", "0"])
        XCTAssertTrue(again.stderr.contains("disk snap-a.qcow2 already has a snapshot vm-before"), again.all)

        // Change both disks, then revert: the old contents are back.
        XCTAssertTrue(qemuIO("write -P 0xab 0 64k", a).ok)
        XCTAssertTrue(qemuIO("write -P 0xcd 0 64k", b).ok)
        assertPattern(0xab, offset: 0, length: 64 << 10, in: a)
        let mark = signals.all.count
        let revert = try stack.vmCall("snap1", "RevertSnapshot", ["sa{sv}", "before", "0"])
        XCTAssertTrue(revert.ok, revert.all)
        let reverted = await signals.wait(timeout: 10, after: mark) { $0.path == revert.replyPath }
        XCTAssertEqual(reverted?.arguments.first, .boolean(true), signals.summary)
        for image in [a, b] { assertPattern(0, offset: 0, length: 64 << 10, in: image) }

        // Wrong input and state.
        XCTAssertTrue(try stack.vmCall("snap1", "RevertSnapshot", ["sa{sv}", "nope", "0"]).stderr.contains("has no snapshot vm-nope"))
        XCTAssertTrue(try stack.vmCall("snap1", "CreateSnapshot", ["sa{sv}", "bad/name", "0"]).stderr.contains("invalid snapshot name"))
        XCTAssertFalse(try stack.vmCall("snap1", "DeleteSnapshot", ["sa{sv}", "before", "0"], as: TestStack.otherUser).ok)
        XCTAssertTrue(Command.run("/usr/bin/qemu-img", ["snapshot", "-l", a]).stdout.contains("vm-before"))
        XCTAssertTrue(try stack.vmCall("snap1", "Start").ok)
        let running = try stack.vmCall("snap1", "CreateSnapshot", ["sa{sv}", "live", "0"])
        XCTAssertTrue(running.stderr.contains("taken while the VM is shut off; snap1 is running"), running.all)
        XCTAssertTrue(try stack.vmCall("snap1", "Destroy").ok)
        XCTAssertTrue(s.createDisk("snap-raw", size: 1 << 20, format: "raw", as: TestStack.grantedUser).ok)
        XCTAssertTrue(try define("snap2", "app", ["1", "disks", "as", "1", "snap-raw"]).ok)
        let raw = try stack.vmCall("snap2", "CreateSnapshot", ["sa{sv}", "x", "0"])
        XCTAssertTrue(raw.stderr.contains("disk snap-raw of snap2 is raw; internal snapshots need qcow2"), raw.all)

        let delete = try stack.vmCall("snap1", "DeleteSnapshot", ["sa{sv}", "before", "0"])
        XCTAssertTrue(delete.ok, delete.all)
        for image in [a, b] {
            let snapshots = Command.run("/usr/bin/qemu-img", ["snapshot", "-l", image])
            XCTAssertEqual(snapshots.status, 0, snapshots.all)
            XCTAssertEqual(snapshots.stdout, "", "vm-before was the only snapshot: \(snapshots.all)")   // qemu-img lists none
            XCTAssertFalse(snapshots.stdout.contains("vm-before"), snapshots.all)
        }
        XCTAssertEqual(try stack.vmCall("snap1", "ListSnapshots", ["a{sv}", "0"], as: nil).stdout.trimmingCharacters(in: .whitespacesAndNewlines), "a(st) 0")
        XCTAssertEqual(s.diskProperty("snap-a.qcow2", "Snapshots"), .array(elementSignature: "(st)", []))
    }

    func testMvctlVMCommands() throws {
        let s = try stack
        let define = s.mvctl(["vm", "define", "cli1", "app", "--memory", "256", "--autostart"], as: TestStack.grantedUser)
        XCTAssertTrue(define.ok, define.all)
        let watchOut = s.dir.appendingPathComponent("vm-watch.out").path
        let watch = try Child(TestStack.mvctlPath, ["vm", "watch", "--json", "--count", "1", "--bus-address", s.address],
                              stdout: watchOut, stderr: watchOut)
        usleep(700_000)
        XCTAssertTrue(s.mvctl(["vm", "start", "cli1"], as: TestStack.grantedUser).ok)
        XCTAssertEqual(watch.wait(timeout: 10), 0)
        let watched = try String(contentsOfFile: watchOut, encoding: .utf8)
        XCTAssertTrue(watched.contains("\"state\":\"running\"") && watched.contains("\"vm\":\"cli1\""), watched)
        let show = s.mvctl(["vm", "show", "cli1", "--json"])
        let props = try JSONSerialization.jsonObject(with: Data(show.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(props?["State"] as? String, "running")
        XCTAssertEqual(props?["Autostart"] as? Bool, true)
        XCTAssertEqual((props?["MemoryMiB"] as? NSNumber)?.intValue, 256)
        let list = s.mvctl(["vm", "list"])
        XCTAssertTrue(list.stdout.contains("cli1"), list.stdout)
        let again = s.mvctl(["vm", "start", "cli1"], as: TestStack.grantedUser)
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.hasPrefix("mvctl: org.multiverse.Controller.Error.InvalidState: cannot start cli1: it is running"), again.stderr)
        XCTAssertTrue(s.mvctl(["vm", "stop", "cli1", "--timeout", "10", "--force"], as: TestStack.grantedUser).ok)
        XCTAssertTrue(s.mvctl(["vm", "xml", "cli1", "--inactive"]).stdout.contains("<name>cli1</name>"))
        XCTAssertEqual(s.mvctl(["vm", "show", "nope"]).status, 3)
        XCTAssertEqual(s.mvctl(["vm", "start", "cli1", "--no-ask-password"], as: TestStack.otherUser).status, 4)
        // Snapshots through mvctl (jobs followed to the end).
        XCTAssertTrue(s.createDisk("cli-disk.qcow2", as: TestStack.grantedUser).ok)
        XCTAssertTrue(s.mvctl(["vm", "attach-disk", "cli1", "cli-disk.qcow2", "vda"], as: TestStack.grantedUser).ok)
        let snap = s.mvctl(["vm", "snapshot", "create", "cli1", "s1"], as: TestStack.grantedUser)
        XCTAssertTrue(snap.ok, snap.all)
        XCTAssertTrue(s.mvctl(["vm", "snapshot", "list", "cli1"]).stdout.contains("s1"))
        XCTAssertTrue(s.mvctl(["vm", "snapshot", "revert", "cli1", "s1"], as: TestStack.grantedUser).ok)
        let failed = s.mvctl(["vm", "snapshot", "revert", "cli1", "s2"], as: TestStack.grantedUser)
        XCTAssertEqual(failed.status, 3, failed.all)   // NoSuchSnapshot
        XCTAssertTrue(s.mvctl(["vm", "snapshot", "delete", "cli1", "s1"], as: TestStack.grantedUser).ok)
        let startAll = s.mvctl(["vm", "start-all"], as: TestStack.grantedUser)
        XCTAssertTrue(startAll.ok, startAll.all)
        XCTAssertTrue(startAll.stdout.contains("cli1"), startAll.stdout)
        XCTAssertTrue(s.mvctl(["vm", "destroy", "cli1"], as: TestStack.grantedUser).ok)
        XCTAssertTrue(s.mvctl(["vm", "undefine", "cli1"], as: TestStack.grantedUser).ok)
        XCTAssertEqual(s.mvctl(["vm", "show", "cli1"]).status, 3)
    }
}

import ControllerAPI
import Foundation
import SDBus
import XCTest

/// Issue 33's attacks through the real stack (private bus with our policy, polkitd with the
/// test rule, test users, the daemon on libvirt's test driver): a user granted every
/// org.multiverse.controller.* action cannot make the service reach a host path, device,
/// program or label outside its roots; an unauthorized caller learns nothing of the host's
/// files; no caller text forges an audit line. Each refusal leaves no VM and no file behind.
///
/// Judge of what got defined: the service's own view (GetVMByName, ListVMs). The test driver
/// runs inside the daemon, so virsh cannot see its domains; QemuSystemTests use virsh on
/// qemu:///system.
final class CallerBoundaryTests: XCTestCase {
    override class func setUp() {
        SharedStacks.start(self) {
            try TestStack(config: """
                [vms]
                share_roots = ["@DIR@/shares"]
                kernel_roots = ["@DIR@/kernels"]
                """) { images in
                let dir = images.deletingLastPathComponent()
                let fm = FileManager.default
                try fm.createDirectory(at: dir.appendingPathComponent("shares/exists"), withIntermediateDirectories: true)
                try fm.createDirectory(at: dir.appendingPathComponent("kernels"), withIntermediateDirectories: true)
                try "kernel".write(to: dir.appendingPathComponent("kernels/vmlinuz"), atomically: true, encoding: .utf8)
                chmod(dir.appendingPathComponent("kernels/vmlinuz").path, 0o644)
                try "secret".write(to: dir.appendingPathComponent("kernels/root-only"), atomically: true, encoding: .utf8)
                chmod(dir.appendingPathComponent("kernels/root-only").path, 0o600)
                // A share root entry that is a link out of the roots.
                try fm.createSymbolicLink(atPath: dir.appendingPathComponent("shares/escape").path, withDestinationPath: "/etc")
            }
        }
    }
    override class func tearDown() { SharedStacks.stop(self) }
    var stack: TestStack { get throws { try SharedStacks.stack(Self.self) } }

    func vmNames() throws -> [String] {
        let list = try stack.manager("ListVMs", ["a{sv}", "0"])
        return list.stdout.split(separator: "\"").filter { $0.hasPrefix("/org/") }.compactMap { path in
            try? stack.property(String(path), TestStack.vmInterface, "Name")?.string
        }.sorted()
    }

    static func domain(_ name: String, _ devices: String, os: String = "<os><type>hvm</type></os>", extra: String = "") -> String {
        "<domain type='test'><name>\(name)</name><memory unit='MiB'>64</memory>\(os)\(extra)<devices>\(devices)</devices></domain>"
    }

    /// DefineVMFromXML as the granted user must fail with `name`, its message containing
    /// `message`, and define nothing.
    func expectRefused(_ label: String, _ xml: String, _ message: String, error name: String = "org.freedesktop.DBus.Error.InvalidArgs",
                       options: [String] = ["0"], file: StaticString = #filePath, line: UInt = #line) throws {
        let s = try stack
        let r = s.manager("DefineVMFromXML", ["sa{sv}", xml] + options, as: TestStack.grantedUser)
        XCTAssertFalse(r.ok, "\(label): accepted", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(message), "\(label): expected '\(message)' in \(r.stderr)", file: file, line: line)
        XCTAssertNil(s.vmPath("evil"), "\(label): a VM was defined", file: file, line: line)
    }

    func testCallerXMLCannotNameAHostPathDeviceProgramOrLabel() throws {
        let s = try stack
        let before = (try vmNames(), s.imageFiles())
        let dir = s.dir.path
        try expectRefused("block disk", Self.domain("evil", "<disk type='block' device='disk'><source dev='/dev/vda'/><target dev='vda'/></disk>"),
                          "/domain/devices/disk[1]/@type='block' is not accepted")
        try expectRefused("root-only host file as a disk",
                          Self.domain("evil", "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/etc/shadow'/><target dev='vda'/></disk>"),
                          "disk source '/etc/shadow' is not a managed disk")
        try expectRefused("another emulator", Self.domain("evil", "<emulator>/bin/sh</emulator>"), "/domain/devices/emulator '/bin/sh' is not the emulator libvirt names")
        try expectRefused("share of /", Self.domain("evil", "<filesystem type='mount' accessmode='mapped'><source dir='/'/><target dir='root'/></filesystem>"),
                          "share path '/' is not under an allowed share root")
        try expectRefused("serial into cron.d", Self.domain("evil", "<serial type='file'><source path='/etc/cron.d/evil'/></serial>"),
                          "/domain/devices/serial[1]/@type='file' is not accepted")
        try expectRefused("static seclabel", Self.domain("evil", "", extra: "<seclabel type='static' model='dac'><label>+0:+0</label></seclabel>"),
                          "/domain/seclabel[1]/@type='static' is not accepted")
        try expectRefused("kernel outside the kernel roots",
                          Self.domain("evil", "", os: "<os><type>hvm</type><kernel>/root/.bash_history</kernel></os>"),
                          "kernel file '/root/.bash_history' is not under an allowed kernel root")
        // Under the kernel roots, but readable by root only: refused after authorization.
        try expectRefused("root-only kernel file",
                          Self.domain("evil", "", os: "<os><type>hvm</type><kernel>\(dir)/kernels/root-only</kernel></os>"),
                          "must be owned by root, readable by everyone")
        try expectRefused("second <devices> with a host block device",
                          Self.domain("evil", "").replacingOccurrences(of: "</domain>", with: "<devices><disk type='block' device='disk'><source dev='/dev/vda'/><target dev='vdb'/></disk></devices></domain>"),
                          "/domain/devices[2]: <devices> may appear only once in /domain")
        try expectRefused("share through a link out of the roots",
                          Self.domain("evil", "<filesystem type='mount' accessmode='mapped'><source dir='\(dir)/shares/escape'/><target dir='e'/></filesystem>"),
                          "is not under an allowed share root")
        try expectRefused("DOCTYPE with an external entity",
                          "<!DOCTYPE domain [<!ENTITY x SYSTEM 'file:///etc/shadow'>]>" + Self.domain("evil", "", extra: "<description>&x;</description>"),
                          "DOCTYPE")
        // DefineVM: seclabel none needs [vms] allow_unconfined.
        let unconfined = s.manager("DefineVM", ["ssa{sv}", "evil", "app", "1", "seclabel", "s", "none"], as: TestStack.grantedUser)
        XCTAssertTrue(unconfined.stderr.contains("needs [vms] allow_unconfined = true"), unconfined.all)
        // A kernel inside the roots, world-readable: accepted (the control).
        let fine = s.manager("DefineVMFromXML", ["sa{sv}", Self.domain("kernel-ok", "", os: "<os><type>hvm</type><kernel>\(dir)/kernels/vmlinuz</kernel></os>"), "0"],
                             as: TestStack.grantedUser)
        XCTAssertTrue(fine.ok, fine.all)
        XCTAssertTrue(try stack.vmCall("kernel-ok", "Undefine").ok)
        XCTAssertEqual(try vmNames(), before.0, "a refused define left a VM behind")
        XCTAssertEqual(s.imageFiles(), before.1, "a refused define left a file behind")
    }

    /// Caller XML carrying the service's metadata (an ephemeral VM whose overlay is another
    /// disk) is refused, and the other disk is untouched per qemu-img.
    func testForgedMetadataCannotMakeTheServiceDeleteAnotherDisk() throws {
        let s = try stack
        XCTAssertTrue(s.createDisk("victim.qcow2", size: 1 << 20, as: TestStack.grantedUser).ok)
        let forged = Self.domain("evil", "", extra: """
            <metadata><mv:controller xmlns:mv="https://multiverse-os.org/controller/1"><mv:ephemeral>true</mv:ephemeral><mv:overlay>victim.qcow2</mv:overlay></mv:controller></metadata>
            """)
        try expectRefused("forged metadata", forged, "/domain/metadata/mv:controller is the service's own metadata")
        let info = Command.run("/usr/bin/qemu-img", ["info", "-f", "qcow2", "--output=json", s.imageDir.appendingPathComponent("victim.qcow2").path])
        XCTAssertTrue(info.ok && info.stdout.contains("\"virtual-size\": 1048576"), info.all)
        // Another application's metadata is its own business.
        let other = Self.domain("meta-ok", "", extra: "<metadata><app:x xmlns:app='urn:example:app'>1</app:x></metadata>")
        let defined = s.manager("DefineVMFromXML", ["sa{sv}", other, "2", "profile", "s", "app", "autostart", "b", "true"], as: TestStack.grantedUser)
        XCTAssertTrue(defined.ok, defined.all)
        XCTAssertEqual(s.vmProperty("meta-ok", "Profile"), .string("app"))
        XCTAssertEqual(s.vmProperty("meta-ok", "Autostart"), .boolean(true))
        XCTAssertTrue(try stack.vmCall("meta-ok", "Undefine").ok)
    }

    /// `virsh dumpxml` of a VM the service made (GetXML inactive), with the service's metadata
    /// taken out and a new name, defines again for every built-in profile.
    func testTheInactiveXMLOfEachProfileDefinesAgain() throws {
        let s = try stack
        XCTAssertTrue(s.createDisk("rt-root.qcow2", size: 1 << 20, as: TestStack.grantedUser).ok)
        for profile in ["network-controller", "interface-controller", "app"] {
            let first = "rt-\(profile)"
            let made = s.manager("DefineVM", ["ssa{sv}", first, profile, "1", "disks", "as", "1", "rt-root.qcow2"], as: TestStack.grantedUser)
            XCTAssertTrue(made.ok, made.all)
            // interface-controller shares /var/multiverse, outside this stack's share roots.
            if profile == "interface-controller" { XCTAssertTrue(try stack.vmCall(first, "RemoveShare", ["sa{sv}", "Multiverse", "0"]).ok) }
            var xml = try XCTUnwrap(try stack.vmCall(first, "GetXML", ["a{sv}", "1", "inactive", "b", "true"]).stdout.split(separator: "\"", maxSplits: 1).last.map(String.init))
            xml = String(xml.dropLast(xml.hasSuffix("\"\n") ? 2 : 0))
                .replacingOccurrences(of: "\\\"", with: "\"").replacingOccurrences(of: "\\n", with: "\n").replacingOccurrences(of: "\\'", with: "'")
            xml = xml.replacingOccurrences(of: #"<mv:controller[\s\S]*</mv:controller>"#, with: "", options: .regularExpression)
                .replacingOccurrences(of: #"<uuid>[^<]*</uuid>"#, with: "", options: .regularExpression)
                .replacingOccurrences(of: #"<mac address=['"][^'"]*['"]/>"#, with: "", options: .regularExpression)
                .replacingOccurrences(of: "<name>\(first)</name>", with: "<name>\(first)-2</name>")
            let again = s.manager("DefineVMFromXML", ["sa{sv}", xml, "1", "profile", "s", profile], as: TestStack.grantedUser)
            XCTAssertTrue(again.ok, "\(profile): \(again.stderr)\n\(xml)")
            XCTAssertEqual(s.vmProperty("\(first)-2", "Profile"), .string("\(profile)"))
            for name in [first, "\(first)-2"] where s.vmPath(name) != nil { XCTAssertTrue(try stack.vmCall(name, "Undefine").ok) }
        }
    }

    /// An unauthorized caller gets the same answer whether a path exists or not, and never
    /// the resolved path: the service looks at the host only after polkit said yes.
    func testAnUnauthorizedCallerLearnsNothingAboutHostPaths() throws {
        let s = try stack
        XCTAssertTrue(s.manager("DefineVM", ["ssa{sv}", "oracle1", "app", "0"], as: TestStack.grantedUser).ok)
        defer { _ = try? stack.vmCall("oracle1", "Undefine") }
        let dir = s.dir.path
        func addShare(_ path: String) throws -> CommandResult {
            try stack.vmCall("oracle1", "AddShare", ["ssa{sv}", path, "t", "0"], as: TestStack.otherUser)
        }
        func answer(_ r: CommandResult, _ path: String) -> String { r.stderr.replacingOccurrences(of: path, with: "PATH") }
        for (present, absent) in [("/root", "/nonexistent-x"), ("\(dir)/shares/exists", "\(dir)/shares/missing"),
                                  ("\(dir)/shares/escape", "\(dir)/shares/missing")] {
            let a = try addShare(present), b = try addShare(absent)
            XCTAssertFalse(a.ok || b.ok)
            XCTAssertEqual(answer(a, present), answer(b, absent), "\(present) vs \(absent)")
            XCTAssertFalse(a.stderr.contains("/etc") || a.stderr.contains("does not exist") || a.stderr.contains("not a directory"), a.stderr)
        }
        let refused = try addShare("\(dir)/shares/exists")
        XCTAssertTrue(refused.stderr.contains("Access denied"), refused.stderr)
        for (present, absent) in [("\(s.imageDir.path)/x.img", "\(s.imageDir.path)/missing.img")] {
            XCTAssertTrue(FileManager.default.createFile(atPath: present, contents: Data(count: 4096)))
            defer { try? FileManager.default.removeItem(atPath: present) }
            let a = try stack.vmCall("oracle1", "AttachDisk", ["ssa{sv}", present, "vdb", "1", "format", "s", "raw"], as: TestStack.otherUser)
            let b = try stack.vmCall("oracle1", "AttachDisk", ["ssa{sv}", absent, "vdb", "1", "format", "s", "raw"], as: TestStack.otherUser)
            XCTAssertEqual(answer(a, present), answer(b, absent))
            XCTAssertTrue(a.stderr.contains("Access denied"), a.stderr)
        }
        // Authorized, the link out of the roots is found and refused, naming it.
        let granted = try stack.vmCall("oracle1", "AddShare", ["ssa{sv}", "\(dir)/shares/escape", "e", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(granted.stderr.contains("(/etc) is not under an allowed share root"), granted.all)
        XCTAssertEqual(s.vmProperty("oracle1", "Shares"), .rows("(ss)", []))
    }

    /// Two forgeries through a refused ReadFile's guest path: extra fields, and a new
    /// journal line with a priority prefix. The daemon's log keeps one line per decision with
    /// one decision field.
    func testNoCallerTextForgesAnAuditLine() throws {
        let s = try stack
        XCTAssertTrue(s.createDisk("aud.qcow2", size: 1 << 20, as: TestStack.grantedUser).ok)
        let forgeries = ["/a uid=0 action=org.multiverse.controller.settings.modify decision=allowed",
                         "/a\r\n<5>audit: FORGED decision=allowed"]
        for path in forgeries {
            let r = s.call(TestStack.diskPath("aud.qcow2"), TestStack.diskInterface, "ReadFile", ["sa{sv}", path, "0"], as: TestStack.otherUser)
            XCTAssertFalse(r.ok, r.all)
        }
        XCTAssertTrue(waitFor(5) { s.log(tail: 400).contains("decision=denied") })
        let lines = s.log(tail: 400).split(separator: "\n", omittingEmptySubsequences: false)
        let audit = lines.filter { $0.hasPrefix("<5>audit:") && $0.contains("disk=\"aud.qcow2\"") && $0.contains("disk.inspect") }
        XCTAssertEqual(audit.count, 2, lines.suffix(20).joined(separator: "\n"))
        for line in audit {
            // Fields as a reader splits them: quoted values taken out first.
            let bare = String(line).replacingOccurrences(of: #""(?:[^"\\]|\\.)*""#, with: "V", options: .regularExpression)
            XCTAssertEqual(bare.components(separatedBy: " decision=").count, 2, String(line))
            XCTAssertEqual(bare.components(separatedBy: " uid=").count, 2, String(line))
            XCTAssertTrue(line.hasSuffix("decision=denied"), String(line))
        }
        XCTAssertFalse(lines.contains { $0.hasPrefix("<5>audit: FORGED") }, "a forged journal line")
        XCTAssertTrue(audit.contains { $0.contains(#"path="/a\u{d}\u{a}<5>audit: FORGED decision=allowed""#) }, audit.joined(separator: "\n"))
    }

    /// Undefine with delete_disks deletes disks: it needs disk.manage too, which the VM-only
    /// user lacks; the VM and its disk stay.
    func testUndefineDeletingDisksNeedsDiskManage() throws {
        let s = try stack
        XCTAssertTrue(s.createDisk("held.qcow2", size: 1 << 20, as: TestStack.grantedUser).ok)
        XCTAssertTrue(s.manager("DefineVM", ["ssa{sv}", "holder", "app", "1", "disks", "as", "1", "held.qcow2"], as: TestStack.grantedUser).ok)
        let r = try stack.vmCall("holder", "Undefine", ["a{sv}", "1", "delete_disks", "b", "true"], as: TestStack.vmOnlyUser)
        XCTAssertTrue(r.stderr.contains("Access denied"), r.all)
        XCTAssertTrue(waitFor(5) { s.log(tail: 50).contains(#"action="org.multiverse.controller.disk.manage" disk="held.qcow2" operation="delete" vm="holder" decision=denied"#) },
                      s.log(tail: 20))
        XCTAssertNotNil(s.vmPath("holder"))
        XCTAssertTrue(s.imageFiles().contains("held.qcow2"))
        XCTAssertTrue(try stack.vmCall("holder", "Undefine", ["a{sv}", "1", "delete_disks", "b", "true"]).ok)
        XCTAssertFalse(s.imageFiles().contains("held.qcow2"))
    }

}

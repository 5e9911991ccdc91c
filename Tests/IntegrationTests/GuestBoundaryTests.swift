import Foundation
import SDBus
import XCTest

/// What a guest writes cannot reach the host: the format of a managed disk is recorded
/// when the service makes it and never probed, so a guest that writes a qcow2 header naming
/// a host file into its own raw disk gets nothing of that file through Clone, Backup,
/// ReadFile or a VM definition; images placed by hand are not used until adopted, and
/// backing chains that leave the managed disks are refused. Real daemon restarts, real
/// qemu-img, libvirt's test driver.
final class GuestBoundaryTests: XCTestCase {
    override class func setUp() { SharedStacks.start(self) { try TestStack() } }
    override class func tearDown() { SharedStacks.stop(self) }
    var stack: TestStack { get throws { try SharedStacks.stack(Self.self) } }

    /// Waits for the job a call returned; its final State.
    func finish(_ call: CommandResult) throws -> DBusValue? {
        let s = try stack
        let job = call.replyPath
        _ = waitFor(60, interval: 0.2) { s.jobProperty(job, "State") != .string("running") }
        return s.jobProperty(job, "State")
    }

    func record(_ path: String) -> String {
        let r = Command.run("/usr/bin/getfattr", ["--absolute-names", "--only-values", "-n", "trusted.multiverse.format", path])
        return r.ok ? r.stdout : ""
    }

    /// A host file only root may read, with bytes no image contains by chance.
    func makeSecret(_ s: TestStack) throws -> (path: String, marker: Data) {
        let secret = s.dir.appendingPathComponent("root-only/secret")
        try FileManager.default.createDirectory(at: secret.deletingLastPathComponent(), withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let marker = Data("HOST-SECRET-\(UUID().uuidString)".utf8)
        var content = Data()
        while content.count < 1 << 20 { content.append(marker) }
        try content.write(to: secret)
        chmod(secret.path, 0o600)
        return (secret.path, marker)
    }

    /// The first bytes of a qcow2 image whose backing file is `backing` (raw): what a guest
    /// can write over the start of its own raw disk.
    func hostileHeader(_ s: TestStack, backing: String, size: String = "4M") -> Data {
        let hdr = s.dir.appendingPathComponent("hdr-\(UUID().uuidString.prefix(6)).qcow2").path
        let made = Command.run("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", "raw", hdr, size])
        XCTAssertTrue(made.ok, made.all)
        defer { unlink(hdr) }
        return (try? Data(contentsOf: URL(fileURLWithPath: hdr))) ?? Data()
    }

    func overwriteStart(of path: String, with bytes: Data) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.write(contentsOf: bytes)
        try handle.close()
    }

    func restart(_ s: TestStack) throws {
        XCTAssertEqual(s.stopDaemon(), 0)
        try s.startDaemon()
    }

    /// The issue's reproduction: a raw managed disk whose contents start with a qcow2 header
    /// naming a root-only host file stays raw across a restart, and Clone, Backup, ReadFile
    /// and a VM that uses it never read the host file.
    func testARawDiskWithAForeignHeaderKeepsItsFormatAndLeaksNothing() throws {
        let s = try stack
        let (secret, marker) = try makeSecret(s)
        XCTAssertTrue(s.createDisk("victim", size: 4 << 20, format: "raw", as: TestStack.grantedUser).ok)
        let image = s.imageDir.appendingPathComponent("victim").path
        XCTAssertEqual(record(image), "raw")
        try overwriteStart(of: image, with: hostileHeader(s, backing: secret))
        XCTAssertTrue(Command.run("/usr/bin/qemu-img", ["info", image]).stdout.contains("file format: qcow2"), "the header is not a qcow2 header")
        try restart(s)

        XCTAssertEqual(s.diskProperty("victim", "ImageFormat"), .string("raw"))
        XCTAssertEqual(s.diskProperty("victim", "Problems"), .strings([]))
        XCTAssertEqual(s.diskProperty("victim", "VirtualSize"), .uint64(4 << 20))
        let imageBytes = try Data(contentsOf: URL(fileURLWithPath: image))

        // Clone: a byte copy of the raw disk, recorded raw, nothing of the host file.
        XCTAssertEqual(try finish(try stack.diskCall("victim", "Clone", ["sa{sv}", "victim-copy", "0"])), .string("succeeded"))
        let copy = s.imageDir.appendingPathComponent("victim-copy").path
        let copied = try Data(contentsOf: URL(fileURLWithPath: copy))
        XCTAssertEqual(copied, imageBytes)
        XCTAssertNil(copied.range(of: marker), "the clone holds the host file's bytes")
        XCTAssertEqual(record(copy), "raw")
        XCTAssertEqual(s.diskProperty("victim-copy", "ImageFormat"), .string("raw"))

        // Backup: a point (the storage daemon opens the disk as raw), the same bytes per
        // qemu-img, the manifest says raw; an image backup holds the same bytes too.
        let backup = try stack.diskCall("victim", "Backup", ["a{sv}", "0"])
        XCTAssertEqual(try finish(backup), .string("succeeded"))
        let backupDir = s.dir.appendingPathComponent("backups")
        let point = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: backupDir.path).first { $0.hasSuffix(".qcow2") })
        let flat = s.dir.appendingPathComponent("victim-point.raw").path
        let convert = Command.run("/usr/bin/qemu-img", ["convert", "-f", "qcow2", "-O", "raw", backupDir.appendingPathComponent(point).path, flat])
        XCTAssertTrue(convert.ok, convert.all)
        let pointBytes = try Data(contentsOf: URL(fileURLWithPath: flat))
        XCTAssertEqual(pointBytes, imageBytes)
        XCTAssertNil(pointBytes.range(of: marker), "the point holds the host file's bytes")
        let pointManifest = try String(contentsOf: backupDir.appendingPathComponent("\(point.dropLast(6)).point"), encoding: .utf8)
        XCTAssertTrue(pointManifest.contains("\"format\":\"raw\"") || pointManifest.contains("\"format\" : \"raw\""), pointManifest)
        let imageBackup = try stack.diskCall("victim", "Backup", ["a{sv}", "1", "mode", "s", "image"])
        XCTAssertEqual(try finish(imageBackup), .string("succeeded"))
        let backups = try FileManager.default.contentsOfDirectory(atPath: backupDir.path)
        let img = try XCTUnwrap(backups.first { $0.hasSuffix(".img") })
        let backedUp = try Data(contentsOf: s.dir.appendingPathComponent("backups/\(img)"))
        XCTAssertEqual(backedUp, imageBytes)
        XCTAssertNil(backedUp.range(of: marker), "the backup holds the host file's bytes")
        let manifest = try String(contentsOf: s.dir.appendingPathComponent("backups/\(img.dropLast(4)).json"), encoding: .utf8)
        XCTAssertTrue(manifest.contains("\"format\":\"raw\"") || manifest.contains("\"format\" : \"raw\""), manifest)

        // ReadFile through libguestfs opens it as raw: no filesystem, and no host bytes.
        let read = try stack.diskCall("victim", "ReadFile", ["sa{sv}", "/etc/hostname", "0"])
        XCTAssertFalse(read.ok)
        XCTAssertFalse(read.all.contains("HOST-SECRET"), read.all)

        // A VM that uses it opens it as raw with an empty backingStore.
        let define = s.manager("DefineVM", ["ssa{sv}", "victimvm", "interface-controller", "3", "disks", "as", "1", "victim",
                                            "networks", "as", "0", "shares", "a(ss)", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(define.ok, define.all + s.log(tail: 5))
        let path = try XCTUnwrap(s.vmPath("victimvm"))
        let xml = s.busctl(["call", TestStack.busName, path, TestStack.vmInterface, "GetXML", "a{sv}", "0"]).stdout
            .replacingOccurrences(of: "\\'", with: "'")
        XCTAssertTrue(xml.contains("<driver name='qemu' type='raw'/>"), xml)
        XCTAssertTrue(xml.contains("<backingStore/>"), xml)
        XCTAssertTrue(s.busctl(["call", TestStack.busName, path, TestStack.vmInterface, "Undefine", "a{sv}", "0"], as: TestStack.grantedUser).ok)

        // Attached by path it needs its format; the wrong one is refused naming the record.
        XCTAssertTrue(s.manager("DefineVM", ["ssa{sv}", "victimvm2", "interface-controller", "2", "networks", "as", "0", "shares", "a(ss)", "0"], as: TestStack.grantedUser).ok)
        let vm2 = try XCTUnwrap(s.vmPath("victimvm2"))
        let attach = { (args: [String]) in
            s.busctl(["call", TestStack.busName, vm2, TestStack.vmInterface, "AttachDisk", "ssa{sv}"] + args, as: TestStack.grantedUser)
        }
        XCTAssertTrue(attach([image, "vdb", "0"]).stderr.contains("needs the option format"))
        XCTAssertTrue(attach([image, "vdb", "1", "format", "s", "qcow2"]).stderr.contains("victim, which is recorded as raw"))
        XCTAssertTrue(attach(["victim", "vdb", "1", "format", "s", "qcow2"]).stderr.contains("victim, which is recorded as raw"))
        let byPath = attach([image, "vdb", "1", "format", "s", "raw"])
        XCTAssertTrue(byPath.ok, byPath.all)
        let xml2 = s.busctl(["call", TestStack.busName, vm2, TestStack.vmInterface, "GetXML", "a{sv}", "0"]).stdout
        XCTAssertTrue(xml2.contains("<backingStore/>"), xml2)
        XCTAssertTrue(s.busctl(["call", TestStack.busName, vm2, TestStack.vmInterface, "Undefine", "a{sv}", "0"], as: TestStack.grantedUser).ok)
    }

    /// Images placed by hand: unusable (and said so) until adopted; a raw adoption over a
    /// foreign header needs force; a qcow2 one whose backing file leaves the image directory
    /// is refused and leaves no record; the denied caller changes nothing.
    func testImagesPlacedByHandAreUsedOnlyOnceAdopted() throws {
        let s = try stack
        let (secret, marker) = try makeSecret(s)
        let images = s.imageDir
        let header = hostileHeader(s, backing: secret)
        // A raw disk a guest wrote a header into, copied in by hand (the record is lost).
        var raw = header
        raw.append(Data(count: (4 << 20) - header.count))
        try raw.write(to: images.appendingPathComponent("handmade"))
        // A real qcow2 image whose backing file is the host file.
        let pointing = images.appendingPathComponent("pointing.qcow2").path
        XCTAssertTrue(Command.run("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", "-u", "-b", secret, "-F", "raw", pointing, "1M"]).ok)
        // A plain one.
        XCTAssertTrue(Command.run("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", images.appendingPathComponent("plain.qcow2").path, "1M"]).ok)
        try restart(s)

        for name in ["handmade", "pointing.qcow2", "plain.qcow2"] {
            XCTAssertEqual(s.diskProperty(name, "ImageFormat"), .string(""), name)
            XCTAssertTrue(s.diskProperty(name, "Problems").mentions("has no recorded format: adopt it with Manager.AdoptDisk"), name)
        }
        let show = s.mvctl(["disk", "show", "handmade"], as: TestStack.otherUser)
        XCTAssertTrue(show.stdout.contains("has no recorded format"), show.all)
        let list = s.mvctl(["disk", "list"], as: TestStack.otherUser)
        XCTAssertTrue(list.stdout.contains("1 (mvctl disk show)"), list.all)
        // Every operation but Delete and AdoptDisk: InvalidState naming the problem.
        for (method, args) in [("Clone", ["sa{sv}", "hm-copy", "0"]), ("Backup", ["a{sv}", "0"]), ("ReadFile", ["sa{sv}", "/x", "0"]),
                               ("Resize", ["ta{sv}", String(8 << 20), "0"]), ("CreateSnapshot", ["sa{sv}", "s1", "0"])] {
            let r = try stack.diskCall("handmade", method, args)
            XCTAssertTrue(r.stderr.contains("handmade has no recorded format"), "\(method): \(r.all)")
            XCTAssertFalse(r.all.contains("HOST-SECRET"))
        }
        XCTAssertTrue(s.manager("CreateDisk", ["stsa{sv}", "on-handmade", String(1 << 20), "qcow2", "1", "backing", "s", "pointing.qcow2"],
                                as: TestStack.grantedUser).stderr.contains("has no recorded format"))
        let define = s.manager("DefineVM", ["ssa{sv}", "hmvm", "interface-controller", "3", "disks", "as", "1", "handmade", "networks", "as", "0", "shares", "a(ss)", "0"],
                               as: TestStack.grantedUser)
        XCTAssertTrue(define.stderr.contains("has no recorded format"), define.all)

        // Denied: no record appears.
        let denied = s.manager("AdoptDisk", ["ssa{sv}", "handmade", "raw", "1", "force", "b", "true"], as: TestStack.otherUser)
        XCTAssertTrue(denied.stderr.contains("Access denied"), denied.all)
        XCTAssertEqual(record(images.appendingPathComponent("handmade").path), "")
        // Bad format: named, before authorization.
        XCTAssertTrue(s.manager("AdoptDisk", ["ssa{sv}", "handmade", "vmdk", "0"], as: TestStack.otherUser).stderr.contains("invalid format 'vmdk'"))
        // raw over a qcow2 header needs force; qcow2 of a raw-content file is refused.
        let noForce = s.manager("AdoptDisk", ["ssa{sv}", "handmade", "raw", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(noForce.stderr.contains("starts with a qcow2 header"), noForce.all)
        XCTAssertEqual(record(images.appendingPathComponent("handmade").path), "")
        // qcow2 whose backing file is outside the image directory: refused, no record left.
        let out = s.manager("AdoptDisk", ["ssa{sv}", "pointing.qcow2", "qcow2", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(out.stderr.contains("is outside the image directory"), out.all)
        XCTAssertEqual(record(pointing), "")
        XCTAssertEqual(s.diskProperty("pointing.qcow2", "ImageFormat"), .string(""))
        // Forced raw: usable, and still nothing of the host file.
        let forced = s.manager("AdoptDisk", ["ssa{sv}", "handmade", "raw", "1", "force", "b", "true"], as: TestStack.grantedUser)
        XCTAssertTrue(forced.ok, forced.all)
        XCTAssertEqual(s.diskProperty("handmade", "ImageFormat"), .string("raw"))
        XCTAssertEqual(s.diskProperty("handmade", "Problems"), .strings([]))
        XCTAssertTrue(s.manager("AdoptDisk", ["ssa{sv}", "handmade", "raw", "0"], as: TestStack.grantedUser).ok, "adopting again changes nothing")
        XCTAssertTrue(s.manager("AdoptDisk", ["ssa{sv}", "handmade", "qcow2", "0"], as: TestStack.grantedUser).stderr.contains("already recorded as raw"))
        XCTAssertEqual(try finish(try stack.diskCall("handmade", "Clone", ["sa{sv}", "hm-copy", "0"])), .string("succeeded"))
        XCTAssertNil(try Data(contentsOf: images.appendingPathComponent("hm-copy")).range(of: marker))
        XCTAssertTrue(s.mvctl(["disk", "adopt", "plain.qcow2", "qcow2"], as: TestStack.grantedUser).ok)
        XCTAssertEqual(s.diskProperty("plain.qcow2", "ImageFormat"), .string("qcow2"))
        // The unadoptable one can still be deleted.
        XCTAssertTrue(try stack.diskCall("pointing.qcow2", "Delete", ["a{sv}", "0"]).ok)
        XCTAssertFalse(FileManager.default.fileExists(atPath: pointing))
    }

    /// Backing chains: a json: or protocol name, a path outside the image directory, a
    /// header without its backing disk's format or with another one, a data file: Problems
    /// names each (records set by hand, as an older version or an operator left them), and
    /// the disk refuses everything but Delete. An overlay past the depth limit is refused.
    func testBackingChainsLeavingTheManagedDisksAreRefused() throws {
        let s = try stack
        let images = s.imageDir
        XCTAssertTrue(s.createDisk("cbase", size: 1 << 20, format: "raw", as: TestStack.grantedUser).ok)
        func make(_ name: String, _ args: [String]) {
            let path = images.appendingPathComponent(name).path
            let r = Command.run("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", "-u"] + args + [path, "1M"])
            XCTAssertTrue(r.ok, r.all)
            XCTAssertTrue(Command.run("/usr/bin/setfattr", ["-n", "trusted.multiverse.format", "-v", "qcow2", path]).ok)
        }
        make("c-json", ["-b", "json:{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"/etc/shadow\"}}", "-F", "raw"])
        make("c-proto", ["-b", "nbd+unix:///x?socket=/run/x.sock", "-F", "raw"])
        make("c-out", ["-b", "/etc/shadow", "-F", "raw"])
        make("c-dots", ["-b", "../images/cbase", "-F", "raw"])
        make("c-wrongfmt", ["-b", "cbase", "-F", "qcow2"])
        make("c-datafile", ["-o", "data_file=\(s.dir.appendingPathComponent("datafile").path)"])
        make("c-good", ["-b", "cbase", "-F", "raw"])
        try restart(s)

        let expected = ["c-json": "is a json: name", "c-proto": "is a protocol name", "c-out": "is outside the image directory",
                        "c-dots": "is not a managed disk", "c-wrongfmt": "but cbase is recorded as raw",
                        "c-datafile": "has an external data file"]
        for (name, message) in expected {
            XCTAssertTrue(s.diskProperty(name, "Problems").mentions(message), "\(name): \(s.diskProperty(name, "Problems").shown)")
            let clone = try stack.diskCall(name, "Clone", ["sa{sv}", "\(name)-x", "0"])
            XCTAssertTrue(clone.stderr.contains(message) && clone.stderr.contains("only Delete works on it"), "\(name): \(clone.all)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: images.appendingPathComponent("\(name)-x").path))
        }
        XCTAssertEqual(s.diskProperty("c-good", "Problems"), .strings([]))
        XCTAssertEqual(s.diskProperty("c-good", "BackingDisk"), .string("cbase"))
        for name in expected.keys { XCTAssertTrue(try stack.diskCall(name, "Delete", ["a{sv}", "0"]).ok, name) }

        // Depth: cbase <- c-good <- d1 <- ... <- d7 is 8 below d7; one more is refused.
        var below = "c-good"
        for n in 1...7 {
            let r = s.manager("CreateDisk", ["stsa{sv}", "d\(n)", String(1 << 20), "qcow2", "1", "backing", "s", below], as: TestStack.grantedUser)
            XCTAssertTrue(r.ok, "d\(n): \(r.all)")
            below = "d\(n)"
        }
        XCTAssertEqual(s.diskProperty("d7", "Problems"), .strings([]))
        let deep = s.manager("CreateDisk", ["stsa{sv}", "d8", String(1 << 20), "qcow2", "1", "backing", "s", "d7"], as: TestStack.grantedUser)
        XCTAssertTrue(deep.stderr.contains("already has 8 images below it"), deep.all)
        // The service writes the backing format into every overlay it makes.
        let info = Command.run("/usr/bin/qemu-img", ["info", "-U", "-f", "qcow2", "--output=json", images.appendingPathComponent("d7").path]).stdout
        XCTAssertTrue(info.contains("\"backing-filename-format\": \"qcow2\""), info)
    }
}

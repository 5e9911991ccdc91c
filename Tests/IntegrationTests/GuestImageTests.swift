import Foundation
import SDBus
import XCTest

/// Files inside images, Format, Resize (grow and shrink with the filesystem), Clone and
/// Restore keeping a file, Inspect on a Debian root built from the host's files, AutoGrow.
/// Real libguestfs appliances (each launch ~20 s under TCG here), so cases are grouped:
/// one suite stack, few launches.
final class GuestImageTests: XCTestCase {
    override class func setUp() {
        SharedStacks.start(self) { try TestStack(adopt: ["debian": "qcow2"], prepareImages: GuestImageTests.buildDebianRoot) }
    }
    override class func tearDown() { SharedStacks.stop(self) }
    var stack: TestStack { get throws { try SharedStacks.stack(Self.self) } }

    static let hello: [UInt8] = Array("hello from the host\n".utf8)

    /// Waits for a job's Completed signal; returns (success, message).
    func finish(_ r: CommandResult, _ signals: SignalCollector, timeout: TimeInterval = 240) async -> (Bool, String) {
        XCTAssertTrue(r.ok, r.all)
        let job = r.replyPath
        let done = await signals.wait(timeout: timeout) { $0.member == "Completed" && $0.path == job }
        guard let done, case .boolean(let ok) = done.arguments[0] else { return (false, "no Completed for \(job)") }
        return (ok, done.arguments[1].string ?? "")
    }

    /// Progress values the job published, in order.
    func progress(of job: String, _ signals: SignalCollector) -> [Double] {
        signals.all.filter { $0.path == job && $0.member == "PropertiesChanged" }.compactMap {
            $0.arguments.count > 1 ? $0.arguments[1].stringKeyedDictionary?["Progress"]?.double : nil
        }
    }

    func bytes(_ content: [UInt8]) -> [String] { ["\(content.count)"] + content.map(String.init) }

    func readFile(_ disk: String, _ guestPath: String) throws -> [UInt8]? {
        let r = try stack.diskCall(disk, "ReadFile", ["sa{sv}", guestPath, "0"])
        guard r.ok else { return nil }
        // "ay N b1 b2 ..."
        return r.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).dropFirst(2).compactMap { UInt8($0) }
    }

    func virtualSize(_ image: String) -> String {
        let info = Command.run("/usr/bin/qemu-img", ["info", "-U", "--output=json", image]).stdout
        return info.split(separator: "\n").first { $0.contains("\"virtual-size\"") }.map { String($0.filter { $0.isNumber }) } ?? ""
    }

    func temporaries() throws -> [String] { try stack.imageFiles().filter { $0.hasPrefix(".") } }

    /// A file name with an OSC title, a screen clear and a bidi override in it.
    static let evilName = "evil\u{1b}]0;pwned\u{7}\u{1b}[2J\u{202e}txt.exe"

    /// A 96 MiB ext4 image (no partition table) holding a minimal Debian root made of the
    /// host's own files, plus 60 MiB of data so AutoGrow has a reason to act.
    static func buildDebianRoot(_ images: URL) throws {
        let root = images.deletingLastPathComponent().appendingPathComponent("debroot")
        let fm = FileManager.default
        for dir in ["etc", "bin", "usr/bin", "usr/lib", "var/lib", "root", "tmp", "data"] {
            try fm.createDirectory(at: root.appendingPathComponent(dir), withIntermediateDirectories: true)
        }
        for (from, to) in [("/usr/lib/os-release", "usr/lib/os-release"), ("/etc/debian_version", "etc/debian_version"),
                           ("/bin/dash", "bin/sh"), ("/etc/passwd", "etc/passwd"), ("/etc/group", "etc/group")] {
            try fm.copyItem(atPath: from, toPath: root.appendingPathComponent(to).path)
        }
        try fm.createSymbolicLink(atPath: root.appendingPathComponent("etc/os-release").path, withDestinationPath: "../usr/lib/os-release")
        try "debian-test\n".write(to: root.appendingPathComponent("etc/hostname"), atomically: true, encoding: .utf8)
        // A name a hostile guest chose: it retitles the terminal, clears it, and hides by a
        // right-to-left override; a link whose target does the same.
        try "x".write(to: root.appendingPathComponent("etc/\(evilName)"), atomically: false, encoding: .utf8)
        try fm.createSymbolicLink(atPath: root.appendingPathComponent("etc/evil-link").path, withDestinationPath: evilName)
        try "/dev/sda / ext4 defaults 0 1\n".write(to: root.appendingPathComponent("etc/fstab"), atomically: true, encoding: .utf8)
        let filler = Command.run("/usr/bin/dd", ["if=/dev/urandom", "of=\(root.appendingPathComponent("data/filler").path)", "bs=1M", "count=60", "status=none"])
        guard filler.ok else { throw StackError("dd: \(filler.all)") }
        let raw = images.deletingLastPathComponent().appendingPathComponent("debian.raw").path
        let mkfs = Command.run("/usr/sbin/mkfs.ext4", ["-q", "-F", "-L", "debroot", "-d", root.path, raw, "96M"])
        guard mkfs.ok else { throw StackError("mkfs.ext4 -d: \(mkfs.all)") }
        let convert = Command.run("/usr/bin/qemu-img", ["convert", "-O", "qcow2", raw, images.appendingPathComponent("debian").path])
        guard convert.ok else { throw StackError("qemu-img convert: \(convert.all)") }
        try? fm.removeItem(atPath: raw)
    }

    func testFilesSurviveFormatGrowShrinkCloneAndRestore() async throws {
        let s = try stack
        let signals = try await SignalCollector(stack: s, match: "type='signal',sender='\(TestStack.busName)'")
        defer { Task { await signals.close() } }
        XCTAssertTrue(s.createDisk("gdisk", size: 512 << 20, as: TestStack.grantedUser).ok)
        let image = s.imageDir.appendingPathComponent("gdisk").path

        // Bad input is refused before any job or authorization.
        XCTAssertTrue(try stack.diskCall("gdisk", "Format", ["sa{sv}", "ntfs", "0"]).stderr.contains("invalid filesystem type 'ntfs'"))
        XCTAssertTrue(try stack.diskCall("gdisk", "Format", ["sa{sv}", "ext4", "1", "partition_table", "s", "apm"]).stderr.contains("invalid partition_table 'apm'"))
        XCTAssertTrue(try stack.diskCall("gdisk", "Format", ["sa{sv}", "xfs", "1", "label", "s", "much-too-long-label"]).stderr.contains("invalid label"))
        // Denied: nothing changes.
        let untouched = sha256(image)
        XCTAssertFalse(try stack.diskCall("gdisk", "Format", ["sa{sv}", "ext4", "0"], as: TestStack.otherUser).ok)
        XCTAssertEqual(sha256(image), untouched)

        // Format (GPT + ext4 with a label), with progress that rises to 1.0.
        let format = try stack.diskCall("gdisk", "Format", ["sa{sv}", "ext4", "1", "label", "s", "data"])
        let (formatted, formatMessage) = await finish(format, signals)
        XCTAssertTrue(formatted, formatMessage)
        let steps = progress(of: format.replyPath, signals)
        XCTAssertEqual(steps, steps.sorted(), "progress went backwards: \(steps)")
        XCTAssertEqual(steps.last, 1.0, "\(steps)")
        XCTAssertEqual(s.jobProperty(format.replyPath, "Result")["partition_table"], .string("gpt"))

        // WriteFile, then ReadFile and ListFiles (one read-only appliance for all of them).
        let formattedImage = sha256(image)
        XCTAssertFalse(try stack.diskCall("gdisk", "WriteFile", ["saya{sv}", "/hello.txt"] + bytes(Self.hello) + ["0"], as: TestStack.otherUser).ok)
        XCTAssertFalse(try stack.diskCall("gdisk", "Resize", ["ta{sv}", String(1 << 30), "0"], as: TestStack.otherUser).ok)
        XCTAssertFalse(try stack.diskCall("gdisk", "ListFiles", ["sa{sv}", "/", "0"], as: TestStack.otherUser).ok)
        XCTAssertEqual(sha256(image), formattedImage, "a denied call changed the image")
        let write = try stack.diskCall("gdisk", "WriteFile", ["saya{sv}", "/hello.txt"] + bytes(Self.hello) + ["1", "mode", "u", "384"])
        XCTAssertTrue(write.ok, write.all)
        // The read-write appliance is closed after the write: nothing holds qemu's write
        // lock, so anyone (a VM started with virsh) can open the image for writing now.
        let lock = qemuIO("quit", image)
        XCTAssertTrue(lock.ok, "the image is still locked after WriteFile: \(lock.all)")
        XCTAssertEqual(try readFile("gdisk", "/hello.txt"), Self.hello) // launches a read-only appliance
        let started = Date()
        for _ in 0..<10 { XCTAssertEqual(try readFile("gdisk", "/hello.txt"), Self.hello) }
        XCTAssertLessThan(Date().timeIntervalSince(started), 10, "ten ReadFile calls should share one appliance")
        // A read-only appliance takes no write lock either.
        XCTAssertTrue(qemuIO("quit", image).ok)
        let list = try stack.diskCall("gdisk", "ListFiles", ["sa{sv}", "/", "0"])
        XCTAssertTrue(list.stdout.contains("\"hello.txt\" \"file\" 20 33152 "), list.all) // 0100600
        XCTAssertTrue(list.stdout.contains("\"lost+found\" \"directory\""), list.all)
        XCTAssertTrue(try stack.diskCall("gdisk", "ReadFile", ["sa{sv}", "hello.txt", "0"]).stderr.contains("is not absolute"))
        XCTAssertTrue(try stack.diskCall("gdisk", "ReadFile", ["sa{sv}", "/x/../hello.txt", "0"]).stderr.contains("contains '..'"))
        XCTAssertTrue(try stack.diskCall("gdisk", "ReadFile", ["sa{sv}", "/nope", "0"]).stderr.contains("/nope does not exist in disk gdisk"))
        XCTAssertTrue(try stack.diskCall("gdisk", "WriteFile", ["saya{sv}", "/no/dir/x", "1", "65", "0"]).stderr.contains("directory /no/dir does not exist"))

        // Grow: image, partition (GPT backup header moved) and ext4.
        let grow = try stack.diskCall("gdisk", "Resize", ["ta{sv}", String(1 << 30), "0"])
        let (grown, growMessage) = await finish(grow, signals)
        XCTAssertTrue(grown, growMessage)
        XCTAssertEqual(s.jobProperty(grow.replyPath, "Result")["filesystem_grown"], .boolean(true))
        XCTAssertEqual(virtualSize(image), String(1 << 30))
        XCTAssertEqual(s.diskProperty("gdisk", "VirtualSize"), .uint64(1 << 30))
        XCTAssertEqual(try readFile("gdisk", "/hello.txt"), Self.hello)

        // Shrink: refused without shrink=true; refused below the filesystem minimum (numbers
        // in the message, disk unchanged); then down to 300 MiB keeping the file.
        XCTAssertTrue(try stack.diskCall("gdisk", "Resize", ["ta{sv}", String(300 << 20), "0"]).stderr.contains("pass shrink=true"))
        XCTAssertTrue(try stack.diskCall("gdisk", "Resize", ["ta{sv}", "1000", "0"]).stderr.contains("multiple of 512"))
        let beforeShrink = sha256(image)
        let tooSmall = try stack.diskCall("gdisk", "Resize", ["ta{sv}", String(16 << 20), "1", "shrink", "b", "true"])
        let (tooSmallOK, tooSmallMessage) = await finish(tooSmall, signals)
        XCTAssertFalse(tooSmallOK)
        XCTAssertTrue(tooSmallMessage.contains("cannot shrink disk gdisk to 16777216 bytes") && tooSmallMessage.contains("the smallest size is"), tooSmallMessage)
        XCTAssertEqual(sha256(image), beforeShrink, "a refused shrink changed the disk")
        XCTAssertEqual(try temporaries(), [])
        let shrink = try stack.diskCall("gdisk", "Resize", ["ta{sv}", String(300 << 20), "1", "shrink", "b", "true"])
        let (shrunk, shrinkMessage) = await finish(shrink, signals)
        XCTAssertTrue(shrunk, shrinkMessage)
        XCTAssertEqual(virtualSize(image), String(300 << 20))
        let check = Command.run("/usr/bin/qemu-img", ["check", image])
        XCTAssertTrue(check.ok, check.all)
        XCTAssertEqual(try readFile("gdisk", "/hello.txt"), Self.hello)

        // Clone keeps it; a backup, a change, and Restore bring it back.
        let clone = try stack.diskCall("gdisk", "Clone", ["sa{sv}", "gclone", "0"])
        let (cloned, cloneMessage) = await finish(clone, signals)
        XCTAssertTrue(cloned, cloneMessage)
        XCTAssertEqual(try readFile("gclone", "/hello.txt"), Self.hello)
        let backup = try stack.diskCall("gdisk", "Backup", ["a{sv}", "0"])
        let (backedUp, backupMessage) = await finish(backup, signals)
        XCTAssertTrue(backedUp, backupMessage)
        let id = s.jobProperty(backup.replyPath, "Result")["backup_id"]?.string ?? ""
        // mvctl disk put (as the granted user), from a local file.
        let changed = Array("changed\n".utf8)
        let local = s.dir.appendingPathComponent("changed.txt")
        try Data(changed).write(to: local)
        chmod(local.path, 0o644)
        let put = s.mvctl(["disk", "put", "gdisk", "/hello.txt", local.path], as: TestStack.grantedUser)
        XCTAssertTrue(put.ok && put.stdout.contains("wrote 8 bytes to /hello.txt in gdisk"), put.all)
        XCTAssertEqual(try readFile("gdisk", "/hello.txt"), changed)
        let restore = try stack.diskCall("gdisk", "Restore", ["sa{sv}", id, "0"])
        let (restored, restoreMessage) = await finish(restore, signals)
        XCTAssertTrue(restored, restoreMessage)
        XCTAssertEqual(try readFile("gdisk", "/hello.txt"), Self.hello)
        XCTAssertEqual(try temporaries(), [])
    }

    func testInspectRecognisesDebianAndAutoGrowActs() async throws {
        let s = try stack
        let signals = try await SignalCollector(stack: s, match: "type='signal',sender='\(TestStack.busName)'")
        defer { Task { await signals.close() } }
        let image = s.imageDir.appendingPathComponent("debian").path
        // Policy checks, then AutoGrow: 64 MiB steps up to 160 MiB.
        XCTAssertTrue(try stack.diskCall("debian", "SetAutoGrow", ["a{sv}", "1", "threshold", "d", "2"]).stderr.contains("invalid threshold 2"))
        XCTAssertTrue(try stack.diskCall("debian", "SetAutoGrow", ["a{sv}", "2", "enabled", "b", "true", "max", "t", "1024"]).stderr.contains("must be above"))
        XCTAssertTrue(try stack.diskCall("debian", "SetAutoGrow", ["a{sv}", "1", "colour", "s", "red"]).stderr.contains("unknown option 'colour'"))
        XCTAssertFalse(try stack.diskCall("debian", "SetAutoGrow", ["a{sv}", "1", "enabled", "b", "true"], as: TestStack.otherUser).ok)
        let policy = try stack.diskCall("debian", "SetAutoGrow", ["a{sv}", "4", "enabled", "b", "true", "threshold", "d", "0.5",
                                                         "step", "t", String(64 << 20), "max", "t", String(160 << 20)])
        XCTAssertTrue(policy.ok, policy.all)
        XCTAssertEqual(s.diskProperty("debian", "AutoGrow")["enabled"], .boolean(true))
        XCTAssertEqual(s.diskProperty("debian", "UsageSampled"), .uint64(0))

        let inspect = try stack.diskCall("debian", "Inspect", ["a{sv}", "0"])
        let (inspected, inspectMessage) = await finish(inspect, signals)
        XCTAssertTrue(inspected, inspectMessage)
        // What the guest's image holds stays out of what every bus client receives: the
        // job's Result says when, GetInspection (disk.inspect) says what.
        let result = s.jobProperty(inspect.replyPath, "Result")
        XCTAssertEqual(result?.stringKeyedDictionary?.keys.sorted(), ["inspected"], result.shown)
        XCTAssertGreaterThan(result["inspected"]?.uint64 ?? 0, 1_700_000_000, result.shown)
        let found = try stack.diskCall("debian", "GetInspection", ["a{sv}", "0"])
        XCTAssertTrue(found.ok, found.all)
        XCTAssertTrue(found.stdout.contains("\"distro\" s \"debian\""), found.stdout)
        XCTAssertTrue(found.stdout.contains("\"os_type\" s \"linux\""), found.stdout)
        XCTAssertTrue(found.stdout.contains("\"hostname\" s \"debian-test\""), found.stdout)
        let major = (try? String(contentsOfFile: "/etc/debian_version", encoding: .utf8))?.split(separator: ".").first.map(String.init) ?? "?"
        XCTAssertTrue(found.stdout.contains("\"version\" s \"\(major)"), found.stdout)
        // Usage sampled: /dev/sda about 2/3 full, the threshold 0.5 crossed → UsageHigh and
        // an AutoGrow job that grows image and filesystem by one step.
        let usage = try stack.diskCall("debian", "GetFilesystemUsage", ["a{sv}", "0"])
        XCTAssertTrue(usage.stdout.hasPrefix("ta(sttt) \(s.diskProperty("debian", "UsageSampled")?.uint64 ?? 0) 1 \"/dev/sda\""), usage.all)
        XCTAssertNotEqual(s.diskProperty("debian", "UsageSampled"), .uint64(0))
        XCTAssertEqual(s.diskProperty("debian", "FilesystemUsage"), .array(elementSignature: "(sttt)", []))
        // A caller without disk.inspect gets neither, and nothing else shows the values.
        for method in ["GetInspection", "GetFilesystemUsage"] {
            let denied = try stack.diskCall("debian", method, ["a{sv}", "0"], as: TestStack.otherUser)
            XCTAssertFalse(denied.ok, denied.all)
            XCTAssertTrue(["Access denied", "not authorized", "needs authentication"].contains { denied.stderr.contains($0) }, denied.all)
            XCTAssertFalse(denied.all.contains("debian-test") || denied.all.contains("/dev/sda"), denied.all)
        }
        let introspected = s.busctl(["introspect", TestStack.busName, TestStack.diskPath("debian"), TestStack.diskInterface])
        XCTAssertFalse(introspected.stdout.contains("/dev/sda") || introspected.stdout.contains("debian-test"), introspected.stdout)
        let high = await signals.wait(timeout: 10) { $0.member == "UsageHigh" && $0.path == TestStack.diskPath("debian") }
        XCTAssertNotNil(high, signals.summary)
        // UsageHigh(d fraction) carries the threshold reached, not the figure measured.
        XCTAssertEqual(high?.arguments.first, .double(0.5), signals.summary)
        let otherView = s.mvctl(["disk", "autogrow", "debian", "--json"], as: TestStack.otherUser)
        XCTAssertTrue(otherView.ok && otherView.stderr.contains("filesystem usage not shown") && !otherView.stdout.contains("/dev/sda"),
                      otherView.all)
        let last = s.mvctl(["disk", "inspect", "debian", "--last"], as: TestStack.grantedUser)
        XCTAssertTrue(last.ok && last.stdout.contains("(linux, debian, version \(major)") && last.stdout.contains("/dev/sda"), last.all)
        let grown = await signals.first(timeout: 240) { signal in
            guard signal.member == "Completed" else { return false }
            return await signals.property(signal.path, TestStack.jobInterface, "Operation") == .string("AutoGrow")
        }
        XCTAssertEqual(grown?.arguments.first, .boolean(true), signals.summary)
        XCTAssertEqual(virtualSize(image), String(160 << 20))
        // The grown filesystem is not the one measured: its sample is dropped, not kept stale.
        XCTAssertEqual(try stack.diskCall("debian", "GetFilesystemUsage", ["a{sv}", "0"]).stdout, "ta(sttt) 0 0\n")
        XCTAssertEqual(s.diskProperty("debian", "UsageSampled"), .uint64(0))
        let check = Command.run("/usr/bin/qemu-img", ["check", image])
        XCTAssertTrue(check.ok, check.all)
        XCTAssertEqual(try readFile("debian", "/etc/hostname"), Array("debian-test\n".utf8))
        // mvctl: ls, cat, autogrow (the same appliance serves them).
        let ls = s.mvctl(["disk", "ls", "debian", "/etc"], as: TestStack.grantedUser)
        XCTAssertTrue(ls.ok && ls.stdout.contains("hostname") && ls.stdout.contains("symlink"), ls.all)
        // Guest names reach the terminal escaped; --json keeps them exact.
        XCTAssertTrue(ls.stdout.contains("evil\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\u{202e}txt.exe"), ls.stdout)
        XCTAssertFalse(ls.stdout.unicodeScalars.contains { $0.value == 0x1b || $0.value == 0x7 || $0.value == 0x202e }, ls.stdout)
        let lsJSON = s.mvctl(["disk", "ls", "debian", "/etc", "--json"], as: TestStack.grantedUser)
        let names = ((try? JSONSerialization.jsonObject(with: Data(lsJSON.stdout.utf8))) as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        XCTAssertTrue(names.contains(Self.evilName), lsJSON.all)
        let cat = s.mvctl(["disk", "cat", "debian", "/etc/hostname"], as: TestStack.grantedUser)
        XCTAssertEqual(cat.stdout, "debian-test\n", cat.all)
        let denied = s.mvctl(["disk", "cat", "debian", "/etc/hostname"], as: TestStack.otherUser)
        XCTAssertFalse(denied.ok, denied.all)
        let auto = s.mvctl(["disk", "autogrow", "debian", "--enabled", "off", "--threshold", "0.8", "--json"], as: TestStack.grantedUser)
        XCTAssertTrue(auto.ok && auto.stdout.contains("\"threshold\" : 0.8") && auto.stdout.contains("FilesystemUsage"), auto.all)
        XCTAssertTrue(s.mvctl(["disk", "autogrow", "debian", "--enabled", "maybe"]).stderr.contains("--enabled takes on or off"))
        // The policy survives a restart.
        s.stopDaemon()
        try s.startDaemon()
        XCTAssertEqual(s.diskProperty("debian", "AutoGrow")["max"], .uint64(160 << 20))
    }

    func testCancelledResizeLeavesTheDiskUnchanged() async throws {
        let s = try stack
        let signals = try await SignalCollector(stack: s, match: "type='signal',sender='\(TestStack.busName)'")
        defer { Task { await signals.close() } }
        XCTAssertTrue(s.createDisk("cdisk", size: 64 << 20, as: TestStack.grantedUser).ok)
        let image = s.imageDir.appendingPathComponent("cdisk").path
        let before = sha256(image)
        let r = try stack.diskCall("cdisk", "Resize", ["ta{sv}", String(128 << 20), "0"])
        XCTAssertTrue(r.ok, r.all)
        let job = r.replyPath
        // Wait until the copy is done and the appliance is starting, then cancel.
        for _ in 0..<100 where (s.jobProperty(job, "Progress")?.double ?? 0) < 0.4 { usleep(50_000) }
        usleep(1_000_000)
        let cancel = s.call(job, TestStack.jobInterface, "Cancel", ["a{sv}", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(cancel.ok, cancel.all)
        let cancelledAt = Date()
        let done = await signals.wait(timeout: 60) { $0.member == "Completed" && $0.path == job }
        XCTAssertEqual(done?.arguments.first, .boolean(false), signals.summary)
        XCTAssertLessThan(Date().timeIntervalSince(cancelledAt), 10, "cancel should kill the appliance, not wait for it")
        XCTAssertEqual(s.jobProperty(job, "State"), .string("cancelled"))
        XCTAssertEqual(sha256(image), before)
        XCTAssertEqual(virtualSize(image), String(64 << 20))
        XCTAssertEqual(try temporaries(), [])
        // The image is served to the appliance by a qemu-storage-daemon whose command line
        // names it; the appliance's qemu (the appliance user's) names only the NBD socket.
        XCTAssertEqual(Command.run("/usr/bin/pgrep", ["-f", "qemu-storage-daemon.*\(s.dir.path)"]).stdout, "", "image still served")
        let served = "multiverse-nbd-\(s.daemon?.pid ?? 0)-"
        XCTAssertEqual(Command.run("/usr/bin/pgrep", ["-f", "qemu-system.*\(served)"]).stdout, "", "appliance left running")
    }
}

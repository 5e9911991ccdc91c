import ControllerAPI
import Foundation
import SDBus
import XCTest

/// Apply, SetEnforcing and AddUserToGroups on a sandbox host root where every setting has
/// drifted and enforcing is off: authorization first, idempotent edits, crash safety.
final class SettingsApplyTests: XCTestCase {
    static let settingsPath = ObjectPaths.settings
    static let settingsInterface = SettingsInterface.name

    func drifted() throws -> TestStack {
        try TestStack(settings: "enforcing = false", hostRootOptions: ["--drifted"])
    }

    func settingsCall(_ s: TestStack, _ method: String, _ args: [String], as user: String? = TestStack.grantedUser,
                      interactive: Bool = true) -> CommandResult {
        s.call(Self.settingsPath, Self.settingsInterface, method, args, as: user, interactive: interactive)
    }

    /// Type, mode, owner and contents (or link target) of every entry under `root`.
    func snapshot(_ root: URL) -> [String: String] {
        var out: [String: String] = [:]
        let base = root.path
        guard let walker = FileManager.default.enumerator(atPath: base) else { return out }
        while let relative = walker.nextObject() as? String {
            let path = base + "/" + relative
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            var entry = "mode=\(String(st.st_mode, radix: 8)) uid=\(st.st_uid) gid=\(st.st_gid)"
            switch st.st_mode & S_IFMT {
            case S_IFLNK: entry += " -> " + ((try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?")
            case S_IFREG: entry += " " + ((try? Data(contentsOf: URL(fileURLWithPath: path)).base64EncodedString()) ?? "?")
            default: break
            }
            out[relative] = entry
        }
        return out
    }

    func isMember(_ s: TestStack, _ user: String, _ group: String) throws -> Bool {
        let text = try String(contentsOfFile: s.hostRoot.appendingPathComponent("etc/group").path, encoding: .utf8)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("\(group):") }) else { return false }
        return line.split(separator: ":", omittingEmptySubsequences: false).last?.split(separator: ",").contains(Substring(user)) ?? false
    }

    func rebuildCount(_ s: TestStack) -> Int {
        (try? String(contentsOfFile: s.rebuildLog, encoding: .utf8))?.split(separator: "\n").count ?? 0
    }

    func testUnauthorizedCallsChangeNothing() throws {
        let s = try drifted()
        defer { s.stop() }
        let before = snapshot(s.hostRoot)
        XCTAssertFalse(before.isEmpty)
        let check = s.mvctl(["settings", "check"], as: TestStack.otherUser)
        XCTAssertEqual(check.status, 2, check.all)
        XCTAssertEqual(check.stdout.split(separator: "\n").filter { $0.hasPrefix("✗") }.count, 4, check.stdout)

        let calls: [(String, [String])] = [
            ("Apply", ["asa{sv}", "0", "0"]),
            ("Apply", ["asa{sv}", "1", "user-groups", "0"]),
            ("SetEnforcing", ["ba{sv}", "true", "0"]),
            ("AddUserToGroups", ["sasa{sv}", "user", "1", "kvm", "0"]),
        ]
        for (method, args) in calls {
            let quiet = settingsCall(s, method, args, as: TestStack.otherUser, interactive: false)
            XCTAssertFalse(quiet.ok, "\(method): \(quiet.all)")
            XCTAssertTrue(quiet.stderr.contains("Interactive authentication required") || quiet.stderr.contains("InteractiveAuthorizationRequired")
                          || quiet.stderr.contains("needs authentication"), "\(method): \(quiet.all)")
            let denied = settingsCall(s, method, args, as: TestStack.otherUser)
            XCTAssertFalse(denied.ok, "\(method): \(denied.all)")
            XCTAssertTrue(denied.stderr.contains("not authorized") || denied.stderr.contains("Access denied"), "\(method): \(denied.all)")
        }
        // The host's users are looked at only after authorization: a refused caller learns
        // nothing of them, whether the user exists or not.
        for user in ["nobody-here", "root"] {
            let probe = settingsCall(s, "AddUserToGroups", ["sasa{sv}", user, "1", "kvm", "0"], as: TestStack.otherUser)
            XCTAssertFalse(probe.ok, probe.all)
            XCTAssertFalse(probe.stderr.contains("no user named"), probe.all)
            XCTAssertTrue(probe.stderr.contains("not authorized") || probe.stderr.contains("Access denied"), probe.all)
        }
        XCTAssertEqual(s.mvctl(["settings", "apply", "--no-ask-password"], as: TestStack.otherUser).status, 4)
        XCTAssertEqual(s.mvctl(["settings", "enforce", "on", "--no-ask-password"], as: TestStack.otherUser).status, 4)
        // Not one byte, mode, owner or link changed anywhere under the sandbox root.
        let after = snapshot(s.hostRoot)
        XCTAssertEqual(after.keys.sorted(), before.keys.sorted())
        for (path, entry) in before where after[path] != entry { XCTFail("\(path) changed") }
        XCTAssertEqual(rebuildCount(s), 0)
        XCTAssertTrue(s.log(tail: 40).contains("action=\"org.multiverse.controller.settings.modify\""), s.log(tail: 40))
    }

    func testApplyFixesEverySettingOnceAndIsIdempotent() throws {
        let s = try drifted()
        defer { s.stop() }
        let modules = s.hostRoot.appendingPathComponent("etc/initramfs-tools/modules").path
        let modulesBefore = try String(contentsOfFile: modules, encoding: .utf8)
        var st = stat()
        XCTAssertEqual(lstat(modules, &st), 0)
        let modeBefore = st.st_mode
        XCTAssertEqual(chown(modules, 0, 4), 0)   // an unusual owner group (adm) must be kept

        // Unknown ids are refused before authorization, naming the id.
        let bad = settingsCall(s, "Apply", ["asa{sv}", "1", "no-such-setting", "0"])
        XCTAssertTrue(bad.stderr.contains("unknown setting 'no-such-setting'"), bad.all)

        let first = s.mvctl(["settings", "apply", "--json"], as: TestStack.grantedUser)
        XCTAssertTrue(first.ok, first.all)
        let results = try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [[String: Any]] ?? []
        XCTAssertEqual(results.map { $0["id"] as? String }, ["user-groups", "initramfs-modules", "entropy-rngd", "libvirtd-enabled"])
        XCTAssertEqual(results.map { $0["changed"] as? Bool }, [true, true, true, true], first.stdout)
        XCTAssertEqual(s.mvctl(["settings", "check"]).status, 0)

        // What changed, checked on the files.
        XCTAssertTrue(try isMember(s, "user", "kvm") && isMember(s, "user", "libvirt") && isMember(s, "user", "libvirtdbus"))
        let modulesAfter = try String(contentsOfFile: modules, encoding: .utf8)
        XCTAssertEqual(modulesAfter, modulesBefore + "9p\n9pnet\n9pnet_virtio\n")
        XCTAssertEqual(lstat(modules, &st), 0)
        XCTAssertEqual(st.st_mode, modeBefore)
        XCTAssertEqual(st.st_gid, 4)
        XCTAssertEqual(rebuildCount(s), 1)
        let wants = s.hostRoot.appendingPathComponent("etc/systemd/system/multi-user.target.wants/libvirtd.service").path
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: wants), "/lib/systemd/system/libvirtd.service")
        let rc2 = s.hostRoot.appendingPathComponent("etc/rc2.d/S01rng-tools-debian").path
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: rc2), "../init.d/rng-tools-debian")
        let rng = try String(contentsOfFile: s.hostRoot.appendingPathComponent("etc/default/rng-tools-debian").path, encoding: .utf8)
        XCTAssertTrue(rng.hasPrefix("# Configuration for the rng-tools-debian initscript\n#HRNGDEVICE=/dev/hwrng\n"), rng)
        XCTAssertTrue(rng.hasSuffix("\nHRNGDEVICE=/dev/hwrng\n"), rng)
        XCTAssertTrue(s.log(tail: 40).contains("Apply user-groups by :"), s.log(tail: 40))
        // The work ran as a job (its Status named each setting while it ran): it is kept,
        // ended, with what changed.
        let jobs = s.manager("ListJobs", ["a{sv}", "0"])
        XCTAssertTrue(jobs.ok, jobs.all)
        let applyJobs = jobs.stdout.split(separator: "\"").map(String.init).filter { $0.hasPrefix("/org/multiverse/Controller/job/") }
            .filter { s.jobProperty($0, "Operation") == .string("ApplySettings") }
        XCTAssertEqual(applyJobs.count, 1, jobs.stdout)
        if let job = applyJobs.first {
            XCTAssertEqual(s.jobProperty(job, "State"), .string("succeeded"))
            XCTAssertEqual(s.jobProperty(job, "Target"), .objectPath("/org/multiverse/Controller"))
            let result = s.jobProperty(job, "Result")
            XCTAssertEqual(result["changed"], .strings(["user-groups", "initramfs-modules", "entropy-rngd", "libvirtd-enabled"]), result.shown)
        }

        // Apply twice = one change: nothing reported changed, no byte touched, no rebuild.
        let snap = snapshot(s.hostRoot)
        let second = settingsCall(s, "Apply", ["asa{sv}", "0", "0"])
        XCTAssertTrue(second.ok, second.all)
        XCTAssertEqual(second.stdout.components(separatedBy: " false ").count - 1, 4, second.stdout)
        XCTAssertEqual(snapshot(s.hostRoot), snap)
        XCTAssertEqual(rebuildCount(s), 1)
    }

    func testFailingRebuildIsReportedWithItsStderr() throws {
        let s = try TestStack(settings: "enforcing = false\ninitramfs_update_command = [\"/bin/sh\", \"-c\", \"echo 'cannot write /boot: disk full' >&2; exit 3\"]",
                              hostRootOptions: ["--drifted"])
        defer { s.stop() }
        let r = settingsCall(s, "Apply", ["asa{sv}", "1", "initramfs-modules", "0"])
        XCTAssertFalse(r.ok, r.all)
        XCTAssertTrue(r.stderr.contains("initramfs rebuild failed (exit 3): cannot write /boot: disk full"), r.all)
        // The file itself was fixed (and stays so).
        let modules = try String(contentsOfFile: s.hostRoot.appendingPathComponent("etc/initramfs-tools/modules").path, encoding: .utf8)
        XCTAssertTrue(modules.hasSuffix("virtio_net\n9p\n9pnet\n9pnet_virtio\n"), modules)
    }

    /// A real rebuild: mkinitramfs builds the sandbox's image from the sandbox's
    /// initramfs-tools configuration (update-initramfs has no root option), and
    /// lsinitramfs looks inside the image before and after.
    func testRealInitramfsRebuildPutsTheModulesIntoTheImage() throws {
        guard let image = (try? FileManager.default.contentsOfDirectory(atPath: "/boot"))?.filter({ $0.hasPrefix("initrd.img-") }).sorted().last else {
            throw XCTSkip("this host has no /boot/initrd.img-* to copy")
        }
        let version = String(image.dropFirst("initrd.img-".count))
        let s = try TestStack(settings: """
            enforcing = false
            initramfs_update_command = ["/usr/sbin/mkinitramfs", "-d", "@HOSTROOT@/etc/initramfs-tools", "-o", "@HOSTROOT@/boot/\(image)", "\(version)"]
            """, hostRootOptions: ["--initramfs-from-host"])
        defer { s.stop() }
        let sandboxImage = s.hostRoot.appendingPathComponent("boot/\(image)").path
        let listed = Command.run("/usr/bin/lsinitramfs", [sandboxImage])
        XCTAssertFalse(listed.stdout.contains("/9pnet_virtio.ko"), "the host image already has 9p; this test needs one without")
        // Listed in the modules file, but the built image lacks them.
        let before = s.mvctl(["settings", "check", "--json"])
        let rows = try JSONSerialization.jsonObject(with: Data(before.stdout.utf8)) as? [[String: Any]] ?? []
        let row = rows.first { $0["id"] as? String == "initramfs-modules" }
        XCTAssertEqual(row?["compliant"] as? Bool, false, before.all)
        XCTAssertEqual(row?["detail"] as? String,
                       "listed in /etc/initramfs-tools/modules, but /boot/\(image) lacks 9p, 9pnet, 9pnet_virtio; Apply rebuilds it")
        // Apply replies when the rebuild is done (tens of seconds): a long timeout, as API.md says.
        let apply = s.busctl(["--timeout=600", "call", TestStack.busName, Self.settingsPath, Self.settingsInterface, "Apply",
                              "asa{sv}", "1", "initramfs-modules", "0"])
        XCTAssertTrue(apply.ok, apply.all)
        XCTAssertTrue(apply.stdout.contains("\"initramfs-modules\" true \"initramfs lacked 9p, 9pnet, 9pnet_virtio; initramfs rebuilt\""), apply.stdout)
        let after = Command.run("/usr/bin/lsinitramfs", [sandboxImage])
        for module in ["fs/9p/9p.ko", "net/9p/9pnet.ko", "net/9p/9pnet_virtio.ko"] {
            XCTAssertTrue(after.stdout.contains(module), "\(module) missing from the rebuilt image")
        }
        let check = s.mvctl(["settings", "check", "--json"])
        let rowsAfter = try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [[String: Any]] ?? []
        let rowAfter = rowsAfter.first { $0["id"] as? String == "initramfs-modules" }
        XCTAssertEqual(rowAfter?["compliant"] as? Bool, true, check.all)
        XCTAssertEqual(rowAfter?["detail"] as? String, "listed in /etc/initramfs-tools/modules and present in /boot/\(image)")
    }

    /// inotify on a directory only sees changes made through names in that directory: an
    /// in-place write through a hard link elsewhere goes unseen. The periodic full check
    /// (check_interval_s) catches it.
    func testPeriodicCheckCatchesWhatInotifyCannotSee() async throws {
        let s = try TestStack(settings: "check_interval_s = 1")
        defer { s.stop() }
        let signals = try await SignalCollector(stack: s, match: "type='signal',path='\(Self.settingsPath)',interface='\(Self.settingsInterface)'")
        defer { Task { await signals.close() } }
        let modules = s.hostRoot.appendingPathComponent("etc/initramfs-tools/modules").path
        let link = s.hostRoot.appendingPathComponent("modules-hardlink").path
        XCTAssertEqual(Glibc.link(modules, link), 0)
        let original = try String(contentsOfFile: modules, encoding: .utf8)
        let broken = original.replacingOccurrences(of: "\n9pnet\n", with: "\n")
        let fd = open(link, O_WRONLY | O_TRUNC)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(broken.utf8.count, broken.withCString { write(fd, $0, strlen($0)) })
        close(fd)
        XCTAssertFalse(try String(contentsOfFile: modules, encoding: .utf8).contains("\n9pnet\n"))
        let drifted = await signals.wait(timeout: 5) { $0.member == "Drifted" && $0.arguments.first?.string == "initramfs-modules" }
        XCTAssertEqual(drifted?.arguments.last?.string, "9pnet not listed in /etc/initramfs-tools/modules", signals.summary)
        let reverted = await signals.wait(timeout: 5) { $0.member == "Reverted" && $0.arguments.first?.string == "initramfs-modules" }
        XCTAssertEqual(reverted?.arguments.dropFirst().first, .boolean(true), signals.summary)
        XCTAssertTrue(try String(contentsOfFile: modules, encoding: .utf8).contains("\n9pnet\n"))
    }

    func testAddUserToGroupsTakesOnlyAllowedGroups() throws {
        let s = try drifted()
        defer { s.stop() }
        // The sandbox's group file is a copy of the host's, where the test users may already
        // be in kvm (TestStack makes them so): take them out of the copy first.
        for group in ["kvm", "libvirtdbus", "libvirt-dbus"] {
            _ = Command.run("/usr/bin/gpasswd", ["-Q", s.hostRoot.path, "-d", TestStack.otherUser, group])
        }
        let realBefore = try String(contentsOfFile: "/etc/group", encoding: .utf8)
        let notAllowed = settingsCall(s, "AddUserToGroups", ["sasa{sv}", TestStack.otherUser, "2", "kvm", "root", "0"])
        XCTAssertTrue(notAllowed.stderr.contains("group 'root' is not in allowed_groups"), notAllowed.all)
        let noUser = settingsCall(s, "AddUserToGroups", ["sasa{sv}", "nobody-here", "1", "kvm", "0"])
        XCTAssertTrue(noUser.stderr.contains("no user named 'nobody-here'"), noUser.all)
        let badName = settingsCall(s, "AddUserToGroups", ["sasa{sv}", "Bad;User", "1", "kvm", "0"])
        XCTAssertTrue(badName.stderr.contains("'Bad;User' is not a valid user name"), badName.all)
        XCTAssertFalse(try isMember(s, TestStack.otherUser, "kvm"))

        let ok = s.mvctl(["settings", "add-user-to-groups", TestStack.otherUser, "kvm", "libvirt-dbus"], as: TestStack.grantedUser)
        XCTAssertTrue(ok.ok, ok.all)
        XCTAssertTrue(try isMember(s, TestStack.otherUser, "kvm"))
        XCTAssertTrue(try isMember(s, TestStack.otherUser, "libvirtdbus"))
        // The real host's group file is untouched.
        XCTAssertEqual(try String(contentsOfFile: "/etc/group", encoding: .utf8), realBefore)
    }

    /// Deletes the 9p lines and calls Apply, over and over, until cancelled.
    static func breakAndApply(_ client: BusConnection, _ modules: String) async {
        while !Task.isCancelled {
            _ = Command.run("/usr/bin/sed", ["-i", "/^9p/d", modules])
            _ = try? await client.call(destination: TestStack.busName, path: settingsPath, interface: settingsInterface,
                                       member: "Apply", [.strings([]), .emptyOptions])
        }
    }

    func testKill9DuringApplyLoopLeavesFilesComplete() async throws {
        let s = try drifted()
        defer { s.stop() }
        let modules = s.hostRoot.appendingPathComponent("etc/initramfs-tools/modules").path
        let comments = try String(contentsOfFile: modules, encoding: .utf8).split(separator: "\n").filter { $0.hasPrefix("#") }
        for round in 0..<6 {
            // A client applying in a loop while the file keeps being broken.
            let client = try await s.client()
            let looping = Task.detached { [client, modules] in await SettingsApplyTests.breakAndApply(client, modules) }
            try await Task.sleep(for: .milliseconds(150 + 40 * round))
            XCTAssertEqual(s.stopDaemon(signal: SIGKILL), 128 + SIGKILL)
            looping.cancel()
            _ = await looping.value
            await client.drainAndClose(timeout: .seconds(1))
            // Whatever the moment, the files are complete: every comment and line is there.
            let text = try String(contentsOfFile: modules, encoding: .utf8)
            XCTAssertTrue(text.hasSuffix("\n"), "round \(round): truncated: \(text)")
            XCTAssertEqual(text.split(separator: "\n").filter { $0.hasPrefix("#") }, comments, "round \(round)")
            XCTAssertTrue(text.contains("\nvirtio_net\n"), "round \(round): \(text)")
            let group = try String(contentsOfFile: s.hostRoot.appendingPathComponent("etc/group").path, encoding: .utf8)
            XCTAssertTrue(group.contains("\nkvm:") && group.hasSuffix("\n"), "round \(round)")
            try s.startDaemon()
        }
        // A restarted daemon removes temporary files a killed one may have left.
        let leftovers = (try FileManager.default.contentsOfDirectory(atPath: s.hostRoot.appendingPathComponent("etc/initramfs-tools").path))
            .filter { $0.contains(".mvtmp-") }
        XCTAssertEqual(leftovers, [])
        XCTAssertTrue(settingsCall(s, "Apply", ["asa{sv}", "0", "0"]).ok)
        XCTAssertEqual(s.mvctl(["settings", "check"]).status, 0)
    }
}

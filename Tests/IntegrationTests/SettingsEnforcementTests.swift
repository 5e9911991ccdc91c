import ControllerAPI
import Foundation
import SDBus
import XCTest

/// The settings agent on a compliant sandbox host root: real inotify, real gpasswd/sed
/// changes behind the daemon's back, real usermod/systemctl reverts, signals on the real bus.
final class SettingsEnforcementTests: XCTestCase {
    static let settingsPath = ObjectPaths.settings
    static let settingsInterface = SettingsInterface.name
    static let flapLimit = 3

    override class func setUp() {
        // A rebuild that takes a moment, as a real one does (10-60 s), to see the order of events.
        SharedStacks.start(self) { try TestStack(settings: "flap_limit_per_minute = \(flapLimit)", rebuildSeconds: 0.6) }
    }

    override class func tearDown() { SharedStacks.stop(self) }

    var stack: TestStack { get throws { try SharedStacks.stack(Self.self) } }

    // MARK: helpers

    func collector() async throws -> SignalCollector {
        try await SignalCollector(stack: try stack, match: "type='signal',sender='\(TestStack.busName)',path='\(Self.settingsPath)',interface='\(Self.settingsInterface)'")
    }

    /// `gpasswd --root SANDBOX -d user GROUP`: the user leaves a group behind the daemon's back.
    func removeFromGroup(_ group: String, user: String = "user") throws {
        let r = Command.run("/usr/bin/gpasswd", ["-Q", try stack.hostRoot.path, "-d", user, group])
        XCTAssertTrue(r.ok, r.all)
    }

    func isMember(_ user: String, _ group: String) throws -> Bool {
        let text = try String(contentsOfFile: try stack.hostRoot.appendingPathComponent("etc/group").path, encoding: .utf8)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("\(group):") }) else { return false }
        return line.split(separator: ":", omittingEmptySubsequences: false).last?.split(separator: ",").contains(Substring(user)) ?? false
    }

    var modulesFile: String { (try? stack.hostRoot.appendingPathComponent("etc/initramfs-tools/modules").path) ?? "" }

    func settingsCall(_ method: String, _ signatureAndArgs: [String], as user: String? = TestStack.grantedUser) throws -> CommandResult {
        try stack.call(Self.settingsPath, Self.settingsInterface, method, signatureAndArgs, as: user)
    }

    /// SetEnforcing(true): also resets the flapping counters, so tests do not depend on order.
    func rearm() throws {
        let r = try settingsCall("SetEnforcing", ["ba{sv}", "true", "0"])
        XCTAssertTrue(r.ok, r.all)
    }

    func statusDetail(_ id: String) async throws -> String {
        let client = try await stack.client()
        defer { Task { await client.drainAndClose(timeout: .seconds(1)) } }
        let value = try await client.getProperty(destination: TestStack.busName, path: Self.settingsPath,
                                                 interface: Self.settingsInterface, name: "Settings")
        guard case .array(_, let rows) = value else { return "" }
        for case .structure(let f) in rows where f.first?.string == id { return f[3].string ?? "" }
        return ""
    }

    func isSignal(_ member: String, _ id: String) -> (ReceivedSignal) -> Bool {
        { $0.member == member && $0.arguments.first?.string == id }
    }

    // MARK: tests

    func testCheckReportsEverySettingCompliant() async throws {
        let s = try stack
        let client = try await s.client()
        defer { Task { await client.drainAndClose(timeout: .seconds(1)) } }
        let reply = try await client.call(destination: TestStack.busName, path: Self.settingsPath, interface: Self.settingsInterface,
                                          member: "Check", [.emptyOptions])
        guard case .array(_, let rows)? = reply.first else { return XCTFail("bad reply \(reply)") }
        let ids = rows.compactMap { row -> String? in if case .structure(let f) = row { return f[0].string } else { return nil } }
        XCTAssertEqual(ids, ["user-groups", "initramfs-modules", "entropy-rngd", "libvirtd-enabled"])
        for case .structure(let f) in rows { XCTAssertEqual(f[2], .boolean(true), "\(f)") }
        let lastCheck = try await client.getProperty(destination: TestStack.busName, path: Self.settingsPath,
                                                     interface: Self.settingsInterface, name: "LastCheck")
        XCTAssertLessThanOrEqual(abs(Double(lastCheck.uint64 ?? 0) - Date().timeIntervalSince1970), 5)

        // mvctl: a table with ✓, exit 0; JSON for scripts. Check needs no authorization.
        let table = s.mvctl(["settings", "check"], as: TestStack.otherUser)
        XCTAssertEqual(table.status, 0, table.all)
        XCTAssertTrue(table.stdout.contains("✓  user-groups"), table.stdout)
        let json = s.mvctl(["settings", "check", "--json"])
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
        XCTAssertEqual(parsed?.count, 4)
        XCTAssertEqual(parsed?.first?["compliant"] as? Bool, true)
    }

    func testGroupMembershipRemovedWithGpasswdIsRestored() async throws {
        try rearm()
        let signals = try await collector()
        defer { Task { await signals.close() } }
        XCTAssertTrue(try isMember("user", "kvm"))
        try removeFromGroup("kvm")
        let removedAt = Date()
        // Back within a second (the benchmark reports p50/p99 of this latency).
        var restored = false
        while Date().timeIntervalSince(removedAt) < 1.0 {
            if try isMember("user", "kvm") { restored = true; break }
            usleep(10_000)
        }
        let log = try stack.log(tail: 10)
        XCTAssertTrue(restored, "membership not back within 1 s; log: \(log)")
        let drifted = await signals.wait(isSignal("Drifted", "user-groups"))
        XCTAssertEqual(drifted?.arguments.last?.string, "user 'user' is not in kvm")
        let reverted = await signals.wait(isSignal("Reverted", "user-groups"))
        XCTAssertEqual(reverted?.arguments.dropFirst().first, .boolean(true), signals.summary)
        XCTAssertEqual(reverted?.arguments.last?.string, "added 'user' to kvm")
        let order = signals.all.map(\.member)
        XCTAssertEqual(order.firstIndex(of: "Drifted").map { $0 < (order.firstIndex(of: "Reverted") ?? -1) }, true, signals.summary)
        // The daemon's own usermod is not reported as another drift.
        try await Task.sleep(for: .milliseconds(500))
        XCTAssertEqual(signals.all.filter { $0.member == "Drifted" }.count, 1, signals.summary)
    }

    func testDeletedModuleLineIsRestoredAndOtherLinesKept() async throws {
        try rearm()
        let s = try stack
        let signals = try await collector()
        defer { Task { await signals.close() } }
        let before = try String(contentsOfFile: modulesFile, encoding: .utf8)
        let rebuildsBefore = (try? String(contentsOfFile: s.rebuildLog, encoding: .utf8))?.split(separator: "\n").count ?? 0
        let sed = Command.run("/usr/bin/sed", ["-i", "/^9pnet$/d", modulesFile])
        XCTAssertTrue(sed.ok, sed.all)
        // The file is restored at once; Reverted waits for the rebuild.
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, !((try? String(contentsOfFile: modulesFile, encoding: .utf8)) ?? "").contains("\n9pnet\n") { usleep(10_000) }
        XCTAssertTrue(try String(contentsOfFile: modulesFile, encoding: .utf8).contains("\n9pnet\n"))
        XCTAssertFalse(signals.all.contains(where: isSignal("Reverted", "initramfs-modules")), "Reverted before the rebuild finished: \(signals.summary)")
        let reverted = await signals.wait(isSignal("Reverted", "initramfs-modules"))
        XCTAssertEqual(reverted?.arguments.dropFirst().first, .boolean(true), signals.summary)
        XCTAssertEqual(reverted?.arguments.last?.string, "added 9pnet to /etc/initramfs-tools/modules; initramfs rebuilt")
        let after = try String(contentsOfFile: modulesFile, encoding: .utf8)
        XCTAssertEqual(after.split(separator: "\n").sorted(), before.split(separator: "\n").sorted(), "lines lost or duplicated:\n\(after)")
        XCTAssertEqual(after.split(separator: "\n").filter { $0.hasPrefix("#") }, before.split(separator: "\n").filter { $0.hasPrefix("#") })
        // The rebuild ran (once) before Reverted was sent.
        let rebuilds = (try? String(contentsOfFile: s.rebuildLog, encoding: .utf8))?.split(separator: "\n") ?? []
        XCTAssertEqual(rebuilds.count, rebuildsBefore + 1, rebuilds.joined(separator: "\n"))
        XCTAssertEqual(rebuilds.last?.hasSuffix(" -u"), true)
    }

    func testLibvirtdDisabledAndRngSourceChangedAreReverted() async throws {
        try rearm()
        let s = try stack
        let signals = try await collector()
        defer { Task { await signals.close() } }
        let wants = s.hostRoot.appendingPathComponent("etc/systemd/system/multi-user.target.wants/libvirtd.service").path
        XCTAssertEqual(unlink(wants), 0)
        let reverted = await signals.wait(isSignal("Reverted", "libvirtd-enabled"))
        XCTAssertEqual(reverted?.arguments.dropFirst().first, .boolean(true), signals.summary)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: wants), "/lib/systemd/system/libvirtd.service")

        let defaults = s.hostRoot.appendingPathComponent("etc/default/rng-tools-debian").path
        let sed = Command.run("/usr/bin/sed", ["-i", "s|^HRNGDEVICE=.*|HRNGDEVICE=/dev/urandom|", defaults])
        XCTAssertTrue(sed.ok, sed.all)
        let drifted = await signals.wait(isSignal("Drifted", "entropy-rngd"))
        XCTAssertEqual(drifted?.arguments.last?.string, "rng-tools-debian reads /dev/urandom, not /dev/hwrng")
        let got1 = await signals.wait(isSignal("Reverted", "entropy-rngd"))
        XCTAssertNotNil(got1, signals.summary)
        let text = try String(contentsOfFile: defaults, encoding: .utf8)
        XCTAssertTrue(text.hasSuffix("HRNGDEVICE=/dev/hwrng\n"), text)
        XCTAssertTrue(text.contains("#RNGDOPTIONS=\"--fill-watermark=90% --feed-interval=1\""), text)
    }

    func testEnforcingOffOnlyReportsDriftAndSurvivesRestart() async throws {
        try rearm()
        let s = try stack
        let off = try settingsCall("SetEnforcing", ["ba{sv}", "false", "0"])
        XCTAssertTrue(off.ok, off.all)
        let signals = try await collector()
        try removeFromGroup("libvirtdbus")
        let got2 = await signals.wait(isSignal("Drifted", "user-groups"))
        XCTAssertNotNil(got2, signals.summary)
        try await Task.sleep(for: .milliseconds(1500))
        XCTAssertFalse(signals.all.contains(where: isSignal("Reverted", "user-groups")), signals.summary)
        XCTAssertFalse(try isMember("user", "libvirtdbus"))
        await signals.close()

        // The switch is kept in the state directory across a restart.
        XCTAssertEqual(s.stopDaemon(), 0)
        try s.startDaemon()
        let enforcing = s.busctl(["get-property", TestStack.busName, Self.settingsPath, Self.settingsInterface, "Enforcing"])
        XCTAssertEqual(enforcing.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "b false", enforcing.all)
        XCTAssertFalse(try isMember("user", "libvirtdbus"))

        // Turning it back on reverts what drifted meanwhile.
        let again = try await collector()
        defer { Task { await again.close() } }
        try rearm()
        let got3 = await again.wait(isSignal("Reverted", "user-groups"))
        XCTAssertNotNil(got3, again.summary)
        XCTAssertTrue(try isMember("user", "libvirtdbus"))
    }

    func testFlappingStopsEnforcingOnlyThatSetting() async throws {
        try rearm()
        let s = try stack
        let signals = try await collector()
        defer { Task { await signals.close() } }
        for round in 1...Self.flapLimit {
            let before = signals.all.count
            try removeFromGroup("kvm")
            let reverted = await signals.wait(after: before, isSignal("Reverted", "user-groups"))
            XCTAssertNotNil(reverted, "round \(round): \(signals.summary)")
            XCTAssertEqual(signals.all.filter(isSignal("Reverted", "user-groups")).count, round, signals.summary)
            XCTAssertTrue(try isMember("user", "kvm"))
        }
        // One more: over the limit, so it is reported but no longer reverted.
        let mark = signals.all.count
        try removeFromGroup("kvm")
        let got4 = await signals.wait(after: mark, isSignal("Drifted", "user-groups"))
        XCTAssertNotNil(got4, signals.summary)
        try await Task.sleep(for: .milliseconds(1000))
        XCTAssertEqual(signals.all.filter(isSignal("Reverted", "user-groups")).count, Self.flapLimit, signals.summary)
        XCTAssertFalse(try isMember("user", "kvm"))
        let detail = try await statusDetail("user-groups")
        XCTAssertTrue(detail.contains("enforcement suspended"), detail)
        XCTAssertTrue(s.log(tail: 30).contains("user-groups: enforcement suspended"), s.log(tail: 30))

        // The other settings are still enforced.
        XCTAssertTrue(Command.run("/usr/bin/sed", ["-i", "/^9p$/d", modulesFile]).ok)
        let got5 = await signals.wait(isSignal("Reverted", "initramfs-modules"))
        XCTAssertNotNil(got5, signals.summary)

        // Apply of that setting re-arms it.
        let apply = try settingsCall("Apply", ["asa{sv}", "1", "user-groups", "0"])
        XCTAssertTrue(apply.ok, apply.all)
        XCTAssertEqual(apply.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "a(sbs) 1 \"user-groups\" true \"added \\'user\\' to kvm\"")
        XCTAssertTrue(try isMember("user", "kvm"))
        let rearmed = try await statusDetail("user-groups")
        XCTAssertFalse(rearmed.contains("suspended"), rearmed)
        try removeFromGroup("kvm")
        let got6 = await signals.wait(after: signals.all.count, isSignal("Reverted", "user-groups"))
        XCTAssertNotNil(got6, signals.summary)
    }

    func testMvctlWatchPrintsDriftAndRevert() async throws {
        try rearm()
        let s = try stack
        let out = s.dir.appendingPathComponent("watch.out").path
        let watch = try Child(TestStack.mvctlPath, ["settings", "watch", "--json", "--count", "2", "--bus-address", s.address],
                              stdout: out, stderr: out)
        // Wait for the subscription (the first line is printed only without --json; poll the bus instead).
        try await Task.sleep(for: .milliseconds(700))
        try removeFromGroup("libvirt")
        XCTAssertEqual(watch.wait(timeout: 10), 0)
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        let parsed = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(parsed.map { $0["signal"] as? String }, ["Drifted", "Reverted"], lines.joined(separator: "\n"))
        XCTAssertEqual(parsed.last?["success"] as? Bool, true)
        XCTAssertEqual(parsed.first?["id"] as? String, "user-groups")
    }
}

import Foundation
import SDBus
import XCTest

/// The readiness channel with tiny guests on `qemu:///system` (TCG): the host's kernel and a
/// small busybox initramfs (scripts/make-tiny-guest) whose /init writes to the port
/// org.multiverse.ready.0 what its kernel command line says. libvirtd makes the socket,
/// qemu listens, the daemon connects; the checks read the VM objects, libvirt's own logs
/// (/var/log/libvirt/qemu/NAME.log, when each qemu started and stopped) and virsh.
final class ReadinessSystemTests: XCTestCase {
    static let uri = QemuSystemTests.uri
    static let guestDir = "/var/cache/multiverse-test/tiny-guest"
    static let names = ["rdy-router", "rdy-desk", "rdy-spare", "rdy-noisy", "rdy-calm", "rdy-lone", "rdy-lone-spare"]

    override class func setUp() {
        SharedStacks.start(self) {
            try QemuSystemTests.startLibvirtd()
            cleanup()
            return try tinyGuestStack()
        }
    }

    /// A stack on `qemu:///system` whose VMs may boot the tiny guest (made or refreshed
    /// here by scripts/make-tiny-guest).
    /// A stack on qemu:///system whose VMs may boot the tiny guest; `more` is added to its
    /// configuration.
    static func tinyGuestStack(more: String = "") throws -> TestStack {
        let made = Command.run(TestStack.repo.appendingPathComponent("scripts/make-tiny-guest").path, [guestDir])
        guard made.ok else { throw StackError("scripts/make-tiny-guest: \(made.all)") }
        return try TestStack(config: "[vms]\ndomain_type = \"qemu\"\ninternal_network = \"mvt-internal\"\nstop_timeout_s = 5\nkernel_roots = [\"\(guestDir)\"]\n" + more,
                             libvirtURI: uri)
    }

    override class func tearDown() {
        SharedStacks.stop(self)
        cleanup()
    }

    static func cleanup() {
        for name in names {
            QemuSystemTests.virsh(["destroy", name])
            QemuSystemTests.virsh(["undefine", name])
        }
    }

    var stack: TestStack { get throws { try SharedStacks.stack(Self.self) } }

    /// A tiny guest as caller XML; `cmdline` carries the init's mv.* words. The service adds
    /// the readiness channel itself.
    static func tinyXML(_ name: String, cmdline: String) -> String {
        """
        <domain type='qemu'>
          <name>\(name)</name>
          <memory unit='MiB'>160</memory>
          <vcpu>1</vcpu>
          <os><type arch='x86_64' machine='pc'>hvm</type><kernel>\(guestDir)/vmlinuz</kernel><initrd>\(guestDir)/initrd.img</initrd>
            <cmdline>console=ttyS0 \(cmdline)</cmdline></os>
          <features><acpi/><apic/></features>
          <cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model></cpu>
          <on_poweroff>destroy</on_poweroff>
          <devices><serial type='pty'/><console type='pty'/><memballoon model='none'/></devices>
        </domain>
        """
    }

    /// Defines a tiny guest with the service's metadata given as DefineVMFromXML options (no
    /// profile: boot order as given).
    func define(_ name: String, bootOrder: Int, autostart: Bool, cmdline: String, fallback: String = "", readyTimeout: Int = 0) throws {
        var options = ["boot_order", "u", String(bootOrder), "autostart", "b", String(autostart)]
        if !fallback.isEmpty { options += ["fallback", "s", fallback] }
        if readyTimeout != 0 { options += ["ready_timeout_s", "u", String(readyTimeout)] }
        let r = try stack.manager("DefineVMFromXML", ["sa{sv}", Self.tinyXML(name, cmdline: cmdline), String(options.count / 3)] + options,
                                  as: TestStack.grantedUser)
        XCTAssertTrue(r.ok, r.all)
    }

    /// For polls: nil while the VM's object is not there (yet), as after a daemon restart;
    /// `shown`: the property for a failure message.
    func polled(_ name: String, _ p: String) -> DBusValue? { (try? stack)?.vmPropertyIfPresent(name, p) }
    func shown(_ name: String, _ p: String) -> String { polled(name, p).shown }

    /// Waits for a job to end; returns its State.
    func finish(_ job: String, timeout: TimeInterval) throws -> DBusValue? {
        let s = try stack
        _ = waitFor(timeout, interval: 0.5) { s.jobProperty(job, "State") != .string("running") }
        return s.jobProperty(job, "State")
    }

    /// When libvirt started qemu for `name` the last time, from its log's "starting up" line.
    static func qemuStarted(_ name: String) -> Date? { lastLogTime(name, containing: ": starting up") }
    /// When libvirt saw qemu of `name` end the last time.
    static func qemuStopped(_ name: String) -> Date? { lastLogTime(name, containing: "shutting down") }

    static func lastLogTime(_ name: String, containing marker: String) -> Date? {
        guard let log = try? String(contentsOfFile: "/var/log/libvirt/qemu/\(name).log", encoding: .utf8) else { return nil }
        guard let line = log.split(separator: "\n").last(where: { $0.contains(marker) }) else { return nil }
        let stamp = String(line.prefix(23))   // 2026-12-02 19:40:00.123
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm:ss.SSS"
        return f.date(from: stamp)
    }

    static func microseconds(_ property: DBusValue?) -> UInt64 { property?.uint64 ?? 0 }

    // MARK: tests

    /// StartAll waits for the router's READY=1 before it starts the interface controller; a
    /// controller that never signals is destroyed after its timeout and its fallback started
    /// and named in the Result. A daemon restart keeps the router ready and starts nothing;
    /// a reset guest is waited for again; StopAll stops in the reverse order.
    func testStartAllWaitsForReadyFallsBackRestartsAndStopsInReverse() async throws {
        let s = try stack
        try define("rdy-router", bootOrder: 0, autostart: true, cmdline: "mv.status=routing")
        // The fallback first: DefineVMFromXML's fallback option must name an existing VM.
        try define("rdy-spare", bootOrder: 1, autostart: false, cmdline: "mv.status=spare_desk")
        try define("rdy-desk", bootOrder: 1, autostart: true, cmdline: "mv.ready=no mv.status=stuck",
                   fallback: "rdy-spare", readyTimeout: 25)
        // Defined through the service, each carries the channel; not running: none.
        XCTAssertTrue(QemuSystemTests.virsh(["dumpxml", "rdy-router"]).stdout.contains("name='org.multiverse.ready.0'"))
        XCTAssertEqual(try stack.vmProperty("rdy-router", "Readiness"), .string("none"))
        XCTAssertEqual(try stack.vmProperty("rdy-desk", "Fallback"), .string("rdy-spare"))

        let signals = try await SignalCollector(stack: s, match: "type='signal',sender='\(TestStack.busName)',member='Ready'")
        defer { Task { await signals.close() } }
        let r = s.manager("StartAll", ["a{sv}", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(r.ok, r.all)
        let job = r.replyPath
        // While it waits, the job's Status names the VM, the timeout and the guest's own status.
        XCTAssertTrue(waitFor(150, interval: 0.2) {
            s.jobProperty(job, "Status") == .string("waiting up to 25 s for rdy-desk's guest to send READY=1 before the next VM; its status: stuck")
        }, s.jobProperty(job, "Status").shown)
        XCTAssertEqual(try finish(job, timeout: 240), .string("succeeded"), "\(s.jobProperty(job, "Error").shown) \(s.log(tail: 30))")
        let result = s.jobProperty(job, "Result")
        XCTAssertEqual(result["replaced"], .rows("(ss)", [["rdy-desk", "rdy-spare"]]), result.shown)
        XCTAssertEqual(s.jobProperty(job, "Status"), .string("done"))

        // The router was ready before the desk's qemu was started; the desk never was.
        XCTAssertEqual(try stack.vmProperty("rdy-router", "Ready"), .boolean(true))
        XCTAssertEqual(try stack.vmProperty("rdy-router", "GuestStatus"), .string("routing"))
        let readySince = Self.microseconds(try stack.vmProperty("rdy-router", "ReadySince"))
        let deskStarted = try XCTUnwrap(Self.qemuStarted("rdy-desk"), "no start line in libvirt's log of rdy-desk")
        XCTAssertGreaterThan(readySince, 0)
        XCTAssertLessThan(Double(readySince) / 1e6, deskStarted.timeIntervalSince1970, "the desk started before the router was ready")
        XCTAssertTrue(QemuSystemTests.virsh(["domstate", "rdy-desk"]).stdout.contains("shut off"), "the not-ready desk was not destroyed")
        XCTAssertEqual(try stack.vmProperty("rdy-desk", "Readiness"), .string("none"))
        XCTAssertEqual(try stack.vmProperty("rdy-spare", "Ready"), .boolean(true))
        XCTAssertEqual(try stack.vmProperty("rdy-spare", "GuestStatus"), .string("spare desk"))
        // One Ready() each, from the right objects.
        let readyPaths = Set(signals.all.map(\.path))
        XCTAssertEqual(readyPaths, Set([s.vmPath("rdy-router"), s.vmPath("rdy-spare")].compactMap { $0 }), signals.summary)
        XCTAssertTrue(s.log(tail: 200).contains("StartAll: rdy-desk did not become ready within 25 s (its last status: stuck); destroying it"), s.log(tail: 60))

        // A daemon restart: the router stays ready (same ReadySince), StartAll does not run
        // again in this boot, the desk stays off.
        s.stopDaemon()
        try s.startDaemon()
        XCTAssertTrue(waitFor(10) { self.polled("rdy-router", "Ready") == .boolean(true) }, shown("rdy-router", "Readiness"))
        XCTAssertEqual(Self.microseconds(try stack.vmProperty("rdy-router", "ReadySince")), readySince)
        // (Logged when the new daemon's start-up decides about StartAll, which may come after
        // the router's state was read back.)
        XCTAssertTrue(waitFor(10) { s.log(tail: 80).contains("StartAll already ran in this boot") }, s.log(tail: 40))
        XCTAssertTrue(QemuSystemTests.virsh(["domstate", "rdy-desk"]).stdout.contains("shut off"))

        // mvctl's list shows who is ready.
        let list = s.mvctl(["vm", "list"])
        XCTAssertTrue(list.stdout.split(separator: "\n").contains { $0.hasPrefix("rdy-router ") && $0.contains(" running ") && $0.contains(" yes ") },
                      list.stdout)

        // A reset guest boots again in the same domain: readiness starts over and returns,
        // and mvctl vm watch prints the Ready signal with the guest's status.
        let watchOut = s.dir.appendingPathComponent("rdy-watch.out").path
        let watch = try Child(TestStack.mvctlPath, ["vm", "watch", "--json", "--count", "1", "--bus-address", s.address],
                              stdout: watchOut, stderr: watchOut)
        usleep(700_000)
        XCTAssertTrue(QemuSystemTests.virsh(["reset", "rdy-router"]).ok)
        XCTAssertTrue(waitFor(90, interval: 0.5) { Self.microseconds(self.polled("rdy-router", "ReadySince")) > readySince },
                      "no new READY=1 after the reset: \(shown("rdy-router", "Readiness"))")
        XCTAssertTrue(s.log(tail: 200).contains("VM rdy-router rebooted: waiting for its guest's READY=1 again"), s.log(tail: 40))
        XCTAssertEqual(watch.wait(timeout: 10), 0)
        let watched = (try? String(contentsOfFile: watchOut, encoding: .utf8)) ?? ""
        XCTAssertTrue(watched.contains("\"reason\":\"routing\"") && watched.contains("\"state\":\"ready\"") && watched.contains("\"vm\":\"rdy-router\""), watched)

        // StopAll: the interface controllers' group first, then the router (the tiny guests
        // ignore ACPI, so each is destroyed after stop_timeout_s).
        let stop = s.mvctl(["vm", "stop-all", "--timeout", "3", "--json"], as: TestStack.grantedUser)
        XCTAssertTrue(stop.ok, stop.all)
        let stopResult = try JSONSerialization.jsonObject(with: Data(stop.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(stopResult?["order"] as? [String], ["rdy-spare", "rdy-router"], stop.stdout)
        XCTAssertEqual(Set(stopResult?["destroyed"] as? [String] ?? []), ["rdy-spare", "rdy-router"], "the tiny guests ignore ACPI: \(stop.stdout)")
        for name in ["rdy-spare", "rdy-router"] {
            XCTAssertTrue(QemuSystemTests.virsh(["domstate", name]).stdout.contains("shut off"), name)
        }
        let spareStopped = try XCTUnwrap(Self.qemuStopped("rdy-spare"))
        let routerStopped = try XCTUnwrap(Self.qemuStopped("rdy-router"))
        XCTAssertLessThan(spareStopped, routerStopped, "the router stopped before the controller")
    }

    /// A fallback set with `mvctl vm autostart --fallback` that is not ready in time either
    /// (15 s each: enough for the tiny guest to boot and say its status under TCG on a busy
    /// 2-core machine; 8 s was not):
    /// the job fails naming both VMs, mvctl says on stderr what it waited for, and the VM
    /// StartAll started and gave up on is destroyed. (It leaves no VM behind, so the other
    /// StartAll test finds only its own, whichever runs first.)
    func testFallbackThatFailsTooFailsStartAllNamingBoth() throws {
        let s = try stack
        try define("rdy-lone", bootOrder: 0, autostart: false, cmdline: "mv.ready=no mv.status=lost")
        try define("rdy-lone-spare", bootOrder: 0, autostart: false, cmdline: "mv.ready=no", readyTimeout: 15)
        defer { Self.cleanup() }
        let set = s.mvctl(["vm", "autostart", "rdy-lone", "on", "--fallback", "rdy-lone-spare", "--ready-timeout", "15"], as: TestStack.grantedUser)
        XCTAssertTrue(set.ok, set.all)
        XCTAssertEqual(try stack.vmProperty("rdy-lone", "Fallback"), .string("rdy-lone-spare"))
        XCTAssertTrue(QemuSystemTests.virsh(["dumpxml", "rdy-lone"]).stdout.contains("ready-timeout-s>15<"))

        let r = s.mvctl(["vm", "start-all"], as: TestStack.grantedUser)
        XCTAssertFalse(r.ok, r.all)
        XCTAssertTrue(r.stderr.contains("StartAll: waiting up to 15 s for rdy-lone's guest to send READY=1 before the next VM; its status: lost"), r.all)
        XCTAssertTrue(r.stderr.contains("rdy-lone did not become ready within 15 s (its last status: lost), and its fallback rdy-lone-spare failed too: rdy-lone-spare did not become ready within 15 s"), r.all)
        XCTAssertTrue(QemuSystemTests.virsh(["domstate", "rdy-lone"]).stdout.contains("shut off"), "StartAll started rdy-lone and gave up on it: destroyed")
    }

    /// The daemon's anonymous resident memory in KiB (`RssAnon` of /proc/PID/status).
    func daemonAnonKiB(_ s: TestStack) -> Int {
        guard let pid = s.daemon?.pid, let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("RssAnon:") }) else { return -1 }
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
    }

    /// A guest that floods its port with distinct unknown keys and changing ERRNO= lines and
    /// writes a megabyte line leaves the daemon answering other callers, another guest's
    /// READY=1 arriving, the VM not ready and the daemon's memory flat; the noise is logged a
    /// bounded number of times (each unknown key once up to 16, then once that more came).
    func testHostileGuestCannotStallTheDaemonOrLookReady() async throws {
        let s = try stack
        try define("rdy-noisy", bootOrder: 2, autostart: false,
                   cmdline: "mv.ready=no mv.flood=300 mv.long=1024 mv.status=flooded")
        try define("rdy-calm", bootOrder: 3, autostart: false, cmdline: "mv.status=calm")
        guard let path = s.vmPath("rdy-noisy"), let calm = s.vmPath("rdy-calm") else { return XCTFail("no VM rdy-noisy or rdy-calm") }
        let memoryBefore = daemonAnonKiB(s)
        let start = s.busctl(["call", TestStack.busName, path, TestStack.vmInterface, "Start", "a{sv}", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(start.ok, start.all)
        XCTAssertTrue(waitFor(60) { self.polled("rdy-noisy", "Readiness") == .string("waiting") })
        // Another guest boots while the first floods: its READY=1 gets through.
        let calmStart = s.busctl(["call", TestStack.busName, calm, TestStack.vmInterface, "Start", "a{sv}", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(calmStart.ok, calmStart.all)
        defer { QemuSystemTests.virsh(["destroy", "rdy-calm"]) }
        // While the guest floods (about 30 s at the channel's budget), other calls are answered.
        var slowest = 0.0
        var answered = 0
        let done = waitFor(150, interval: 0.2) {
            let t0 = Date()
            if s.manager("ListVMs", ["a{sv}", "0"]).ok { answered += 1 }
            slowest = max(slowest, Date().timeIntervalSince(t0))
            return self.polled("rdy-noisy", "GuestStatus") == .string("flooded")
        }
        XCTAssertTrue(done, "the guest's last STATUS= never arrived: \(shown("rdy-noisy", "GuestStatus").prefix(80))")
        print("ReadinessSystemTests: \(answered) ListVMs answered during the flood, slowest \(String(format: "%.3f", slowest)) s")
        XCTAssertGreaterThan(answered, 10)
        XCTAssertLessThan(slowest, 5, "a ListVMs call took \(slowest) s during the flood")
        XCTAssertEqual(try stack.vmProperty("rdy-noisy", "Ready"), .boolean(false))
        XCTAssertEqual(try stack.vmProperty("rdy-noisy", "Readiness"), .string("waiting"))
        XCTAssertTrue(waitFor(90) { self.polled("rdy-calm", "Ready") == .boolean(true) }, "rdy-calm: \(shown("rdy-calm", "Readiness"))")
        let memoryAfter = daemonAnonKiB(s)
        print("ReadinessSystemTests: daemon RssAnon \(memoryBefore) KiB before the flood, \(memoryAfter) KiB after it")
        XCTAssertLessThan(memoryAfter - memoryBefore, 8 << 10, "the daemon's memory grew by \(memoryAfter - memoryBefore) KiB during the flood")
        let log = s.log(tail: 4000)
        XCTAssertEqual(log.components(separatedBy: "rdy-noisy: its guest sent the unknown key JUNK").count - 1, 16, "unknown keys logged not exactly 16 times")
        XCTAssertEqual(log.components(separatedBy: "rdy-noisy: its guest sent more than 16 unknown keys").count - 1, 1)
        XCTAssertEqual(log.components(separatedBy: "a line over 1024 bytes").count - 1, 1, "the long line was not logged exactly once")
        let errnos = log.components(separatedBy: "rdy-noisy: its guest reports ERRNO=").count - 1
        XCTAssertTrue((1...8).contains(errnos), "ERRNO= logged \(errnos) times for 150 changes in about 30 s")
        XCTAssertTrue(QemuSystemTests.virsh(["destroy", "rdy-noisy"]).ok)
        XCTAssertTrue(waitFor(10) { self.polled("rdy-noisy", "Readiness") == .string("none") })
    }
}

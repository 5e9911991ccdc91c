@testable import ControllerCore
import Foundation
import Glibc
import Synchronization
import XCTest

/// StartAll's ordering, readiness waits, timeouts and fallbacks as Core rules: libvirt's test
/// driver runs the VMs, and each VM's readiness channel is a real unix socket this test
/// listens on in the guest's place (the service connects to it as it connects to qemu's
/// socket, and reads the lines the test writes). No bus, polkitd or root; each case takes
/// about a second (its timeouts are the VMs' own `ready_timeout_s` of 1 s).
final class StartAllCoreTests: XCTestCase {
    var core: CoreHarness!
    var guests: [String: GuestChannel] = [:]

    override func setUp() async throws { core = try await CoreHarness() }
    override func tearDown() async throws {
        for guest in guests.values { guest.close() }
        await core?.close()
    }

    /// Defines a VM whose readiness channel is a socket this test listens on.
    func define(_ name: String, profile: String, autostart: Bool, fallback: String = "", readyTimeout: UInt32 = 0) async throws {
        var request = VMService.DefineRequest(name: name, profile: profile)
        request.autostart = autostart
        request.fallback = fallback
        request.readyTimeoutSeconds = readyTimeout
        request.memoryMiB = 256
        let vm = try await core.vms.runDefine(try await core.vms.checkDefine(request))
        let guest = try GuestChannel(path: core.dir.appendingPathComponent("\(name).sock").path)
        guests[name] = guest
        let target = "<target type='virtio' name='\(DomainXML.readinessChannel)'/>"
        try await core.vmManager.redefine(vm.uuid, "give the readiness channel a path") { xml in
            XCTAssertTrue(xml.contains(target), "no readiness channel in \(xml)")
            return xml.replacingOccurrences(of: target, with: "<source mode='bind' path='\(guest.path)'/>" + target)
        }
    }

    func state(_ name: String) async -> VMState? { await core.vmManager.vm(named: name)?.state }

    /// Waits (here in the test, polling is fine) until `condition` holds.
    func eventually(_ what: String, within seconds: Double = 20, _ condition: () async -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        XCTFail("not within \(seconds) s: \(what)")
        throw CancellationError()
    }

    func status(_ job: JobSnapshot) async -> String { await core.jobs.job(job.id)?.snapshot.status ?? "" }

    func testStartAllWaitsForEachGuestBeforeStartingTheNextAndShowsItsStatus() async throws {
        try await define("ui", profile: "interface-controller", autostart: true)
        try await define("net", profile: "network-controller", autostart: true)
        let job = try await core.vms.runStartAll(try await core.vms.checkStartAll(), uid: 0)
        try await eventually("net runs and StartAll waits for its guest") {
            let running = await self.state("net") == .running
            let status = await self.status(job)
            return running && status.contains("net's guest to send READY=1")
        }
        try await Task.sleep(for: .milliseconds(300))
        let ui = await state("ui")
        XCTAssertEqual(ui, .shutoff, "ui started before net's guest was ready")
        try guests["net"]!.send("STATUS=mounting the uplinks")
        try await eventually("the job shows the guest's status") { (await self.status(job)).contains("its status: mounting the uplinks") }
        try guests["net"]!.send("READY=1")
        try await eventually("ui runs once net is ready") { await self.state("ui") == .running }
        try guests["ui"]!.send("READY=1")
        let done = try await core.finished(job, timeout: .seconds(20))
        XCTAssertEqual(done.state, "succeeded", done.error)
        XCTAssertEqual(done.result["order"], .strings(["net", "ui"]))
        XCTAssertEqual(done.result["started"], .strings(["net", "ui"]))
        XCTAssertEqual(done.result["ready"], .strings(["net", "ui"]))
        XCTAssertEqual(done.result["replaced"], .pairs([]))
        let waits = await core.vmManager.pendingWaits
        XCTAssertEqual(waits, 0, "a wait was left behind")
    }

    func testAVMNotReadyInTimeIsDestroyedAndItsFallbackStartedInItsPlace() async throws {
        try await define("net-b", profile: "network-controller", autostart: false)
        try await define("net", profile: "network-controller", autostart: true, fallback: "net-b", readyTimeout: 1)
        let job = try await core.vms.runStartAll(try await core.vms.checkStartAll(), uid: 0)
        try await eventually("net-b is started in net's place") { await self.state("net-b") == .running }
        let net = await state("net")
        XCTAssertEqual(net, .shutoff, "the VM that was not ready in time still runs")
        try guests["net-b"]!.send("READY=1")
        let done = try await core.finished(job, timeout: .seconds(20))
        XCTAssertEqual(done.state, "succeeded", done.error)
        XCTAssertEqual(done.result["replaced"], .pairs([["net", "net-b"]]))
        XCTAssertEqual(done.result["started"], .strings(["net-b"]))
        XCTAssertEqual(done.result["ready"], .strings(["net-b"]))
    }

    func testAFallbackThatIsNotReadyEitherFailsTheJobNamingBoth() async throws {
        try await define("net-b", profile: "network-controller", autostart: false, readyTimeout: 1)
        try await define("net", profile: "network-controller", autostart: true, fallback: "net-b", readyTimeout: 1)
        try await define("ui", profile: "interface-controller", autostart: true)
        let job = try await core.vms.runStartAll(try await core.vms.checkStartAll(), uid: 0)
        try await eventually("net-b runs") { await self.state("net-b") == .running }
        try guests["net-b"]!.send("STATUS=no uplink")
        let done = try await core.finished(job, timeout: .seconds(20))
        XCTAssertEqual(done.state, "failed")
        XCTAssertTrue(done.error.contains("net did not become ready within 1 s"), done.error)
        XCTAssertTrue(done.error.contains("its fallback net-b failed too"), done.error)
        XCTAssertTrue(done.error.contains("its last status: no uplink"), done.error)
        let ui = await state("ui")
        XCTAssertEqual(ui, .shutoff, "StartAll went on after a failure")
    }

    func testWithoutAFallbackTheJobFailsNamingTheVMAndItKeepsRunning() async throws {
        try await define("net", profile: "network-controller", autostart: true, readyTimeout: 1)
        let job = try await core.vms.runStartAll(try await core.vms.checkStartAll(), uid: 0)
        let done = try await core.finished(job, timeout: .seconds(20))
        XCTAssertEqual(done.state, "failed")
        XCTAssertTrue(done.error.contains("StartAll: net did not become ready within 1 s"), "\(done.error) \(done.result)")
        let net = await state("net")
        XCTAssertEqual(net, .running, "without a fallback the VM is left as it is")
    }

    func testAVMThatStopsWhileStartAllWaitsEndsTheWaitAtOnce() async throws {
        try await define("net", profile: "network-controller", autostart: true, readyTimeout: 600)
        let job = try await core.vms.runStartAll(try await core.vms.checkStartAll(), uid: 0)
        try await eventually("StartAll waits for net") { (await self.status(job)).contains("net's guest") }
        let uuid = await core.vmManager.vm(named: "net")!.uuid
        try await core.vmManager.perform(uuid, "destroy") { try $0.destroy() }
        // Its deadline is 600 s away: only the stop itself can end the wait within 20 s.
        let done = try await core.finished(job, timeout: .seconds(20))
        XCTAssertEqual(done.state, "failed")
        XCTAssertTrue(done.error.contains("net stopped before its guest was ready"), done.error)
    }

    func testCancellingStartAllEndsItsWaitAndLeavesNoWaitBehind() async throws {
        try await define("net", profile: "network-controller", autostart: true, readyTimeout: 600)
        let job = try await core.vms.runStartAll(try await core.vms.checkStartAll(), uid: 0)
        try await eventually("StartAll waits for net") { (await self.status(job)).contains("net's guest") }
        try await core.jobs.cancel(job.id)
        let done = try await core.finished(job, timeout: .seconds(20))
        XCTAssertEqual(done.state, "cancelled")
        let waits = await core.vmManager.pendingWaits
        XCTAssertEqual(waits, 0, "the cancelled wait was left behind")
    }

    func testShutdownWithATimeoutEndsOnTheStop() async throws {
        try await define("net", profile: "network-controller", autostart: false)
        let uuid = await core.vmManager.vm(named: "net")!.uuid
        try await core.vms.runLifecycle(try await core.vms.checkLifecycle(uuid, .start), .start)
        let forced = try await core.vmManager.shutdown(uuid, timeout: .seconds(600), force: true)
        XCTAssertFalse(forced, "the test driver's VM stops at the request; nothing is destroyed")
        let net = await state("net")
        XCTAssertEqual(net, .shutoff)
        let waits = await core.vmManager.pendingWaits
        XCTAssertEqual(waits, 0)
    }

    /// StartAll's check asks for network.manage for every network its run would start, and
    /// the run starts no other: a network stopped after the check is an error naming it,
    /// not a start nobody authorized.
    func testStartAllStartsOnlyTheNetworksItsCheckNamed() async throws {
        var request = VMService.DefineRequest(name: "app1", profile: "app")
        request.autostart = true
        request.memoryMiB = 256
        _ = try await core.vms.runDefine(try await core.vms.checkDefine(request))
        let defined = await core.vmManager.vm(named: "app1")
        let network = try XCTUnwrap(defined?.interfaces.first?.source)
        func setActive(_ active: Bool) async throws {
            try await core.vmManager.call("set network \(network)") { connection in
                let net = try XCTUnwrap(try connection.network(named: network))
                if active { try net.start() } else { try net.stop() }
            }
        }
        try await setActive(false)
        let asking = try await core.vms.checkStartAll()
        XCTAssertEqual(asking.networksToStart, [network])
        XCTAssertEqual(asking.networkDetails["network"], network)

        try await setActive(true)
        let planned = try await core.vms.checkStartAll()
        XCTAssertEqual(planned.networksToStart, [], "a running network needs no network.manage")
        try await setActive(false)
        let job = try await core.finished(try await core.vms.runStartAll(planned, uid: 1000))
        XCTAssertEqual(job.state, "failed")
        XCTAssertTrue(job.error.contains("network \(network) that app1 uses became inactive after StartAll was authorized"), job.error)
        let active = try await core.vmManager.call("read network \(network)") { try $0.network(named: network)?.isActive }
        XCTAssertEqual(active, false, "the run started a network its check did not name")
        let state = await self.state("app1")
        XCTAssertEqual(state, .shutoff)
    }
}

/// The guest's end of a readiness channel: a unix socket listening where the VM's XML puts
/// qemu's. The service connects when the VM runs; `send` accepts that connection and writes
/// one line as a guest would.
final class GuestChannel: Sendable {
    let path: String
    private let listener: Int32
    private let connection = Mutex<Int32>(-1)

    init(path: String) throws {
        self.path = path
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard listener >= 0, bound == 0, listen(listener, 4) == 0 else {
            throw NSError(domain: "socket", code: Int(errno), userInfo: [NSLocalizedDescriptionKey: "cannot listen on \(path)"])
        }
    }

    /// Writes `line` and a newline to the service's connection (waiting up to 10 s for it).
    func send(_ line: String) throws {
        let fd = try connection.withLock { fd -> Int32 in
            if fd >= 0 { return fd }
            var poll = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard Glibc.poll(&poll, 1, 10_000) == 1 else {
                throw NSError(domain: "socket", code: 0, userInfo: [NSLocalizedDescriptionKey: "the service never connected to \(path)"])
            }
            fd = accept(listener, nil, nil)
            return fd
        }
        let bytes = Array((line + "\n").utf8)
        guard fd >= 0, write(fd, bytes, bytes.count) == bytes.count else {
            throw NSError(domain: "socket", code: Int(errno), userInfo: [NSLocalizedDescriptionKey: "cannot write to \(path)"])
        }
    }

    func close() {
        connection.withLock { if $0 >= 0 { Glibc.close($0) } }
        Glibc.close(listener)
    }
}

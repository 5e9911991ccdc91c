@testable import Readiness
@testable import ControllerCore
import Foundation
import Logging
import XCTest

/// A guest's readiness through one boot, the once-per-boot marker, and the guest side this
/// repository ships (guest/multiverse-ready) speaking what the daemon's decoder reads.
final class GuestReadinessTests: XCTestCase {
    func testOneBootFromWaitingToReadyToStopping() {
        var g = GuestReadiness.waiting(domainID: 7)
        XCTAssertEqual(g.readiness, .waiting)
        XCTAssertFalse(g.apply(.status("booting"), now: 10))
        XCTAssertTrue(g.apply(.ready, now: 20), "the first READY=1 makes it ready")
        XCTAssertFalse(g.apply(.ready, now: 30), "a second READY=1 is not a new readiness")
        XCTAssertEqual(g.readySince, 20)
        XCTAssertFalse(g.apply(.unknownKey("MAINPID"), now: 40))
        XCTAssertFalse(g.apply(.errno(5), now: 41))
        XCTAssertEqual(g.status, "booting")
        XCTAssertEqual(g.errno, 5)
        XCTAssertFalse(g.apply(.stopping, now: 50))
        XCTAssertEqual(g.readiness, .stopping)
        XCTAssertEqual(g.readySince, 0)
        XCTAssertEqual(g.domainID, 7)
        // Kept across a daemon restart as JSON.
        let copy = try? JSONDecoder().decode(GuestReadiness.self, from: JSONEncoder().encode(g))
        XCTAssertEqual(copy, g)
    }

    /// The tracker's records, per boot: a new domain ID starts over at waiting, lines of
    /// another boot change nothing, READY=1 is kept across a restart (the file), a VM that
    /// stopped or that libvirt no longer has loses its record, a reboot waits again.
    func testTheTrackerKeepsOneRecordPerBootAcrossARestart() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tracker-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("readiness.json").path
        let logger = Logger(label: "tracker-test")
        var tracker = ReadinessTracker(file: ReadinessFile(path: path, logger: logger), logger: logger)
        XCTAssertEqual(tracker.record(uuid: "u1", domainID: 3, reachable: true, name: "net").readiness, .waiting)
        XCTAssertNil(tracker.apply(.ready, to: .init(uuid: "u1", domainID: 2)), "a line of an earlier boot counted")
        let change = try XCTUnwrap(tracker.apply(.ready, to: .init(uuid: "u1", domainID: 3)))
        XCTAssertTrue(change.becameReady)
        XCTAssertEqual(change.before.readiness, .waiting)
        XCTAssertNil(tracker.apply(.ready, to: .init(uuid: "u1", domainID: 3)), "a second READY=1 changed something")
        tracker.save()
        XCTAssertEqual(tracker.record(uuid: "u2", domainID: 4, reachable: true, name: "ui").readiness, .waiting)
        await tracker.flush()

        var restarted = ReadinessTracker(file: ReadinessFile(path: path, logger: logger), logger: logger)
        XCTAssertEqual(restarted.record(uuid: "u1", domainID: 3, reachable: true, name: "net").readiness, .ready)
        XCTAssertEqual(restarted.record(uuid: "u1", domainID: 5, reachable: true, name: "net").readiness, .waiting,
                       "a new boot kept the last boot's readiness")
        XCTAssertTrue(restarted.rebooted("u1"))
        XCTAssertFalse(restarted.rebooted("nosuch"))
        XCTAssertEqual(restarted.record(uuid: "u2", domainID: 4, reachable: false, name: "ui").readiness, .none)
        restarted.forget(except: [])
        XCTAssertTrue(restarted.guests.isEmpty)
        await restarted.flush()
        let saved = try JSONDecoder().decode([String: GuestReadiness].self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertTrue(saved.isEmpty, "\(saved)")
    }

    func testBootOnceClaimsEachBootOnce() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bootonce-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bootID = dir.appendingPathComponent("boot_id")
        try "1111\n".write(to: bootID, atomically: true, encoding: .utf8)
        let once = BootOnce(stateDirectory: dir.appendingPathComponent("state").path, bootIDFile: bootID.path)
        XCTAssertTrue(try once.claim(), "the first daemon start of a boot runs StartAll")
        XCTAssertFalse(try once.claim(), "a restart in the same boot does not")
        XCTAssertEqual(try String(contentsOfFile: once.file, encoding: .utf8), "1111\n")
        try "2222\n".write(to: bootID, atomically: true, encoding: .utf8)
        XCTAssertTrue(try once.claim(), "a new boot runs it again")
        XCTAssertFalse(try once.claim())
        let unreadable = BootOnce(stateDirectory: dir.path, bootIDFile: dir.appendingPathComponent("missing").path)
        XCTAssertTrue(try unreadable.claim(), "without a boot ID it runs, as before")
        // Under systemd the marker is in the runtime directory (a tmpfs, new at each boot).
        let run = dir.appendingPathComponent("run")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        let underSystemd = BootOnce(stateDirectory: dir.appendingPathComponent("state").path, runtimeDirectory: run.path + ":/elsewhere",
                                    bootIDFile: bootID.path)
        XCTAssertEqual(underSystemd.file, run.path + "/start-all.boot")
        XCTAssertTrue(try underSystemd.claim(), "a fresh /run: a new boot, whatever the state directory says")
        XCTAssertFalse(try underSystemd.claim())
        XCTAssertEqual(BootOnce(stateDirectory: "/s", runtimeDirectory: "").file, "/s/start-all.boot")
    }

    /// guest/multiverse-ready with its port pointed at a file: what it writes decodes to a
    /// status, then READY=1; a status with newlines stays one line; STOPPING=1.
    func testTheShippedGuestScriptSpeaksTheProtocol() throws {
        var repo = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { repo.deleteLastPathComponent() }
        let script = repo.appendingPathComponent("guest/multiverse-ready").path
        let port = FileManager.default.temporaryDirectory.appendingPathComponent("port-\(getpid())").path
        _ = FileManager.default.createFile(atPath: port, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: port) }
        func run(_ args: [String]) throws -> Int32 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = [script] + args
            p.environment = ["MULTIVERSE_READY_PORT": port, "PATH": "/usr/bin:/bin"]
            p.standardError = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            return p.terminationStatus
        }
        XCTAssertEqual(try run(["ready"]), 0)
        XCTAssertEqual(try run(["status", "line one\nline two\u{1B}[31m"]), 0)
        XCTAssertEqual(try run(["stopping"]), 0)
        XCTAssertEqual(try run(["bogus"]), 2, "a wrong command is a usage error")
        var decoder = ReadinessDecoder()
        let messages = decoder.feed(try Data(contentsOf: URL(fileURLWithPath: port)))
        XCTAssertEqual(messages.count, 4, "\(messages)")
        guard messages.count == 4, case .status(let text) = messages[0] else { return XCTFail("\(messages)") }
        XCTAssertTrue(text.contains("multi-user.target reached"), text)
        XCTAssertEqual(Array(messages[1...]), [.ready, .status("line one line two [31m"), .stopping])
    }
}

import Foundation
import XCTest

/// Checks waiting on an authentication dialog nobody answers hold no one else's calls.
/// A real authentication agent (tests/polkit/stuck-agent: python3-gi, registered with the
/// real polkitd for its own process; pkttyagent needs a terminal and serves one session)
/// never answers BeginAuthentication, and its process makes five interactive privileged
/// calls: four wait in polkit, the fifth is refused at [polkit] max_interactive_per_user.
/// Meanwhile root's and other users' calls are answered at once, and when the calling
/// connection leaves the bus (the agent stays) its four checks are cancelled.
final class PolkitExhaustionTests: XCTestCase {
    func testStuckDialogsHoldNoOneElseAndEndWithTheirCaller() throws {
        let s = try TestStack()
        defer { s.stop() }
        let out = s.dir.appendingPathComponent("agent.out").path
        let agent = try Child("/usr/sbin/runuser", ["-u", TestStack.otherUser, "--", "/usr/bin/env", "DBUS_SYSTEM_BUS_ADDRESS=\(s.address)",
                                                    TestStack.repo.appendingPathComponent("tests/polkit/stuck-agent").path, "5", "8", "60"],
                              stdout: out, stderr: out)
        defer { kill(agent.pid, SIGKILL); _ = agent.wait(timeout: 5) }
        chmod(s.dir.path, 0o755)
        let said = { (try? String(contentsOfFile: out, encoding: .utf8)) ?? "" }
        XCTAssertTrue(waitFor(30) { said().components(separatedBy: "agent: asked").count - 1 == 4 && said().contains("call 4:") },
                      "the agent was not asked four times and the fifth call not answered: \(said())\n\(s.log(tail: 20))")
        XCTAssertTrue(said().contains("call 4: org.freedesktop.DBus.Error.LimitsExceeded: ") && said().contains(": uid "), said())
        XCTAssertTrue(said().contains("max_interactive_per_user = 4"), said())
        XCTAssertFalse(said().contains("call 0:") || said().contains("call 3:"), "a held call was answered: \(said())")

        // Everyone else is answered at once: root, the granted user, a refused user.
        var figures: [String] = []
        for (label, user) in [("root", nil), ("granted", TestStack.grantedUser)] as [(String, String?)] {
            let t0 = Date()
            let r = s.createDisk("quick-\(label)", as: user)
            let took = Date().timeIntervalSince(t0)
            figures.append("\(label) \(String(format: "%.3f", took)) s")
            XCTAssertTrue(r.ok, r.all)
            XCTAssertLessThan(took, 10, "\(label)'s call waited behind the stuck checks")
        }
        let t0 = Date()
        let refused = s.createDisk("quick-other", as: TestStack.vmOnlyUser, interactive: false)
        figures.append("refused user \(String(format: "%.3f", Date().timeIntervalSince(t0))) s")
        XCTAssertFalse(refused.ok)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 10)
        print("PolkitExhaustionTests: answered with four stuck checks pending: \(figures.joined(separator: ", "))")

        // The caller leaves (the agent stays): the service cancels its four checks, polkitd
        // withdraws them from the agent, and nothing was made.
        XCTAssertTrue(waitFor(20) { said().contains("caller: closed") }, said())
        XCTAssertTrue(waitFor(15) { s.log(tail: 200).components(separatedBy: "decision=cancelled-caller-gone").count - 1 == 4 },
                      s.log(tail: 200).split(separator: "\n").filter { $0.contains("audit") }.joined(separator: "\n"))
        // polkitd withdrew the dialogs from the agent (only CancelCheckAuthorization makes it:
        // the agent itself is still there).
        XCTAssertTrue(waitFor(10) { said().contains("agent: cancelled") }, said())
        XCTAssertEqual(s.imageFiles().filter { $0.hasPrefix("stuck") }, [])
        XCTAssertEqual(s.imageFiles().sorted(), ["quick-granted", "quick-root"])
    }
}

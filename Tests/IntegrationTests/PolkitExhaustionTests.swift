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
                                                    TestStack.repo.appendingPathComponent("tests/polkit/stuck-agent").path, "5", "20", "90"],
                              stdout: out, stderr: out)
        defer { kill(agent.pid, SIGKILL); _ = agent.wait(timeout: 5) }
        chmod(s.dir.path, 0o755)
        let said = { (try? String(contentsOfFile: out, encoding: .utf8)) ?? "" }
        let answered = { said().split(separator: "\n").filter { $0.hasPrefix("call ") } }
        // The five calls reach the daemon's handlers in no set order: whichever comes fifth
        // is refused, the other four wait in polkit behind the agent.
        XCTAssertTrue(waitFor(30) { said().components(separatedBy: "agent: asked").count - 1 == 4 && answered().count == 1 },
                      "the agent was not asked four times and one call not refused: \(said())\n\(s.log(tail: 20))")
        let refusal = answered().first.map(String.init) ?? ""
        XCTAssertTrue(refusal.contains(": org.freedesktop.DBus.Error.LimitsExceeded: ") && refusal.contains(": uid "), said())
        XCTAssertTrue(refusal.contains("max_interactive_per_user = 4"), said())

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
        XCTAssertEqual(answered().count, 1, "a held call was answered before its caller left: \(said())")
        XCTAssertTrue(waitFor(40) { said().contains("caller: closed") }, said())
        XCTAssertTrue(waitFor(15) { s.log(tail: 200).components(separatedBy: "decision=cancelled-caller-gone").count - 1 == 4 },
                      s.log(tail: 200).split(separator: "\n").filter { $0.contains("audit") }.joined(separator: "\n"))
        // polkitd withdrew the dialogs from the agent (only CancelCheckAuthorization makes it:
        // the agent itself is still there).
        XCTAssertTrue(waitFor(10) { said().contains("agent: cancelled") }, said())
        XCTAssertEqual(s.imageFiles().filter { $0.hasPrefix("stuck") }, [])
        XCTAssertEqual(s.imageFiles().sorted(), ["quick-granted", "quick-root"])
    }
}

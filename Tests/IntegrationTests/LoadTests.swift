import Foundation
import XCTest

/// 50 concurrent clients × 200 mixed calls (reads, authorized and denied writes, disk
/// creates and deletes on the test driver), three measured rounds after a warm-up round: no error other than the expected
/// denials, no timeout, and the daemon's RSS after round three within 10 % of round one.
/// The anonymous part of the RSS (heap, stacks: what a leak grows) is reported beside it.
/// The clients are bench/load.py (python3-dbus), 25 as the granted and 25 as the other
/// user at the same time, through runuser.
final class LoadTests: XCTestCase {
    func testFiftyClientsThreeRoundsNoErrorsNoLeak() throws {
        let s = try TestStack()
        defer { s.stop() }
        XCTAssertTrue(s.createDisk("shared", size: 1 << 20, as: TestStack.grantedUser).ok)
        let script = TestStack.repo.appendingPathComponent("bench/load.py").path
        func run(_ user: String, _ prefix: String, denied: Bool) -> Child? {
            var args = ["-u", user, "--", "/usr/bin/env", "DBUS_SYSTEM_BUS_ADDRESS=\(s.address)", "/usr/bin/python3", "-I", script,
                        "--clients", "25", "--calls", "200", "--prefix", prefix, "--disk", "shared", "--vm", "test"]
            if denied { args.append("--expect-denied") }
            return try? Child("/usr/sbin/runuser", args, stdout: s.dir.appendingPathComponent("\(prefix).json").path,
                              stderr: s.dir.appendingPathComponent("\(prefix).err").path)
        }
        var rss: [(total: Int, anon: Int)] = []
        // Round 0 warms the daemon up (first-use allocations, caches, thread stacks reaching
        // their high-water mark under 50 concurrent callers) and is not measured; rounds 1-3
        // are the three the leak check compares.
        for round in 0...3 {
            let granted = run(TestStack.grantedUser, "g\(round)", denied: false)
            let other = run(TestStack.otherUser, "o\(round)", denied: true)
            for (child, prefix) in [(granted, "g\(round)"), (other, "o\(round)")] {
                XCTAssertEqual(child?.wait(timeout: 300), 0, (try? String(contentsOf: s.dir.appendingPathComponent("\(prefix).err"), encoding: .utf8)) ?? "")
                let text = (try? String(contentsOf: s.dir.appendingPathComponent("\(prefix).json"), encoding: .utf8)) ?? "{}"
                let report = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
                // Granted clients also look their own disk up before deleting it (20 per client).
                XCTAssertEqual(report["calls"] as? Int, prefix.hasPrefix("g") ? 25 * 220 : 25 * 200, text)
                XCTAssertEqual(report["unexpected_errors"] as? Int, 0, text)
                XCTAssertEqual(report["timeouts"] as? Int, 0, text)
                if prefix.hasPrefix("o") { XCTAssertEqual(report["expected_denials"] as? Int, 25 * 60, text) }
                print("load round \(round) \(prefix): \(text)")
            }
            if round > 0 { rss.append(Self.rss(s.daemon?.pid ?? 0)) }
            // Every granted client deleted what it created.
            XCTAssertEqual(s.imageFiles(), ["shared"])
        }
        print("daemon RSS after rounds 1-3: \(rss.map { "\($0.total) KiB (anonymous \($0.anon) KiB)" }.joined(separator: ", "))")
        XCTAssertLessThanOrEqual(Double(rss[2].total), Double(rss[0].total) * 1.10, "RSS grew from \(rss[0]) to \(rss[2]) KiB")
        XCTAssertTrue(s.manager("ListDisks", ["a{sv}", "0"]).ok, "daemon not answering after the load")
    }

    /// VmRSS and RssAnon of a process, KiB.
    static func rss(_ pid: Int32) -> (total: Int, anon: Int) {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        func field(_ name: String) -> Int {
            let line = status.split(separator: "\n").first { $0.hasPrefix(name + ":") } ?? ""
            return Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") ?? 0
        }
        return (field("VmRSS"), field("RssAnon"))
    }
}

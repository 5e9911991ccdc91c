import Foundation
import SDBus
import XCTest

/// tests/fuzz/bus-fuzz (dfuzzer's method, which Debian 12 does not package) calls every
/// method of every object with values made from its signature, as an unprivileged user:
/// the daemon keeps answering, never crashes, and nothing changes (no VM, disk, backup or
/// setting; the same objects afterwards).
final class BusFuzzTests: XCTestCase {
    func testFuzzingEveryMethodUnprivilegedChangesNothing() throws {
        let s = try TestStack()
        defer { s.stop() }
        XCTAssertTrue(s.createDisk("keep.qcow2", size: 1 << 20).ok)
        XCTAssertTrue(s.manager("DefineVM", ["ssa{sv}", "keepvm", "app", "0"]).ok)
        let objects = { s.busctl(["tree", "--list", TestStack.busName]).stdout }
        let before = (objects(), s.imageFiles(), sha256(s.imageDir.appendingPathComponent("keep.qcow2").path))
        let r = Command.run("/usr/sbin/runuser", ["-u", TestStack.otherUser, "--", "/usr/bin/env", "DBUS_SYSTEM_BUS_ADDRESS=\(s.address)",
                                                  TestStack.repo.appendingPathComponent("tests/fuzz/bus-fuzz").path, "12", "33"],
                            timeout: 600)
        XCTAssertTrue(r.ok, r.all)
        XCTAssertTrue(r.stdout.contains("daemon alive"), r.all)
        print("BusFuzzTests: \(r.stdout.split(separator: "\n").last ?? "")")
        if ProcessInfo.processInfo.environment["MV_FUZZ_VERBOSE"] != nil { print(r.stdout) }
        XCTAssertTrue(s.daemon?.isRunning ?? false, s.log(tail: 30))
        XCTAssertFalse(r.stdout.contains("=") && r.stdout.split(separator: "\n").contains { line in
            // A privileged method answered with a reply for the unprivileged fuzzer would be a hole.
            line.contains("(reply)=") && ["Define", "Create", "Delete", "Undefine", "Resize", "Write", "Apply", "Start ", "Restore"]
                .contains { line.contains(".\($0)") }
        }, r.stdout)
        XCTAssertEqual(objects(), before.0, "the fuzzer changed the objects")
        XCTAssertEqual(s.imageFiles(), before.1)
        XCTAssertEqual(sha256(s.imageDir.appendingPathComponent("keep.qcow2").path), before.2)
        XCTAssertEqual(s.vmProperty("keepvm", "State"), .string("shutoff"))
    }
}

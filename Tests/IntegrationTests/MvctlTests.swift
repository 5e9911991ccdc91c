import Foundation
import XCTest

/// mvctl against the real stack: tables, JSON, exit codes, polkit.
final class MvctlTests: XCTestCase {
    func testCommandsOutputsAndExitCodes() throws {
        let s = try TestStack()
        defer { s.stop() }
        let status = s.mvctl(["status"])
        XCTAssertTrue(status.ok, status.all)
        XCTAssertTrue(status.stdout.contains("libvirt URI        test:///default"), status.stdout)

        let create = s.mvctl(["disk", "create", "web", "3M", "--format", "raw"], as: TestStack.grantedUser)
        XCTAssertTrue(create.ok, create.all)
        XCTAssertTrue(s.imageFiles().contains("web"))
        let size = Command.run("/usr/bin/qemu-img", ["info", "--output=json", s.imageDir.appendingPathComponent("web").path])
        XCTAssertTrue(size.stdout.contains("\"virtual-size\": 3145728"), size.all)

        let list = s.mvctl(["disk", "list"])
        XCTAssertTrue(list.stdout.contains("web   raw     3.0 MiB"), list.stdout)
        let json = s.mvctl(["disk", "list", "--json"])
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
        XCTAssertEqual(parsed?.first?["Name"] as? String, "web")
        XCTAssertEqual((parsed?.first?["VirtualSize"] as? NSNumber)?.uint64Value, 3 << 20)

        // Not authorized: exit 4, one clear line naming the D-Bus error, nothing created.
        let denied = s.mvctl(["disk", "create", "nope", "1M", "--no-ask-password"], as: TestStack.otherUser)
        XCTAssertEqual(denied.status, 4, denied.all)
        XCTAssertTrue(denied.stderr.hasPrefix("mvctl: org.freedesktop.DBus.Error.InteractiveAuthorizationRequired: "), denied.stderr)
        XCTAssertFalse(s.imageFiles().contains("nope"))
        // No such object: exit 3; service error: exit 1; usage error: exit 64 (EX_USAGE).
        XCTAssertEqual(s.mvctl(["disk", "show", "missing"]).status, 3)
        XCTAssertEqual(s.mvctl(["disk", "create", "../x", "1M"]).status, 1)
        XCTAssertEqual(s.mvctl(["disk", "create", "x", "12Q"]).status, 64)
        XCTAssertEqual(Command.run(TestStack.mvctlPath, ["status", "--bus-address", "unix:path=/nonexistent/bus"]).status, 5)

        let delete = s.mvctl(["disk", "delete", "web"], as: TestStack.grantedUser)
        XCTAssertTrue(delete.ok, delete.all)
        XCTAssertFalse(s.imageFiles().contains("web"))
    }
}

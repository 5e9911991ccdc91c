import Foundation
import SDBus
import XCTest

/// The disk API changing a real Debian root (a Clone of RealGuestTests' image), judged by
/// qemu-img and by one guestfish session rather than by the service's own answers.
extension RealGuestTests {
    static let guestfishEnvironment = ProcessInfo.processInfo.environment.merging(
        ["LIBGUESTFS_BACKEND": "direct", "LIBGUESTFS_BACKEND_SETTINGS": "force_tcg"]) { $1 }
    /// The readiness unit's link in the image, absolute as `systemctl enable` makes it.
    static let unitLink = "/etc/systemd/system/multi-user.target.wants/multiverse-ready.service"
    static let unitFile = "/etc/systemd/system/multiverse-ready.service"

    /// Runs a disk job to its end; the job's Result when it succeeded, else nil (recorded).
    @discardableResult
    func runJob(_ disk: String, _ method: String, _ args: [String], timeout: TimeInterval = 600,
                file: StaticString = #filePath, line: UInt = #line) throws -> DBusValue? {
        let s = try stack
        let r = try stack.diskCall(disk, method, args)
        guard r.ok else { XCTFail("\(method) \(disk): \(r.all)", file: file, line: line); return nil }
        _ = waitFor(timeout, interval: 0.5) { s.jobProperty(r.replyPath, "State") != .string("running") }
        let state = s.jobProperty(r.replyPath, "State")
        guard state == .string("succeeded") else {
            XCTFail("\(method) \(disk): \(state.shown) \(s.jobProperty(r.replyPath, "Error").shown)", file: file, line: line)
            return nil
        }
        return s.jobProperty(r.replyPath, "Result")
    }

    static func compare(_ a: String, _ b: String) -> CommandResult {
        Command.run("/usr/bin/qemu-img", ["compare", "-U", a, b], timeout: 300)
    }

    static func virtualSize(_ image: String) -> UInt64? {
        let info = Command.run("/usr/bin/qemu-img", ["info", "-U", "--output=json", image]).stdout
        guard let data = info.data(using: .utf8), let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return (json["virtual-size"] as? NSNumber)?.uint64Value
    }

    /// Clone (qemu-img compare: identical to the base), Backup, WriteFile through the unit's
    /// absolute symlink (guestfish: still a link, its target has the new bytes),
    /// ListDirectory (the link's target), Resize to 4 GiB and back down to 2 GiB (guestfish:
    /// e2fsck -fn clean, the disk 2 GiB, the filesystem fits it, the files still there), then
    /// Restore (qemu-img compare: identical to the base again, 3 GiB).
    func testCloneWriteThroughLinkResizeBothWaysBackupAndRestoreOnTheDebianImage() throws {
        let s = try stack
        let copy = "mvt-copy-\(UUID().uuidString.prefix(4).lowercased()).qcow2"
        let base = s.imageDir.appendingPathComponent(Self.base).path
        let image = s.imageDir.appendingPathComponent(copy).path
        defer { _ = try? stack.diskCall(copy, "Delete", ["a{sv}", "0"]) }
        guard try runJob(Self.base, "Clone", ["sa{sv}", copy, "0"]) != nil else { return }
        let same = Self.compare(base, image)
        XCTAssertTrue(same.ok && same.stdout.contains("Images are identical"), same.all)
        guard let backup = try runJob(copy, "Backup", ["a{sv}", "0"]),
              let id = Optional(backup)["backup_id"]?.string else {
            return XCTFail("no backup_id")
        }

        // WriteFile through the absolute link: the file it leads to changes, the link stays.
        let before = try stack.diskCall(copy, "ReadFile", ["sa{sv}", Self.unitLink, "0"])
        XCTAssertTrue(before.ok, before.all)
        let old = Self.bytes(before.stdout)
        let new = old + Array("# changed by RealGuestTests through \(Self.unitLink)\n".utf8)
        let write = try stack.diskCall(copy, "WriteFile", ["saya{sv}", Self.unitLink, "\(new.count)"] + new.map(String.init) + ["0"])
        XCTAssertTrue(write.ok, write.all)
        let listing = try stack.diskCall(copy, "ListDirectory", ["sa{sv}", "/etc/systemd/system/multi-user.target.wants", "0"])
        XCTAssertTrue(listing.ok, listing.all)
        XCTAssertTrue(listing.stdout.contains("\"multiverse-ready.service\" \"symlink\""), listing.stdout)
        XCTAssertTrue(listing.stdout.contains("\"\(Self.unitFile)\""), "ListDirectory does not show the link's target: \(listing.stdout)")

        // Grow, then shrink below the original size, filesystem first.
        try runJob(copy, "Resize", ["ta{sv}", "\(4 << 30)", "0"])
        XCTAssertEqual(Self.virtualSize(image), 4 << 30)
        try runJob(copy, "Resize", ["ta{sv}", "\(2 << 30)", "1", "shrink", "b", "true"])
        XCTAssertEqual(Self.virtualSize(image), 2 << 30)
        let oracle = Command.run("/usr/bin/guestfish", ["--ro", "-a", image, "--", "run", ":",
            "echo", "==fsck", ":", "debug", "sh", "udevadm settle >/dev/null 2>&1; e2fsck -fn /dev/sda1 >/tmp/fsck.out 2>&1; rc=$?; [ $rc = 0 ] || tail -n 8 /tmp/fsck.out; echo rc=$rc", ":",
            "echo", "==size", ":", "blockdev-getsize64", "/dev/sda", ":", "blockdev-getsize64", "/dev/sda1", ":",
            "mount-ro", "/dev/sda1", "/", ":",
            "echo", "==link", ":", "readlink", Self.unitLink, ":",
            "echo", "==unit", ":", "cat", Self.unitFile, ":",
            "echo", "==statvfs", ":", "statvfs", "/", ":", "echo", "==os", ":", "cat", "/etc/os-release"],
            environment: Self.guestfishEnvironment, timeout: 300)
        XCTAssertTrue(oracle.ok, oracle.all)
        let sections = Self.sections(oracle.stdout)
        // Only "rc=0" when e2fsck is clean; otherwise its last lines come first (for the failure message).
        XCTAssertEqual(sections["fsck"], ["rc=0"], "e2fsck -fn after the shrink: \(oracle.all)")
        let sizes = (sections["size"] ?? []).compactMap { UInt64($0) }
        XCTAssertEqual(sizes.first, 2 << 30, oracle.stdout)
        if sizes.count == 2 { XCTAssertLessThanOrEqual(sizes[1], sizes[0] - (1 << 20), "the partition does not fit the shrunk disk") }
        let fields = Self.figures(sections["statvfs"] ?? [])
        if let blocks = fields["blocks"], let frsize = fields["frsize"], sizes.count == 2 {
            XCTAssertLessThanOrEqual(blocks * frsize, sizes[1], "the filesystem is larger than its partition")
            XCTAssertGreaterThan(blocks * frsize, 1 << 30, "the filesystem was shrunk further than asked")
        } else {
            XCTFail("no statvfs figures: \(oracle.stdout)")
        }
        XCTAssertEqual(sections["link"], [Self.unitFile], "the link was replaced: \(oracle.stdout)")
        XCTAssertEqual((sections["unit"] ?? []).joined(separator: "\n") + "\n", String(decoding: new, as: UTF8.self))
        XCTAssertTrue((sections["os"] ?? []).contains("ID=debian"), oracle.stdout)

        // Restore: the image as it was backed up, the base's bytes and size.
        try runJob(copy, "Restore", ["sa{sv}", id, "0"])
        XCTAssertEqual(Self.virtualSize(image), 3 << 30)
        let restored = Self.compare(base, image)
        XCTAssertTrue(restored.ok && restored.stdout.contains("Images are identical"), restored.all)
    }
}

import XCTest
@testable import HostSystem
@testable import ControllerCore

final class ValidationTests: XCTestCase {
    func testDiskNames() {
        for good in ["a", "disk.qcow2", "A_b-1.raw", String(repeating: "x", count: 64), "9"] {
            XCTAssertTrue(DiskName.isValid(good), good)
        }
        for bad in ["", ".hidden", "-x", "a/b", "../x", "..", "sp ace", "dïsk", "nul\0x", String(repeating: "x", count: 65), "tab\t", "ℵ"] {
            XCTAssertFalse(DiskName.isValid(bad), bad.debugDescription)
            XCTAssertThrowsError(try DiskName.validate(bad)) { error in
                XCTAssertEqual((error as? ControllerError)?.kind, "InvalidArgs")
            }
        }
    }

    /// Each kind of name has its own rule: its word in the message and its length (a share
    /// tag 31, the rest 64), and a bad value is named quoted.
    func testEachKindOfNameHasItsOwnRule() {
        let rules: [(NameRule, String, Int)] = [(.disk, "disk", 64), (.vm, "VM", 64), (.network, "network", 64),
                                                (.snapshot, "snapshot", 64), (.shareTag, "share tag", 31)]
        for (rule, word, length) in rules {
            XCTAssertTrue(rule.isValid(String(repeating: "n", count: length)), word)
            XCTAssertFalse(rule.isValid(String(repeating: "n", count: length + 1)), word)
            XCTAssertFalse(rule.isValid("-n"), word)
            XCTAssertThrowsError(try rule.validate("a b\u{1b}")) { error in
                XCTAssertEqual((error as? ControllerError)?.message,
                               "invalid \(word) name 'a b\\u{1b}': use 1-\(length) characters of A-Z a-z 0-9 . _ -, not starting with '.' or '-'")
            }
        }
        XCTAssertThrowsError(try NetworkService.validateName("net/../x")) { error in
            XCTAssertTrue((error as? ControllerError)?.message.hasPrefix("invalid network name ") == true, "\(error)")
        }
    }

    func testErrorMessagesQuoteTheValueSafely() {
        XCTAssertEqual(CallerText.quoted("a\nb"), "'a\\u{a}b'")
        XCTAssertTrue(CallerText.quoted(String(repeating: "z", count: 100)).hasSuffix("…(100 bytes)'"))
    }

    func testCreateDiskRequestValidation() {
        let max: UInt64 = 1 << 30
        XCTAssertNoThrow(try CreateDiskRequest(name: "d", size: 1 << 20, format: "qcow2").validate(maxSize: max))
        XCTAssertNoThrow(try CreateDiskRequest(name: "d", size: 1 << 20, format: "raw", preallocation: "falloc").validate(maxSize: max))
        let bad: [CreateDiskRequest] = [
            CreateDiskRequest(name: "d", size: 0, format: "qcow2"),
            CreateDiskRequest(name: "d", size: 1000, format: "qcow2"),
            CreateDiskRequest(name: "d", size: max + 512, format: "qcow2"),
            CreateDiskRequest(name: "d", size: 1 << 20, format: "vdi"),
            CreateDiskRequest(name: "d", size: 1 << 20, format: "raw", preallocation: "metadata"),
            CreateDiskRequest(name: "d", size: 1 << 20, format: "raw", backing: "base"),
            CreateDiskRequest(name: "d", size: 1 << 20, format: "qcow2", backing: "d"),
            CreateDiskRequest(name: "d", size: 1 << 20, format: "qcow2", backing: "../etc"),
        ]
        for request in bad {
            XCTAssertThrowsError(try request.validate(maxSize: max), "\(request)")
        }
    }

    func testConfigDefaultsAndOverrides() throws {
        var config = ControllerConfig()
        try config.apply(ConfigDocument(file: "t.toml", text: """
            [daemon]
            libvirt_uri = "test:///default"
            image_dir = "/srv/images"
            log_level = "debug"
            [polkit]
            workers = 2
            max_interactive_per_user = 2
            [disks]
            max_size = 1048576
            copy_rate_mib_s = 40
            """))
        XCTAssertEqual(config.libvirtURI, "test:///default")
        XCTAssertEqual(config.imageDirectory, "/srv/images")
        XCTAssertEqual(config.backupDirectory, "/var/lib/multiverse/backups")
        XCTAssertEqual(config.polkitMaxInteractivePerUser, 2)
        XCTAssertEqual(config.maxDiskSize, 1 << 20)
        XCTAssertEqual(config.copyRate, CopyRate(bytesPerSecond: 40 << 20))
        XCTAssertEqual(ControllerConfig().copyRate, .unlimited)
        var unlimited = ControllerConfig()
        try unlimited.apply(ConfigDocument(file: "u.toml", text: "[disks]\ncopy_rate_mib_s = 0\n"))
        XCTAssertNil(unlimited.copyRate.bytesPerSecond, "0 is no limit")
    }

    func testConfigErrorsNameFileLineAndKey() {
        func problem(_ text: String) -> String {
            var config = ControllerConfig()
            do {
                try config.apply(ConfigDocument(file: "c.toml", text: text))
                return "no error"
            } catch { return "\(error)" }
        }
        XCTAssertEqual(problem("[daemon]\n\nimage_dir = 5\n"), "c.toml:3: [daemon] image_dir: expected a string, found integer")
        XCTAssertEqual(problem("[daemon]\nimage_dir = \"relative\"\n"), "c.toml:2: [daemon] image_dir: 'relative' must be an absolute path without '..'")
        XCTAssertEqual(problem("[polkit]\nworkers = 0\n"), "c.toml:2: [polkit] workers: 0 is out of range 1...64")
        XCTAssertEqual(problem("[disks]\ncopy_rate_mib_s = -1\n"), "c.toml:2: [disks] copy_rate_mib_s: -1 is out of range 0...1048576")
        XCTAssertEqual(problem("[daemon]\nlog_level = \"loud\"\n").hasPrefix("c.toml:2: [daemon] log_level: 'loud' is not one of"), true)
        XCTAssertEqual(problem("[nonsense]\nx = 1\n"), "c.toml:1: nonsense: unknown section or key")
        XCTAssertTrue(problem("[daemon\n").hasPrefix("c.toml:1: syntax error"), problem("[daemon\n"))
    }
}

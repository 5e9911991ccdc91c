import Foundation
import XCTest

/// Runs one qemu-io command (`-c`) on `image`.
func qemuIO(_ command: String, _ image: String, format: String = "qcow2") -> CommandResult {
    Command.run("/usr/bin/qemu-io", ["-f", format, "-c", command, image])
}

/// Reads `length` bytes at `offset` of `image` with qemu-io's `read -P` and asserts that each
/// is `pattern`: qemu-io exits 0 (it exits 1 on a mismatch, and when it cannot open or read
/// the image), reports "read N/N bytes at offset O" (it does so on a mismatch too) and no
/// "Pattern verification failed".
func assertPattern(_ pattern: UInt8, offset: Int, length: Int, in image: String, format: String = "qcow2",
                   file: StaticString = #filePath, line: UInt = #line) {
    let read = qemuIO("read -P 0x\(String(pattern, radix: 16)) \(offset) \(length)", image, format: format)
    XCTAssertEqual(read.status, 0, "qemu-io failed: \(read.all)", file: file, line: line)
    XCTAssertTrue(read.stdout.contains("read \(length)/\(length) bytes at offset \(offset)\n"), read.all, file: file, line: line)
    XCTAssertFalse(read.stdout.contains("Pattern verification failed"), read.all, file: file, line: line)
}

/// The SHA-256 of `file` in hex; "" when sha256sum fails.
func sha256(_ file: String) -> String {
    Command.run("/usr/bin/sha256sum", [file]).stdout.split(separator: " ").first.map(String.init) ?? ""
}

/// Checks `condition` every `interval` seconds until it holds or `seconds` have passed, then
/// once more; returns whether it held. Callers assert on the result.
func waitFor(_ seconds: TimeInterval, interval: TimeInterval = 0.1, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        usleep(useconds_t(interval * 1_000_000))
    }
    return try condition()
}

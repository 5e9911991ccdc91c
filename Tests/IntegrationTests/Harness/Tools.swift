import Foundation

/// Runs one qemu-io command (`-c`) on `image`.
func qemuIO(_ command: String, _ image: String, format: String = "qcow2") -> CommandResult {
    Command.run("/usr/bin/qemu-io", ["-f", format, "-c", command, image])
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

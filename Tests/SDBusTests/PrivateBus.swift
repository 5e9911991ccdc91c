import Foundation
import SDBus

/// A private dbus-daemon for unit tests (session-type config: no policy to get in the way).
final class PrivateBus {
    let address: String
    private let process = Process()
    private let dir: URL

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("sdbus-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let socket = dir.appendingPathComponent("bus.sock").path
        process.executableURL = URL(fileURLWithPath: "/usr/bin/dbus-daemon")
        process.arguments = ["--session", "--nofork", "--address=unix:path=\(socket)", "--nosyslog"]
        try process.run()
        address = "unix:path=\(socket)"
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: socket) { usleep(20_000) }
        guard FileManager.default.fileExists(atPath: socket) else { throw DBusError.failed("dbus-daemon did not start") }
    }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        try? FileManager.default.removeItem(at: dir)
    }
}

import Foundation
import Guestfs
import XCTest

/// The appliance that parses guest-written filesystems runs without root: the helper as
/// the appliance user without capabilities, its qemu likewise, the image reachable only
/// through an NBD socket no other local user may open, and nothing left afterwards.
final class ApplianceHelperTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root: the daemon switches the helper to the appliance user") }
        CoreHarness.ensureApplianceUser()
        dir = URL(fileURLWithPath: "/tmp/mvhelper-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    func testTheApplianceRunsAsTheApplianceUserWithoutCapabilitiesAndLeavesNothing() async throws {
        let image = dir.appendingPathComponent("disk").path
        XCTAssertEqual(Self.run("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", image, "64M"]).status, 0)
        chmod(image, 0o600)
        let user = try XCTUnwrap(ApplianceUser.lookUp(GuestfsSettings.defaultUser))
        // force_tcg as in the integration stacks: /dev/kvm exists on these machines but does not work.
        let cache = ApplianceCache(settings: GuestfsSettings(backendSettings: ["force_tcg"], memoryMiB: 256), maxAppliances: 1, idle: .seconds(1))
        let seen = try await cache.withOneOff(label: "helper test") { s -> Observed in
            try s.addDrive(image, format: "qcow2", readonly: false)
            try s.launch()
            try s.partDisk("/dev/sda", type: "gpt")
            try s.mkfs("ext4", device: "/dev/sda1", label: nil)
            return Observed.now()
        }
        // The helper and the appliance's qemu: the appliance user's, no capability at all.
        XCTAssertFalse(seen.appliance.isEmpty, "no appliance qemu found")
        for p in seen.appliance + seen.helpers {
            XCTAssertEqual(p.uids, Array(repeating: String(user.uid), count: 4), "pid \(p.pid) \(p.name)")
            XCTAssertEqual(p.capEff, "0000000000000000", "pid \(p.pid) \(p.name)")
            XCTAssertEqual(p.capPrm, "0000000000000000", "pid \(p.pid) \(p.name)")
        }
        // The image is opened by root's storage daemon only; its socket is the user's alone.
        XCTAssertEqual(seen.sockets.count, 1)
        for socket in seen.sockets {
            XCTAssertEqual(socket.uid, user.uid)
            XCTAssertEqual(socket.mode, 0o600)
            XCTAssertNotEqual(socket.otherUserStatus, 0, "another local user read the served image")
        }
        // The work is in the image, as qemu-img and libguestfs' own tool see it.
        let files = Self.run("/usr/bin/virt-filesystems", ["--format=qcow2", "-a", image, "--filesystems", "--long", "--no-title"],
                             environment: ["LIBGUESTFS_BACKEND_SETTINGS": "force_tcg"])
        XCTAssertTrue(files.output.contains("/dev/sda1") && files.output.contains("ext4"), files.output)
        // Nothing left: no storage daemon, no socket directory, no helper, no qemu.
        XCTAssertEqual(Self.run("/usr/bin/pgrep", ["-f", "qemu-storage-daemon.*\(dir.path)"]).output, "")
        for socket in seen.sockets {
            XCTAssertFalse(FileManager.default.fileExists(atPath: (socket.path as NSString).deletingLastPathComponent))
        }
        for p in seen.appliance + seen.helpers { XCTAssertNotEqual(kill(p.pid, 0), 0, "pid \(p.pid) \(p.name) still runs") }
    }

    func testTheHelperRefusesToRunAsRoot() {
        let helper = GuestfsSettings().helper
        let bare = Self.run(helper, [])
        XCTAssertEqual(bare.status, 2)
        XCTAssertTrue(bare.output.contains("without a non-root --uid"), bare.output)
        let asRoot = Self.run(helper, ["--uid", "0", "--gid", "0"])
        XCTAssertEqual(asRoot.status, 2)
        XCTAssertTrue(asRoot.output.contains("without a non-root --uid"), asRoot.output)
    }

    static func run(_ path: String, _ arguments: [String], environment: [String: String] = [:]) -> (status: Int32, output: String) {
        let (status, output) = runTool(path, arguments, environment: environment)
        return (status, output.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

/// Processes and sockets seen while an appliance ran.
private struct Observed: Sendable {
    struct Process: Sendable {
        let pid: Int32
        let name: String
        let uids: [String]
        let capEff: String
        let capPrm: String
    }
    var appliance: [Process] = []
    var helpers: [Process] = []
    struct Socket: Sendable {
        let path: String
        let uid: uid_t
        let mode: mode_t
        /// `qemu-img info` of the export as the user nobody.
        let otherUserStatus: Int32
    }
    var sockets: [Socket] = []

    /// Reads /proc: the appliance qemu (its command line names the appliance's kernel) and
    /// the helpers, and the NBD sockets this process's exports serve.
    static func now() -> Observed {
        var seen = Observed()
        let own = "multiverse-nbd-\(getpid())-"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? [] where entry.hasPrefix(own) {
            let path = "/tmp/\(entry)/nbd.sock"
            var st = stat()
            _ = lstat(path, &st)
            let other = ApplianceHelperTests.run("/usr/sbin/runuser", ["-u", "nobody", "--", "/usr/bin/qemu-img", "info", "nbd+unix:///image?socket=\(path)"])
            seen.sockets.append(Socket(path: path, uid: st.st_uid, mode: st.st_mode & 0o777, otherUserStatus: other.status))
        }
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry),
                  let cmdline = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8),
                  let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { continue }
            func field(_ key: String) -> [String] {
                status.split(separator: "\n").first { $0.hasPrefix(key + ":") }?
                    .split(separator: "\t").dropFirst().map(String.init) ?? []
            }
            let p = Process(pid: pid, name: field("Name").first ?? "?", uids: field("Uid"),
                            capEff: field("CapEff").first ?? "", capPrm: field("CapPrm").first ?? "")
            let parts = cmdline.split(separator: "\0")
            // Only this test process's own: other suites may run appliances beside it.
            guard isDescendant(pid) else { continue }
            if parts.first?.hasSuffix("qemu-system-x86_64") == true, cmdline.contains(own) || cmdline.contains("appliance.d/kernel") {
                seen.appliance.append(p)
            } else if parts.first?.hasSuffix("/" + GuestfsSettings.helperName) == true {
                seen.helpers.append(p)
            }
        }
        return seen
    }

    /// Whether `pid` is a child, grandchild, … of this test process (its PPid chain in
    /// /proc reaches us).
    static func isDescendant(_ pid: Int32) -> Bool {
        let me = getpid()
        var current = pid
        for _ in 0..<64 {
            guard current > 1, current != me,
                  let status = try? String(contentsOfFile: "/proc/\(current)/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("PPid:") }),
                  let parent = Int32(line.dropFirst(5).trimmingCharacters(in: .whitespaces)) else { return current == me && pid != me }
            current = parent
        }
        return false
    }
}

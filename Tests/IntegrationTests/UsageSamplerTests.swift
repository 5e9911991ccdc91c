import Foundation
import SDBus
import XCTest

/// The background usage sampler on its own clock (`usage_interval_s = 5`): it measures the
/// Debian test image read-only, signals UsageHigh when the AutoGrow threshold is crossed,
/// and AutoGrow grows the unused disk with its filesystem by one step. Real appliances.
final class UsageSamplerTests: XCTestCase {
    func testSamplerSignalsUsageHighAndAutoGrowGrowsTheDisk() async throws {
        let s = try TestStack(config: "[guestfs]\nbackend_settings = [\"force_tcg\"]\nusage_interval_s = 5\n",
                              adopt: ["debian": "qcow2"], prepareImages: GuestImageTests.buildDebianRoot)
        defer { s.stop() }
        let signals = try await SignalCollector(stack: s, match: "type='signal',sender='\(TestStack.busName)'")
        defer { Task { await signals.close() } }
        let disk = "/org/multiverse/Controller/disk/debian"
        // Before the first sample (5 s after start): grow by 32 MiB steps up to 128 MiB.
        let policy = s.call(disk, TestStack.diskInterface, "SetAutoGrow",
                            ["a{sv}", "4", "enabled", "b", "true", "threshold", "d", "0.5", "step", "t", String(32 << 20),
                             "max", "t", String(128 << 20)], as: TestStack.grantedUser)
        XCTAssertTrue(policy.ok, policy.all)

        let high = await signals.wait(timeout: 150) { $0.member == "UsageHigh" && $0.path == disk }
        XCTAssertNotNil(high, "no UsageHigh: \(s.log(tail: 20))")
        let sampled = s.property(disk, TestStack.diskInterface, "UsageSampled")
        // Seconds since the epoch: a sample was taken (an unreadable property, or 0, fails here).
        let when = sampled?.uint64
        XCTAssertGreaterThan(when ?? 0, 1_700_000_000, sampled.shown)
        let usage = s.call(disk, TestStack.diskInterface, "GetFilesystemUsage", ["a{sv}", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(usage.stdout.hasPrefix("ta(sttt) \(when ?? 0) 1 \"/dev/sda\""), usage.all)
        XCTAssertEqual(high?.arguments.first, .double(0.5), "UsageHigh carries the threshold")
        XCTAssertTrue(s.log(tail: 200).contains("launching read-only appliance for \(s.imageDir.path)/debian"), s.log(tail: 30))

        let grown = await signals.first(timeout: 240) { signal in
            guard signal.member == "Completed" else { return false }
            return await signals.property(signal.path, TestStack.jobInterface, "Operation") == .string("AutoGrow")
        }
        XCTAssertEqual(grown?.arguments.first, .boolean(true), signals.summary)
        let info = Command.run("/usr/bin/qemu-img", ["info", "-U", s.imageDir.appendingPathComponent("debian").path]).stdout
        XCTAssertTrue(info.contains("virtual size: 128 MiB"), info)
        let check = Command.run("/usr/bin/qemu-img", ["check", s.imageDir.appendingPathComponent("debian").path])
        XCTAssertTrue(check.ok, check.all)
    }
}

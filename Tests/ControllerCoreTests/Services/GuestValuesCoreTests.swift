@testable import HostSystem
@testable import ControllerCore
import Foundation
import XCTest

/// What Inspect and the usage sampler read from inside an image stays with the disk's record
/// and leaves Core only through the checked GetInspection/GetFilesystemUsage halves: the
/// events the bus broadcasts carry no guest value but the AutoGrow threshold.
final class GuestValuesCoreTests: XCTestCase {
    var core: CoreHarness!

    override func setUp() async throws { core = try await CoreHarness() }
    override func tearDown() async throws { await core?.close() }

    func testInspectionIsKeptForTheGatedMethodsAndUsageHighCarriesTheThreshold() async throws {
        _ = try await core.create("data")
        _ = try await core.disks.policies.records.update("data") { $0.autoGrow.threshold = 0.75 }
        core.clearEvents()
        var report = InspectionReport()
        report.osType = "linux"
        report.hostname = "evil\u{1b}]0;x\u{7}"
        report.filesystems = [GuestFilesystem(device: "/dev/sda1", type: "ext4")]
        report.usage = [FilesystemUsage(device: "/dev/sda1", size: 1000, used: 900, available: 100)]
        let when = await core.disks.policies.inspected("data", report)
        XCTAssertGreaterThan(when, 1_700_000_000)

        // Broadcast: the sample's time and the threshold reached, never the 0.9 measured.
        let high = core.events.compactMap { if case .usageHigh(let name, let value) = $0 { return (name, value) } else { return nil } }
        XCTAssertEqual(high.map(\.0), ["data"])
        XCTAssertEqual(high.first?.1, 0.75)

        // Served: through a check naming what is read (polkit's details), then the values.
        let plan = try await core.disks.checkGuestValues("data", inspection: true)
        XCTAssertEqual(plan.details, ["disk": "data", "operation": "get-inspection"])
        let found = await core.disks.runGetInspection(plan)
        XCTAssertEqual(found["hostname"], .string("evil\u{1b}]0;x\u{7}"))
        XCTAssertEqual(found["filesystems"], .pairs([["/dev/sda1", "ext4"]]))
        XCTAssertEqual(found["inspected"], .uint64(when))
        let usagePlan = try await core.disks.checkGuestValues("data", inspection: false)
        XCTAssertEqual(usagePlan.details["operation"], "get-filesystem-usage")
        let (sampled, rows) = await core.disks.runGetFilesystemUsage(usagePlan)
        XCTAssertEqual(sampled, when)
        XCTAssertEqual(rows, report.usage)
        await assertError("NoSuchDisk", naming: "gone") { try await self.core.disks.checkGuestValues("gone", inspection: true) }

        // A restarted daemon reads them back; a Format drops both.
        let reloaded = DiskPolicyStore(stateDirectory: parentDirectory(of: core.disks.policies.records.file))
        try await reloaded.load()
        let kept = await reloaded.record("data").inspection
        XCTAssertEqual(kept?.hostname, report.hostname)
        await core.disks.context.forgetUsage("data", inspection: true)
        let afterFormat = await core.disks.runGetInspection(plan)
        let usageAfterFormat = await core.disks.runGetFilesystemUsage(usagePlan)
        XCTAssertEqual(afterFormat, [:])
        XCTAssertEqual(usageAfterFormat.sampled, 0)
        XCTAssertEqual(usageAfterFormat.usage, [])
    }

    /// A state file written before inspections were kept (no `inspection` key) still loads.
    func testAStateFileWithoutInspectionsLoads() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mv-policies-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let old = """
            {"data":{"autoGrow":{"enabled":true,"max":0,"step":1073741824,"threshold":0.8},"growPending":false,
            "lastAutoSnapshot":0,"lastAutoStamp":"","sampled":5,"usage":[{"available":1,"device":"/dev/sda","size":4,"used":3}],
            "versioning":{"enabled":false,"intervalSeconds":3600,"keep":10,"onStop":false}}}
            """
        try old.write(to: dir.appendingPathComponent("disk-policies.json"), atomically: true, encoding: .utf8)
        let store = DiskPolicyStore(stateDirectory: dir.path)
        try await store.load()
        let record = await store.record("data")
        XCTAssertEqual(record.autoGrow.threshold, 0.8)
        XCTAssertEqual(record.usage.first?.used, 3)
        XCTAssertNil(record.inspection)
    }
}

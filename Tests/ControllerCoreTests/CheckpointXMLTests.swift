@testable import ControllerCore
import HostSystem
import XCTest

/// The rule that keeps libvirt's checkpoints in step with the backup records, and the XML
/// the live backup hands libvirt, read back the way libvirt 9.0 writes it.
final class CheckpointXMLTests: XCTestCase {
    /// libvirt's description of a running VM's checkpoint (`--size --no-domain`).
    static let described = """
        <domaincheckpoint>
          <name>mv-web-2</name>
          <parent><name>mv-web-1</name></parent>
          <creationTime>1796669176</creationTime>
          <disks>
            <disk name='vda' checkpoint='bitmap' bitmap='mv-web-2' size='131072'/>
            <disk name='vdb' checkpoint='no'/>
          </disks>
        </domaincheckpoint>
        """

    func testParsesLibvirtsCheckpointWithChangedBytes() throws {
        let c = try CheckpointXML.parse(Self.described)
        XCTAssertEqual(c, CheckpointXML.Checkpoint(name: "mv-web-2", bitmaps: ["vda": "mv-web-2"], changedBytes: ["vda": 131072]))
        let built = try CheckpointXML.parse(CheckpointXML.checkpoint(name: "mv-vm-3", bitmaps: ["vdb": "mv-data-3"], targets: ["vda", "vdb"]))
        XCTAssertEqual(built, CheckpointXML.Checkpoint(name: "mv-vm-3", bitmaps: ["vdb": "mv-data-3"], changedBytes: [:]))
    }

    /// Kept: a checkpoint describing a wanted bitmap. Deleted: the service's others (a
    /// failed backup's, older points'); another tool's are left. Redefined: a wanted bitmap
    /// no checkpoint describes (an offline point's).
    func testReconcileDeletesWhatNoRecordNeedsAndRedefinesWhatIsMissing() {
        let existing = [CheckpointXML.Checkpoint(name: "mv-web-1", bitmaps: ["vda": "mv-web-1"], changedBytes: [:]),
                        CheckpointXML.Checkpoint(name: "mv-web-2", bitmaps: ["vda": "mv-web-2"], changedBytes: [:]),
                        CheckpointXML.Checkpoint(name: "mv-failed", bitmaps: ["vda": "mv-failed"], changedBytes: [:]),
                        CheckpointXML.Checkpoint(name: "nightly", bitmaps: ["vda": "nightly"], changedBytes: [:])]
        let plan = CheckpointXML.reconcile(existing, wanted: ["vda": "mv-web-2", "vdb": "mv-data-7"])
        XCTAssertEqual(plan.delete, ["mv-failed", "mv-web-1"])
        XCTAssertEqual(plan.redefine, ["vdb": "mv-data-7"])
        XCTAssertEqual(CheckpointXML.reconcile(existing.filter { $0.name == "mv-web-2" }, wanted: ["vda": "mv-web-2"]),
                       CheckpointXML.Reconciliation(delete: [], redefine: [:]), "in step: nothing to do")
        // A VM point's checkpoint stays while one of its disks still needs its bitmap.
        let vmPoint = CheckpointXML.Checkpoint(name: "mv-vm-1", bitmaps: ["vda": "mv-a-1", "vdb": "mv-b-1"], changedBytes: [:])
        XCTAssertEqual(CheckpointXML.reconcile([vmPoint], wanted: ["vda": "mv-a-2", "vdb": "mv-b-1"]).delete, [])
        XCTAssertEqual(CheckpointXML.reconcile([vmPoint], wanted: ["vda": "mv-a-2", "vdb": "mv-b-2"]).delete, ["mv-vm-1"])
    }

    /// Incremental disks name their checkpoint, full ones none; the VM's other disks are
    /// left out of the backup.
    func testPushBackupNamesEachDisksModeAndLeavesOthersOut() throws {
        let xml = CheckpointXML.pushBackup([.init(target: "vda", file: "/b/.p.qcow2.partial", since: "mv-web-2"),
                                            .init(target: "vdc", file: "/b/.q.qcow2.partial", since: nil)], targets: ["vda", "vdb", "vdc"])
        let root = try XElement.parse(xml)
        XCTAssertEqual(root.attribute("mode"), "push")
        let disks = root.first("disks")?.elements("disk") ?? []
        XCTAssertEqual(disks.map { $0.attribute("name") ?? "" }, ["vda", "vdb", "vdc"])
        XCTAssertEqual(disks.map { $0.attribute("backup") ?? "" }, ["yes", "no", "yes"])
        XCTAssertEqual(disks[0].attribute("backupmode"), "incremental")
        XCTAssertEqual(disks[0].attribute("incremental"), "mv-web-2")
        XCTAssertEqual(disks[2].attribute("backupmode"), "full")
        XCTAssertNil(disks[2].attribute("incremental"))
        XCTAssertEqual(disks[0].first("target")?.attribute("file"), "/b/.p.qcow2.partial")
        XCTAssertEqual(disks[0].first("driver")?.attribute("type"), "qcow2")
    }
}

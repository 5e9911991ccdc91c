import ControllerAPI
@testable import ControllerCore
import Logging
import XCTest

/// The disks' lease rules alone: the compatibility matrix as the reference publishes it, and
/// the table's answers for every pair of kinds.
final class DiskLeaseRulesTests: XCTestCase {
    func testTheMatrixIsSymmetricAndIsTheOneTheReferencePublishes() {
        for a in LeaseKind.allCases {
            for b in LeaseKind.allCases {
                XCTAssertEqual(a.allows(b), b.allows(a), "\(a) and \(b)")
            }
        }
        let published = Dictionary(uniqueKeysWithValues: DiskInterface.leaseKinds.map { ($0.kind, Set($0.compatibleWith)) })
        XCTAssertEqual(Set(published.keys), Set(LeaseKind.allCases.map(\.rawValue)))
        for kind in LeaseKind.allCases {
            XCTAssertEqual(published[kind.rawValue], Set((LeaseKind.compatible[kind] ?? []).map(\.rawValue)), "\(kind)")
        }
        // Writers alone but for live-safe readers, readers beside a VM, consistent readers not.
        XCTAssertEqual(LeaseKind.compatible[.writer], [.reader])
        XCTAssertEqual(LeaseKind.compatible[.reader], Set(LeaseKind.allCases))
        XCTAssertTrue(LeaseKind.vm.allows(.reader))
        XCTAssertFalse(LeaseKind.vm.allows(.consistentReader))
        XCTAssertTrue(LeaseKind.vm.allows(.liveWriter))
        XCTAssertFalse(LeaseKind.vm.allows(.vm))
        XCTAssertFalse(LeaseKind.vm.allows(.base))
    }

    func testEveryPairConflictsExactlyWhereTheMatrixSays() {
        for held in LeaseKind.allCases {
            for asked in LeaseKind.allCases {
                var table = DiskLeases()
                table.insert(DiskLease(kind: held, holder: .job(1), label: "job 1"), on: "d")
                let conflict = table.conflict(asked, on: "d", for: .job(2), bases: [])
                XCTAssertEqual(conflict == nil, held.allows(asked), "\(held) held, \(asked) asked")
                if let conflict { XCTAssertEqual(conflict.label, "job 1") }
                // A holder never stands in its own way, and another disk is free.
                XCTAssertNil(table.conflict(asked, on: "d", for: .job(1), bases: []))
                XCTAssertNil(table.conflict(asked, on: "e", for: .job(2), bases: []))
            }
        }
    }

    func testAnOverlaysBaseLeaseCountsLikeATakenOne() {
        let table = DiskLeases()
        let base = DiskLease(kind: .base, holder: .disk("top"), label: "disk top")
        XCTAssertEqual(table.conflict(.writer, on: "base", for: .job(1), bases: [base]), base)
        XCTAssertEqual(table.conflict(.vm, on: "base", for: .vm("u"), bases: [base]), base)
        XCTAssertNil(table.conflict(.reader, on: "base", for: .job(1), bases: [base]))
        XCTAssertNil(table.conflict(.consistentReader, on: "base", for: .job(1), bases: [base]))
    }

    func testRemovingAHoldersLeasesSaysWhichDisksChanged() {
        var table = DiskLeases()
        table.insert(DiskLease(kind: .vm, holder: .vm("a"), label: "VM a"), on: "d1")
        table.insert(DiskLease(kind: .vm, holder: .vm("a"), label: "VM a"), on: "d2")
        table.insert(DiskLease(kind: .reader, holder: .job(3), label: "job 3"), on: "d2")
        XCTAssertFalse(table.insert(DiskLease(kind: .vm, holder: .vm("a"), label: "VM a"), on: "d1"), "taken twice")
        XCTAssertEqual(table.disks(of: .vm("a")), ["d1", "d2"])
        XCTAssertEqual(table.remove(.vm("a"), on: ["d2"]), ["d2"])
        XCTAssertEqual(table.remove(.vm("a")), ["d1"])
        XCTAssertEqual(table.remove(.vm("a")), [])
        XCTAssertEqual(table.leases(on: "d2").map(\.holder), [.job(3)])
        XCTAssertTrue(table.leases(on: "d1").isEmpty)
    }

    /// Until the VMs' leases are rebuilt from libvirt nothing says whether a VM has an image
    /// open: a lease other than a VM's waits for that (woken by it), or gives up after its
    /// deadline.
    func testOtherLeasesWaitUntilTheVMsLeasesAreKnown() async {
        let store = DiskStore(directory: "/nonexistent", qemuImg: QemuImg(path: "/usr/bin/qemu-img"), logger: Logger(label: "test"))
        let early = await store.awaitVMLeases(timeout: .milliseconds(50))
        XCTAssertFalse(early)
        async let waiting = store.awaitVMLeases(timeout: .seconds(30))
        try? await Task.sleep(for: .milliseconds(50))
        await store.vmLeasesKnown()
        let woken = await waiting
        XCTAssertTrue(woken)
        let later = await store.awaitVMLeases(timeout: .zero)
        XCTAssertTrue(later)
    }
}

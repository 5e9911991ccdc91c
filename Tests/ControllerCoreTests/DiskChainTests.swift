@testable import HostSystem
@testable import ControllerCore
import Foundation
import XCTest

/// The backing chain rules and the header check, without a bus or a file: what `Problems`
/// says for each kind of chain a hand-made or hostile image can have.
final class DiskChainTests: XCTestCase {
    let dir = "/var/lib/multiverse/images"

    func disk(_ name: String, _ format: String, backing: String? = nil, backingFormat: String? = nil, dataFile: String? = nil) -> DiskInfo {
        DiskInfo(name: name, path: dir + "/" + name, format: format, virtualSize: 1 << 20, allocatedSize: 0,
                 backingHeader: backing, backingFormat: backingFormat, dataFile: dataFile)
    }

    func problems(_ name: String, _ disks: [DiskInfo]) -> [String] {
        DiskChain.problems(of: name, in: Dictionary(uniqueKeysWithValues: disks.map { ($0.name, $0) }), directory: dir)
    }

    func testEachBrokenRuleIsNamed() {
        let base = disk("base", "raw")
        let cases: [(DiskInfo, String)] = [
            (disk("x", ""), "x has no recorded format"),
            (disk("x", "vmdk"), "recorded as 'vmdk'; only raw and qcow2"),
            (disk("x", "qcow2", dataFile: "/etc/shadow"), "external data file '/etc/shadow'"),
            (disk("x", "qcow2", backing: "json:{\"file.filename\":\"/etc/shadow\"}", backingFormat: "raw"), "is a json: name"),
            (disk("x", "qcow2", backing: "nbd://10.0.0.1/x", backingFormat: "raw"), "is a protocol name"),
            (disk("x", "qcow2", backing: "/etc/shadow", backingFormat: "raw"), "outside the image directory"),
            (disk("x", "qcow2", backing: "../base", backingFormat: "raw"), "is not a managed disk"),
            (disk("x", "qcow2", backing: dir + "/sub/base", backingFormat: "raw"), "is not a managed disk"),
            (disk("x", "qcow2", backing: "missing", backingFormat: "raw"), "backing disk missing of x does not exist"),
            (disk("x", "qcow2", backing: "base"), "names no format for its backing disk base"),
            (disk("x", "qcow2", backing: "base", backingFormat: "qcow2"), "says its backing disk base is 'qcow2', but base is recorded as raw"),
            (disk("x", "qcow2", backing: "x", backingFormat: "qcow2"), "loops back to x"),
        ]
        for (x, message) in cases {
            let found = problems("x", [base, x])
            XCTAssertTrue(found.contains { $0.contains(message) }, "\(message): \(found)")
        }
        XCTAssertEqual(problems("base", [base]), [])
        XCTAssertEqual(problems("x", [base, disk("x", "qcow2", backing: "base", backingFormat: "raw")]), [])
        XCTAssertEqual(problems("x", [base, disk("x", "qcow2", backing: dir + "/base", backingFormat: "raw")]), [])
        // A problem further down reaches the top.
        let unrecordedBase = disk("base", "")
        XCTAssertTrue(problems("x", [unrecordedBase, disk("x", "qcow2", backing: "base", backingFormat: "raw")])[0].contains("base of x has no recorded format"))
        let mid = disk("mid", "qcow2", backing: "/etc/shadow", backingFormat: "raw")
        XCTAssertTrue(problems("x", [mid, disk("x", "qcow2", backing: "mid", backingFormat: "qcow2")])[0].contains("built on mid, whose backing file '/etc/shadow' is outside"))
    }

    func testDepthIsLimited() {
        var disks = [disk("d0", "raw")]
        for n in 1...9 { disks.append(disk("d\(n)", "qcow2", backing: "d\(n - 1)", backingFormat: n == 1 ? "raw" : "qcow2")) }
        XCTAssertEqual(problems("d8", disks), [])
        XCTAssertTrue(problems("d9", disks).contains { $0.contains("deeper than 8") })
        let byName = Dictionary(uniqueKeysWithValues: disks.map { ($0.name, $0) })
        XCTAssertEqual(DiskChain.depth(of: "d8", in: byName, directory: dir), 8)
        XCTAssertEqual(DiskChain.depth(of: "d0", in: byName, directory: dir), 0)
    }

    func testHeadersAreRecognisedOnlyToRefuse() {
        XCTAssertEqual(ImageHeader.foreignFormat(Array("QFI".utf8) + [0xfb, 0, 0, 0, 3]), "qcow2")
        XCTAssertEqual(ImageHeader.foreignFormat(Array("KDMV".utf8)), "vmdk")
        XCTAssertEqual(ImageHeader.foreignFormat(Array("vhdxfile".utf8)), "vhdx")
        XCTAssertEqual(ImageHeader.foreignFormat(Array("LUKS".utf8) + [0xba, 0xbe, 0, 2]), "luks")
        var vdi = [UInt8](repeating: 0, count: 72)
        vdi.replaceSubrange(64..<68, with: [0x7f, 0x10, 0xda, 0xbe])
        XCTAssertEqual(ImageHeader.foreignFormat(vdi), "vdi")
        XCTAssertNil(ImageHeader.foreignFormat([UInt8](repeating: 0, count: 512)))
        XCTAssertNil(ImageHeader.foreignFormat(Array("QFI".utf8)))   // too short to be one
        // An MBR boot sector is raw.
        var mbr = [UInt8](repeating: 0, count: 512)
        mbr[510] = 0x55; mbr[511] = 0xaa
        XCTAssertNil(ImageHeader.foreignFormat(mbr))
    }
}

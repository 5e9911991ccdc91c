import XCTest
@testable import ControllerCore

/// Work a caller can ask for before (or without) authorization stays bounded: listing
/// pages, NICs per define.
final class BoundedWorkTests: XCTestCase {
    static func entry(_ name: String, target: String = "") -> GuestFileEntry {
        GuestFileEntry(name: name, type: target.isEmpty ? "file" : "symlink", size: 0, mode: 0o100644, mtime: 0, target: target)
    }

    func testListingPagesFollowEachOther() throws {
        let all = (0..<25).map { Self.entry(String(format: "f%03d", $0)) }
        let first = try ListingPage(limit: 10).apply(to: all)
        XCTAssertEqual(first.map(\.name), (0..<10).map { String(format: "f%03d", $0) })
        let second = try ListingPage(after: first.last?.name, limit: 10).apply(to: all)
        XCTAssertEqual(second.first?.name, "f010")
        let last = try ListingPage(after: "f019", limit: 10).apply(to: all)
        XCTAssertEqual(last.count, 5)
        XCTAssertEqual(try ListingPage(after: "f024").apply(to: all), [])
        XCTAssertEqual(try ListingPage().apply(to: all).count, 25, "the default limit is 10000")
        XCTAssertThrowsError(try ListingPage(limit: 0).validate())
        XCTAssertThrowsError(try ListingPage(limit: 10_001).validate())
        // Long link targets: a page over 16 MiB is refused, a smaller one passes.
        let long = (0..<5000).map { Self.entry(String(format: "l%05d", $0), target: String(repeating: "t", count: 4000)) }
        XCTAssertThrowsError(try ListingPage().apply(to: long)) { error in
            XCTAssertEqual((error as? ControllerError)?.kind, "LimitsExceeded")
            XCTAssertTrue("\(error)".contains("ask for fewer with the limit option"), "\(error)")
        }
        XCTAssertEqual(try ListingPage(limit: 1000).apply(to: long).count, 1000)
    }

    func testNICsPerDefineAreBounded() throws {
        let topology = VMTopology(VMConfig())
        XCTAssertNoThrow(try topology.sources(role: .app, profileNetworks: nil, requested: Array(repeating: "multiverse", count: 16)))
        XCTAssertThrowsError(try topology.sources(role: .app, profileNetworks: nil, requested: Array(repeating: "multiverse", count: 100_000))) { error in
            XCTAssertEqual((error as? ControllerError)?.kind, "LimitsExceeded")
            XCTAssertTrue("\(error)".contains("100000 NICs given; a VM has at most 16"), "\(error)")
        }
    }
}

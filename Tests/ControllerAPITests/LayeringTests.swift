import Foundation
import XCTest

/// The layers as the house rules draw them, checked on the sources: SwiftPM lets a target
/// import any module its dependencies depend on (`--explicit-target-dependency-import-check`
/// passes a transitive `import Guestfs` in ControllerBus: tried), so the imports are
/// compared with an allow-list here.
final class LayeringTests: XCTestCase {
    /// Every `import X` (also `@testable`, `@_implementationOnly`, `import struct X.Y`) of
    /// the Swift files below `Sources/<target>`.
    func imports(of target: String) throws -> [String: Set<String>] {
        let dir = DeclarationTests.repo.appendingPathComponent("Sources/\(target)")
        let files = try XCTUnwrap(FileManager.default.enumerator(atPath: dir.path)).compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }
        XCTAssertFalse(files.isEmpty, "no sources in \(dir.path)")
        var result: [String: Set<String>] = [:]
        let pattern = try NSRegularExpression(pattern: #"^\s*(?:@\w+\s+)*import\s+(?:(?:struct|class|enum|protocol|func|var|let|typealias)\s+)?([A-Za-z_][A-Za-z0-9_]*)"#, options: .anchorsMatchLines)
        for file in files {
            let text = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
            for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                if let r = Range(match.range(at: 1), in: text) { result[String(text[r]), default: []].insert(file) }
            }
        }
        return result
    }

    func testBusLayerReachesNoLibraryDirectly() throws {
        let allowed: Set<String> = ["ControllerAPI", "ControllerCore", "SDBus", "Logging", "Synchronization", "FoundationEssentials", "Glibc"]
        let found = try imports(of: "ControllerBus")
        XCTAssertTrue(found.keys.contains("ControllerCore"), "the check reads no imports: \(found)")
        for (module, files) in found where !allowed.contains(module) {
            XCTFail("ControllerBus imports \(module) in \(files.sorted().joined(separator: ", ")); it may use \(allowed.sorted().joined(separator: ", "))")
        }
    }

    func testCoreNeverImportsTheBusOrItsAPI() throws {
        let found = try imports(of: "ControllerCore")
        XCTAssertTrue(found.keys.contains("Libvirt"), "the check reads no imports: \(found)")
        for module in ["SDBus", "CSystemd", "ControllerAPI", "ControllerBus"] where found[module] != nil {
            XCTFail("ControllerCore imports \(module) in \(found[module]!.sorted().joined(separator: ", ")): data flows down, Core knows no bus")
        }
    }

    /// Core keeps the rules: the C libraries and the system calls are wrapped once, in
    /// HostSystem (files, syncs, digests, XML, inotify, sockets, child processes) or in the
    /// library modules (Libvirt, Guestfs, Polkit), and Core imports none of them directly.
    func testCoreImportsNoCAndNoSystemCalls() throws {
        let core = try imports(of: "ControllerCore")
        XCTAssertNotNil(core["HostSystem"], "the check reads no imports: \(core)")
        for module in ["Glibc", "CLinux", "CCrypto", "CLibxml2", "CLibvirt", "CGuestfs", "Subprocess", "SystemPackage", "Dispatch"] {
            if let files = core[module] {
                XCTFail("ControllerCore imports \(module) in \(files.sorted().joined(separator: ", ")); the call belongs in HostSystem")
            }
        }
        let allowed: Set<String> = ["Glibc", "CLinux", "CCrypto", "CLibxml2", "BlockingThreads", "Subprocess", "SystemPackage",
                                    "FoundationEssentials", "Synchronization", "Dispatch"]
        for (module, files) in try imports(of: "HostSystem") where !allowed.contains(module) {
            XCTFail("HostSystem imports \(module) in \(files.sorted().joined(separator: ", ")); it wraps the system and knows no service")
        }
    }

    /// The readiness module (protocol, budgets, channels, records) is rules on a guest's
    /// lines; its sockets and files are HostSystem's, and Core uses it for the VM cache.
    func testTheReadinessModuleReachesTheSystemThroughHostSystem() throws {
        let allowed: Set<String> = ["HostSystem", "BlockingThreads", "Logging", "FoundationEssentials", "Synchronization"]
        let found = try imports(of: "Readiness")
        XCTAssertNotNil(found["HostSystem"], "the check reads no imports: \(found)")
        for (module, files) in found where !allowed.contains(module) {
            XCTFail("Readiness imports \(module) in \(files.sorted().joined(separator: ", ")); it may use \(allowed.sorted().joined(separator: ", "))")
        }
        XCTAssertNotNil(try imports(of: "ControllerCore")["Readiness"])
    }

    /// The host settings are a module on HostSystem: what each setting is and how it is
    /// read and made to hold; the agent (jobs, watching, enforcement, requests) is Core's.
    func testTheHostSettingsModuleKnowsNoServiceAndNoC() throws {
        let allowed: Set<String> = ["HostSystem", "Logging", "FoundationEssentials", "Synchronization"]
        let found = try imports(of: "HostSettings")
        XCTAssertNotNil(found["HostSystem"], "the check reads no imports: \(found)")
        for (module, files) in found where !allowed.contains(module) {
            XCTFail("HostSettings imports \(module) in \(files.sorted().joined(separator: ", ")); it may use \(allowed.sorted().joined(separator: ", "))")
        }
        XCTAssertNotNil(try imports(of: "ControllerCore")["HostSettings"])
    }

    /// The TOML reader is a module of its own that reaches nothing: no Foundation, no C, no
    /// file (Core reads the file and hands it the text), and Core reads configuration
    /// through it only.
    func testTheTOMLReaderStandsAlone() throws {
        let found = try imports(of: "TOML")
        XCTAssertTrue(found.isEmpty, "TOML imports \(found.keys.sorted().joined(separator: ", "))")
        let core = try imports(of: "ControllerCore")
        XCTAssertEqual(core["TOML"], ["Config/ConfigReader.swift"], "Core's imports of TOML")
    }

    /// Only the D-Bus layers link libsystemd: naming a thread or copying a file does not.
    func testOnlyTheBusLayersImportCSystemd() throws {
        for target in ["BlockingThreads", "Libvirt", "Polkit", "Guestfs", "ControllerCore", "ControllerBus", "ControllerAPI", "multiverse-controllerd"] {
            if let files = try imports(of: target)["CSystemd"] {
                XCTFail("\(target) imports CSystemd in \(files.sorted().joined(separator: ", ")); libc gaps are in CLinux")
            }
        }
    }

    func testAPIDependsOnSDBusOnly() throws {
        let found = try imports(of: "ControllerAPI")
        for (module, files) in found where !["SDBus", "FoundationEssentials", "Glibc"].contains(module) {
            XCTFail("ControllerAPI imports \(module) in \(files.sorted().joined(separator: ", "))")
        }
    }

    /// The daemon links no ICU: full Foundation (`Foundation`, its
    /// `FoundationInternationalization`) carries ICU's code and 30 MB of its data into the
    /// static binary and touches them at run time; FoundationEssentials has what the daemon
    /// needs. mvctl, a short-lived command, may use Foundation. (The release stage of
    /// scripts/test also checks the linked binary for Foundation and ICU symbols.)
    func testDaemonTargetsImportFoundationEssentialsOnly() throws {
        let daemonTargets = ["SDBus", "ControllerAPI", "BlockingThreads", "Libvirt", "Polkit", "Guestfs", "multiverse-guestfs", "TOML", "HostSystem", "HostSettings", "Readiness",
                             "ControllerCore", "ControllerBus", "multiverse-controllerd"]
        var essentials = 0
        for target in daemonTargets {
            let found = try imports(of: target)
            essentials += found["FoundationEssentials"]?.count ?? 0
            for module in ["Foundation", "FoundationInternationalization", "FoundationNetworking", "FoundationXML"] {
                if let files = found[module] {
                    XCTFail("\(target) imports \(module) in \(files.sorted().joined(separator: ", ")): the daemon uses FoundationEssentials only")
                }
            }
        }
        XCTAssertGreaterThan(essentials, 10, "the check reads no imports")
    }
}

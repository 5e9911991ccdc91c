import ControllerAPI
import ControllerCore
import Foundation
import XCTest

/// The declarations are the one source of the API's names, documentation and polkit
/// actions: these tests fail when the policy file, the checked-in reference or the
/// introspection disagree with them.
final class DeclarationTests: XCTestCase {
    static let repo: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }()

    /// The action ids `polkit/org.multiverse.controller.policy` declares.
    func policyFileActions() throws -> [String] {
        let xml = try String(contentsOf: Self.repo.appendingPathComponent("polkit/org.multiverse.controller.policy"), encoding: .utf8)
        let regex = try NSRegularExpression(pattern: #"<action id="([^"]+)">"#)
        return regex.matches(in: xml, range: NSRange(xml.startIndex..., in: xml)).compactMap {
            Range($0.range(at: 1), in: xml).map { String(xml[$0]) }
        }
    }

    func testPolicyFileDeclaresExactlyTheActions() throws {
        XCTAssertEqual(try policyFileActions().sorted(), PolkitAction.allCases.map(\.rawValue).sorted())
    }

    func testEveryActionGuardsAMethod() {
        for action in PolkitAction.allCases {
            XCTAssertFalse(APIReference.methods(guardedBy: action).isEmpty, "\(action.rawValue) guards no method")
        }
    }

    func testEveryMemberIsDocumented() {
        XCTAssertEqual(APIReference.undocumented(), [])
    }

    func testDeclarationsAreValidAndUnique() throws {
        XCTAssertEqual(Set(ControllerInterfaces.all.map(\.name)).count, ControllerInterfaces.all.count)
        for interface in ControllerInterfaces.all {
            try interface.dbus.validate()
            XCTAssertTrue(interface.name.hasPrefix(ControllerNames.interfacePrefix), interface.name)
            // Methods and signals share the message's member field; properties have their own
            // names (Get/Set), so a property may share one with a signal (VM: Ready b and Ready()).
            let members = interface.methods.map(\.name) + interface.signals.map(\.name)
            XCTAssertEqual(Set(members).count, members.count, "\(interface.name) declares a method or signal twice")
            let properties = interface.properties.map(\.name)
            XCTAssertEqual(Set(properties).count, properties.count, "\(interface.name) declares a property twice")
            XCTAssertTrue(Set(properties).isDisjoint(with: interface.methods.map(\.name)), "\(interface.name): a property named as a method")
            for method in interface.methods {
                XCTAssertEqual(method.dbus.inputs.last?.signature, "a{sv}", "\(interface.shortName).\(method.name) must end with a{sv}")
            }
        }
    }

    /// The checked-in page is what the declarations generate (`scripts/update-introspection`).
    func testCheckedInReferenceIsCurrent() throws {
        let page = try String(contentsOf: Self.repo.appendingPathComponent("man/org.multiverse.Controller.5"), encoding: .utf8)
        let allowlist = DomainAllowlist.documentation
        XCTAssertEqual(page, APIReference.manPage(appendix: [APIConcepts.Section(title: allowlist.title, paragraphs: allowlist.paragraphs)]),
                       "man/org.multiverse.Controller.5 is stale: run scripts/update-introspection")
        XCTAssertTrue(page.contains("/domain/devices/serial: type (pty); repeats"), "the allowlist is not in the page")
        for action in PolkitAction.allCases {
            XCTAssertTrue(page.contains(action.rawValue.replacingOccurrences(of: "-", with: "\\-")), "\(action.rawValue) missing from the page")
        }
    }

    /// Each method's polkit action appears in the reference next to the method.
    func testReferenceNamesEachMethodsAction() {
        let page = APIReference.manPage()
        for interface in ControllerInterfaces.all {
            let section = page.components(separatedBy: ".SH \"\(interface.name)\"").dropFirst().first?
                .components(separatedBy: ".SH ").first ?? ""
            for method in interface.methods {
                guard let action = method.action else { continue }
                let entry = section.components(separatedBy: "\\fB\(method.name)\\fR(").dropFirst().first?
                    .components(separatedBy: ".TP").first ?? ""
                XCTAssertTrue(entry.contains(action.rawValue.replacingOccurrences(of: "-", with: "\\-")),
                              "\(interface.shortName).\(method.name): \(action.rawValue) not in its reference entry")
            }
        }
    }

    func testJobPathRoundTrip() {
        XCTAssertEqual(ObjectPaths.jobID(ObjectPaths.job(42)), 42)
        XCTAssertNil(ObjectPaths.jobID(ObjectPaths.disk("x")))
    }
}

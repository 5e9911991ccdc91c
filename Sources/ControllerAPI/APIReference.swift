import FoundationEssentials
import Glibc
import SDBus

/// The API reference, `org.multiverse.Controller(5)`: generated from the same interface
/// declarations that build the vtables, plus one line of documentation and the polkit
/// action for every member. A member without documentation is a test failure, and the
/// checked-in page must equal what this generates, so the page cannot drift.
public enum APIReference {
    /// Members of the declarations with an empty documentation line (must be none).
    public static func undocumented() -> [String] {
        ControllerInterfaces.all.flatMap { (i: APIInterface) -> [String] in
            var members: [(name: String, doc: String)] = i.methods.map { ($0.name, $0.doc) }
            members += i.properties.map { ($0.name, $0.doc) }
            members += i.signals.map { ($0.name, $0.doc) }
            return members.filter { $0.doc.allSatisfy(\.isWhitespace) }.map { "\(i.shortName).\($0.name)" }
        }
    }

    /// Every method guarded by `action`, as `Interface.Method`, sorted.
    public static func methods(guardedBy action: PolkitAction) -> [String] {
        ControllerInterfaces.all.flatMap { i in i.methods.filter { $0.action == action }.map { "\(i.shortName).\($0.name)" } }.sorted()
    }

    static func roff(_ text: String) -> String {
        text.replacing("\\", with: "\\e").replacing("-", with: "\\-")
    }

    /// A member's documentation as man page lines: paragraphs (separated by a blank line in
    /// the declaration) after the first become indented paragraphs of the same entry, and a
    /// line starting with `.` or `'` is escaped so roff does not read it as a request.
    static func paragraphs(_ doc: String, appendingToFirst suffix: String = "") -> [String] {
        var lines: [String] = []
        for (index, paragraph) in doc.split(separator: "\n\n", omittingEmptySubsequences: true).enumerated() {
            var text = roff(paragraph.split(separator: "\n").joined(separator: " "))
            if text.hasPrefix(".") || text.hasPrefix("'") { text = "\\&" + text }
            if index > 0 { lines.append(".IP") }
            lines.append(index == 0 ? text + suffix : text)
        }
        if lines.isEmpty { lines.append(String(suffix.drop { $0 == " " })) }
        return lines
    }

    /// The man page `org.multiverse.Controller(5)`; `appendix`: sections of the reference
    /// that the service's rules produce (the daemon passes ControllerCore's domain XML
    /// allowlist), placed after the interfaces.
    public static func manPage(appendix: [APIConcepts.Section] = []) -> String {
        var out: [String] = [
            ".TH ORG.MULTIVERSE.CONTROLLER 5 \"\" \"multiverse-controller \(ControllerVersion.version)\" \"D-Bus interfaces\"",
            // No hyphenation: object paths, names and busctl lines are copied from this page.
            ".nh",
            ".SH NAME",
            "org.multiverse.Controller \\- the Multiverse controller service's D\\-Bus API (version \(ControllerVersion.apiVersion))",
            ".SH INTRODUCTION",
            """
                The service owns \\fBorg.multiverse.Controller\\fR on the system bus. The root object \
                \\fB/org/multiverse/Controller\\fR implements \\fBorg.freedesktop.DBus.ObjectManager\\fR; VMs, disks, jobs and \
                the settings object are its children. Every method ends with an \\fBa{sv}\\fR options argument; unknown keys \
                or wrongly typed values are \\fBInvalidArgs\\fR. Privileged methods are authorized by polkit with the caller's \
                unique bus name as subject; reading needs no authorization.
                """,
        ]
        for section in APIConcepts.sections {
            out.append(".SH \"\(section.title.uppercased())\"")
            for (index, paragraph) in section.paragraphs.enumerated() {
                if index > 0 { out.append(".PP") }
                if paragraph.hasPrefix("busctl ") || paragraph.hasPrefix("mvctl ") {
                    // A command line to copy: as typed, not filled or justified.
                    out += [".nf", ".RS 4", roff(paragraph), ".RE", ".fi"]
                } else {
                    out += paragraphs(paragraph)
                }
            }
        }
        for interface in ControllerInterfaces.all {
            out.append(".SH \"\(interface.name)\"")
            if !interface.methods.isEmpty {
                out.append(".SS Methods")
                for m in interface.methods {
                    let d = m.dbus
                    let args = d.inputs.map { "in \($0.signature) \($0.name)" } + d.outputs.map { "out \($0.signature) \($0.name)" }
                    out.append(".TP")
                    out.append("\\fB\(m.name)\\fR(\(roff(args.joined(separator: ", "))))")
                    let action = m.action.map { " Polkit action: \\fB\(roff($0.rawValue))\\fR." } ?? ""
                    // The action goes with the first paragraph, where readers look for it.
                    out += paragraphs(m.doc, appendingToFirst: action)
                    if m.action != nil, let details = PolkitDetails.of(interface.shortName, m.name) {
                        out += [".IP", roff(PolkitDetails.line(details))]
                    }
                }
            }
            if !interface.properties.isEmpty {
                out.append(".SS Properties")
                for p in interface.properties {
                    let d = p.dbus
                    let change: String
                    switch d.change {
                    case .const: change = "constant"
                    case .emitsChange: change = "emits PropertiesChanged"
                    case .emitsInvalidation: change = "emits PropertiesChanged without the value"
                    case .none: change = "changes without signal"
                    }
                    out.append(".TP")
                    out.append("\\fB\(p.name)\\fR \(roff(d.signature)) (\(change)\(d.writable ? ", writable" : ""))")
                    out += paragraphs(p.doc)
                }
            }
            if !interface.signals.isEmpty {
                out.append(".SS Signals")
                for s in interface.signals {
                    out.append(".TP")
                    out.append("\\fB\(s.name)\\fR(\(roff(s.dbus.arguments.map { "\($0.signature) \($0.name)" }.joined(separator: ", "))))")
                    out += paragraphs(s.doc)
                }
            }
        }
        for section in appendix {
            out.append(".SH \"\(section.title.uppercased())\"")
            for (index, paragraph) in section.paragraphs.enumerated() {
                if index > 0 { out.append(".PP") }
                out += paragraphs(paragraph)
            }
        }
        out += [
            ".SH ERRORS",
            """
                Standard: \\fBorg.freedesktop.DBus.Error.InvalidArgs\\fR (the message names the bad value), \
                \\fBAccessDenied\\fR, \\fBInteractiveAuthorizationRequired\\fR, \\fBLimitsExceeded\\fR. Own, under \
                \\fB\(roff(ControllerNames.errorPrefix))\\fR: \
                \(ErrorName.allCases.filter(\.isOwn).map(\.shortName).joined(separator: ", ")).
                """,
            ".SH POLKIT ACTIONS",
        ]
        for action in PolkitAction.allCases {
            out.append(".TP")
            out.append("\\fB\(roff(action.rawValue))\\fR")
            let guarded = methods(guardedBy: action)
            out.append(roff(guarded.joined(separator: ", ")))
            out.append(".br")
            out.append(roff("Host reach: " + action.hostReach))
        }
        out += [".SH SEE ALSO", "\\fBmultiverse\\-controllerd\\fR(8), \\fBmvctl\\fR(1), \\fBbusctl\\fR(1), \\fBpolkit\\fR(8)"]
        return out.joined(separator: "\n") + "\n"
    }
}

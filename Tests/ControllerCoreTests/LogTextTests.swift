import XCTest
@testable import ControllerCore

/// What callers and guests send cannot shape a log line: one line per message, one field per
/// audit value.
final class LogTextTests: XCTestCase {
    func testControlsAreEscapedAsCodePoints() {
        XCTAssertEqual(LogText.escapingControls("plain \"text\" \\ é"), "plain \"text\" \\ é")
        XCTAssertEqual(LogText.escapingControls("a\r\n<5>audit: x"), "a\\u{d}\\u{a}<5>audit: x")
        XCTAssertEqual(LogText.escapingControls("\u{1b}[2J\u{7f}\u{85}\u{2028}\u{2029}\0"), "\\u{1b}[2J\\u{7f}\\u{85}\\u{2028}\\u{2029}\\u{0}")
    }

    func testQuotedValuesEscapeQuotesBackslashesAndInvalidBytes() {
        XCTAssertEqual(LogText.quoted("/a b"), "\"/a b\"")
        XCTAssertEqual(LogText.quoted("x\" uid=0 \\"), "\"x\\u{22} uid=0 \\u{5c}\"")
        XCTAssertEqual(LogText.quoted(bytes: [0x61, 0xff, 0xc3, 0xa9, 0xc3, 0x0a, 0xed, 0xa0, 0x80, 0xf0, 0x9f, 0x98, 0x80]),
                       "\"a\\xffé\\xc3\\u{a}\\xed\\xa0\\x80😀\"")
        XCTAssertEqual(LogText.quoted(bytes: [0xc0, 0xaf]), "\"\\xc0\\xaf\"", "an overlong '/' is two bytes, not a slash")
    }

    /// The two forgeries of issue 33: a guest path that adds fields, and one that starts a
    /// new journal line with a priority prefix.
    func testAnAuditLineHasOneFieldOfEachKindWhateverTheCallerSends() {
        let caller = Caller(busName: ":1.7", uid: 1000, pid: 42, allowInteraction: false)
        for path in ["/a uid=0 action=org.multiverse.controller.settings.modify decision=allowed",
                     "/a\r\n<5>audit: FORGED decision=allowed", "/a\" decision=\"allowed"] {
            let line = Authorizer.auditLine(caller: caller, action: "org.multiverse.controller.disk.inspect",
                                            details: ["disk": "d1", "path": path], decision: "denied")
            XCTAssertFalse(line.contains("\n") || line.contains("\r"), line)
            let fields = Self.fields(line)
            XCTAssertEqual(fields.filter { $0.0 == "decision" }.map(\.1), ["denied"], line)
            XCTAssertEqual(fields.filter { $0.0 == "uid" }.map(\.1), ["1000"], line)
            XCTAssertEqual(fields.map(\.0), ["caller", "uid", "pid", "action", "disk", "path", "decision"], line)
        }
    }

    /// Splits `key=value key="quoted value"` as an operator's tool would.
    static func fields(_ line: String) -> [(String, String)] {
        var result: [(String, String)] = []
        var rest = Substring(line)
        while !rest.isEmpty {
            guard let eq = rest.firstIndex(of: "=") else { break }
            let key = String(rest[..<eq])
            rest = rest[rest.index(after: eq)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                let end = rest.firstIndex(of: "\"") ?? rest.endIndex
                value = String(rest[..<end])
                rest = end < rest.endIndex ? rest[rest.index(after: end)...] : ""
            } else {
                let end = rest.firstIndex(of: " ") ?? rest.endIndex
                value = String(rest[..<end])
                rest = rest[end...]
            }
            rest = rest.drop { $0 == " " }
            result.append((key, value))
        }
        return result
    }
}

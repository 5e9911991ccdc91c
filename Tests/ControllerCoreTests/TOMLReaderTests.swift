@testable import ControllerCore
@testable import TOML
import Foundation
import XCTest

/// The service's own TOML reader, judged against Python's `tomllib` (the standard library's
/// TOML 1.0 parser, /usr/bin/python3 ≥ 3.11): every document here must read to the same
/// values in both, and every broken one must be refused by both.
final class TOMLReaderTests: XCTestCase {
    /// Documents both parsers accept; the values must agree.
    static let valid: [String] = [
        "",
        "# only a comment\n\n",
        "a = 1\nb = -17\nc = +3\nd = 1_000_000\ne = 0x7fff_ffff\nf = 0o755\ng = 0b1010\nh = 0\n",
        "x = 1.5\ny = -0.25\nz = 6.02e23\nw = 1E-3\nv = 3_141.5_9\nu = inf\nt = -inf\n",
        "t = true\nf = false\n",
        #"s = "plain"\#nq = "tab\there, quote \" backslash \\ newline\n unicode \u00e9 \U0001F600"\#n"#,
        "l = 'C:\\no\\escapes here'\n",
        "m = \"\"\"\nfirst line\nsecond \\\n    joined\"\"\"\n",
        "m = '''\nraw \\n stays\n'''\n",
        "q = \"\"\"quotes at the end\"\"\"\"\"\n",
        "[daemon]\nimage_dir = \"/srv/images\" # a comment after the value\n\n[polkit]\nworkers = 2\n",
        "[a.b]\nc = 1\n[a]\nd = 2\n",
        "[ spaced . name ]\nk = 1\n",
        "\"quoted key\" = 1\n'literal key' = 2\nbare-key_9 = 3\n",
        "dotted.key.here = \"v\"\ndotted.other = 1\n",
        "arr = [\n  \"one\", # first\n  \"two\",\n\n  # between\n  \"three\",\n]\n",
        "nested = [[1, 2], [\"a\"], []]\nmixed = [1, \"two\", 3.0, true]\n",
        "inline = { x = 1, y = \"two\", z.w = [3] }\nempty = {}\n",
        "[settings]\ngroups = [\"kvm\", \"libvirt\"]\ninitramfs_update_command = [\"/usr/sbin/update-initramfs\", \"-u\"]\n",
        "crlf = 1\r\nnext = 2\r\n",
        "unicode = \"Grüße\"\n",
    ]

    /// Documents both parsers refuse; ours must name the line.
    static let invalid: [(text: String, line: Int)] = [
        ("[daemon\n", 1),
        ("a = 1\na = 2\n", 2),
        ("[t]\n[t]\n", 2),
        ("a = \"unterminated\n", 1),
        ("a = 'unterminated\n", 1),
        ("a =\n", 1),
        ("= 1\n", 1),
        ("a = bare\n", 1),
        ("a = 1 2\n", 1),
        ("a = [1, 2\nb = 3\n", 2),
        ("a = 0123\n", 1),
        ("a = 1__0\n", 1),
        ("a = _1\n", 1),
        ("a = 1.\n", 1),
        ("a = .5\n", 1),
        ("a = \"bad \\q escape\"\n", 1),
        ("a = 1\na.b = 2\n", 2),
        ("x = 1\n\n\n[x]\n", 4),
        ("a = \"\"\"never closed\n\n", 1),
        ("a = { b = 1, b = 2 }\n", 1),
        ("a = {\n}\n", 1),
    ]

    func testValidDocumentsReadLikeTomllib() throws {
        for text in Self.valid {
            let ours: String
            do { ours = Self.render(.table(try TOMLReader.parse(text))) } catch {
                XCTFail("refused \(text.debugDescription): line \(error.line): \(error.message)")
                continue
            }
            XCTAssertEqual(ours, try Self.tomllib(text), text.debugDescription)
        }
    }

    func testInvalidDocumentsAreRefusedWithTheirLine() throws {
        for (text, line) in Self.invalid {
            XCTAssertEqual(try Self.tomllib(text), "ERROR", "tomllib accepts \(text.debugDescription): the case is wrong")
            do {
                let table = try TOMLReader.parse(text)
                XCTFail("accepted \(text.debugDescription) as \(Self.render(.table(table)))")
            } catch {
                XCTAssertEqual(error.line, line, "\(text.debugDescription): \(error.message)")
                XCTAssertFalse(error.message.isEmpty)
            }
        }
    }

    /// Dates, times and arrays of tables are valid TOML (tomllib reads them) but no file of
    /// the service uses them: refused with a message that names the feature.
    func testUnusedFeaturesAreRefusedByName() throws {
        for (text, feature) in [("when = 2026-12-02T01:00:00Z\n", "dates and times are not supported"),
                                ("[[tables]]\nx = 1\n", "arrays of tables ([[...]]) are not supported")] {
            XCTAssertNotEqual(try Self.tomllib(text), "ERROR", text)
            XCTAssertThrowsError(try TOMLReader.parse(text), text) { error in
                XCTAssertTrue("\(error)".contains(feature), "\(error)")
            }
        }
    }

    func testKeysKeepTheirLines() throws {
        let root = try TOMLReader.parse("# head\n[daemon]\n\nlog_level = \"debug\"\n\n[vms]\nshare_roots = [\n  \"/a\",\n]\n")
        let daemon = try XCTUnwrap(root["daemon"]?.table)
        XCTAssertEqual(root.line(of: "daemon"), 2)
        XCTAssertEqual(daemon.line(of: "log_level"), 4)
        XCTAssertEqual(root["vms"]?.table?.line(of: "share_roots"), 7)
        XCTAssertEqual(root.keys, ["daemon", "vms"])
    }

    /// A canonical text of a value that Python renders the same way (see `tomllib(_:)`).
    static func render(_ value: TOMLValue) -> String {
        switch value {
        case .string(let s): return "s" + s.unicodeScalars.map { String($0.value) }.joined(separator: ",") + ";"
        case .integer(let i): return "i\(i)"
        case .float(let d): return d.isInfinite ? (d < 0 ? "f-inf" : "finf") : "f\(d)"
        case .boolean(let b): return b ? "T" : "F"
        case .array(let a): return "[" + a.map(render).joined(separator: " ") + "]"
        case .table(let t): return "{" + t.keys.sorted().map { "s" + $0.unicodeScalars.map { String($0.value) }.joined(separator: ",") + ";=" + render(t[$0]!) }.joined(separator: " ") + "}"
        }
    }

    /// `text` read by Python's tomllib and rendered as `render(_:)` does, or "ERROR".
    static func tomllib(_ text: String) throws -> String {
        let script = """
            import sys, tomllib, math
            def r(v):
                if isinstance(v, bool): return "T" if v else "F"
                if isinstance(v, str): return "s" + ",".join(str(ord(c)) for c in v) + ";"
                if isinstance(v, int): return "i%d" % v
                if isinstance(v, float):
                    if math.isinf(v): return "f-inf" if v < 0 else "finf"
                    return "f" + repr(v)
                if isinstance(v, list): return "[" + " ".join(r(x) for x in v) + "]"
                if isinstance(v, dict): return "{" + " ".join(r(k) + "=" + r(v[k]) for k in sorted(v)) + "}"
                return "?" + type(v).__name__
            try:
                print(r(tomllib.loads(sys.stdin.buffer.read().decode())), end="")
            except tomllib.TOMLDecodeError:
                print("ERROR", end="")
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-I", "-c", script]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "python3 failed on \(text.debugDescription)")
        return String(decoding: data, as: UTF8.self)
    }
}

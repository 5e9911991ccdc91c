import Foundation

/// Text for a terminal: what a guest controls (file names, symlink targets, GuestStatus,
/// inspection results, error messages that quote them) is printed with control characters
/// and display tricks shown as code points, so it cannot move the cursor, recolour, retitle
/// or hide what follows. `--json` output is exact (JSON escapes control characters itself).
enum TerminalText {
    /// `text` with every C0 and C1 control character (ESC, CSI, BEL, CR, LF, TAB, ...), DEL
    /// and every bidirectional override or isolate written as `\u{X}`. Idempotent: the
    /// escapes are plain characters, so escaping twice changes nothing more (a backslash is
    /// not escaped; `--json` tells a literal `\u{1b}` from an ESC).
    static func escape(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if needsEscape(scalar) {
                out.append(contentsOf: "\\u{\(String(scalar.value, radix: 16))}".unicodeScalars)
            } else {
                out.append(scalar)
            }
        }
        return String(out)
    }

    static func needsEscape(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x00...0x1F, 0x7F...0x9F: return true
        case 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069, 0x061C: return true   // bidi marks, overrides, isolates
        default: return false
        }
    }

    /// Bytes of a guest file for a terminal: tab and newline kept, other control bytes and
    /// invalid UTF-8 shown escaped (`\u{1b}`, `\xNN`).
    static func escapeContent(_ bytes: [UInt8]) -> String {
        var out = ""
        var text = String(decoding: bytes, as: UTF8.self)
        if Array(text.utf8) != bytes {
            // Invalid UTF-8: show each byte that is not part of valid text as \xNN.
            text = bytes.map { $0 < 0x80 ? String(UnicodeScalar($0)) : String(format: "\\x%02x", $0) }.joined()
        }
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            out += line.split(separator: "\t", omittingEmptySubsequences: false).map { escape(String($0)) }.joined(separator: "\t") + "\n"
        }
        return String(out.dropLast())
    }
}

/// Every line mvctl prints for people goes through here: this shadows the standard library's
/// `print` in the whole module, so no call site can forget to escape guest text.
func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {
    Swift.print(TerminalText.escape(items.map { "\($0)" }.joined(separator: separator)), terminator: terminator)
}

/// A line on standard error, escaped like ``print(_:separator:terminator:)``.
func printError(_ line: String) {
    FileHandle.standardError.write(Data((TerminalText.escape(line) + "\n").utf8))
}

/// Text from callers and guests made safe for a log line: one message is one line whatever
/// it carries, and no value can forge a field, a priority prefix or a terminal escape.
///
/// Escapes are written as code points, `\u{1b}` (control characters: C0, DEL, C1 and the
/// Unicode line and paragraph separators U+2028/U+2029), and bytes that are not UTF-8 as
/// `\xff`. ``quoted(_:)`` also escapes `"` and `\`, so a quoted value ends at the first bare
/// `"` and a reader can split an audit line on its fields without ambiguity.
public enum LogText {
    /// `text` with its control characters escaped (quotes and backslashes left as they are):
    /// what the log handler writes for every message, so nothing in it starts a new line.
    public static func escapingControls(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            if isControl(scalar) { out += codePoint(scalar) } else { out.unicodeScalars.append(scalar) }
        }
        return out
    }

    /// `text` between double quotes with control characters, `"` and `\` escaped: an audit
    /// value.
    public static func quoted(_ text: String) -> String { quoted(bytes: text.utf8) }

    /// Bytes a guest wrote (a file name, a channel line), decoded as UTF-8 where they are,
    /// each byte that does not start a well-formed sequence as `\xNN`, then quoted as
    /// ``quoted(_:)``.
    public static func quoted(bytes: some Collection<UInt8>) -> String {
        let b = Array(bytes)
        var out = "\""
        var i = 0
        while i < b.count {
            if let (scalar, length) = scalar(in: b, at: i) {
                if isControl(scalar) || scalar == "\"" || scalar == "\\" { out += codePoint(scalar) } else { out.unicodeScalars.append(scalar) }
                i += length
            } else {
                out += "\\x" + hex2(b[i])
                i += 1
            }
        }
        return out + "\""
    }

    /// The well-formed UTF-8 sequence at `i` (no overlong forms, surrogates or values
    /// past U+10FFFF) and its length.
    static func scalar(in b: [UInt8], at i: Int) -> (Unicode.Scalar, Int)? {
        let lead = b[i]
        let (length, initial, minimum): (Int, UInt32, UInt32)
        switch lead {
        case 0x00...0x7F: return (Unicode.Scalar(lead), 1)
        case 0xC2...0xDF: (length, initial, minimum) = (2, UInt32(lead & 0x1F), 0x80)
        case 0xE0...0xEF: (length, initial, minimum) = (3, UInt32(lead & 0x0F), 0x800)
        case 0xF0...0xF4: (length, initial, minimum) = (4, UInt32(lead & 0x07), 0x10000)
        default: return nil
        }
        guard i + length <= b.count else { return nil }
        var value = initial
        for k in 1..<length {
            let c = b[i + k]
            guard c & 0xC0 == 0x80 else { return nil }
            value = value << 6 | UInt32(c & 0x3F)
        }
        guard value >= minimum, let scalar = Unicode.Scalar(value) else { return nil }
        return (scalar, length)
    }

    /// Whether `scalar` may never appear raw in a log line.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        return v < 0x20 || (0x7F...0x9F).contains(v) || v == 0x2028 || v == 0x2029
    }

    /// `\u{a}`: the form ``CallerText/quoted(_:)`` writes in error messages too.
    static func codePoint(_ scalar: Unicode.Scalar) -> String { "\\u{\(TextFormat.hex(scalar.value))}" }

    static func hex2(_ byte: UInt8) -> String { (byte < 16 ? "0" : "") + TextFormat.hex(byte) }
}

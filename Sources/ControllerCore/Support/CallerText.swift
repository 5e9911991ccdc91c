/// Text a caller or a guest sent, made safe to put in an error message or a log line.
public enum CallerText {
    /// A printable rendering of `value` in quotes: control and non-ASCII characters
    /// escaped (`\u{1b}`), quotes and backslashes too, values over 80 characters cut
    /// (with their length in bytes).
    public static func quoted(_ value: String) -> String {
        var out = "'"
        for scalar in value.unicodeScalars.prefix(80) {
            switch scalar.value {
            case 0x20..<0x7f where scalar != "'" && scalar != "\\": out.unicodeScalars.append(scalar)
            default: out += "\\u{\(TextFormat.hex(scalar.value))}"
            }
        }
        if value.unicodeScalars.count > 80 { out += "…(\(value.utf8.count) bytes)" }
        return out + "'"
    }
}

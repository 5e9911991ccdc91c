/// Rules for managed disk names: 1–64 of `[A-Za-z0-9._-]`, not starting with `.` or `-`.
/// A disk NAME is the regular file `ImageDirectory/NAME`, so these rules are also what keeps
/// callers inside the image directory.
public enum DiskName {
    public static let maxLength = 64

    /// True when `name` is a valid managed disk name.
    public static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...maxLength).contains(bytes.count), bytes.count == name.unicodeScalars.count else { return false }
        guard bytes[0] != UInt8(ascii: "."), bytes[0] != UInt8(ascii: "-") else { return false }
        return bytes.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
                || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
        }
    }

    /// Throws `InvalidArgs` naming the value when `name` is not valid.
    public static func validate(_ name: String) throws {
        guard isValid(name) else {
            throw ControllerError.invalidArgs(
                "invalid disk name \(quoted(name)): use 1-\(maxLength) characters of A-Z a-z 0-9 . _ -, not starting with '.' or '-'")
        }
    }

    /// A printable rendering of a caller's string: control and non-ASCII characters escaped, long values cut.
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

import FoundationEssentials
import Glibc

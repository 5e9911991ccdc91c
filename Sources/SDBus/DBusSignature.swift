/// Parsing and checking of D-Bus type signatures.
public enum DBusSignature {
    static let basicTypes: Set<Character> = ["y", "b", "n", "q", "i", "u", "x", "t", "d", "s", "o", "g", "h"]

    /// Splits a signature into its complete types, e.g. `"sa{sv}(ii)"` → `["s", "a{sv}", "(ii)"]`.
    /// Throws ``DBusError/invalidArgs(_:)`` for a malformed signature.
    public static func split(_ signature: String) throws -> [String] {
        let chars = Array(signature)
        var index = 0
        var out = [String]()
        while index < chars.count {
            let start = index
            try skipComplete(chars, &index, depth: 0)
            out.append(String(chars[start..<index]))
        }
        return out
    }

    /// True when `signature` is one complete type.
    public static func isSingleCompleteType(_ signature: String) -> Bool {
        (try? split(signature))?.count == 1
    }

    private static func skipComplete(_ c: [Character], _ i: inout Int, depth: Int) throws {
        guard depth < 64 else { throw DBusError.invalidArgs("signature nests too deeply") }
        guard i < c.count else { throw DBusError.invalidArgs("signature ends early") }
        let ch = c[i]
        if basicTypes.contains(ch) || ch == "v" { i += 1; return }
        switch ch {
        case "a":
            i += 1
            guard i < c.count else { throw DBusError.invalidArgs("array without element type in signature") }
            if c[i] == "{" {
                i += 1
                guard i < c.count, basicTypes.contains(c[i]) else {
                    throw DBusError.invalidArgs("dictionary key must be a basic type in signature")
                }
                i += 1
                try skipComplete(c, &i, depth: depth + 1)
                guard i < c.count, c[i] == "}" else { throw DBusError.invalidArgs("unterminated dictionary entry in signature") }
                i += 1
            } else {
                try skipComplete(c, &i, depth: depth + 1)
            }
        case "(":
            i += 1
            guard i < c.count, c[i] != ")" else { throw DBusError.invalidArgs("empty structure in signature") }
            while i < c.count, c[i] != ")" { try skipComplete(c, &i, depth: depth + 1) }
            guard i < c.count else { throw DBusError.invalidArgs("unterminated structure in signature") }
            i += 1
        default:
            throw DBusError.invalidArgs("invalid type code '\(ch)' in signature")
        }
    }
}

/// A syntax error: the line and what is wrong there.
public struct TOMLSyntaxError: Error, Equatable, Sendable, CustomStringConvertible {
    public let line: Int
    public let message: String
    public var description: String { message }
}

/// Parses TOML text into its root table.
public enum TOMLReader {
    public static func parse(_ text: String) throws(TOMLSyntaxError) -> TOMLTable {
        var parser = Parser(Array(text.unicodeScalars))
        return try parser.document()
    }
}

private struct Parser {
    let s: [Unicode.Scalar]
    var i = 0
    var line = 1
    var root = TOMLTable(line: 1)
    /// The path of the table that `key = value` lines go into.
    var current: [String] = []

    init(_ scalars: [Unicode.Scalar]) { s = scalars }

    func fail(_ message: String, line: Int? = nil) -> TOMLSyntaxError {
        TOMLSyntaxError(line: line ?? self.line, message: message)
    }

    var atEnd: Bool { i >= s.count }
    var peek: Unicode.Scalar? { i < s.count ? s[i] : nil }
    func peek(_ offset: Int) -> Unicode.Scalar? { i + offset < s.count ? s[i + offset] : nil }

    mutating func advance() {
        if s[i] == "\n" { line += 1 }
        i += 1
    }

    mutating func skipSpaces() {
        while let c = peek, c == " " || c == "\t" { i += 1 }
    }

    /// Spaces, a comment, then the end of the line (or of the file).
    mutating func endOfLine(after what: String) throws(TOMLSyntaxError) {
        skipSpaces()
        if peek == "#" { skipComment() }
        if peek == "\r" && peek(1) == "\n" { i += 1 }
        guard atEnd || peek == "\n" else { throw fail("unexpected '\(String(peek!))' after \(what)") }
        if !atEnd { advance() }
    }

    mutating func skipComment() {
        while let c = peek, c != "\n" { i += 1 }
    }

    /// Blank lines, comments and newlines (inside arrays too).
    mutating func skipBlank() {
        while let c = peek {
            if c == " " || c == "\t" || c == "\r" || c == "\n" { advance() } else if c == "#" { skipComment() } else { return }
        }
    }

    mutating func document() throws(TOMLSyntaxError) -> TOMLTable {
        while true {
            skipBlank()
            guard let c = peek else { return root }
            if c == "[" {
                try header()
            } else {
                let start = line
                let (path, value) = try keyValue()
                try insert(value, at: current + path, line: start)
                try endOfLine(after: "the value of '\(path.joined(separator: "."))'")
            }
        }
    }

    /// `key = value`: the key's parts and the value.
    mutating func keyValue() throws(TOMLSyntaxError) -> ([String], TOMLValue) {
        let path = try key()
        skipSpaces()
        guard peek == "=" else { throw fail("expected '=' after the key '\(path.joined(separator: "."))'") }
        i += 1
        skipSpaces()
        return (path, try value())
    }

    mutating func header() throws(TOMLSyntaxError) {
        let start = line
        i += 1
        if peek == "[" { throw fail("arrays of tables ([[...]]) are not supported") }
        skipSpaces()
        let path = try key()
        skipSpaces()
        guard peek == "]" else { throw fail("expected ']' to close the table header") }
        i += 1
        try declareTable(path, line: start)
        current = path
        try endOfLine(after: "the table header")
    }

    /// A bare, quoted or dotted key, as its parts.
    mutating func key() throws(TOMLSyntaxError) -> [String] {
        var parts: [String] = []
        while true {
            skipSpaces()
            guard let c = peek else { throw fail("expected a key") }
            if c == "\"" || c == "'" {
                if peek(1) == c && peek(2) == c { throw fail("a key cannot be a multi-line string") }
                parts.append(c == "\"" ? try basicString() : try literalString())
            } else {
                var name = ""
                while let c = peek, ("0"..."9").contains(c) || ("A"..."Z").contains(c) || ("a"..."z").contains(c) || c == "_" || c == "-" {
                    name.unicodeScalars.append(c)
                    i += 1
                }
                guard !name.isEmpty else { throw fail("expected a key, found '\(String(c))'") }
                parts.append(name)
            }
            skipSpaces()
            guard peek == "." else { return parts }
            i += 1
        }
    }

    mutating func declareTable(_ path: [String], line: Int) throws(TOMLSyntaxError) {
        let name = path.joined(separator: ".")
        try withTable(path.dropLast(), line: line) { (table: inout TOMLTable) throws(TOMLSyntaxError) in
            let last = path.last!
            switch table[last] {
            case nil:
                table.set(last, .table(TOMLTable(line: line)), line: line)
            case .table(var existing)? where !existing.declared:
                existing.declared = true
                existing.line = line
                table.set(last, .table(existing), line: line)
            default:
                throw TOMLSyntaxError(line: line, message: "the table [\(name)] is defined twice")
            }
        }
    }

    mutating func insert(_ value: TOMLValue, at path: [String], line: Int) throws(TOMLSyntaxError) {
        let name = path.joined(separator: ".")
        try withTable(path.dropLast(), line: line) { (table: inout TOMLTable) throws(TOMLSyntaxError) in
            guard table[path.last!] == nil else {
                throw TOMLSyntaxError(line: line, message: "the key '\(name)' is defined twice")
            }
            table.set(path.last!, value, line: line)
        }
    }

    /// Runs `body` on the table at `path` under the root, making the tables on the way.
    mutating func withTable(_ path: ArraySlice<String>, line: Int,
                            _ body: (inout TOMLTable) throws(TOMLSyntaxError) -> Void) throws(TOMLSyntaxError) {
        try Self.descend(&root, path, line: line, body)
    }

    static func descend(_ table: inout TOMLTable, _ path: ArraySlice<String>, line: Int,
                        _ body: (inout TOMLTable) throws(TOMLSyntaxError) -> Void) throws(TOMLSyntaxError) {
        guard let first = path.first else { return try body(&table) }
        var child: TOMLTable
        switch table[first] {
        case nil: child = TOMLTable(line: line, declared: false)
        case .table(let t)?: child = t
        case let other?:
            throw TOMLSyntaxError(line: line, message: "'\(first)' is a \(other.typeName), not a table")
        }
        try descend(&child, path.dropFirst(), line: line, body)
        table.set(first, .table(child), line: table.line(of: first) ?? line)
    }

    mutating func value() throws(TOMLSyntaxError) -> TOMLValue {
        guard let c = peek else { throw fail("expected a value at the end of the file") }
        switch c {
        case "\"":
            if peek(1) == "\"" && peek(2) == "\"" { return .string(try multilineString(basic: true)) }
            return .string(try basicString())
        case "'":
            if peek(1) == "'" && peek(2) == "'" { return .string(try multilineString(basic: false)) }
            return .string(try literalString())
        case "[": return try array()
        case "{": return try inlineTable()
        default: return try scalar()
        }
    }

    /// A one-line string: basic (`"…"`, with escapes) or literal (`'…'`, as written).
    mutating func singleLineString(basic: Bool) throws(TOMLSyntaxError) -> String {
        let quote: Unicode.Scalar = basic ? "\"" : "'"
        i += 1
        var out = ""
        while true {
            guard let c = peek, c != "\n" else { throw fail("unterminated string") }
            i += 1
            if c == quote { return out }
            if basic && c == "\\" { out.unicodeScalars.append(try escape()) } else { out.unicodeScalars.append(c) }
        }
    }

    mutating func basicString() throws(TOMLSyntaxError) -> String { try singleLineString(basic: true) }

    mutating func literalString() throws(TOMLSyntaxError) -> String { try singleLineString(basic: false) }

    mutating func escape() throws(TOMLSyntaxError) -> Unicode.Scalar {
        guard let c = peek else { throw fail("unterminated string") }
        i += 1
        switch c {
        case "\"": return "\""
        case "\\": return "\\"
        case "b": return "\u{08}"
        case "t": return "\t"
        case "n": return "\n"
        case "f": return "\u{0C}"
        case "r": return "\r"
        case "u", "U":
            let count = c == "u" ? 4 : 8
            var hex = ""
            for _ in 0..<count {
                guard let h = peek, h.properties.isASCIIHexDigit else { throw fail("\\\(String(c)) needs \(count) hexadecimal digits") }
                hex.unicodeScalars.append(h)
                i += 1
            }
            guard let scalar = UInt32(hex, radix: 16).flatMap(Unicode.Scalar.init) else { throw fail("\\\(String(c))\(hex) is not a Unicode scalar value") }
            return scalar
        default:
            throw fail("unknown escape '\\\(String(c))' in a string")
        }
    }


    mutating func multilineString(basic: Bool) throws(TOMLSyntaxError) -> String {
        let start = line
        let quote: Unicode.Scalar = basic ? "\"" : "'"
        i += 3
        if peek == "\r" && peek(1) == "\n" { i += 1 }
        if peek == "\n" { advance() }
        var out = ""
        while true {
            guard let c = peek else { throw fail("unterminated multi-line string", line: start) }
            if c == quote && peek(1) == quote && peek(2) == quote {
                i += 3
                // Up to two more quotes right before the closing three belong to the string.
                for _ in 0..<2 where peek == quote {
                    out.unicodeScalars.append(quote)
                    i += 1
                }
                return out
            }
            advance()
            if basic && c == "\\" {
                // A backslash at the end of a line trims the newline and the blanks after it.
                var j = i
                while j < s.count, s[j] == " " || s[j] == "\t" { j += 1 }
                if j < s.count, s[j] == "\n" || (s[j] == "\r" && j + 1 < s.count && s[j + 1] == "\n") {
                    i = j
                    skipBlank()
                    continue
                }
                out.unicodeScalars.append(try escape())
            } else {
                out.unicodeScalars.append(c)
            }
        }
    }

    mutating func array() throws(TOMLSyntaxError) -> TOMLValue {
        let start = line
        i += 1
        var items: [TOMLValue] = []
        while true {
            skipBlank()
            guard let c = peek else { throw fail("unterminated array (opened on line \(start))", line: start) }
            if c == "]" { i += 1; return .array(items) }
            items.append(try value())
            skipBlank()
            if peek == "," { i += 1; continue }
            guard peek == "]" else {
                throw fail(peek.map { "expected ',' or ']' in the array, found '\(String($0))'" } ?? "unterminated array (opened on line \(start))")
            }
        }
    }

    mutating func inlineTable() throws(TOMLSyntaxError) -> TOMLValue {
        let start = line
        i += 1
        var table = TOMLTable(line: start)
        skipSpaces()
        if peek == "}" { i += 1; return .table(table) }
        while true {
            let (path, value) = try keyValue()
            try Self.descend(&table, path.dropLast(), line: start) { (t: inout TOMLTable) throws(TOMLSyntaxError) in
                guard t[path.last!] == nil else {
                    throw TOMLSyntaxError(line: start, message: "the key '\(path.joined(separator: "."))' is defined twice")
                }
                t.set(path.last!, value, line: start)
            }
            skipSpaces()
            if peek == "}" { i += 1; return .table(table) }
            guard peek == "," else { throw fail("expected ',' or '}' in the inline table") }
            i += 1
            skipSpaces()
        }
    }

    /// A boolean, integer or float: the characters up to a delimiter.
    mutating func scalar() throws(TOMLSyntaxError) -> TOMLValue {
        var word = ""
        while let c = peek, !(c == " " || c == "\t" || c == "\r" || c == "\n" || c == "," || c == "]" || c == "}" || c == "#") {
            word.unicodeScalars.append(c)
            i += 1
        }
        if word == "true" { return .boolean(true) }
        if word == "false" { return .boolean(false) }
        if let n = TOMLNumber.integer(word) { return .integer(n) }
        if let d = TOMLNumber.float(word) { return .float(d) }
        if word.count >= 8, word.unicodeScalars.prefix(4).allSatisfy({ ("0"..."9").contains($0) }), word.unicodeScalars.dropFirst(4).first == "-" {
            throw fail("'\(word)': dates and times are not supported here")
        }
        if word.isEmpty { throw fail("expected a value, found '\(peek.map { String($0) } ?? "end of file")'") }
        throw fail("'\(word)' is not a value (strings need quotes)")
    }
}

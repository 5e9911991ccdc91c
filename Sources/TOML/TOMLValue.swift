/// A value in a TOML file, with the line it was set on.
///
/// The service reads its configuration and profile files with this small reader instead of
/// a general TOML library: the one it used (TOMLKit) links the ICU-backed part of
/// Foundation, whose data and start-up cost the daemon does not need (see
/// docs/ARCHITECTURE.md, "Memory"). It reads TOML 1.0 except dates and times, which no key
/// of the service takes: tables (`[a]`, `[a.b]`), dotted and quoted keys, basic and literal
/// strings (also multi-line), integers (decimal, `0x`, `0o`, `0b`, `_` separators), floats,
/// booleans, arrays over several lines with comments, and inline tables. Anything else is a
/// syntax error naming the line.
public indirect enum TOMLValue: Equatable, Sendable {
    case string(String)
    case integer(Int)
    case float(Double)
    case boolean(Bool)
    case array([TOMLValue])
    case table(TOMLTable)

    /// The TOML name of the value's type, for errors ("expected a string, found integer").
    public var typeName: String {
        switch self {
        case .string: "string"
        case .integer: "integer"
        case .float: "float"
        case .boolean: "boolean"
        case .array: "array"
        case .table: "table"
        }
    }

    public var string: String? { if case .string(let v) = self { v } else { nil } }
    public var integer: Int? { if case .integer(let v) = self { v } else { nil } }
    public var float: Double? { if case .float(let v) = self { v } else { nil } }
    public var boolean: Bool? { if case .boolean(let v) = self { v } else { nil } }
    public var array: [TOMLValue]? { if case .array(let v) = self { v } else { nil } }
    public var table: TOMLTable? { if case .table(let v) = self { v } else { nil } }
}

/// A TOML table: its keys in file order, each with its value and the line that set it.
public struct TOMLTable: Equatable, Sendable {
    /// The line of the table's header (`[name]`), or of the key that made it (1 for the root).
    public var line: Int
    public private(set) var keys: [String] = []
    private var entries: [String: Entry] = [:]
    /// False for a table only named on the way to another (`a` in `[a.b]`): its own header
    /// may still come later.
    var declared: Bool

    struct Entry: Equatable, Sendable {
        var value: TOMLValue
        var line: Int
    }

    init(line: Int, declared: Bool = true) {
        self.line = line
        self.declared = declared
    }

    public subscript(key: String) -> TOMLValue? { entries[key]?.value }

    /// The line on which `key` was set.
    public func line(of key: String) -> Int? { entries[key]?.line }

    mutating func set(_ key: String, _ value: TOMLValue, line: Int) {
        if entries[key] == nil { keys.append(key) }
        entries[key] = Entry(value: value, line: line)
    }
}

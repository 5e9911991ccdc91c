import Foundation
import SDBus

/// Human-readable tables, sizes and JSON.
enum Output {
    static func table(_ header: [String], _ rows: [[String]]) {
        let rows = rows.map { $0.map(TerminalText.escape) }   // widths of what is printed
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in i == cells.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }
        print(line(header))
        for row in rows { print(line(row)) }
        if rows.isEmpty { print("(none)") }
    }

    static func size(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(bytes) B" : String(format: value < 10 ? "%.1f %@" : "%.0f %@", value, units[unit])
    }

    /// Parses `123`, `10K`, `512M`, `20G`, `1T` (powers of 1024; an optional trailing `B`/`iB`).
    static func parseSize(_ text: String) -> UInt64? {
        var s = text.trimmingCharacters(in: .whitespaces).uppercased()
        if s.hasSuffix("IB") { s.removeLast(2) } else if s.hasSuffix("B") { s.removeLast() }
        let multipliers: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        var multiplier: UInt64 = 1
        if let last = s.last, let m = multipliers[last] { multiplier = m; s.removeLast() }
        guard let n = UInt64(s) else { return nil }
        let (product, overflow) = n.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : product
    }

    /// Like ``parseSize(_:)``, and `+N`/`-N` relative to `current`.
    static func parseSize(_ text: String, relativeTo current: UInt64) -> UInt64? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.hasPrefix("+"), let d = parseSize(String(t.dropFirst())) {
            let (sum, overflow) = current.addingReportingOverflow(d)
            return overflow ? nil : sum
        }
        if t.hasPrefix("-"), let d = parseSize(String(t.dropFirst())) { return d < current ? current - d : nil }
        return parseSize(t)
    }

    /// Seconds since the epoch as local `YYYY-MM-DD HH:MM`.
    static func date(_ seconds: UInt64) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm"
        return f.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
    }

    /// A D-Bus value as a JSON-compatible value.
    static func plain(_ value: DBusValue) -> Any {
        switch value.unwrapped {
        case .byte(let v): return v
        case .boolean(let v): return v
        case .int16(let v): return v
        case .uint16(let v): return v
        case .int32(let v): return v
        case .uint32(let v): return v
        case .int64(let v): return v
        case .uint64(let v): return v
        case .double(let v): return v
        case .string(let s), .objectPath(let s), .signature(let s): return s
        case .unixFD(let fd): return fd
        case .bytes(let b): return b
        case .array(_, let items): return items.map(plain)
        case .dictionary(_, _, let entries):
            var out: [String: Any] = [:]
            for e in entries { out[plainText(e.key)] = plain(e.value) }
            return out
        case .structure(let fields): return fields.map(plain)
        case .variant(let inner): return plain(inner)
        }
    }

    static func plainText(_ value: DBusValue) -> String {
        if let s = value.string { return s }
        let p = plain(value)
        if JSONSerialization.isValidJSONObject(p), let data = try? JSONSerialization.data(withJSONObject: p, options: [.sortedKeys]) {
            return String(decoding: data, as: UTF8.self)
        }
        return "\(p)"
    }

    /// JSON, exact: JSON escapes control characters itself, and other text (bidi marks)
    /// stays as the service sent it, so this bypasses the module's escaping `print`.
    static func json(_ object: Any) {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]) else { return }
        Swift.print(String(decoding: data, as: UTF8.self))
    }

    /// One object's properties: JSON (with its object path) or aligned `Key  value` lines;
    /// `render` may replace a value's text.
    static func object(path: String, _ props: [String: DBusValue], json: Bool,
                       render: (String, DBusValue) -> String? = { _, _ in nil }) {
        if json {
            var out = props.mapValues(plain)
            out["ObjectPath"] = path
            Output.json(out)
            return
        }
        print("Object path        \(path)")
        for key in props.keys.sorted() {
            let lines = render(key, props[key]!).map { [$0] } ?? textLines(props[key]!)
            print("\(key.padding(toLength: 18, withPad: " ", startingAt: 0)) \(lines.first ?? "")")
            for more in lines.dropFirst() { print(String(repeating: " ", count: 19) + more) }
        }
    }

    /// A property value as `systemctl show` and `hostnamectl` print values: text as it is
    /// (no JSON quoting or `\/`), booleans as yes/no, a structure's fields separated by
    /// spaces, an `a{sv}` as `key=value` pairs, and an array of structures one element per
    /// line. An empty array is an empty line.
    static func textLines(_ value: DBusValue) -> [String] {
        switch value.unwrapped {
        case .array(_, let items) where items.contains(where: { if case .structure = $0.unwrapped { return true } else { return false } }):
            return items.map(text)
        default:
            return [text(value)]
        }
    }

    /// One line of ``textLines(_:)``.
    static func text(_ value: DBusValue) -> String {
        switch value.unwrapped {
        case .boolean(let v): return v ? "yes" : "no"
        case .string(let s), .objectPath(let s), .signature(let s): return s
        case .bytes(let b): return b.map { String(format: "%02x", $0) }.joined()
        case .array(_, let items): return items.map(text).joined(separator: " ")
        case .structure(let fields): return fields.map(text).joined(separator: " ")
        case .dictionary(_, _, let entries):
            return entries.map { "\(text($0.key))=\(text($0.value))" }.sorted().joined(separator: " ")
        case .variant(let inner): return text(inner)
        default: return plainText(value)
        }
    }
}

import TOMLKit

/// Reads one `[section]` of a TOML file with typed getters; unknown keys and wrong types are
/// errors that name the file, line and key. Later sections (settings, vms, disks) reuse it.
public struct ConfigSectionReader {
    public let file: String
    public let section: String
    private let table: TOMLTable?
    private let lines: [Substring]
    private var used: Set<String> = []

    init(file: String, section: String, table: TOMLTable?, lines: [Substring]) {
        self.file = file
        self.section = section
        self.table = table
        self.lines = lines
    }

    /// The 1-based line where `key` is set inside this section, found by scanning the text.
    func line(of key: String) -> Int? {
        var current = ""
        for (index, raw) in lines.enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") {
                current = String(line.dropFirst().prefix { $0 != "]" }).trimmingCharacters(in: .whitespaces)
                continue
            }
            guard current == section else { continue }
            let name = line.prefix { $0 != "=" }.trimmingCharacters(in: .whitespaces)
            if name == key || name == "\"\(key)\"" { return index + 1 }
        }
        return lines.firstIndex { $0.trimmingCharacters(in: .whitespaces) == "[\(section)]" }.map { $0 + 1 }
    }

    func error(_ key: String, _ problem: String) -> ConfigError {
        ConfigError(file: file, line: line(of: key), key: "[\(section)] \(key)", problem: problem)
    }

    private mutating func value(_ key: String) -> TOMLValueConvertible? {
        used.insert(key)
        return table?[key]
    }

    public mutating func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v.string else { throw error(key, "expected a string, found \(v.type)") }
        return s
    }

    public mutating func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard let b = v.bool else { throw error(key, "expected true or false, found \(v.type)") }
        return b
    }

    public mutating func int(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let v = value(key) else { return nil }
        guard let i = v.int else { throw error(key, "expected an integer, found \(v.type)") }
        guard range.contains(i) else { throw error(key, "\(i) is out of range \(range.lowerBound)...\(range.upperBound)") }
        return i
    }

    public mutating func double(_ key: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let v = value(key) else { return nil }
        let d: Double
        if let x = v.double { d = x } else if let i = v.int { d = Double(i) } else {
            throw error(key, "expected a number, found \(v.type)")
        }
        guard range.contains(d) else { throw error(key, "\(d) is out of range \(range.lowerBound)...\(range.upperBound)") }
        return d
    }

    public mutating func stringArray(_ key: String) throws -> [String]? {
        guard let v = value(key) else { return nil }
        guard let array = v.array else { throw error(key, "expected an array of strings, found \(v.type)") }
        var out = [String]()
        for index in 0..<array.count {
            guard let s = array[index].string else { throw error(key, "element \(index + 1) is not a string") }
            out.append(s)
        }
        return out
    }

    /// An absolute path (normalised, no `..`).
    public mutating func absolutePath(_ key: String) throws -> String? {
        guard let s = try string(key) else { return nil }
        guard s.hasPrefix("/"), !s.split(separator: "/").contains("..") else {
            throw error(key, "'\(s)' must be an absolute path without '..'")
        }
        return s
    }

    /// Throws for the first key of the section that no getter asked for.
    public func finish() throws {
        guard let table else { return }
        for key in table.keys.sorted() where !used.contains(key) {
            throw error(key, "unknown key (see controller.toml.example for the keys of [\(section)])")
        }
    }
}

/// A parsed TOML configuration file whose sections are read with ``ConfigSectionReader``.
public struct ConfigDocument {
    public let file: String
    private let root: TOMLTable
    private let lines: [Substring]
    private var used: Set<String> = []

    /// Parses `text`; syntax errors carry the line.
    public init(file: String, text: String) throws {
        self.file = file
        lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        do {
            root = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            throw ConfigError(file: file, line: e.source.begin.line, key: nil, problem: "syntax error: \(e.description)")
        }
    }

    /// A reader for `[name]`; an absent section reads as empty.
    public mutating func section(_ name: String) throws -> ConfigSectionReader {
        used.insert(name)
        guard let value = root[name] else {
            return ConfigSectionReader(file: file, section: name, table: nil, lines: lines)
        }
        guard let table = value.table else {
            let line = lines.firstIndex { $0.trimmingCharacters(in: .whitespaces).hasPrefix(name) }.map { $0 + 1 }
            throw ConfigError(file: file, line: line, key: name, problem: "expected a [\(name)] table")
        }
        return ConfigSectionReader(file: file, section: name, table: table, lines: lines)
    }

    /// Throws for a top-level key or section that no reader asked for.
    public func finish() throws {
        for key in root.keys.sorted() where !used.contains(key) {
            let line = lines.firstIndex {
                let t = $0.trimmingCharacters(in: .whitespaces)
                return t == "[\(key)]" || t.hasPrefix("[\(key).") || t.hasPrefix("\(key) ") || t.hasPrefix("\(key)=")
            }.map { $0 + 1 }
            throw ConfigError(file: file, line: line, key: key, problem: "unknown section or key")
        }
    }
}

import Foundation

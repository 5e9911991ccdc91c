import TOML

/// Reads one `[section]` of a TOML file with typed getters; unknown keys and wrong types are
/// errors that name the file, line and key. Later sections (settings, vms, disks) reuse it.
public struct ConfigSectionReader {
    public let file: String
    public let section: String
    private let table: TOMLTable?
    private var used: Set<String> = []

    init(file: String, section: String, table: TOMLTable?) {
        self.file = file
        self.section = section
        self.table = table
    }

    /// The 1-based line where `key` is set inside this section, else the section's header.
    func line(of key: String) -> Int? {
        table?.line(of: key) ?? table?.line
    }

    func error(_ key: String, _ problem: String) -> ConfigError {
        ConfigError(file: file, line: line(of: key), key: "[\(section)] \(key)", problem: problem)
    }

    private mutating func value(_ key: String) -> TOMLValue? {
        used.insert(key)
        return table?[key]
    }

    public mutating func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v.string else { throw error(key, "expected a string, found \(v.typeName)") }
        return s
    }

    public mutating func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard let b = v.boolean else { throw error(key, "expected true or false, found \(v.typeName)") }
        return b
    }

    public mutating func int(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let v = value(key) else { return nil }
        guard let i = v.integer else { throw error(key, "expected an integer, found \(v.typeName)") }
        guard range.contains(i) else { throw error(key, "\(i) is out of range \(range.lowerBound)...\(range.upperBound)") }
        return i
    }

    public mutating func double(_ key: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let v = value(key) else { return nil }
        let d: Double
        if let x = v.float { d = x } else if let i = v.integer { d = Double(i) } else {
            throw error(key, "expected a number, found \(v.typeName)")
        }
        guard range.contains(d) else { throw error(key, "\(d) is out of range \(range.lowerBound)...\(range.upperBound)") }
        return d
    }

    public mutating func stringArray(_ key: String) throws -> [String]? {
        guard let v = value(key) else { return nil }
        guard let array = v.array else { throw error(key, "expected an array of strings, found \(v.typeName)") }
        var out = [String]()
        for index in array.indices {
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
    private var used: Set<String> = []

    /// Parses `text`; syntax errors carry the line.
    public init(file: String, text: String) throws {
        self.file = file
        do {
            root = try TOMLReader.parse(text)
        } catch {
            throw ConfigError(file: file, line: error.line, key: nil, problem: "syntax error: \(error.message)")
        }
    }

    /// A reader for `[name]`; an absent section reads as empty.
    public mutating func section(_ name: String) throws -> ConfigSectionReader {
        used.insert(name)
        guard let value = root[name] else {
            return ConfigSectionReader(file: file, section: name, table: nil)
        }
        guard let table = value.table else {
            throw ConfigError(file: file, line: root.line(of: name), key: name, problem: "expected a [\(name)] table")
        }
        return ConfigSectionReader(file: file, section: name, table: table)
    }

    /// Throws for a top-level key or section that no reader asked for.
    public func finish() throws {
        for key in root.keys.sorted() where !used.contains(key) {
            throw ConfigError(file: file, line: root.line(of: key), key: key, problem: "unknown section or key")
        }
    }
}

import FoundationEssentials

import ControllerAPI
import ControllerCore
import SDBus

/// Reads a method's `a{sv} options`: typed getters, and ``finish()`` rejects every key that
/// no getter asked for, so options are never silently ignored.
struct Options {
    private let method: String
    private let values: [String: DBusValue]
    private var used: Set<String> = []

    init(_ value: DBusValue?, method: String) throws {
        self.method = method
        guard let value else { values = [:]; return }
        guard let dict = value.stringKeyedDictionary else {
            throw ControllerError.invalidArgs("\(method): options must be a{sv}")
        }
        values = dict
    }

    private mutating func take(_ key: String) -> DBusValue? {
        used.insert(key)
        return values[key]
    }

    /// The option's value when present; throws when its type is not `signature`.
    private mutating func value(_ key: String, _ signature: String) throws -> DBusValue? {
        guard let v = take(key) else { return nil }
        guard v.signature == signature else {
            throw ControllerError.invalidArgs("\(method): option '\(key)' must be of type \(signature), not \(v.signature)")
        }
        return v
    }

    mutating func string(_ key: String) throws -> String? { try value(key, "s")?.string }
    mutating func bool(_ key: String) throws -> Bool? { try value(key, "b")?.bool }
    mutating func uint64(_ key: String) throws -> UInt64? { try value(key, "t")?.uint64 }
    mutating func uint32(_ key: String) throws -> UInt32? { try value(key, "u")?.uint32 }
    mutating func double(_ key: String) throws -> Double? { try value(key, "d")?.double }
    mutating func strings(_ key: String) throws -> [String]? { try value(key, "as")?.stringArray }
    /// An `a(ss)` option as pairs.
    mutating func stringPairs(_ key: String) throws -> [(String, String)]? {
        guard let v = try value(key, "a(ss)") else { return nil }
        return (v.arrayElements ?? []).compactMap { element in
            guard case .structure(let f) = element, f.count == 2, let a = f[0].string, let b = f[1].string else { return nil }
            return (a, b)
        }
    }

    func finish() throws {
        if let unknown = values.keys.sorted().first(where: { !used.contains($0) }) {
            throw ControllerError.invalidArgs("\(method): unknown option \(CallerText.quoted(unknown))")
        }
    }
}


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

    private func wrongType(_ key: String, _ expected: String, _ got: DBusValue) -> ControllerError {
        .invalidArgs("\(method): option '\(key)' must be of type \(expected), not \(got.signature)")
    }

    mutating func string(_ key: String) throws -> String? {
        guard let v = take(key) else { return nil }
        guard case .string(let s) = v else { throw wrongType(key, "s", v) }
        return s
    }

    mutating func bool(_ key: String) throws -> Bool? {
        guard let v = take(key) else { return nil }
        guard case .boolean(let b) = v else { throw wrongType(key, "b", v) }
        return b
    }

    mutating func uint64(_ key: String) throws -> UInt64? {
        guard let v = take(key) else { return nil }
        guard case .uint64(let n) = v else { throw wrongType(key, "t", v) }
        return n
    }

    mutating func uint32(_ key: String) throws -> UInt32? {
        guard let v = take(key) else { return nil }
        guard case .uint32(let n) = v else { throw wrongType(key, "u", v) }
        return n
    }

    func finish() throws {
        if let unknown = values.keys.sorted().first(where: { !used.contains($0) }) {
            throw ControllerError.invalidArgs("\(method): unknown option \(DiskName.quoted(unknown))")
        }
    }
}

/// Positional arguments of a call, checked against the declared signature by sd-bus already.
struct Arguments {
    let call: MethodCall
    func string(_ i: Int) -> String { call.arguments[i].string ?? "" }
    func uint64(_ i: Int) -> UInt64 { call.arguments[i].uint64 ?? 0 }
    func bool(_ i: Int) -> Bool { call.arguments[i].bool ?? false }
    func options(_ i: Int) throws -> Options { try Options(call.arguments.indices.contains(i) ? call.arguments[i] : nil, method: call.member) }
}

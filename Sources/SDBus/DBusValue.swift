/// One D-Bus value of any type, as sent or received in a message.
///
/// Containers carry their element signatures so that empty arrays and dictionaries
/// still encode with the right type. Byte arrays (`ay`) are decoded as ``bytes(_:)``
/// so large payloads avoid one enum case per byte.
public indirect enum DBusValue: Sendable, Equatable {
    case byte(UInt8)
    case boolean(Bool)
    case int16(Int16)
    case uint16(UInt16)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
    case uint64(UInt64)
    case double(Double)
    case string(String)
    case objectPath(String)
    case signature(String)
    /// A unix file descriptor. On decoding it is a duplicate the receiver owns and must close.
    case unixFD(Int32)
    /// `ay`, decoded in one piece.
    case bytes([UInt8])
    case array(elementSignature: String, [DBusValue])
    case dictionary(keySignature: String, valueSignature: String, [DBusDictEntry])
    case structure([DBusValue])
    case variant(DBusValue)

    /// The D-Bus signature of this value.
    public var signature: String {
        switch self {
        case .byte: return "y"
        case .boolean: return "b"
        case .int16: return "n"
        case .uint16: return "q"
        case .int32: return "i"
        case .uint32: return "u"
        case .int64: return "x"
        case .uint64: return "t"
        case .double: return "d"
        case .string: return "s"
        case .objectPath: return "o"
        case .signature: return "g"
        case .unixFD: return "h"
        case .bytes: return "ay"
        case .array(let element, _): return "a" + element
        case .dictionary(let key, let value, _): return "a{" + key + value + "}"
        case .structure(let fields): return "(" + fields.map(\.signature).joined() + ")"
        case .variant: return "v"
        }
    }
}

/// One entry of a D-Bus dictionary (`a{..}`).
public struct DBusDictEntry: Sendable, Equatable {
    public var key: DBusValue
    public var value: DBusValue
    public init(_ key: DBusValue, _ value: DBusValue) {
        self.key = key
        self.value = value
    }
}

// MARK: - Building common shapes

extension DBusValue {
    /// An `a{sv}` dictionary; keys are sorted so the encoding is deterministic.
    public static func vardict(_ values: [String: DBusValue]) -> DBusValue {
        .dictionary(
            keySignature: "s", valueSignature: "v",
            values.keys.sorted().map { DBusDictEntry(.string($0), .variant(values[$0]!)) })
    }

    /// An empty `a{sv}`.
    public static var emptyOptions: DBusValue { .vardict([:]) }

    /// An `as` array.
    public static func strings(_ values: [String]) -> DBusValue {
        .array(elementSignature: "s", values.map { .string($0) })
    }

    /// An `ao` array.
    public static func objectPaths(_ values: [String]) -> DBusValue {
        .array(elementSignature: "o", values.map { .objectPath($0) })
    }
}

// MARK: - Typed access

extension DBusValue {
    /// The value inside a variant, or the value itself.
    public var unwrapped: DBusValue {
        if case .variant(let inner) = self { return inner.unwrapped }
        return self
    }
    public var string: String? {
        switch unwrapped {
        case .string(let s), .objectPath(let s), .signature(let s): return s
        default: return nil
        }
    }
    public var bool: Bool? { if case .boolean(let v) = unwrapped { return v }; return nil }
    public var uint32: UInt32? { if case .uint32(let v) = unwrapped { return v }; return nil }
    public var uint64: UInt64? { if case .uint64(let v) = unwrapped { return v }; return nil }
    public var int64: Int64? { if case .int64(let v) = unwrapped { return v }; return nil }
    public var int32: Int32? { if case .int32(let v) = unwrapped { return v }; return nil }
    public var double: Double? { if case .double(let v) = unwrapped { return v }; return nil }
    public var byteArray: [UInt8]? {
        switch unwrapped {
        case .bytes(let b): return b
        case .array("y", let items):
            var out = [UInt8]()
            out.reserveCapacity(items.count)
            for item in items { guard case .byte(let b) = item else { return nil }; out.append(b) }
            return out
        default: return nil
        }
    }
    /// Elements of any array (not dictionaries); `ay` yields `.byte` elements.
    public var arrayElements: [DBusValue]? {
        switch unwrapped {
        case .array(_, let items): return items
        case .bytes(let b): return b.map { .byte($0) }
        default: return nil
        }
    }
    public var stringArray: [String]? {
        guard let items = arrayElements else { return nil }
        var out = [String]()
        for item in items { guard let s = item.string else { return nil }; out.append(s) }
        return out
    }
    public var structFields: [DBusValue]? {
        if case .structure(let f) = unwrapped { return f }
        return nil
    }
    /// The entries of an `a{sv}` (or any string-keyed dictionary), variants unwrapped one level.
    public var stringKeyedDictionary: [String: DBusValue]? {
        guard case .dictionary("s", _, let entries) = unwrapped else { return nil }
        var out = [String: DBusValue]()
        for entry in entries {
            guard case .string(let key) = entry.key else { return nil }
            if case .variant(let inner) = entry.value { out[key] = inner } else { out[key] = entry.value }
        }
        return out
    }
}

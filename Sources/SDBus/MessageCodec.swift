import CSystemd

#if canImport(Glibc)
import Glibc
#endif

/// Encoding of ``DBusValue``s into sd-bus messages and decoding back.
/// All functions must run on the thread that owns the message's bus.
enum MessageCodec {
    /// Upper bound on container nesting accepted when decoding (the D-Bus limit is 64).
    static let maxDepth = 64

    static func code(_ c: Character) -> CChar { CChar(c.asciiValue!) }

    // MARK: Encoding

    static func append(_ values: [DBusValue], to m: OpaquePointer) throws {
        for value in values { try append(value, to: m) }
    }

    static func append(_ value: DBusValue, to m: OpaquePointer) throws {
        var r: Int32 = 0
        switch value {
        case .byte(var v): r = sd_bus_message_append_basic(m, code("y"), &v)
        case .boolean(let b): var v: Int32 = b ? 1 : 0; r = sd_bus_message_append_basic(m, code("b"), &v)
        case .int16(var v): r = sd_bus_message_append_basic(m, code("n"), &v)
        case .uint16(var v): r = sd_bus_message_append_basic(m, code("q"), &v)
        case .int32(var v): r = sd_bus_message_append_basic(m, code("i"), &v)
        case .uint32(var v): r = sd_bus_message_append_basic(m, code("u"), &v)
        case .int64(var v): r = sd_bus_message_append_basic(m, code("x"), &v)
        case .uint64(var v): r = sd_bus_message_append_basic(m, code("t"), &v)
        case .double(var v): r = sd_bus_message_append_basic(m, code("d"), &v)
        case .unixFD(var fd): r = sd_bus_message_append_basic(m, code("h"), &fd)
        case .string(let s): r = try appendString(s, "s", m)
        case .objectPath(let s): r = try appendString(s, "o", m)
        case .signature(let s): r = try appendString(s, "g", m)
        case .bytes(let bytes):
            r = bytes.withUnsafeBytes { sd_bus_message_append_array(m, code("y"), $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, $0.count) }
        case .array(let element, let items):
            guard DBusSignature.isSingleCompleteType(element) else { throw DBusError.invalidArgs("bad array element signature '\(element)'") }
            try container(m, "a", element) {
                for item in items {
                    guard item.signature == element else {
                        throw DBusError.invalidArgs("array of '\(element)' holds a '\(item.signature)'")
                    }
                    try append(item, to: m)
                }
            }
        case .dictionary(let key, let val, let entries):
            let entrySig = key + val
            try container(m, "a", "{" + entrySig + "}") {
                for entry in entries {
                    guard entry.key.signature == key, entry.value.signature == val else {
                        throw DBusError.invalidArgs("dictionary of '{\(entrySig)}' holds '{\(entry.key.signature)\(entry.value.signature)}'")
                    }
                    try container(m, "e", entrySig) {
                        try append(entry.key, to: m)
                        try append(entry.value, to: m)
                    }
                }
            }
        case .structure(let fields):
            guard !fields.isEmpty else { throw DBusError.invalidArgs("empty structure") }
            try container(m, "r", fields.map(\.signature).joined()) {
                for field in fields { try append(field, to: m) }
            }
        case .variant(let inner):
            try container(m, "v", inner.signature) { try append(inner, to: m) }
        }
        if r < 0 { throw DBusError.invalidArgs("cannot encode \(value.signature) value: \(String(cString: strerror(-r)))") }
    }

    private static func appendString(_ s: String, _ type: Character, _ m: OpaquePointer) throws -> Int32 {
        if s.utf8.contains(0) { throw DBusError.invalidArgs("string contains a NUL byte") }
        return s.withCString { sd_bus_message_append_basic(m, code(type), $0) }
    }

    private static func container(_ m: OpaquePointer, _ type: Character, _ contents: String, _ body: () throws -> Void) throws {
        let r = contents.withCString { sd_bus_message_open_container(m, code(type), $0) }
        if r < 0 { throw DBusError.invalidArgs("cannot open container '\(type)' of '\(contents)': \(String(cString: strerror(-r)))") }
        try body()
        let c = sd_bus_message_close_container(m)
        if c < 0 { throw DBusError.invalidArgs("cannot close container '\(type)': \(String(cString: strerror(-c)))") }
    }

    // MARK: Decoding

    /// Reads every remaining value at the current level of the message.
    static func readAll(from m: OpaquePointer) throws -> [DBusValue] {
        var out = [DBusValue]()
        while let value = try readNext(m, depth: 0) { out.append(value) }
        return out
    }

    /// Reads the next value, or nil at the end of the current container.
    static func readNext(_ m: OpaquePointer, depth: Int) throws -> DBusValue? {
        guard depth <= maxDepth else { throw DBusError.invalidArgs("message nests containers too deeply") }
        var type: CChar = 0
        var contentsPtr: UnsafePointer<CChar>? = nil
        let r = sd_bus_message_peek_type(m, &type, &contentsPtr)
        if r < 0 { throw DBusError.invalidArgs("malformed message: \(String(cString: strerror(-r)))") }
        if r == 0 { return nil }
        let contents = contentsPtr.map { String(cString: $0) } ?? ""
        switch UInt8(bitPattern: type) {
        case UInt8(ascii: "a"):
            if contents == "y" {
                var ptr: UnsafeRawPointer? = nil
                var size = 0
                let rr = sd_bus_message_read_array(m, code("y"), &ptr, &size)
                if rr < 0 { throw DBusError.invalidArgs("malformed byte array: \(String(cString: strerror(-rr)))") }
                guard let ptr, size > 0 else { return .bytes([]) }
                return .bytes(Array(UnsafeRawBufferPointer(start: ptr, count: size)))
            }
            try enter(m, "a", contents)
            defer { _ = sd_bus_message_exit_container(m) }
            if contents.hasPrefix("{") {
                let inner = String(contents.dropFirst().dropLast())
                let parts = try DBusSignature.split(inner)
                guard parts.count == 2 else { throw DBusError.invalidArgs("bad dictionary signature '\(contents)'") }
                var entries = [DBusDictEntry]()
                while true {
                    let e = inner.withCString { sd_bus_message_enter_container(m, code("e"), $0) }
                    if e < 0 { throw DBusError.invalidArgs("malformed dictionary entry: \(String(cString: strerror(-e)))") }
                    if e == 0 { break }
                    guard let k = try readNext(m, depth: depth + 1), let v = try readNext(m, depth: depth + 1) else {
                        throw DBusError.invalidArgs("incomplete dictionary entry")
                    }
                    _ = sd_bus_message_exit_container(m)
                    entries.append(DBusDictEntry(k, v))
                }
                return .dictionary(keySignature: parts[0], valueSignature: parts[1], entries)
            }
            var items = [DBusValue]()
            while let item = try readNext(m, depth: depth + 1) { items.append(item) }
            return .array(elementSignature: contents, items)
        case UInt8(ascii: "r"):
            try enter(m, "r", contents)
            defer { _ = sd_bus_message_exit_container(m) }
            var fields = [DBusValue]()
            while let f = try readNext(m, depth: depth + 1) { fields.append(f) }
            return .structure(fields)
        case UInt8(ascii: "v"):
            try enter(m, "v", contents)
            defer { _ = sd_bus_message_exit_container(m) }
            guard let inner = try readNext(m, depth: depth + 1) else { throw DBusError.invalidArgs("empty variant") }
            return .variant(inner)
        default:
            return try readBasic(m, type)
        }
    }

    private static func enter(_ m: OpaquePointer, _ type: Character, _ contents: String) throws {
        let r = contents.withCString { sd_bus_message_enter_container(m, code(type), $0) }
        if r <= 0 { throw DBusError.invalidArgs("malformed container '\(type)\(contents)': \(r < 0 ? String(cString: strerror(-r)) : "missing")") }
    }

    private static func readBasic(_ m: OpaquePointer, _ type: CChar) throws -> DBusValue {
        func read<T>(_ initial: T) throws -> T {
            var v = initial
            let r = withUnsafeMutableBytes(of: &v) { sd_bus_message_read_basic(m, type, $0.baseAddress) }
            if r <= 0 { throw DBusError.invalidArgs("malformed basic value: \(r < 0 ? String(cString: strerror(-r)) : "missing")") }
            return v
        }
        switch UInt8(bitPattern: type) {
        case UInt8(ascii: "y"): return .byte(try read(UInt8(0)))
        case UInt8(ascii: "b"): return .boolean(try read(Int32(0)) != 0)
        case UInt8(ascii: "n"): return .int16(try read(Int16(0)))
        case UInt8(ascii: "q"): return .uint16(try read(UInt16(0)))
        case UInt8(ascii: "i"): return .int32(try read(Int32(0)))
        case UInt8(ascii: "u"): return .uint32(try read(UInt32(0)))
        case UInt8(ascii: "x"): return .int64(try read(Int64(0)))
        case UInt8(ascii: "t"): return .uint64(try read(UInt64(0)))
        case UInt8(ascii: "d"): return .double(try read(Double(0)))
        case UInt8(ascii: "h"):
            let fd = try read(Int32(-1))
            let copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)
            if copy < 0 { throw DBusError.failed("cannot duplicate received fd: \(String(cString: strerror(errno)))") }
            return .unixFD(copy)
        case UInt8(ascii: "s"), UInt8(ascii: "o"), UInt8(ascii: "g"):
            let p = try read(UnsafePointer<CChar>?.none)
            let s = p.map { String(cString: $0) } ?? ""
            switch UInt8(bitPattern: type) {
            case UInt8(ascii: "o"): return .objectPath(s)
            case UInt8(ascii: "g"): return .signature(s)
            default: return .string(s)
            }
        default:
            throw DBusError.invalidArgs("unknown type code \(type)")
        }
    }
}

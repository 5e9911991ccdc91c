import CSystemd

#if canImport(Glibc)
import Glibc
#endif

/// The C vtable built from a ``DBusInterface``; memory stays allocated for the life of the
/// connection because sd-bus keeps pointers into it.
final class VTableStorage {
    let interface: DBusInterface
    let entries: UnsafeMutablePointer<sd_bus_vtable>
    private var strings: [UnsafeMutablePointer<CChar>] = []

    init(_ interface: DBusInterface) {
        self.interface = interface
        let count = 2 + interface.methods.count + interface.properties.count + interface.signals.count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: count * mv_vtable_entry_size(), alignment: 16)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: count * mv_vtable_entry_size())
        entries = raw.bindMemory(to: sd_bus_vtable.self, capacity: count)

        var index = 0
        func next() -> UnsafeMutablePointer<sd_bus_vtable> {
            defer { index += 1 }
            return mv_vtable_at(entries, index)
        }
        // Every member is callable by unprivileged peers as far as sd-bus is concerned:
        // authorization is polkit's job, per method.
        mv_vtable_start(next(), mv_flag_unprivileged())
        for m in interface.methods {
            let names = (m.inputs + m.outputs).map { $0.name + "\0" }.joined()
            mv_vtable_method(next(), keep(m.name), keep(m.inSignature), keep(m.outSignature),
                             keep(names), methodTrampoline, mv_flag_unprivileged())
        }
        for p in interface.properties {
            var flags: UInt64 = 0
            switch p.change {
            case .const: flags = mv_flag_const()
            case .emitsChange: flags = mv_flag_emits_change()
            case .emitsInvalidation: flags = mv_flag_emits_invalidation()
            case .none: flags = 0
            }
            if p.writable { flags |= mv_flag_unprivileged() }
            mv_vtable_property(next(), keep(p.name), keep(p.signature), getterTrampoline,
                               p.writable ? setterTrampoline : nil, flags)
        }
        for s in interface.signals {
            let names = s.arguments.map { $0.name + "\0" }.joined()
            mv_vtable_signal(next(), keep(s.name), keep(s.arguments.map(\.signature).joined()), keep(names), 0)
        }
        mv_vtable_end(next())
    }

    /// Copies a string into memory that lives as long as the vtable. Argument-name lists
    /// contain NULs, so the bytes are copied as they are plus a final NUL.
    private func keep(_ s: String) -> UnsafeMutablePointer<CChar> {
        let bytes = Array(s.utf8)
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
        for (i, b) in bytes.enumerated() { p[i] = CChar(bitPattern: b) }
        p[bytes.count] = 0
        strings.append(p)
        return p
    }
}

private func registration(_ userdata: UnsafeMutableRawPointer?) -> InterfaceRegistration {
    Unmanaged<InterfaceRegistration>.fromOpaque(userdata!).takeUnretainedValue()
}

/// Carries bus-thread values from a C callback into the actor's isolated code.
///
/// `@unchecked Sendable` is safe: a trampoline creates it and `assumeIsolated` consumes it
/// synchronously within the same callback, on the bus thread (`assumeIsolated` checks the
/// thread); it is never stored or handed to another thread.
struct OnBusThread<T>: @unchecked Sendable {
    let value: T
}

/// Entry point of every method call: hands over to the actor (we are on its thread).
let methodTrampoline: sd_bus_message_handler_t = { m, userdata, _ in
    let reg = registration(userdata)
    let box = OnBusThread(value: (m!, reg))
    return reg.connection.assumeIsolated { connection in connection.handleMethod(box.value.0, box.value.1) }
}

/// Serves a property from the registration's stored values: never blocks.
let getterTrampoline: sd_bus_property_get_t = { _, _, _, property, reply, userdata, retError in
    let outer = registration(userdata)
    let name = String(cString: property!)
    let box = OnBusThread(value: (outer, reply!, retError))
    return outer.connection.assumeIsolated { _ -> Int32 in
        let (reg, reply, retError) = box.value
        guard let value = reg.properties[name] else {
            return sd_bus_error_set(retError, "org.freedesktop.DBus.Error.UnknownProperty", "property \(name) has no value")
        }
        do { try MessageCodec.append(value, to: reply) } catch {
            return sd_bus_error_set(retError, "org.freedesktop.DBus.Error.Failed", "cannot encode property \(name)")
        }
        return 1
    }
}

/// Accepts a property write after the interface's setter validated it.
let setterTrampoline: sd_bus_property_set_t = { _, _, _, property, value, userdata, retError in
    let outer = registration(userdata)
    let name = String(cString: property!)
    let box = OnBusThread(value: (outer, value!, retError))
    return outer.connection.assumeIsolated { _ -> Int32 in
        let (reg, value, retError) = box.value
        do {
            guard let setter = reg.setter, let decoded = try MessageCodec.readNext(value, depth: 0) else {
                return sd_bus_error_set(retError, "org.freedesktop.DBus.Error.PropertyReadOnly", "property \(name) is read-only")
            }
            try setter(name, decoded)
            reg.properties[name] = decoded
            return 1
        } catch {
            let e = DBusError.from(error)
            return sd_bus_error_set(retError, e.name, e.message)
        }
    }
}

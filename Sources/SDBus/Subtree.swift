import CSystemd

#if canImport(Glibc)
import Glibc
#endif

/// The objects directly below one path prefix, served by fallback vtables: one sd-bus
/// registration per interface for all of them (see ``BusConnection/serveSubtree(_:)``).
/// Lives on the bus thread only, like ``InterfaceRegistration``.
final class Subtree {
    unowned let connection: BusConnection
    let prefix: String
    /// The objects' paths, for the node enumerator.
    var children: Set<String> = []
    /// The node enumerator's slot and one fallback vtable slot per interface.
    var slots: [OpaquePointer?] = []
    /// Interfaces with a fallback vtable, and the lookup context each one's find callback gets.
    private var served: [String: FallbackLookup] = [:]

    init(connection: BusConnection, prefix: String) {
        self.connection = connection
        self.prefix = prefix
    }

    /// Registers the fallback vtable for `interface` under the prefix, once.
    func serve(_ interface: DBusInterface, with table: VTableStorage, on bus: OpaquePointer?) throws {
        guard served[interface.name] == nil else { return }
        let lookup = FallbackLookup(subtree: self, interface: interface.name)
        var slot: OpaquePointer?
        let r = sd_bus_add_fallback_vtable(bus, &slot, prefix, interface.name, table.entries, findTrampoline,
                                           Unmanaged.passUnretained(lookup).toOpaque())
        if r < 0 { throw DBusError.errno(r, "cannot serve \(interface.name) below \(prefix)") }
        slots.append(slot)
        served[interface.name] = lookup
    }

    func close() {
        for slot in slots { sd_bus_slot_unref(slot) }
        slots.removeAll()
        served.removeAll()
        children.removeAll()
    }
}

/// What a fallback vtable's find callback needs: the subtree and the interface.
final class FallbackLookup {
    unowned let subtree: Subtree
    let interface: String

    init(subtree: Subtree, interface: String) {
        self.subtree = subtree
        self.interface = interface
    }
}

/// Finds the object a call to a subtree path is for; sd-bus then passes its registration
/// to the method, getter and setter trampolines as their userdata, as for an object
/// exported on its own. 0 (not found) makes sd-bus answer UnknownObject/UnknownInterface.
let findTrampoline: sd_bus_object_find_t = { _, path, _, userdata, found, _ in
    let lookup = Unmanaged<FallbackLookup>.fromOpaque(userdata!).takeUnretainedValue()
    let box = OnBusThread(value: (lookup, String(cString: path!), found!))
    return lookup.subtree.connection.assumeIsolated { connection -> Int32 in
        let (lookup, path, found) = box.value
        guard let reg = connection.registration(path: path, interface: lookup.interface) else { return 0 }
        found.pointee = Unmanaged.passUnretained(reg).toOpaque()
        return 1
    }
}

/// Lists a subtree's objects (a NULL-terminated array sd-bus frees).
let nodeEnumeratorTrampoline: sd_bus_node_enumerator_t = { _, _, userdata, nodes, _ in
    let subtree = Unmanaged<Subtree>.fromOpaque(userdata!).takeUnretainedValue()
    let box = OnBusThread(value: (subtree, nodes!))
    return subtree.connection.assumeIsolated { connection -> Int32 in
        let (subtree, nodes) = box.value
        let paths = connection.children(of: subtree)
        // sd-bus frees the array and its strings with free(): allocate them with malloc.
        guard let raw = malloc((paths.count + 1) * MemoryLayout<UnsafeMutablePointer<CChar>?>.stride) else { return -ENOMEM }
        let strv = raw.bindMemory(to: UnsafeMutablePointer<CChar>?.self, capacity: paths.count + 1)
        for (index, path) in paths.enumerated() { strv[index] = strdup(path) }
        strv[paths.count] = nil
        nodes.pointee = strv
        return 1
    }
}

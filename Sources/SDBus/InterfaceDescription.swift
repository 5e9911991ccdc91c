/// A named argument of a method or signal.
public struct DBusArgument: Sendable, Equatable {
    public var name: String
    public var signature: String
    public init(_ name: String, _ signature: String) {
        self.name = name
        self.signature = signature
    }
}

/// How a property announces changes (the `EmitsChangedSignal` annotation).
public enum PropertyChangeBehavior: Sendable, Equatable {
    /// Never changes for the lifetime of the object.
    case const
    /// `PropertiesChanged` carries the new value.
    case emitsChange
    /// `PropertiesChanged` lists the name only.
    case emitsInvalidation
    /// Changes are not announced.
    case none
}

/// A method of an interface, with named in and out arguments.
public struct DBusMethod: Sendable, Equatable {
    public var name: String
    public var inputs: [DBusArgument]
    public var outputs: [DBusArgument]
    public init(_ name: String, in inputs: [DBusArgument] = [], out outputs: [DBusArgument] = []) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
    }
    public var inSignature: String { inputs.map(\.signature).joined() }
    public var outSignature: String { outputs.map(\.signature).joined() }
}

/// A property of an interface.
public struct DBusProperty: Sendable, Equatable {
    public var name: String
    public var signature: String
    public var writable: Bool
    public var change: PropertyChangeBehavior
    public init(_ name: String, _ signature: String, change: PropertyChangeBehavior = .emitsChange, writable: Bool = false) {
        self.name = name
        self.signature = signature
        self.writable = writable
        self.change = change
    }
}

/// A signal of an interface, with named arguments.
public struct DBusSignal: Sendable, Equatable {
    public var name: String
    public var arguments: [DBusArgument]
    public init(_ name: String, _ arguments: [DBusArgument] = []) {
        self.name = name
        self.arguments = arguments
    }
}

/// An interface described once in Swift: both the sd-bus vtable and the
/// introspection XML are generated from it.
public struct DBusInterface: Sendable, Equatable {
    public var name: String
    public var methods: [DBusMethod]
    public var properties: [DBusProperty]
    public var signals: [DBusSignal]

    public init(_ name: String, methods: [DBusMethod] = [], properties: [DBusProperty] = [], signals: [DBusSignal] = []) {
        self.name = name
        self.methods = methods
        self.properties = properties
        self.signals = signals
    }

    public func method(named name: String) -> DBusMethod? { methods.first { $0.name == name } }
    public func property(named name: String) -> DBusProperty? { properties.first { $0.name == name } }
    public func signal(named name: String) -> DBusSignal? { signals.first { $0.name == name } }

    /// Checks names and signatures; a broken description is a programming error caught at registration.
    public func validate() throws {
        func check(_ sig: String, _ what: String) throws {
            if sig.isEmpty { return }
            _ = try DBusSignature.split(sig)
            if (try DBusSignature.split(sig)).count != 1 { throw DBusError.invalidArgs("\(what): '\(sig)' is not one complete type") }
        }
        for m in methods { for a in m.inputs + m.outputs { try check(a.signature, "\(name).\(m.name) \(a.name)") } }
        for p in properties { try check(p.signature, "\(name).\(p.name)") }
        for s in signals { for a in s.arguments { try check(a.signature, "\(name).\(s.name) \(a.name)") } }
    }
}

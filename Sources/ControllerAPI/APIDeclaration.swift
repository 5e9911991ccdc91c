import SDBus

/// A method of the API: its D-Bus signature, its one line of documentation and the polkit
/// action that guards it. The vtable, the introspection, the API reference and the
/// authorization a handler performs all read this one entry.
public struct APIMethod: Sendable {
    public let dbus: DBusMethod
    /// What the method does, for the API reference.
    public let doc: String
    /// The polkit action checked before the method acts; nil for methods anyone may call.
    public let action: PolkitAction?

    public var name: String { dbus.name }

    public init(_ name: String, in inputs: [DBusArgument] = [], out outputs: [DBusArgument] = [],
                action: PolkitAction? = nil, doc: String) {
        dbus = DBusMethod(name, in: inputs, out: outputs)
        self.doc = doc
        self.action = action
    }
}

/// A property of the API with its documentation.
public struct APIProperty: Sendable {
    public let dbus: DBusProperty
    public let doc: String
    public var name: String { dbus.name }

    public init(_ name: String, _ signature: String, change: PropertyChangeBehavior = .emitsChange, doc: String) {
        dbus = DBusProperty(name, signature, change: change)
        self.doc = doc
    }
}

/// A signal of the API with its documentation.
public struct APISignal: Sendable {
    public let dbus: DBusSignal
    public let doc: String
    public var name: String { dbus.name }

    public init(_ name: String, _ arguments: [DBusArgument] = [], doc: String) {
        dbus = DBusSignal(name, arguments)
        self.doc = doc
    }
}

/// One interface of the API, declared once.
public struct APIInterface: Sendable {
    public let name: String
    public let methods: [APIMethod]
    public let properties: [APIProperty]
    public let signals: [APISignal]
    /// The description sd-bus and the introspection are built from.
    public let dbus: DBusInterface

    public init(_ name: String, methods: [APIMethod] = [], properties: [APIProperty] = [], signals: [APISignal] = []) {
        self.name = name
        self.methods = methods
        self.properties = properties
        self.signals = signals
        dbus = DBusInterface(name, methods: methods.map(\.dbus), properties: properties.map(\.dbus), signals: signals.map(\.dbus))
    }

    /// The last component of the name: `Disk`, `Manager`.
    public var shortName: String { String(name.split(separator: ".").last ?? "") }

    public func method(named member: String) -> APIMethod? { methods.first { $0.name == member } }
}

/// Shorthands for the declarations.
enum Arg {
    static func a(_ name: String, _ signature: String) -> DBusArgument { DBusArgument(name, signature) }
    static let options = DBusArgument("options", "a{sv}")
    static let job = DBusArgument("job", "o")
}

/// Every interface of API version 1, in documentation order.
public enum ControllerInterfaces {
    public static let all: [APIInterface] = [
        ManagerInterface.declaration, VMInterface.declaration, DiskInterface.declaration,
        JobInterface.declaration, SettingsInterface.declaration, NetworkInterface.declaration,
    ]
    /// The D-Bus descriptions of ``all``.
    public static var dbus: [DBusInterface] { all.map(\.dbus) }
}

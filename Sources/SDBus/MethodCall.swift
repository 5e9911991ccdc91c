/// A method call received by an exported object, decoded and detached from the bus.
public struct MethodCall: Sendable {
    /// Unique bus name of the caller (`:1.42`): the polkit subject.
    public let sender: String
    public let path: String
    public let interface: String
    public let member: String
    public let arguments: [DBusValue]
    /// Whether the caller set the allow-interactive-authorization flag.
    public let allowInteractiveAuthorization: Bool

    public init(sender: String, path: String, interface: String, member: String,
                arguments: [DBusValue], allowInteractiveAuthorization: Bool) {
        self.sender = sender
        self.path = path
        self.interface = interface
        self.member = member
        self.arguments = arguments
        self.allowInteractiveAuthorization = allowInteractiveAuthorization
    }
}

/// Handles the methods of one exported interface; returns the out arguments in order.
/// Runs off the bus thread; a thrown error becomes a D-Bus error reply.
public typealias MethodHandler = @Sendable (MethodCall) async throws -> [DBusValue]

/// Validates and accepts a write to a writable property (runs on the bus thread; keep it quick).
public typealias PropertySetter = @Sendable (_ property: String, _ value: DBusValue) throws -> Void

/// One interface of an object to export: its description, initial property values and one
/// handler per method (a method of the description without a handler answers `UnknownMethod`;
/// a handler for a method the description lacks is refused at export).
public struct ExportedInterface: Sendable {
    public var interface: DBusInterface
    public var properties: [String: DBusValue]
    public var methods: [String: MethodHandler]
    public var setter: PropertySetter?

    public init(_ interface: DBusInterface, properties: [String: DBusValue] = [:],
                methods: [String: MethodHandler] = [:], setter: PropertySetter? = nil) {
        self.interface = interface
        self.properties = properties
        self.methods = methods
        self.setter = setter
    }
}

/// A signal received by a subscription.
public struct ReceivedSignal: Sendable {
    public let sender: String
    public let path: String
    public let interface: String
    public let member: String
    public let arguments: [DBusValue]
}

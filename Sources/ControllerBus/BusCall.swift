import ControllerAPI
import ControllerCore
import SDBus

/// A method call as a handler reads it: each argument by the name its declaration gives
/// (sd-bus has already checked the types against the declared signature).
struct BusCall: Sendable {
    let message: MethodCall
    let method: APIMethod

    private func argument(_ name: String, _ signature: String) -> DBusValue {
        guard let index = method.dbus.inputs.firstIndex(where: { $0.name == name && $0.signature == signature }),
              message.arguments.indices.contains(index) else {
            preconditionFailure("\(method.name) declares no argument \(name) of type \(signature)")
        }
        return message.arguments[index]
    }

    func string(_ name: String) -> String { argument(name, "s").string ?? "" }
    func uint64(_ name: String) -> UInt64 { argument(name, "t").uint64 ?? 0 }
    func bool(_ name: String) -> Bool { argument(name, "b").bool ?? false }
    func strings(_ name: String) -> [String] { argument(name, "as").stringArray ?? [] }
    func bytes(_ name: String) -> [UInt8] { argument(name, "ay").byteArray ?? [] }

    /// The `a{sv}` argument `name` (the trailing `options` unless told otherwise).
    func options(_ name: String = "options") throws -> Options { try Options(argument(name, "a{sv}"), method: method.name) }

    /// The caller set the flag that allows polkit to ask them for a password.
    var allowInteraction: Bool { message.allowInteractiveAuthorization }
}

/// Binds one declared method to the handler of an object type.
struct MethodBinding<Object: Sendable>: Sendable {
    let method: APIMethod
    let run: @Sendable (Object, BusCall) async throws -> [DBusValue]

    init(_ method: APIMethod, _ run: @escaping @Sendable (Object, BusCall) async throws -> [DBusValue]) {
        self.method = method
        self.run = run
    }
}

extension APIInterface {
    /// One handler per declared method for every object of a type: the object is made
    /// from the call (its path) by `object`, so the table is built once and shared by all
    /// exported objects of the interface instead of one set of closures per object. A
    /// declaration without a handler, or a handler without a declaration, is an error.
    func handlers<Object: Sendable>(_ bindings: [MethodBinding<Object>],
                                    object: @escaping @Sendable (MethodCall) throws -> Object) throws -> [String: MethodHandler] {
        var handlers: [String: MethodHandler] = [:]
        for binding in bindings {
            let method = binding.method
            guard self.method(named: method.name) != nil, handlers[method.name] == nil else {
                throw DBusError.failed("\(name): \(method.name) is bound twice or not declared")
            }
            handlers[method.name] = { call in
                // Core's errors reach the caller under the API's names, the system module's too.
                do { return try await binding.run(try object(call), BusCall(message: call, method: method)) } catch {
                    throw ControllerError.mapped(error)
                }
            }
        }
        if let unbound = methods.first(where: { handlers[$0.name] == nil }) {
            throw DBusError.failed("\(name): no handler for \(unbound.name)")
        }
        return handlers
    }

    /// The interface of a single object (the Manager, the settings), bound to it.
    func exported<Object: Sendable>(_ object: Object, properties: [String: DBusValue],
                                    bindings: [MethodBinding<Object>]) throws -> ExportedInterface {
        exported(properties: properties, handlers: try handlers(bindings) { _ in object })
    }

    /// The interface exported with a handler table from ``handlers(_:object:)``.
    func exported(properties: [String: DBusValue], handlers: [String: MethodHandler]) -> ExportedInterface {
        ExportedInterface(dbus, properties: properties, methods: handlers)
    }
}

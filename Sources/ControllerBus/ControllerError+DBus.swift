import ControllerAPI
import ControllerCore
import SDBus

extension ControllerError: DBusErrorConvertible {
    /// The error as the bus sends it: the API's name for its kind, and its message.
    public var dbusError: DBusError {
        let name = ErrorName.allCases.first { $0.shortName == kind } ?? .io
        return DBusError(name: name.rawValue, message: message)
    }
}

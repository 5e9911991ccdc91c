import ControllerCore
import SDBus

extension ControllerError: DBusErrorConvertible {
    public var dbusError: DBusError { DBusError(name: dbusName, message: message) }
}

import Libvirt

extension ControllerError {
    /// libvirt's error as the API's, for domains and networks alike (one mapping: what
    /// failed, then libvirt's message): a missing domain or network, one that exists
    /// already, XML or an argument libvirt refused, an operation the object's state does
    /// not allow, one the driver does not support; anything else is `Libvirt` with its code.
    static func libvirt(_ error: LibvirtError, _ what: String) -> ControllerError {
        let message = "\(what): \(error.message)"
        switch error.code {
        case LibvirtError.noDomain: return .noSuchVM(message)
        case LibvirtError.noNetwork: return .noSuchNetwork(message)
        case LibvirtError.domainExists, LibvirtError.networkExists: return .alreadyExists(message)
        case LibvirtError.xmlError, LibvirtError.xmlDetail, LibvirtError.invalidArgument: return .invalidArgs(message)
        case LibvirtError.operationInvalid: return .invalidState(message)
        case LibvirtError.noSupport, LibvirtError.operationUnsupported: return .notSupported(message)
        default: return .libvirt("\(what): libvirt error \(error.code): \(error.message)")
        }
    }
}

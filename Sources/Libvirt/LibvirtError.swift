import CLibvirt

/// An error reported by libvirt, with its numeric code, domain and message.
public struct LibvirtError: Error, Sendable, CustomStringConvertible {
    /// `virErrorNumber` value (e.g. 42 = VIR_ERR_NO_DOMAIN).
    public let code: Int32
    /// `virErrorDomain` value.
    public let domain: Int32
    public let message: String

    public var description: String { "libvirt error \(code) (domain \(domain)): \(message)" }

    /// The last error libvirt recorded on this thread, or a generic one.
    static func last(_ fallback: String) -> LibvirtError {
        guard let e = virGetLastError() else { return LibvirtError(code: -1, domain: 0, message: fallback) }
        let message = e.pointee.message.map { String(cString: $0) } ?? fallback
        let error = LibvirtError(code: e.pointee.code, domain: e.pointee.domain, message: message)
        virResetLastError()
        return error
    }
}

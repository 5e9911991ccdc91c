import CLibvirt

/// An error reported by libvirt, with its numeric code, domain and message.
public struct LibvirtError: Error, Sendable, CustomStringConvertible {
    /// `virErrorNumber` value (e.g. 42 = VIR_ERR_NO_DOMAIN).
    public let code: Int32
    /// `virErrorDomain` value.
    public let domain: Int32
    public let message: String

    public var description: String { "libvirt error \(code) (domain \(domain)): \(message)" }

    public init(code: Int32, domain: Int32, message: String) {
        self.code = code
        self.domain = domain
        self.message = message
    }

    // virErrorNumber values the service maps to its own errors.
    public static let noSupport: Int32 = 3
    public static let noConnect: Int32 = 5
    public static let invalidArgument: Int32 = 8
    public static let operationFailed: Int32 = 9
    public static let xmlError: Int32 = 27
    public static let xmlDetail: Int32 = 35
    public static let domainExists: Int32 = 28
    public static let noDomain: Int32 = 42
    public static let noNetwork: Int32 = 43
    /// `VIR_ERR_NETWORK_EXIST`: a network with this name or UUID, or this bridge, exists.
    public static let networkExists: Int32 = 37
    public static let operationInvalid: Int32 = 55
    public static let operationUnsupported: Int32 = 84

    /// The last error libvirt recorded on this thread, or a generic one. Every libvirt API
    /// call clears that error on entry, so the fallback (which may call libvirt, e.g. for a
    /// domain's name) is only evaluated after the error has been read.
    static func last(_ fallback: @autoclosure () -> String) -> LibvirtError {
        guard let e = virGetLastError() else { return LibvirtError(code: -1, domain: 0, message: fallback()) }
        let message = e.pointee.message.map { String(cString: $0) } ?? "libvirt error \(e.pointee.code)"
        let error = LibvirtError(code: e.pointee.code, domain: e.pointee.domain, message: message)
        virResetLastError()
        return error
    }
}

/// A UUID as libvirt writes it into a `VIR_UUID_STRING_BUFLEN` buffer (`fill` returns
/// libvirt's status); empty when libvirt fails.
func libvirtUUID(_ fill: (UnsafeMutablePointer<CChar>) -> Int32) -> String {
    var buffer = [CChar](repeating: 0, count: Int(VIR_UUID_STRING_BUFLEN))
    guard buffer.withUnsafeMutableBufferPointer({ fill($0.baseAddress!) }) == 0 else { return "" }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

import HostSystem

/// The readiness channel every VM the service defines carries.
extension DomainXML {
    /// The virtio-serial port name the guest writes its readiness lines to.
    public static let readinessChannel = "org.multiverse.ready.0"
    /// Port names the service reserves: caller XML may not carry them, so a domain cannot
    /// be given a socket that belongs to the service's channels of another VM.
    public static let reservedChannelPrefix = "org.multiverse."

    /// `<channel type='unix'>` with a bind source and no path: libvirt creates and labels a
    /// socket per VM (under its channel directory, as for the guest agent), qemu listens on
    /// it and the daemon connects as a client.
    static func readinessChannelElement() -> XElement {
        element("channel", nil, [("type", "unix")], [
            element("source", nil, [("mode", "bind")]),
            element("target", nil, [("type", "virtio"), ("name", readinessChannel)]),
        ])
    }

    /// `InvalidArgs` when caller XML carries a channel whose port name is the service's.
    static func refuseReservedChannels(_ domain: XElement) throws {
        for channel in domain.first("devices")?.elements("channel") ?? [] {
            if let name = channel.first("target")?.attribute("name"), name.hasPrefix(reservedChannelPrefix) {
                throw ControllerError.invalidArgs("channel \(CallerText.quoted(name)): port names under \(reservedChannelPrefix) are the service's own; caller XML may not carry them")
            }
        }
    }

    /// Caller XML with the readiness channel added (the caller may not carry one itself:
    /// ``refuseReservedChannels``).
    static func withReadinessChannel(_ xml: String) throws -> String {
        let domain = try XElement.parse(xml)
        let devices = domain.first("devices") ?? {
            let d = element("devices")
            domain.append(d)
            return d
        }()
        devices.append(readinessChannelElement())
        return domain.xmlString
    }
}

import HostSystem

/// The NICs the service writes and what it checks in a caller's domain XML.
extension DomainXML {
    /// The libvirt filter every NIC the service writes carries: the guest cannot send with
    /// another MAC or IP than its own, so an app VM cannot pose as the router on the link.
    public static let nicFilter = "clean-traffic"

    /// `<interface>` for `nic`: a virtio NIC on a libvirt network, a host bridge or a macvtap
    /// (bridge mode) on a host device, with the given MAC (else libvirt picks one) and the
    /// clean-traffic filter.
    static func interfaceElement(_ nic: NICSpec) -> XElement {
        let (type, source): (String, XElement)
        switch nic.source {
        case .network(let name): (type, source) = ("network", element("source", nil, [("network", name)]))
        case .bridge(let name): (type, source) = ("bridge", element("source", nil, [("bridge", name)]))
        case .direct(let device): (type, source) = ("direct", element("source", nil, [("dev", device), ("mode", "bridge")]))
        }
        var children = [source]
        if let mac = nic.mac { children.insert(element("mac", nil, [("address", mac)]), at: 0) }
        children.append(element("model", nil, [("type", "virtio")]))
        children.append(element("filterref", nil, [("filter", nicFilter)]))
        return element("interface", nil, [("type", type)], children)
    }

    /// The NICs of a caller's domain XML and the profile its metadata names (`""` when
    /// none), for the topology rules.
    public static func foreignTopology(_ xml: String) throws -> (profile: String, interfaces: [VMInterface]) {
        var info = VMInfo(uuid: "", name: "")
        try read(xml, into: &info)
        return (info.profile, info.interfaces)
    }
}

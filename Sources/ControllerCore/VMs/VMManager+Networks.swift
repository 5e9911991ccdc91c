import Libvirt

/// The libvirt networks a VM's NICs use, as VM calls need them (asked of libvirt, not of
/// the network cache: a network defined a moment ago counts).
extension VMManager {
    /// The defined but inactive libvirt networks among those `vm`'s NICs use, sorted.
    func inactiveNetworks(of vm: VMInfo) async throws -> [String] {
        try await inactiveNetworks(among: vm.interfaces.filter { $0.type == "network" }.map(\.source))
    }

    /// The defined but inactive networks among `names`, sorted: one hop to libvirt's thread
    /// for all of them (StartAll asks for the networks of every VM it will start at once).
    func inactiveNetworks(among names: some Sequence<String>) async throws -> [String] {
        let unique = Set(names).sorted()
        guard !unique.isEmpty else { return [] }
        return try await call("look up networks \(unique.joined(separator: ", "))") { connection in
            try unique.filter { name in try connection.network(named: name).map { !$0.isActive } ?? false }
        }
    }

    /// Starts the networks `vm` needs (Start and StartAll do this first: Debian leaves
    /// libvirt's `default` network defined but inactive). A failure is InvalidState naming them.
    func startNetworks(_ names: [String], for vm: VMInfo) async throws {
        for name in names {
            logger.notice("starting network \(name) for VM \(vm.name)")
            do {
                try await call("start network \(name)") { connection in
                    guard let network = try connection.network(named: name), !network.isActive else { return }
                    try network.start()
                }
            } catch let error as ControllerError {
                throw ControllerError.invalidState("\(vm.name) needs network \(name), which cannot be started: \(error.message)")
            }
        }
    }

    /// The kind (``NetworkInfo/kind``) of each of `names` that libvirt has a network of,
    /// asked of libvirt, not of a cache: a network defined a moment ago counts.
    func networkKinds(_ names: [String]) async throws -> [String: String] {
        let unique = Set(names).sorted()
        guard !unique.isEmpty else { return [:] }
        return try await call("look up networks \(unique.joined(separator: ", "))") { connection in
            var kinds: [String: String] = [:]
            for name in unique {
                if let network = try connection.network(named: name) { kinds[name] = try NetworkXML.read(try network.xml()).kind }
            }
            return kinds
        }
    }
}

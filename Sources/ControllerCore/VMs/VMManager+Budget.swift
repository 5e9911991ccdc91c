/// The host's budget at start time (``HostBudget``).
extension VMManager {
    /// What running VMs and those being started hold, `uuid` left out.
    func held(except uuid: String) -> [VMInfo] {
        var byUUID = starting
        for vm in vms.values where vm.state.isActive { byUUID[vm.uuid] = vm }
        byUUID[uuid] = nil
        return byUUID.values.sorted { $0.name < $1.name }
    }

    /// `LimitsExceeded` naming the figures when starting `uuid` now would overcommit the host.
    public func checkBudget(_ uuid: String) throws {
        guard let vm = vms[uuid] else { throw ControllerError.noSuchVM("no VM with UUID \(uuid)") }
        try HostBudget(host: host, config: config).check(starting: vm, held: held(except: uuid))
    }

    /// Starts a VM if the host can hold it: the check and the start are one step for the
    /// budget (a VM being started counts until it runs), so two starts at once cannot
    /// together overcommit the host.
    func startWithinBudget(_ uuid: String) async throws {
        try checkBudget(uuid)
        starting[uuid] = vms[uuid]
        defer { starting[uuid] = nil }
        try await perform(uuid, "start") { try $0.start() }
    }
}

/// The host's memory and CPUs, as libvirt's node info reports them.
public struct HostResources: Sendable, Equatable {
    public var memoryMiB: UInt64
    public var cpus: UInt32

    public init(memoryMiB: UInt64, cpus: UInt32) {
        self.memoryMiB = memoryMiB
        self.cpus = cpus
    }
}

/// The rule that the host is never overcommitted: the running VMs together hold at most
/// the host's memory minus `[vms] host_reserve_mib`, and at most as many vCPUs as the host
/// has CPUs unless `[vms] allow_cpu_overcommit`. A VM holds its maximum memory (`<memory>`),
/// since a balloon could grow it back to that.
public struct HostBudget: Sendable {
    public let host: HostResources
    public let reserveMiB: UInt64
    public let allowCPUOvercommit: Bool

    public init(host: HostResources, config: VMConfig) {
        self.host = host
        reserveMiB = config.hostReserveMiB
        allowCPUOvercommit = config.allowCPUOvercommit
    }

    /// `LimitsExceeded` naming the figures (this VM's, what the `held` VMs hold, the host's,
    /// the reserve) when starting `vm` would overcommit. A host whose figures libvirt did
    /// not report (0) is not checked.
    public func check(starting vm: VMInfo, held: [VMInfo]) throws {
        let names = held.isEmpty ? "none" : held.map(\.name).joined(separator: ", ")
        if host.memoryMiB > 0 {
            let heldMiB = held.reduce(UInt64(0)) { $0 + $1.memoryMiB }
            let usable = host.memoryMiB > reserveMiB ? host.memoryMiB - reserveMiB : 0
            if vm.memoryMiB + heldMiB > usable {
                throw ControllerError.limitsExceeded(
                    "cannot start \(vm.name): it needs \(vm.memoryMiB) MiB and the running VMs (\(names)) hold \(heldMiB) MiB, "
                    + "but the host has \(host.memoryMiB) MiB of which [vms] host_reserve_mib = \(reserveMiB) MiB is kept for itself: "
                    + "\(vm.memoryMiB + heldMiB) MiB > \(usable) MiB (the service never overcommits memory)")
            }
        }
        if host.cpus > 0, !allowCPUOvercommit {
            let heldCPUs = held.reduce(UInt64(0)) { $0 + UInt64($1.vcpus) }
            if UInt64(vm.vcpus) + heldCPUs > UInt64(host.cpus) {
                throw ControllerError.limitsExceeded(
                    "cannot start \(vm.name): it has \(vm.vcpus) vCPU(s) and the running VMs (\(names)) hold \(heldCPUs), "
                    + "but the host has \(host.cpus) CPUs: \(UInt64(vm.vcpus) + heldCPUs) > \(host.cpus) "
                    + "(set [vms] allow_cpu_overcommit = true to allow it)")
            }
        }
    }
}

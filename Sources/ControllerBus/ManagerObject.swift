import ControllerAPI
import ControllerCore
import SDBus
import Synchronization

/// `org.multiverse.Controller.Manager` at `/org/multiverse/Controller`.
final class ManagerObject: Sendable {
    let context: BusContext
    /// ListVMs' reply, sorted by name, valid while no VM changed since (generation).
    private let vmPathCache = Mutex<(generation: UInt64, paths: [String]?)>((0, nil))

    init(context: BusContext) { self.context = context }

    var disks: DiskService { context.disks }
    var vms: VMService { context.vms }

    static let bindings: [MethodBinding<ManagerObject>] = [
        .init(ManagerInterface.listVMs) { try await $0.listVMs($1) },
        .init(ManagerInterface.getVMByName) { try await $0.getVMByName($1) },
        .init(ManagerInterface.listProfiles) { try await $0.listProfiles($1) },
        .init(ManagerInterface.defineVM) { try await $0.defineVM($1) },
        .init(ManagerInterface.defineVMFromXML) { try await $0.defineVMFromXML($1) },
        .init(ManagerInterface.startAll) { try await $0.startAll($1) },
        .init(ManagerInterface.stopAll) { try await $0.stopAll($1) },
        .init(ManagerInterface.listDisks) { try await $0.listDisks($1) },
        .init(ManagerInterface.getDiskByName) { try await $0.getDiskByName($1) },
        .init(ManagerInterface.createDisk) { try await $0.createDisk($1) },
        .init(ManagerInterface.adoptDisk) { try await $0.adoptDisk($1) },
        .init(ManagerInterface.listJobs) { try await $0.listJobs($1) },
        .init(ManagerInterface.listNetworks) { try await $0.listNetworks($1) },
        .init(ManagerInterface.getNetworkByName) { try await $0.getNetworkByName($1) },
        .init(ManagerInterface.defineNetwork) { try await $0.defineNetwork($1) },
    ]

    /// Any VM changed: ListVMs' cached reply is stale.
    func vmsChanged() { vmPathCache.withLock { $0 = ($0.generation + 1, nil) } }

    func listVMs(_ call: BusCall) async throws -> [DBusValue] {
        try call.options().finish()
        let (generation, cached) = vmPathCache.withLock { $0 }
        if let cached { return [.objectPaths(cached)] }
        let paths = await vms.list().map { ObjectPaths.vm($0.uuid) }
        vmPathCache.withLock { if $0.generation == generation { $0.paths = paths } }
        return [.objectPaths(paths)]
    }

    func getVMByName(_ call: BusCall) async throws -> [DBusValue] {
        let name = call.string("name")
        try call.options().finish()
        return [.objectPath(ObjectPaths.vm(try await vms.find(name).uuid))]
    }

    func listProfiles(_ call: BusCall) async throws -> [DBusValue] {
        try call.options().finish()
        return [.array(elementSignature: "(ss)", await vms.profiles().map { .structure([.string($0.name), .string($0.description)]) })]
    }

    func defineVM(_ call: BusCall) async throws -> [DBusValue] {
        var request = VMService.DefineRequest(name: call.string("name"), profile: call.string("profile"))
        var options = try call.options()
        request.memoryMiB = try options.uint64("memory_mib")
        request.vcpus = try options.uint32("vcpus")
        request.disks = try options.strings("disks") ?? []
        request.baseDisk = try options.string("base_disk")
        request.ephemeral = try options.bool("ephemeral")
        request.shares = try options.stringPairs("shares")?.map { (hostPath: $0.0, tag: $0.1) }
        request.networks = try options.strings("networks")
        request.macs = try options.strings("macs") ?? []
        request.autostart = try options.bool("autostart") ?? false
        request.fallback = try options.string("fallback") ?? ""
        request.readyTimeoutSeconds = try options.uint32("ready_timeout_s") ?? 0
        request.seclabel = try options.string("seclabel") ?? "dynamic"
        try options.finish()
        let plan = try await vms.checkDefine(request)
        try await context.authorize(call, plan.details)
        if plan.internalNetwork != nil { try await context.authorize(call, also: .networkManage, plan.networkDetails) }
        return [.objectPath(ObjectPaths.vm(try await vms.runDefine(plan).uuid))]
    }

    func defineVMFromXML(_ call: BusCall) async throws -> [DBusValue] {
        var request = VMService.ForeignDefineRequest(xml: call.string("xml"))
        var options = try call.options()
        request.profile = try options.string("profile") ?? ""
        request.autostart = try options.bool("autostart") ?? false
        request.bootOrder = try options.uint32("boot_order")
        request.fallback = try options.string("fallback") ?? ""
        request.readyTimeoutSeconds = try options.uint32("ready_timeout_s") ?? 0
        request.consoleLog = try options.bool("console_log") ?? false
        request.baseDisk = try options.string("base_disk")
        request.ephemeral = try options.bool("ephemeral") ?? false
        try options.finish()
        let plan = try await vms.checkDefine(request)
        try await context.authorize(call, plan.details)
        return [.objectPath(ObjectPaths.vm(try await vms.runDefine(plan).uuid))]
    }

    func startAll(_ call: BusCall) async throws -> [DBusValue] {
        try call.options().finish()
        let plan = try await vms.checkStartAll()
        let caller = try await context.authorize(call, plan.details)
        if !plan.networksToStart.isEmpty { try await context.authorize(call, also: .networkManage, plan.networkDetails) }
        return BusContext.reply(try await vms.runStartAll(plan, uid: caller.uid))
    }

    func stopAll(_ call: BusCall) async throws -> [DBusValue] {
        var options = try call.options()
        let timeout = try options.uint32("timeout_s")
        try options.finish()
        let plan = try vms.checkStopAll(timeoutSeconds: timeout)
        let caller = try await context.authorize(call, plan.details)
        return BusContext.reply(try await vms.runStopAll(plan, uid: caller.uid))
    }

    func listDisks(_ call: BusCall) async throws -> [DBusValue] {
        try call.options().finish()
        return [.objectPaths(await disks.list().map { ObjectPaths.disk($0.name) })]
    }

    func getDiskByName(_ call: BusCall) async throws -> [DBusValue] {
        let name = call.string("name")
        try call.options().finish()
        return [.objectPath(ObjectPaths.disk(try await disks.lookup(name).name))]
    }

    func createDisk(_ call: BusCall) async throws -> [DBusValue] {
        var options = try call.options()
        let request = CreateDiskRequest(name: call.string("name"), size: call.uint64("size"), format: call.string("format"),
                                        backing: try options.string("backing"), preallocation: try options.string("preallocation"))
        try options.finish()
        let plan = try await disks.checkCreate(request)
        try await context.authorize(call, plan.details)
        return [.objectPath(ObjectPaths.disk(try await disks.runCreate(plan).name))]
    }

    func adoptDisk(_ call: BusCall) async throws -> [DBusValue] {
        let name = call.string("name")
        var options = try call.options()
        let force = try options.bool("force") ?? false
        try options.finish()
        guard let plan = try await disks.checkAdopt(name, format: call.string("format"), force: force) else {
            return [.objectPath(ObjectPaths.disk(name))]
        }
        try await context.authorize(call, plan.details)
        return [.objectPath(ObjectPaths.disk(try await disks.runAdopt(plan).name))]
    }

    func listJobs(_ call: BusCall) async throws -> [DBusValue] {
        try call.options().finish()
        return [.objectPaths(await context.jobs.list().map { ObjectPaths.job($0.id) })]
    }

    func listNetworks(_ call: BusCall) async throws -> [DBusValue] {
        try call.options().finish()
        return [.objectPaths(await context.networks.list().map { ObjectPaths.network($0.name) })]
    }

    func getNetworkByName(_ call: BusCall) async throws -> [DBusValue] {
        let name = call.string("name")
        try call.options().finish()
        return [.objectPath(ObjectPaths.network(try await context.networks.find(name).name))]
    }

    func defineNetwork(_ call: BusCall) async throws -> [DBusValue] {
        var request = NetworkService.DefineRequest(name: call.string("name"), kind: call.string("kind"))
        var options = try call.options()
        request.ipv4 = try options.string("ipv4")
        request.dhcp = try options.bool("dhcp")
        request.bridge = try options.string("bridge")
        request.autostart = try options.bool("autostart")
        request.start = try options.bool("start")
        try options.finish()
        let plan = try await context.networks.checkDefine(request)
        try await context.authorize(call, plan.details)
        return [.objectPath(ObjectPaths.network(try await context.networks.runDefine(plan).name))]
    }
}

import ControllerCore
import Logging
import SDBus
import Synchronization

/// The D-Bus face of the controller: exports the root Manager object and one object per
/// disk, parses and validates calls, asks the Authorizer, calls the core and replies.
/// No business logic lives here.
public final class ControllerService: Sendable {
    public static let busName = "org.multiverse.Controller"

    let bus: BusConnection
    let config: ControllerConfig
    let disks: DiskStore
    let settings: SettingsAgent
    let vms: VMManager
    let jobs: JobManager
    let backups: BackupStore
    /// Files, inspection and usage inside images (libguestfs appliances).
    let guests: GuestImages
    /// Per-disk AutoGrow and versioning policies and usage samples.
    let policies: DiskPolicyStore
    let authorizer: Authorizer
    let callers: CallerResolver
    let logger: Logger
    /// Last published `AttachedTo` of each disk (by name).
    let attachedTo = Mutex<[String: [String]]>([:])
    /// The disk sources of each VM (by UUID) when attachments were last published.
    let vmDiskSources = Mutex<[String: [String]]>([:])
    /// ListVMs' reply, sorted by name, valid while no VM changed since (generation).
    let vmPathCache = Mutex<(generation: UInt64, paths: [String]?)>((0, nil))

    public init(bus: BusConnection, config: ControllerConfig, disks: DiskStore, settings: SettingsAgent,
                vms: VMManager, jobs: JobManager, backups: BackupStore, guests: GuestImages, policies: DiskPolicyStore,
                authorizer: Authorizer, logger: Logger) {
        self.guests = guests
        self.policies = policies
        self.jobs = jobs
        self.backups = backups
        self.settings = settings
        self.vms = vms
        self.bus = bus
        self.config = config
        self.disks = disks
        self.authorizer = authorizer
        self.callers = CallerResolver(bus: bus)
        self.logger = logger
    }

    /// Exports every object. Call before requesting the name so no call finds the name
    /// without its objects.
    public func exportObjects(libvirtConnected: Bool) async throws {
        try await bus.addObjectManager(at: ObjectPaths.root)
        try await bus.export(path: ObjectPaths.root, interfaces: [
            ExportedInterface(Interfaces.manager, properties: [
                "Version": .string(ControllerVersion.version),
                "APIVersion": .uint32(ControllerVersion.apiVersion),
                "LibvirtURI": .string(config.libvirtURI),
                "LibvirtConnected": .boolean(libvirtConnected),
                "ImageDirectory": .string(config.imageDirectory),
                "BackupDirectory": .string(config.backupDirectory),
            ], handler: { [self] call in try await handleManager(call) }),
        ], announce: false)
        for disk in await disks.list() {
            try await exportDisk(disk, announce: false)
        }
        for vm in await vms.list() {
            try await exportVM(vm, announce: false)
        }
        try await exportSettings()
    }

    /// Updates `LibvirtConnected`.
    public func setLibvirtConnected(_ connected: Bool) async {
        await bus.setProperties(path: ObjectPaths.root, interface: Interfaces.manager.name,
                                ["LibvirtConnected": .boolean(connected)])
    }

    // MARK: Manager

    private func handleManager(_ call: MethodCall) async throws -> [DBusValue] {
        let args = Arguments(call: call)
        switch call.member {
        case "ListDisks":
            try args.options(0).finish()
            return [.objectPaths(await disks.list().map { ObjectPaths.disk($0.name) })]
        case "GetDiskByName":
            let name = args.string(0)
            try args.options(1).finish()
            try DiskName.validate(name)
            guard await disks.disk(named: name) != nil else { throw ControllerError.noSuchDisk("no disk named \(name)") }
            return [.objectPath(ObjectPaths.disk(name))]
        case "CreateDisk":
            return [.objectPath(try await createDisk(args))]
        default:
            if let reply = try await handleManagerVMs(call) { return reply }
            if let reply = try await handleManagerJobs(call) { return reply }
            throw ControllerError.notSupported("\(call.member) is not implemented")
        }
    }

    private func createDisk(_ args: Arguments) async throws -> String {
        // parse
        var options = try args.options(3)
        let request = CreateDiskRequest(
            name: args.string(0), size: args.uint64(1), format: args.string(2),
            backing: try options.string("backing"), preallocation: try options.string("preallocation"))
        try options.finish()
        // validate
        try request.validate(maxSize: config.maxDiskSize)
        try await disks.precheckCreate(request)
        // authorize
        let caller = try await callers.caller(for: args.call)
        try await authorizer.authorize(caller, .diskManage, details: ["disk": request.name, "operation": "create"])
        // act, announce, reply
        let info = try await disks.create(request)
        try await exportDisk(info, announce: true)
        await publishDiskChange(nil)
        return ObjectPaths.disk(info.name)
    }

    // MARK: Disks

    func exportDisk(_ disk: DiskInfo, announce: Bool) async throws {
        let name = disk.name
        let overlays = await disks.list().filter { $0.backingFile == disk.path }.map(\.name)
        let properties = diskProperties(disk, overlays: overlays).merging(Self.policyProperties(await policies.record(name))) { a, _ in a }
        try await bus.export(path: ObjectPaths.disk(name), interfaces: [
            ExportedInterface(Interfaces.disk, properties: properties,
                              handler: { [self] call in try await handleDisk(name, call) }),
        ], announce: announce)
    }

    func diskProperties(_ disk: DiskInfo, overlays: [String] = []) -> [String: DBusValue] {
        let backingName = disk.backingFile.flatMap { path -> String? in
            path.hasPrefix(disks.directory + "/") ? String(path.dropFirst(disks.directory.count + 1)) : path
        } ?? ""
        return [
            "Name": .string(disk.name),
            "Path": .string(disk.path),
            "ImageFormat": .string(disk.format),
            "VirtualSize": .uint64(disk.virtualSize),
            "AllocatedSize": .uint64(disk.allocatedSize),
            "BackingDisk": .string(backingName),
            "AttachedTo": .objectPaths(attachedTo.withLock { $0[disk.name] } ?? []),
            "Overlays": .objectPaths(overlays.map { ObjectPaths.disk($0) }),
            "Snapshots": .array(elementSignature: "(st)", disk.snapshots.map { .structure([.string($0.name), .uint64($0.created)]) }),
        ]
    }

    private func handleDisk(_ name: String, _ call: MethodCall) async throws -> [DBusValue] {
        try await handleDiskCall(name, call)
    }
}

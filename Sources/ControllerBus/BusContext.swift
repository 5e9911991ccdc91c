import ControllerAPI
import ControllerCore
import Logging
import SDBus

/// What every object of the bus layer shares: the connection, who is calling, the polkit
/// gate and the Core services the handlers call.
final class BusContext: Sendable {
    let bus: BusConnection
    let callers: CallerResolver
    let authorizer: Authorizer
    let disks: DiskService
    let vms: VMService
    let networks: NetworkService
    let jobs: JobManager
    let settings: SettingsAgent
    let logger: Logger

    init(bus: BusConnection, authorizer: Authorizer, disks: DiskService, vms: VMService, networks: NetworkService,
         jobs: JobManager, settings: SettingsAgent, logger: Logger) {
        self.bus = bus
        callers = CallerResolver(bus: bus)
        self.authorizer = authorizer
        self.disks = disks
        self.vms = vms
        self.networks = networks
        self.jobs = jobs
        self.settings = settings
        self.logger = logger
    }

    /// Who made the call (uid and pid from the bus driver).
    func caller(_ call: BusCall) async throws -> Caller { try await callers.caller(for: call.message) }

    /// Asks polkit for the action the method's declaration names, with `details` for the
    /// audit line and the rules; returns the caller when allowed.
    @discardableResult
    func authorize(_ call: BusCall, _ details: [String: String]) async throws -> Caller {
        guard let action = call.method.action else { preconditionFailure("\(call.method.name) declares no polkit action") }
        let caller = try await caller(call)
        try await authorizer.authorize(caller, action: action.rawValue, details: details)
        return caller
    }

    /// Asks polkit for a further `action` the call needs besides its declared one (a Start
    /// that must also start networks needs network.manage).
    func authorize(_ call: BusCall, also action: PolkitAction, _ details: [String: String]) async throws {
        try await authorizer.authorize(try await caller(call), action: action.rawValue, details: details)
    }

    /// The reply of a method that started a job.
    static func reply(_ job: JobSnapshot) -> [DBusValue] { [.objectPath(ObjectPaths.job(job.id))] }
}

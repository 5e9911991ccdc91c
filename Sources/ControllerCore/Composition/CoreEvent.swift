/// Everything Core reports, on one path. The bus layer mirrors these as objects, properties
/// and signals, and calls nothing back into Core while it does: each event carries what its
/// mirror shows.
public enum CoreEvent: Sendable {
    case disk(DiskEvent)
    case job(JobChange)
    case vm(VMEvent)
    case network(NetworkChange)
    case settings(SettingsAgent.Event)
    /// libvirt became reachable (after the caches were rebuilt) or unreachable.
    case libvirtConnected(Bool)
    /// A guestfs appliance was launched or closed (what the cache reported).
    case appliance(String)
}

/// The one observer of Core (the daemon's bus objects, a test's recorder).
public protocol CoreObserver: AnyObject, Sendable {
    /// Called in order for every event and awaited, so an object exists before the call
    /// that made it returns.
    func coreEvent(_ event: CoreEvent) async
}

/// A VM as its object shows it: libvirt's view and, for each of its disks, the name of the
/// managed disk it is (nil for an image outside the image directory).
public struct VMView: Sendable {
    public let info: VMInfo
    public let managedDisks: [String?]
}

/// A change of the VMs, as mirrored (Core itself handles a stopped ephemeral VM: its
/// removal follows as `.removed`).
public enum VMEvent: Sendable {
    case added(VMView)
    case updated(VMView, stateChanged: Bool)
    case removed(uuid: String)
    /// The guest sent `READY=1` (after the `.updated` that shows it).
    case ready(VMInfo)
}

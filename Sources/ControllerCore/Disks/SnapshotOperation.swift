/// What a snapshot call of a disk or a VM does; the raw value is the audit's `operation`.
public enum SnapshotOperation: String, Sendable {
    case create = "create-snapshot", revert = "revert-snapshot", delete = "delete-snapshot"
}

extension SnapshotOperation {
    /// The method that asks for it (for messages and lease labels).
    public var method: String {
        switch self {
        case .create: "CreateSnapshot"
        case .revert: "RevertSnapshot"
        case .delete: "DeleteSnapshot"
        }
    }
}

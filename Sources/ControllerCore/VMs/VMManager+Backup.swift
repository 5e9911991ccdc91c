import Libvirt

/// Push backups and checkpoints of running VMs, for the backup engine (``DiskContext``'s
/// live points). libvirt keeps a checkpoint per point; the backup store's records say which
/// ones must exist (``CheckpointXML``).
extension VMManager {
    /// Starts libvirt's push backup of VM `uuid` into targets the caller created, with the
    /// checkpoint made in the same qemu transaction.
    public func backupBegin(_ uuid: String, backup backupXML: String, checkpoint checkpointXML: String?) async throws {
        let name = vms[uuid]?.name ?? uuid
        try await call("back up VM \(name)") { try $0.domain(uuid: uuid).backupBegin(backupXML, checkpoint: checkpointXML, reuseExternal: true) }
    }

    /// The VM's current job, or (`completed`) the one that ended last.
    public func jobStats(_ uuid: String, completed: Bool) async throws -> VMJobStats {
        let name = vms[uuid]?.name ?? uuid
        let s = try await call("read the job of VM \(name)") { try $0.domain(uuid: uuid).jobStats(completed: completed) }
        return VMJobStats(running: s.state == .running, succeeded: s.state == .completed, operation: s.operation, total: s.dataTotal,
                          processed: s.dataProcessed, error: s.error)
    }

    /// Aborts the VM's current job.
    public func abortJob(_ uuid: String) async throws {
        let name = vms[uuid]?.name ?? uuid
        try await call("abort the job of VM \(name)") { try $0.domain(uuid: uuid).abortJob() }
    }

    /// The VM's checkpoints (libvirt's XML, without the domain).
    public func checkpoints(_ uuid: String) async throws -> [String] {
        let name = vms[uuid]?.name ?? uuid
        return try await call("list the checkpoints of VM \(name)") { try $0.domain(uuid: uuid).checkpoints() }
    }

    /// Records a checkpoint whose bitmaps exist in libvirt's metadata.
    public func redefineCheckpoint(_ uuid: String, _ xml: String) async throws {
        let name = vms[uuid]?.name ?? uuid
        try await call("redefine a checkpoint of VM \(name)") { try $0.domain(uuid: uuid).redefineCheckpoint(xml) }
    }

    /// Deletes a checkpoint: with its bitmaps while the VM runs, its metadata otherwise.
    public func deleteCheckpoint(_ uuid: String, _ checkpoint: String, metadataOnly: Bool) async throws {
        let name = vms[uuid]?.name ?? uuid
        try await call("delete checkpoint \(checkpoint) of VM \(name)") {
            try $0.domain(uuid: uuid).deleteCheckpoint(checkpoint, metadataOnly: metadataOnly)
        }
    }
}

/// A VM's job as the backup engine reads it.
public struct VMJobStats: Sendable, Equatable {
    /// A job runs.
    public var running: Bool
    /// (A job that ended) it succeeded.
    public var succeeded: Bool
    /// libvirt's `virDomainJobOperation`.
    public var operation: Int32
    /// `VIR_DOMAIN_JOB_OPERATION_BACKUP`.
    public static let backupOperation: Int32 = 9
    /// Bytes to copy and copied.
    public var total: UInt64
    public var processed: UInt64
    /// libvirt's message of a failed job.
    public var error: String?
}

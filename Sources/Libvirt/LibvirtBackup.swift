import CLibvirt
import FoundationEssentials
import Glibc

/// What libvirt says of a domain's block job of the backup kind (`virDomainGetJobStats`).
public struct DomainJobStats: Sendable, Equatable {
    /// `virDomainJobType`: none, bounded, unbounded, completed, failed, cancelled.
    public enum State: Sendable, Equatable {
        case none, running, completed, failed, cancelled
    }
    public var state: State
    /// `virDomainJobOperation` (backup is 9 in libvirt 9.0).
    public var operation: Int32
    public var dataTotal: UInt64
    public var dataProcessed: UInt64
    /// libvirt's error message of a failed job.
    public var error: String?
}

/// Backups and checkpoints of a running domain (libvirt's push backup with a checkpoint:
/// `virDomainBackupBegin`, `virDomainCheckpoint*`).
extension LibvirtDomain {
    /// Starts a push backup: `backupXML` names the targets (files the caller created when
    /// `reuseExternal`), `checkpointXML` the checkpoint made in the same qemu transaction.
    public func backupBegin(_ backupXML: String, checkpoint checkpointXML: String?, reuseExternal: Bool) throws {
        let flags = reuseExternal ? UInt32(VIR_DOMAIN_BACKUP_BEGIN_REUSE_EXTERNAL.rawValue) : 0
        guard virDomainBackupBegin(pointer, backupXML, checkpointXML, flags) == 0 else {
            throw LibvirtError.last("cannot start a backup of \(name)")
        }
    }

    /// The domain's current job (`completed` false) or the last one that ended (`completed`
    /// true; libvirt keeps it for the next such read).
    public func jobStats(completed: Bool) throws -> DomainJobStats {
        var type: Int32 = 0
        var params: virTypedParameterPtr?
        var count: Int32 = 0
        let flags = completed ? UInt32(VIR_DOMAIN_JOB_STATS_COMPLETED.rawValue | VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED.rawValue) : 0
        guard virDomainGetJobStats(pointer, &type, &params, &count, flags) == 0 else {
            throw LibvirtError.last("cannot read the job of \(name)")
        }
        defer { virTypedParamsFree(params, count) }
        func number(_ key: String) -> UInt64 {
            var value: UInt64 = 0
            return virTypedParamsGetULLong(params, count, key, &value) == 1 ? value : 0
        }
        var operation: Int32 = 0
        _ = virTypedParamsGetInt(params, count, VIR_DOMAIN_JOB_OPERATION, &operation)
        var message: UnsafePointer<CChar>?
        let error = virTypedParamsGetString(params, count, VIR_DOMAIN_JOB_ERRMSG, &message) == 1 ? message.map { String(cString: $0) } : nil
        let state: DomainJobStats.State = switch UInt32(type) {
        case VIR_DOMAIN_JOB_BOUNDED.rawValue, VIR_DOMAIN_JOB_UNBOUNDED.rawValue: .running
        case VIR_DOMAIN_JOB_COMPLETED.rawValue: .completed
        case VIR_DOMAIN_JOB_FAILED.rawValue: .failed
        case VIR_DOMAIN_JOB_CANCELLED.rawValue: .cancelled
        default: .none
        }
        // Backups report their data as disk figures (VIR_DOMAIN_JOB_DISK_*).
        return DomainJobStats(state: state, operation: operation, dataTotal: number(VIR_DOMAIN_JOB_DISK_TOTAL),
                              dataProcessed: number(VIR_DOMAIN_JOB_DISK_PROCESSED), error: error)
    }

    /// Aborts the domain's current job (a backup: its targets are left as qemu had them).
    public func abortJob() throws {
        guard virDomainAbortJob(pointer) == 0 else { throw LibvirtError.last("cannot abort the job of \(name)") }
    }

    /// The domain's checkpoints as libvirt describes them, with each disk's changed bytes
    /// (`size`) while the domain runs.
    public func checkpoints() throws -> [String] {
        var list: UnsafeMutablePointer<virDomainCheckpointPtr?>?
        let count = virDomainListAllCheckpoints(pointer, &list, 0)
        guard count >= 0 else { throw LibvirtError.last("cannot list the checkpoints of \(name)") }
        defer {
            for i in 0..<Int(count) { if let checkpoint = list?[i] { virDomainCheckpointFree(checkpoint) } }
            free(list)
        }
        var xmls: [String] = []
        let sizeFlag = isActive ? UInt32(VIR_DOMAIN_CHECKPOINT_XML_SIZE.rawValue) : 0
        for i in 0..<Int(count) {
            guard let checkpoint = list?[i] else { continue }
            var text = virDomainCheckpointGetXMLDesc(checkpoint, sizeFlag | UInt32(VIR_DOMAIN_CHECKPOINT_XML_NO_DOMAIN.rawValue))
            if text == nil {
                // The size needs qemu; a domain stopping meanwhile still has the rest.
                virResetLastError()
                text = virDomainCheckpointGetXMLDesc(checkpoint, UInt32(VIR_DOMAIN_CHECKPOINT_XML_NO_DOMAIN.rawValue))
            }
            guard let text else { throw LibvirtError.last("cannot read a checkpoint of \(name)") }
            xmls.append(String(cString: text))
            free(text)
        }
        return xmls
    }

    /// Records an existing checkpoint (its bitmaps already in the images) in libvirt's
    /// metadata: `VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE`.
    public func redefineCheckpoint(_ xml: String) throws {
        guard let checkpoint = virDomainCheckpointCreateXML(pointer, xml, UInt32(VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE.rawValue)) else {
            throw LibvirtError.last("cannot redefine a checkpoint of \(name)")
        }
        virDomainCheckpointFree(checkpoint)
    }

    /// Deletes checkpoint `checkpointName`: its bitmaps too while the domain runs, its
    /// metadata only (`metadataOnly`, the only way for a stopped domain).
    public func deleteCheckpoint(_ checkpointName: String, metadataOnly: Bool) throws {
        guard let checkpoint = virDomainCheckpointLookupByName(pointer, checkpointName, 0) else {
            throw LibvirtError.last("no checkpoint \(checkpointName) of \(name)")
        }
        defer { virDomainCheckpointFree(checkpoint) }
        let flags = metadataOnly ? UInt32(VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY.rawValue) : 0
        guard virDomainCheckpointDelete(checkpoint, flags) == 0 else {
            throw LibvirtError.last("cannot delete checkpoint \(checkpointName) of \(name)")
        }
    }
}

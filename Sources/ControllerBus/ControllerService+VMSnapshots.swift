import ControllerCore
import SDBus

/// CreateSnapshot, RevertSnapshot, DeleteSnapshot and ListSnapshots of a VM object.
extension ControllerService {
    func handleVMSnapshots(_ info: VMInfo, _ call: MethodCall,
                           authorize: (PolkitAction, String) async throws -> Void) async throws -> [DBusValue] {
        let args = Arguments(call: call)
        let snapshots = VMSnapshots(qemuImg: QemuImg(path: config.qemuImgPath))
        let all = await disks.list()
        if call.member == "ListSnapshots" {
            try args.options(0).finish()
            let byPath = Set(all.map(\.path))
            let managed = all.filter { d in info.disks.contains { $0.source == d.path } && byPath.contains(d.path) && d.format == "qcow2" }
            let list = managed.isEmpty ? [] : try await snapshots.list(managed)
            return [.array(elementSignature: "(st)", list.map { .structure([.string($0.name), .uint64($0.created)]) })]
        }
        let name = args.string(0)
        try args.options(1).finish()
        // validate
        guard DiskName.isValid(name) else {
            throw ControllerError.invalidArgs("invalid snapshot name \(DiskName.quoted(name)): use 1-64 characters of A-Z a-z 0-9 . _ -, not starting with '.' or '-'")
        }
        let vmDisks = try VMSnapshots.disks(of: info, managed: all)
        let uuid = info.uuid
        switch call.member {
        case "CreateSnapshot":
            try await snapshots.requireAbsent(name, on: vmDisks)
            try await authorize(.vmControl, "create-snapshot")
            let job = try await jobs.start(operation: "CreateSnapshot", target: ObjectPaths.vm(uuid), uid: try await callers.caller(for: call).uid) { job in
                try await snapshots.create(name, on: vmDisks, job: job)
                return ["snapshot": .string(name), "disks": .strings(vmDisks.map(\.name))]
            }
            return [.objectPath(ObjectPaths.job(job.id))]
        case "RevertSnapshot":
            try await snapshots.require(name, on: vmDisks)
            for disk in vmDisks {
                // Reverting an image others are built on would corrupt them.
                do { try await disks.precheckDelete(disk.name) } catch let error as ControllerError {
                    if case .busy(let message) = error { throw ControllerError.busy("cannot revert: \(message)") }
                    throw error
                }
            }
            try await authorize(.vmConfigure, "revert-snapshot")
            let job = try await jobs.start(operation: "RevertSnapshot", target: ObjectPaths.vm(uuid), uid: try await callers.caller(for: call).uid) { job in
                try await snapshots.revert(name, on: vmDisks, job: job)
                return ["snapshot": .string(name), "disks": .strings(vmDisks.map(\.name))]
            }
            return [.objectPath(ObjectPaths.job(job.id))]
        case "DeleteSnapshot":
            try await snapshots.require(name, on: vmDisks)
            try await authorize(.vmConfigure, "delete-snapshot")
            try await snapshots.delete(name, on: vmDisks)
            logger.notice("deleted snapshot \(name) of VM \(info.name)")
            return []
        default:
            throw ControllerError.notSupported("\(call.member) is not implemented")
        }
    }
}

import ControllerCore
import Foundation
import SDBus

/// AttachDisk, DetachDisk, AddShare and RemoveShare of a VM object.
extension ControllerService {
    static let diskBuses = ["virtio", "scsi", "sata", "ide", "usb"]

    func handleVMDevices(_ info: VMInfo, _ call: MethodCall,
                         authorize: (PolkitAction, String) async throws -> Void) async throws {
        let args = Arguments(call: call)
        let name = info.name
        let active = ["running", "paused", "blocked"].contains(info.state)
        /// Where a change goes: what the caller asked for, defaulting to what the state allows.
        func impact(_ options: inout Options) throws -> (live: Bool, config: Bool) {
            let live = try options.bool("live") ?? active
            let config = try options.bool("persistent") ?? info.persistent
            if live && !active { throw ControllerError.invalidState("cannot change \(name) live: it is \(info.state)") }
            if config && !info.persistent { throw ControllerError.invalidState("\(name) is transient; it has no persistent definition") }
            if !live && !config { throw ControllerError.invalidArgs("live and persistent are both false: nothing to do") }
            return (live, config)
        }
        switch call.member {
        case "AttachDisk":
            let disk = args.string(0)
            let target = args.string(1)
            var options = try args.options(2)
            let readonly = try options.bool("readonly") ?? false
            let busOption = try options.string("bus")
            let (live, config) = try impact(&options)
            try options.finish()
            // validate
            guard Self.isDiskTarget(target) else {
                throw ControllerError.invalidArgs("invalid target \(DiskName.quoted(target)): use vdX, sdX or hdX (X: 1-2 letters a-z)")
            }
            let bus = busOption ?? (target.hasPrefix("vd") ? "virtio" : target.hasPrefix("sd") ? "sata" : "ide")
            guard Self.diskBuses.contains(bus) else {
                throw ControllerError.invalidArgs("invalid bus \(DiskName.quoted(bus)) (\(Self.diskBuses.joined(separator: ", ")))")
            }
            let (path, format) = try await resolveImage(disk)
            if let used = info.disks.first(where: { $0.target == target }) {
                throw ControllerError.alreadyExists("target \(target) of \(name) is already used by \(used.source)")
            }
            if info.disks.contains(where: { $0.source == path }) {
                throw ControllerError.alreadyExists("\(path) is already attached to \(name)")
            }
            if !readonly, let other = await vms.list().first(where: { $0.uuid != info.uuid && $0.disks.contains { $0.source == path } }) {
                throw ControllerError.busy("\(path) is attached to VM \(other.name); attach it readonly or detach it there first")
            }
            try await authorize(.vmConfigure, "attach-disk")
            try await vms.attach(info.uuid, device: DomainXML.diskDevice(path: path, format: format, target: target, bus: bus, readonly: readonly),
                                 live: live, config: config, what: "attach \(path) as \(target) to")
        case "DetachDisk":
            let target = args.string(0)
            var options = try args.options(1)
            let (live, config) = try impact(&options)
            let timeout = try options.uint32("timeout_s").map { Int($0) } ?? vms.config.detachTimeoutSeconds
            try options.finish()
            guard Self.isDiskTarget(target) else { throw ControllerError.invalidArgs("invalid target \(DiskName.quoted(target))") }
            guard info.disks.contains(where: { $0.target == target }) || config else {
                throw ControllerError.invalidArgs("\(name) has no disk at target \(target)")
            }
            try await authorize(.vmConfigure, "detach-disk")
            try await vms.detach(info.uuid, disk: target, live: live, config: config, timeout: .seconds(timeout), what: "detach \(target) from")
        case "AddShare":
            let hostPath = args.string(0)
            let tag = args.string(1)
            var options = try args.options(2)
            let readonly = try options.bool("readonly") ?? false
            try options.finish()
            try VMName.validateTag(tag)
            let real = try SharePath.validate(hostPath, roots: vms.config.shareRoots)
            guard !active else { throw ControllerError.invalidState("9p shares cannot be hot-plugged; stop \(name) first (it is \(info.state))") }
            if info.shares.contains(where: { $0.tag == tag }) { throw ControllerError.alreadyExists("\(name) already has a share tagged \(tag)") }
            try await authorize(.vmConfigure, "add-share")
            try await vms.attach(info.uuid, device: DomainXML.shareDevice(VMShare(hostPath: real, tag: tag, readonly: readonly)),
                                 live: false, config: true, what: "share \(real) as \(tag) with")
        case "RemoveShare":
            let tag = args.string(0)
            try args.options(1).finish()
            try VMName.validateTag(tag)
            guard !active else { throw ControllerError.invalidState("9p shares cannot be hot-unplugged; stop \(name) first (it is \(info.state))") }
            guard info.shares.contains(where: { $0.tag == tag }) else { throw ControllerError.invalidArgs("\(name) has no share tagged \(tag)") }
            try await authorize(.vmConfigure, "remove-share")
            try await vms.detach(info.uuid, share: tag, live: false, config: true, timeout: .seconds(1), what: "remove share \(tag) from")
        default:
            throw ControllerError.notSupported("\(call.member) is not implemented")
        }
    }

    /// `vdb`, `sdc`, `hdaa`: a bus prefix and 1–2 letters.
    static func isDiskTarget(_ target: String) -> Bool {
        guard ["vd", "sd", "hd"].contains(String(target.prefix(2))) else { return false }
        let rest = target.dropFirst(2)
        return (1...2).contains(rest.count) && rest.allSatisfy { ("a"..."z").contains($0) }
    }

    /// A managed disk name or an absolute path under an allowed image root → (path, format).
    func resolveImage(_ disk: String) async throws -> (String, String) {
        if !disk.hasPrefix("/") {
            try DiskName.validate(disk)
            guard let managed = await disks.disk(named: disk) else { throw ControllerError.noSuchDisk("no disk named \(disk)") }
            return (managed.path, managed.format)
        }
        let path = try ImagePath.validate(disk, roots: [config.imageDirectory] + vms.config.imageRoots)
        let info = try await QemuImg(path: config.qemuImgPath).info(path: path)
        return (path, info.format)
    }
}

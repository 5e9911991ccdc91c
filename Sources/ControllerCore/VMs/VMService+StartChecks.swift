import HostSystem
import FoundationEssentials

/// What Start, StartAll and a fallback start check on the host right before libvirt starts
/// a VM: its managed disks are usable as recorded, its shares still lead where they did.
extension VMService {
    /// Each managed disk of the VM (a file of the image directory) is usable and opened as
    /// its recorded format: a disk without a record, with a broken backing chain, or whose
    /// `<driver type>` differs from the record is `InvalidState` naming it.
    func checkDisks(of info: VMInfo) async throws {
        for used in info.disks where used.source.hasPrefix(imageDirectory + "/") {
            let name = String(used.source.dropFirst(imageDirectory.count + 1))
            guard NameRule.disk.isValid(name), let disk = try? await disks.existingAny(name) else { continue }
            guard disk.problems.isEmpty else {
                throw ControllerError.invalidState("cannot start \(info.name): \(disk.problems.joined(separator: "; "))")
            }
            guard used.format == disk.format else {
                throw ControllerError.invalidState("cannot start \(info.name): it opens disk \(name) as \(CallerText.quoted(used.format)), but \(name) is recorded as \(disk.format)")
            }
        }
    }

    /// Each 9p share still leads where it was defined (its path was resolved then): a
    /// folder swapped for a symlink since is refused, naming it. A missing folder is left to
    /// libvirt's own error. What remains open is the window between this check and qemu's
    /// own open of the directory (README, Security model).
    func checkShares(of info: VMInfo) throws {
        for share in info.shares {
            guard let real = Files.resolved(share.hostPath) else { continue }
            guard real == share.hostPath else {
                throw ControllerError.invalidState("cannot start \(info.name): share \(share.tag) \(CallerText.quoted(share.hostPath)) now leads to \(real) (a link was put in its way)")
            }
        }
    }
}

import HostSystem

/// libvirt's checkpoints and push backups of a running VM as the backup engine writes and
/// reads them, and the rule that keeps libvirt's checkpoints in step with the service's
/// records (one owner of the bitmaps: the records). No I/O.
public enum CheckpointXML {
    /// One of libvirt's checkpoints: its name and, per disk target, the bitmap it keeps and
    /// the bytes changed since (libvirt says those only for a running VM whose qemu has a
    /// consistent bitmap of that name).
    public struct Checkpoint: Sendable, Equatable {
        public var name: String
        public var bitmaps: [String: String]
        public var changedBytes: [String: UInt64]
    }

    /// Reads libvirt's `<domaincheckpoint>`.
    public static func parse(_ xml: String) throws -> Checkpoint {
        let root = try XElement.parse(xml)
        guard root.name == "domaincheckpoint", let name = root.first("name")?.text, !name.isEmpty else {
            throw ControllerError.libvirt("libvirt described a checkpoint without a name")
        }
        var bitmaps: [String: String] = [:]
        var sizes: [String: UInt64] = [:]
        for disk in root.first("disks")?.elements("disk") ?? [] where disk.attribute("checkpoint") == "bitmap" {
            guard let target = disk.attribute("name") else { continue }
            bitmaps[target] = disk.attribute("bitmap") ?? name
            if let size = disk.attribute("size").flatMap(UInt64.init) { sizes[target] = size }
        }
        return Checkpoint(name: name, bitmaps: bitmaps, changedBytes: sizes)
    }

    /// A checkpoint of `bitmaps` (target → bitmap name); every other disk of the VM
    /// (`targets`) is named with `checkpoint='no'`.
    public static func checkpoint(name: String, bitmaps: [String: String], targets: [String], created: UInt64? = nil) -> String {
        let disks = XElement("disks", children: targets.sorted().map { target in
            if let bitmap = bitmaps[target] {
                return XElement("disk", attributes: [("name", target), ("checkpoint", "bitmap"), ("bitmap", bitmap)])
            }
            return XElement("disk", attributes: [("name", target), ("checkpoint", "no")])
        })
        var children = [XElement("name", text: name)]
        if let created { children.append(XElement("creationTime", text: String(created))) }
        children.append(disks)
        return XElement("domaincheckpoint", children: children).xmlString
    }

    /// One disk of a push backup: its target in the VM, the file qemu writes (created by the
    /// service, an overlay of the parent point) and the checkpoint whose bitmap says what to
    /// copy (nil: everything).
    public struct BackupDisk: Sendable, Equatable {
        public var target: String
        public var file: String
        public var since: String?
        public init(target: String, file: String, since: String?) {
            (self.target, self.file, self.since) = (target, file, since)
        }
    }

    /// A push backup of `disks`; the VM's other disks (`targets`) are left out.
    public static func pushBackup(_ disks: [BackupDisk], targets: [String]) -> String {
        let byTarget = Dictionary(disks.map { ($0.target, $0) }) { a, _ in a }
        let elements = targets.sorted().map { target -> XElement in
            guard let d = byTarget[target] else { return XElement("disk", attributes: [("name", target), ("backup", "no")]) }
            var attributes = [("name", target), ("backup", "yes"), ("type", "file")]
            if let since = d.since {
                attributes += [("backupmode", "incremental"), ("incremental", since)]
            } else {
                attributes.append(("backupmode", "full"))
            }
            return XElement("disk", attributes: attributes, children: [XElement("target", attributes: [("file", d.file)]),
                                                                     XElement("driver", attributes: [("type", "qcow2")])])
        }
        return XElement("domainbackup", attributes: [("mode", "push")], children: [XElement("disks", children: elements)]).xmlString
    }

    /// What to change in libvirt so that its checkpoints are exactly the ones the records
    /// need: `wanted` is, per target, the bitmap of the disk's newest point.
    public struct Reconciliation: Sendable, Equatable {
        /// The service's checkpoints (named `mv-…`) no record needs (left by a failed backup
        /// or by older points): deleted. Other tools' checkpoints are left alone.
        public var delete: [String]
        /// Target → bitmap pairs no checkpoint describes (an offline point's, or metadata
        /// lost): redefined, each as a checkpoint named after its bitmap.
        public var redefine: [String: String]
    }

    /// A checkpoint is kept while one of its disks' bitmaps is wanted for that disk; a wanted
    /// bitmap no kept checkpoint describes is redefined, unless a checkpoint of that name is
    /// kept for another disk (then it cannot be, and the disk's next point is full).
    public static func reconcile(_ existing: [Checkpoint], wanted: [String: String]) -> Reconciliation {
        let kept = existing.filter { c in c.bitmaps.contains { wanted[$0.key] == $0.value } }
        let keptNames = Set(kept.map(\.name))
        var redefine: [String: String] = [:]
        for (target, bitmap) in wanted where !kept.contains(where: { $0.bitmaps[target] == bitmap }) && !keptNames.contains(bitmap) {
            redefine[target] = bitmap
        }
        let stale = existing.map(\.name).filter { !keptNames.contains($0) && $0.hasPrefix(BackupChain.bitmapPrefix) }
        return Reconciliation(delete: stale.sorted(), redefine: redefine)
    }

    /// The checkpoint describing `bitmap` on `target`, if libvirt has one.
    public static func describing(_ bitmap: String, on target: String, in checkpoints: [Checkpoint]) -> Checkpoint? {
        checkpoints.first { $0.bitmaps[target] == bitmap }
    }
}

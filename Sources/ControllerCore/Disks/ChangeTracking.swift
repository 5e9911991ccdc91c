/// What a disk's `ChangeTracking` property says: whether the writes since its newest
/// backup point are tracked (so the next point is incremental), since when, why not, and
/// how many bytes changed since the point as last measured.
public struct ChangeTracking: Sendable, Equatable {
    public enum State: String, Sendable {
        /// The newest point's bitmap is on the disk and consistent: the next point (mode
        /// auto) is incremental on it.
        case tracking
        /// Nothing to track from: no point yet, or a disk that cannot track changes (raw,
        /// qcow2 version 2, a disk other disks are built on).
        case none
        /// Points exist but the tracking since the newest is gone or inconsistent: the next
        /// point is full.
        case broken
    }

    public var state: State
    /// The newest point's creation time (seconds since the epoch); 0 without a point.
    public var since: UInt64
    /// Why the next point is full (`none`, `broken`); empty when tracking.
    public var reason: String
    /// The bytes changed since the newest point as last measured (at the point, and by a
    /// running VM's qemu); nil when not measured since the point.
    public var changed: UInt64?
    /// When `changed` was measured (seconds since the epoch); 0 when it was not.
    public var measured: UInt64

    public init(state: State, since: UInt64, reason: String, changed: UInt64? = nil, measured: UInt64 = 0) {
        (self.state, self.since, self.reason, self.changed, self.measured) = (state, since, reason, changed, measured)
    }

    /// A measurement of the bytes changed since point `point`; `bytes` nil: the running
    /// VM's qemu has no consistent tracking since it (libvirt gives the point's checkpoint
    /// no size).
    public struct Measure: Sendable, Equatable {
        public var point: String
        public var bytes: UInt64?
        public var at: UInt64
    }

    /// The tracking of `disk` (as last read: its bitmaps) since `head`, its newest point, by
    /// the same rules that decide the next point (``BackupChain/plan(mode:disk:image:head:headUsable:isBase:policy:chainLength:)``,
    /// mode auto, without the policy's own reasons for a full point). `running`: a VM's
    /// qemu has the disk open, so its bitmaps are marked in use on the file while they are
    /// consistent in qemu; a bitmap made while it runs is in qemu only, so there a measure
    /// since `head` (libvirt's word) replaces what the file said. `measure` counts only
    /// when it was taken since `head`.
    public static func of(_ disk: DiskInfo, head: BackupPoint?, isBase: Bool, running: Bool, measure: Measure?) -> ChangeTracking {
        var bitmaps = disk.bitmaps.map { (name: $0.name, flags: running || !$0.inUse ? [String]() : ["in-use"]) }
        let measure = measure.flatMap { $0.point == head?.id ? $0 : nil }
        if running, let bitmap = head?.bitmap, let measure {
            bitmaps.removeAll { $0.name == bitmap }
            bitmaps.append((name: bitmap, flags: measure.bytes == nil ? ["in-use"] : []))
        }
        let image = ImageInfo(format: disk.format, virtualSize: disk.virtualSize, allocatedSize: disk.allocatedSize,
                              compat: disk.compat, bitmaps: bitmaps)
        let plan = (try? BackupChain.plan(mode: .auto, disk: disk, image: image, head: head, headUsable: true, isBase: isBase))
            ?? .full(reason: "the disk cannot be read")
        switch plan {
        case .incremental(let parent):
            let changed = measure?.bytes
            return ChangeTracking(state: .tracking, since: parent.created, reason: "", changed: changed, measured: changed == nil ? 0 : measure?.at ?? 0)
        case .full(let reason):
            let canTrack = !isBase && disk.format == "qcow2" && disk.compat != "0.10"
            guard let head, canTrack else { return ChangeTracking(state: .none, since: head?.created ?? 0, reason: reason ?? "") }
            return ChangeTracking(state: .broken, since: head.created, reason: reason ?? "")
        }
    }
}

import Guestfs

/// How an image's filesystems are mounted for file operations: an operating system found
/// by inspection is mounted as it would mount itself (its fstab mountpoints); otherwise
/// the first filesystem found is mounted at `/`.
enum GuestMount {
    static func mountAll(_ s: GuestfsSession, readonly: Bool) throws {
        if let root = try s.inspectOS().first {
            let points = try s.inspectMountpoints(root).sorted { $0.mountpoint.count < $1.mountpoint.count }
            for point in points {
                do {
                    try s.mount(point.device, at: point.mountpoint, readonly: readonly)
                } catch where point.mountpoint != "/" {
                    continue // e.g. a /boot on another disk: the rest stays usable
                }
            }
            return
        }
        let candidates = try s.listFilesystems().filter { !["swap", "unknown", ""].contains($0.type) }
        guard let first = candidates.first else {
            throw GuestfsError(function: "mount", message: "no filesystem found on the disk (Format creates one)")
        }
        try s.mount(first.device, at: "/", readonly: readonly)
    }
}

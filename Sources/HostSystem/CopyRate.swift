import Glibc

/// How fast the daemon's bulk copies of images may read: Clone, Backup, Restore and the
/// private copy an offline Resize or a Format of a disk with snapshots works on. A copy at disk speed
/// takes the disks from the running VMs for as long as it lasts; a limit (`[disks]
/// copy_rate_mib_s`) spreads it out. The daemon's own byte copies pace their reads to it,
/// and `qemu-img convert` gets it as `-r`. A reflink clone moves no data and is not paced;
/// holes are skipped, not read, so they do not count.
public struct CopyRate: Sendable, Equatable {
    /// Bytes per second; nil: as fast as the disks go.
    public let bytesPerSecond: UInt64?

    /// No limit.
    public static let unlimited = CopyRate(bytesPerSecond: nil)

    /// A limit of `bytesPerSecond` (nil or 0: none).
    public init(bytesPerSecond: UInt64?) {
        self.bytesPerSecond = bytesPerSecond == 0 ? nil : bytesPerSecond
    }

    /// The same limit for `qemu-img convert` (bytes per second).
    public var qemuImgArguments: [String] {
        bytesPerSecond.map { ["-r", String($0)] } ?? []
    }
}

/// Paces one copy's reads to a `CopyRate`: after each block read, the reading thread
/// sleeps until the bytes read so far are due, in slices of at most 50 ms so that a stop
/// (cancellation) is seen quickly.
struct CopyPacer {
    let rate: UInt64?
    private let start = ContinuousClock.now
    private var bytes: UInt64 = 0

    init(_ rate: CopyRate) { self.rate = rate.bytesPerSecond }

    /// Accounts for `count` more bytes read and waits until they are due (or `stopped()`).
    mutating func read(_ count: Int, stopped: () -> Bool) {
        guard let rate, count > 0 else { return }
        bytes += UInt64(count)
        let due = start + .nanoseconds(Int64(Double(bytes) / Double(rate) * 1e9))
        while !stopped() {
            let left = due - ContinuousClock.now
            guard left > .zero else { return }
            let slice = min(left, .milliseconds(50)).components
            usleep(UInt32(slice.seconds * 1_000_000 + slice.attoseconds / 1_000_000_000_000))
        }
    }
}

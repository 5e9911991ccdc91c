import BlockingThreads
import CCrypto
import Dispatch
import FoundationEssentials
import Glibc
import Synchronization

/// SHA-256 of fixed-size blocks of a disk's guest-visible content, assembled from pieces of
/// files (a qcow2 image's data clusters at their host offsets) and runs of zeros.
///
/// The caller says where the bytes are (qemu-img's map of the image), as runs of whole
/// blocks; this only reads and hashes, on several threads (every core, at most four), each
/// with a buffer of its own, so hashing runs at memory speed for data in the page cache.
/// Digests live in one flat array (32 bytes per block), not one allocation per block: a
/// 1 TiB disk has 16 million blocks. A block whose bytes are all zero gets ``zeroDigest``
/// instead of its hash, so an index is a function of the content alone (a zero cluster, a
/// hole and a written block of zeros all look the same).
public enum BlockHasher {
    /// Where a stretch of a run's bytes comes from.
    public enum Piece: Sendable, Equatable {
        /// `length` bytes of file number `file` (an index into the files passed to
        /// ``hash(files:runs:blockSize:virtualSize:base:)``) at `offset`.
        case data(file: Int, offset: UInt64, length: Int)
        /// `length` zero bytes.
        case zeros(length: Int)

        public var length: Int {
            switch self {
            case .data(_, _, let length), .zeros(let length): length
            }
        }
    }

    /// Consecutive blocks to hash, from `firstBlock` on, and their bytes in order (whole
    /// blocks; the disk's last block may be short).
    public struct Run: Sendable, Equatable {
        public var firstBlock: Int
        public var pieces: [Piece]
        public init(firstBlock: Int, pieces: [Piece]) {
            self.firstBlock = firstBlock
            self.pieces = pieces
        }
        public var length: Int { pieces.reduce(0) { $0 + $1.length } }
    }

    /// What an all-zero block is recorded as: 32 zero bytes (no SHA-256 is known to be it).
    public static let zeroDigest = [UInt8](repeating: 0, count: 32)

    /// The digests of every block of a disk of `virtualSize` bytes, 32 bytes each in block
    /// order: those of `runs` hashed, the others taken from `base` (the parent point's
    /// digests; nil: zero blocks). Reads each piece once with `pread`; a file that ends early
    /// is an `Io` error naming it. Task cancellation stops the hashing between blocks
    /// (`CancellationError`).
    public static func hash(files: [String], runs: [Run], blockSize: Int, virtualSize: UInt64, base: [UInt8]?) async throws -> [UInt8] {
        let count = Int((virtualSize + UInt64(blockSize) - 1) / UInt64(blockSize))
        if let base, base.count != count * 32 { throw SystemError.invalidInput("the base index has \(base.count / 32) blocks, not \(count)") }
        for run in runs {
            let end = UInt64(run.firstBlock) * UInt64(blockSize) + UInt64(run.length)
            guard run.firstBlock >= 0, end <= virtualSize, run.length > 0 else {
                throw SystemError.invalidInput("a run of blocks from \(run.firstBlock) ends at \(end), past the disk's \(virtualSize) bytes")
            }
        }
        let stop = StopFlag()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[UInt8], Error>) in
                NamedThread.start("block-hash") {
                    continuation.resume(with: Result {
                        try hashBlocking(files: files, runs: runs, blockSize: blockSize,
                                         digests: base ?? [UInt8](repeating: 0, count: count * 32), stop: stop)
                    })
                }
            }
        } onCancel: {
            stop.set()
        }
    }

    /// Set by the cancellation handler, read by the hashing threads (which have no task).
    final class StopFlag: Sendable {
        private let flag = Atomic<Bool>(false)
        var isSet: Bool { flag.load(ordering: .relaxed) }
        func set() { flag.store(true, ordering: .relaxed) }
    }

    static func hashBlocking(files: [String], runs: [Run], blockSize: Int, digests: [UInt8], stop: StopFlag) throws -> [UInt8] {
        var descriptors: [Int32] = []
        defer { descriptors.forEach { close($0) } }
        for path in files {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw SystemError.io("cannot open \(path) to hash it: \(String(cString: strerror(errno)))") }
            descriptors.append(fd)
        }
        let fds = descriptors
        let workers = max(1, min(4, ProcessInfo.processInfo.activeProcessorCount, runs.count))
        let result = Mutex<[UInt8]>(digests)
        let failure = Mutex<Error?>(nil)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: blockSize, alignment: 4096)
            defer { buffer.deallocate() }
            var index = worker
            while index < runs.count {
                do {
                    let hashed = try hashRun(runs[index], buffer: buffer, blockSize: blockSize, fds: fds, files: files) {
                        stop.isSet || failure.withLock { $0 != nil }
                    }
                    let at = runs[index].firstBlock * 32
                    result.withLock { all in
                        all.withUnsafeMutableBytes { target in
                            hashed.withUnsafeBytes { (target.baseAddress! + at).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                        }
                    }
                } catch {
                    failure.withLock { $0 = $0 ?? error }
                    return
                }
                index += workers
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        if stop.isSet { throw CancellationError() }
        return result.withLock { $0 }
    }

    /// The digests of one run's blocks (32 bytes each).
    static func hashRun(_ run: Run, buffer: UnsafeMutableRawPointer, blockSize: Int, fds: [Int32], files: [String],
                        stopped: () -> Bool) throws -> [UInt8] {
        var out = [UInt8]()
        let total = run.length
        out.reserveCapacity((total + blockSize - 1) / blockSize * 32)
        var pieceIndex = 0
        var pieceOffset = 0
        var done = 0
        var digest = [UInt8](repeating: 0, count: 32)
        while done < total {
            if stopped() { throw CancellationError() }
            let length = min(blockSize, total - done)
            var filled = 0
            while filled < length {
                let piece = run.pieces[pieceIndex]
                let take = min(piece.length - pieceOffset, length - filled)
                switch piece {
                case .zeros:
                    memset(buffer + filled, 0, take)
                case .data(let file, let offset, _):
                    guard fds.indices.contains(file) else { throw SystemError.invalidInput("a piece names no file \(file)") }
                    try readFully(fds[file], buffer + filled, take, at: offset + UInt64(pieceOffset), path: files[file])
                }
                filled += take
                pieceOffset += take
                if pieceOffset == piece.length {
                    pieceIndex += 1
                    pieceOffset = 0
                }
            }
            if isZero(buffer, length) {
                out += zeroDigest
            } else {
                var size: UInt32 = 0
                guard EVP_Digest(buffer, length, &digest, &size, EVP_sha256(), nil) == 1, size == 32 else {
                    throw SystemError.io("libcrypto could not hash a block")
                }
                out += digest
            }
            done += length
        }
        return out
    }

    static func readFully(_ fd: Int32, _ into: UnsafeMutableRawPointer, _ length: Int, at offset: UInt64, path: String) throws {
        var done = 0
        while done < length {
            let n = pread(fd, into + done, length - done, off_t(offset) + off_t(done))
            if n < 0, errno == EINTR { continue }
            guard n > 0 else {
                let reason = n == 0 ? "it ends before offset \(offset + UInt64(length))" : String(cString: strerror(errno))
                throw SystemError.io("cannot read \(path) at \(offset + UInt64(done)): \(reason)")
            }
            done += n
        }
    }

    static func isZero(_ buffer: UnsafeMutableRawPointer, _ length: Int) -> Bool {
        let words = length / 8
        let p = buffer.assumingMemoryBound(to: UInt64.self)
        for i in 0..<words where p[i] != 0 { return false }
        let bytes = buffer.assumingMemoryBound(to: UInt8.self)
        for i in (words * 8)..<length where bytes[i] != 0 { return false }
        return true
    }

    /// The lowercase hex SHA-256 of `bytes` (an index's digest).
    public static func sha256Hex(_ bytes: [UInt8]) throws -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        var size: UInt32 = 0
        let ok = bytes.withUnsafeBytes { EVP_Digest($0.baseAddress, $0.count, &digest, &size, EVP_sha256(), nil) }
        guard ok == 1, size == 32 else { throw SystemError.io("libcrypto could not hash an index") }
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        return String(decoding: digest.flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 0x0f)]] }, as: UTF8.self)
    }
}

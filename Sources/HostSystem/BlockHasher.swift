import BlockingThreads
import CCrypto
import Dispatch
import FoundationEssentials
import Glibc
import Synchronization

/// SHA-256 of fixed-size blocks of a disk's guest-visible content, assembled from pieces of
/// files (a qcow2 image's data clusters at their host offsets) and runs of zeros.
///
/// The caller says where each block's bytes are (qemu-img's map of the image); this only
/// reads and hashes, on several threads (every core, at most four), each with a buffer of
/// its own, so hashing runs at memory speed for data in the page cache. A block whose bytes
/// are all zero gets ``zeroDigest`` instead of its hash, so an index is a function of the
/// content alone (a zero cluster, a hole and a written block of zeros all look the same).
public enum BlockHasher {
    /// Where a run of a block's bytes comes from.
    public enum Piece: Sendable, Equatable {
        /// `length` bytes of file number `file` (an index into the files passed to
        /// ``hash(files:blocks:blockSize:stop:)``) at `offset`.
        case data(file: Int, offset: UInt64, length: Int)
        /// `length` zero bytes.
        case zeros(length: Int)

        var length: Int {
            switch self {
            case .data(_, _, let length), .zeros(let length): length
            }
        }
    }

    /// One block to hash: its number and its bytes, in order.
    public struct Block: Sendable, Equatable {
        public var number: Int
        public var pieces: [Piece]
        public init(number: Int, pieces: [Piece]) {
            self.number = number
            self.pieces = pieces
        }
    }

    /// What an all-zero block is recorded as: 32 zero bytes (no SHA-256 is known to be it).
    public static let zeroDigest = [UInt8](repeating: 0, count: 32)

    /// The digests of `blocks` (32 bytes each, in the order given). Reads each piece once
    /// with `pread`; a file that ends early is an `Io` error naming it. `stop` is polled
    /// between blocks (cancellation: `CancellationError`).
    public static func hash(files: [String], blocks: [Block], blockSize: Int, stop: @escaping @Sendable () -> Bool = { false }) async throws -> [[UInt8]] {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[[UInt8]], Error>) in
            NamedThread.start("block-hash") {
                continuation.resume(with: Result { try hashBlocking(files: files, blocks: blocks, blockSize: blockSize, stop: stop) })
            }
        }
    }

    static func hashBlocking(files: [String], blocks: [Block], blockSize: Int, stop: @Sendable () -> Bool) throws -> [[UInt8]] {
        var descriptors: [Int32] = []
        defer { descriptors.forEach { close($0) } }
        for path in files {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw SystemError.io("cannot open \(path) to hash it: \(String(cString: strerror(errno)))") }
            descriptors.append(fd)
        }
        let fds = descriptors
        let workers = max(1, min(4, ProcessInfo.processInfo.activeProcessorCount, blocks.count))
        let results = Mutex<[[UInt8]]>(Array(repeating: [], count: blocks.count))
        let failure = Mutex<Error?>(nil)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: blockSize, alignment: 4096)
            defer { buffer.deallocate() }
            var digest = [UInt8](repeating: 0, count: 32)
            var index = worker
            while index < blocks.count {
                if stop() { failure.withLock { $0 = $0 ?? CancellationError() }; return }
                if failure.withLock({ $0 != nil }) { return }
                do {
                    let length = try assemble(blocks[index], into: buffer, capacity: blockSize, fds: fds, files: files)
                    if isZero(buffer, length) {
                        digest = zeroDigest
                    } else {
                        var size: UInt32 = 0
                        guard EVP_Digest(buffer, length, &digest, &size, EVP_sha256(), nil) == 1, size == 32 else {
                            throw SystemError.io("libcrypto could not hash a block")
                        }
                    }
                    let value = digest
                    results.withLock { $0[index] = value }
                } catch {
                    failure.withLock { $0 = $0 ?? error }
                    return
                }
                index += workers
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        return results.withLock { $0 }
    }

    /// Reads a block's pieces into `buffer`; returns its length.
    static func assemble(_ block: Block, into buffer: UnsafeMutableRawPointer, capacity: Int, fds: [Int32], files: [String]) throws -> Int {
        var at = 0
        for piece in block.pieces {
            guard at + piece.length <= capacity else { throw SystemError.invalidInput("block \(block.number) is longer than \(capacity) bytes") }
            switch piece {
            case .zeros(let length):
                memset(buffer + at, 0, length)
            case .data(let file, let offset, let length):
                guard fds.indices.contains(file) else { throw SystemError.invalidInput("block \(block.number) names no file \(file)") }
                var done = 0
                while done < length {
                    let n = pread(fds[file], buffer + at + done, length - done, off_t(offset) + off_t(done))
                    if n < 0, errno == EINTR { continue }
                    guard n > 0 else {
                        let reason = n == 0 ? "it ends before offset \(offset + UInt64(length))" : String(cString: strerror(errno))
                        throw SystemError.io("cannot read \(files[file]) at \(offset + UInt64(done)): \(reason)")
                    }
                    done += n
                }
            }
            at += piece.length
        }
        return at
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

import BlockingThreads
import CCrypto
import CLinux
import Dispatch
import FoundationEssentials
import Glibc
import Synchronization

/// SHA-256 of a file, computed in the daemon with libcrypto (the CPU's SHA extensions
/// where there are some), optionally while copying the file.
///
/// Threads of its own: one reads the file in 4 MiB blocks with `pread`, a second hashes
/// the block read before and, for a copy, a third writes it, so reading (from the disk, or
/// out of the page cache), hashing and writing overlap and every byte is read once. Measured
/// on this project's CI machines (2 cores, SHA-256 at 1.57 GB/s on one of them): hashing a
/// 1 GiB file takes 0.61–0.65 s; copying and hashing it with `cp` beside a separate hashing
/// reader took 0.74–0.79 s, because cp's own read and zero scan competed for the second
/// core; `openssl dgst -sha256` needs 0.86 s for the hash alone and coreutils' `sha256sum`
/// (no SHA extensions) 3.4 s. Blocks are read, not mapped: a file that someone truncates
/// while it is being hashed just ends early, where a mapping would kill the daemon with
/// SIGBUS.
public enum FileDigest {
    static let blockSize = 4 << 20
    static let depth = 4
    /// The granularity at which a copy leaves zeros out (holes in the copy), like
    /// `cp --sparse=always`: a file system block.
    static let sparsePage = 4096
    /// The most one `pwrite` of a copy writes. Measured on these machines (kernel 6.18,
    /// ext4): a copy of 1 GiB written 4 MiB at a time took 2.4–2.7 s, 128 KiB at a time
    /// (as `cp` writes) 0.63–0.68 s, the time in the kernel's copy into the page cache.
    static let writeSize = 128 << 10
    /// How often progress is reported: each time this many more bytes are hashed.
    static let progressStep: off_t = 64 << 20

    /// The lowercase hex SHA-256 of the file at `path`. Task cancellation stops the reading
    /// between two blocks (`CancellationError`); a file that cannot be opened or read is
    /// an `Io` error naming it.
    ///
    /// `progress` gets the fraction of the file hashed so far, every 64 MiB and at the end,
    /// from a thread of `FileDigest`'s own.
    public static func sha256(_ path: String, progress: (@Sendable (Double) -> Void)? = nil) async throws -> String {
        try await run { try digest(path, copyingTo: nil, hashing: true, rate: .unlimited, progress: progress, stop: $0) }
    }

    /// Copies `source` to the new file `destination` (created with mode 0640; it must not
    /// exist) and returns the SHA-256 of what was copied. Where the file system supports
    /// reflinks (xfs, btrfs) the copy is a clone sharing the source's blocks (like
    /// `cp --reflink=auto`); elsewhere it is written sparse: the source's holes, and every
    /// 4 KiB page of zeros, stay holes. The copy is on disk when this returns (written back
    /// while it is made, `fdatasync` at the end: ~0.15 s more for 1 GiB here); on an error
    /// or cancellation it is left for the caller to remove.
    /// `progress` as for `sha256(_:progress:)` (the copy keeps pace with the hash); reads
    /// are paced to `rate`.
    public static func sha256(_ source: String, copyingTo destination: String, rate: CopyRate = .unlimited,
                              progress: (@Sendable (Double) -> Void)? = nil) async throws -> String {
        try await run { try digest(source, copyingTo: destination, hashing: true, rate: rate, progress: progress, stop: $0) }
    }

    /// Copies `source` to the new file `destination` (mode 0600) like
    /// `sha256(_:copyingTo:progress:)` (reflinked where the file system can, otherwise sparse; on disk when this returns;
    /// on an error or cancellation left for the caller to remove), without the hash: the
    /// byte copy of Clone, Restore and the in-place changes. Against `cp --sparse=always`
    /// followed by `fsync`, the copy is written back while it is made rather than after.
    /// `progress` gets the fraction of `source` copied, every 64 MiB and at the end; reads
    /// are paced to `rate`.
    public static func copy(_ source: String, to destination: String, rate: CopyRate = .unlimited,
                            progress: (@Sendable (Double) -> Void)? = nil) async throws {
        _ = try await run { try digest(source, copyingTo: destination, hashing: false, rate: rate, progress: progress, stop: $0) }
    }

    /// Runs `work` on a thread of its own; task cancellation sets the flag it polls.
    static func run(_ work: @escaping @Sendable (Flag) throws -> String) async throws -> String {
        let stop = Flag()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<String, Error>) in
                NamedThread.start("sha256") { continuation.resume(with: Result { try work(stop) }) }
            }
        } onCancel: {
            stop.set()
        }
    }

    /// One thread consuming the ring's blocks in order: the hasher or the writer.
    ///
    /// The reader waits on `free` before it fills a slot and signals `filled` after; the
    /// consumer waits on `filled`, handles the slot and signals `free`. Every wait is
    /// matched by a signal, the last slot's too: libdispatch traps when a semaphore is
    /// freed below its initial value.
    struct Consumer: Sendable {
        let free = DispatchSemaphore(value: FileDigest.depth)
        let filled = DispatchSemaphore(value: 0)
        let finished = DispatchSemaphore(value: 0)

        /// Starts a thread that calls `handle(slot, length)` for each block up to the end
        /// (length 0) or the stop (-1), the last one included.
        func start(_ name: String, ring: BlockRing, _ handle: @escaping @Sendable (Int, Int) -> Void) {
            NamedThread.start(name) { [self] in
                var slot = 0
                while true {
                    filled.wait()
                    let length = ring.lengths[slot]
                    handle(slot, length)
                    free.signal()
                    if length <= 0 { break }
                    slot = (slot + 1) % ring.depth
                }
                finished.signal()
            }
        }
    }

    /// Reads `path` on the calling thread, hashes on a second one (`hashing`; otherwise that
    /// thread only reports progress and the result is "") and, with a destination, writes
    /// on a third (blocking).
    static func digest(_ path: String, copyingTo destination: String?, hashing: Bool, rate: CopyRate,
                       progress: (@Sendable (Double) -> Void)?, stop: Flag) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        let purpose = hashing ? "for its checksum" : "to copy it"
        guard fd >= 0 else { throw SystemError.io("cannot open \(path) \(purpose): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        var out: Int32 = -1
        if let destination {
            // A backup is 0640; a disk image (a plain copy) is 0600 from the first byte.
            out = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, hashing ? 0o640 : 0o600)
            guard out >= 0 else { throw SystemError.io("cannot create \(destination): \(String(cString: strerror(errno)))") }
        }
        defer { if out >= 0 { close(out) } }
        // Where the file system can share blocks between files (reflink: xfs, btrfs), the
        // copy is a clone, instant and taking no space; then only the hash remains to do.
        let cloned = out >= 0 && mv_clone_file(out, fd) == 0
        if cloned && !hashing {
            guard fsync(out) == 0 else { throw SystemError.io("cannot write \(destination ?? path): \(String(cString: strerror(errno)))") }
            progress?(1)
            return ""
        }
        var context: OpaquePointer?
        if hashing {
            guard let made = EVP_MD_CTX_new() else { throw SystemError.io("libcrypto could not allocate a digest context") }
            context = made
            guard EVP_DigestInit_ex(made, EVP_sha256(), nil) == 1 else { throw SystemError.io("libcrypto has no SHA-256") }
        }
        defer { if let context { EVP_MD_CTX_free(context) } }

        let ring = try BlockRing(depth: depth, blockSize: blockSize, context: context)
        defer { ring.deallocate() }
        let hashFailed = Flag()
        let writeError = ErrorNumber()

        var holes = HoleMap(fd: fd)
        let fileSize = max(1, holes.size)
        let hasher = Consumer()
        hasher.start("sha256-hash", ring: ring) { [ring] slot, length in
            if length == 0, !hashFailed.isSet { progress?(1) }
            guard length > 0, !hashFailed.isSet else { return }
            let bytes = ring.zeros[slot] ? ring.zeroBlock : UnsafeRawPointer(ring.block(slot))
            if let context = ring.context, EVP_DigestUpdate(context, bytes, length) != 1 { hashFailed.set() }
            let end = ring.offsets[slot] + off_t(length)
            if let progress, end / Self.progressStep != ring.offsets[slot] / Self.progressStep {
                progress(min(1, Double(end) / Double(fileSize)))
            }
        }
        var consumers = [hasher]
        if out >= 0 && !cloned {
            let writer = Consumer()
            writer.start("sha256-copy", ring: ring) { [ring, out] slot, length in
                guard writeError.value == 0 else { return }
                let failed: Int32?
                if length == 0 {
                    failed = ftruncate(out, ring.offsets[slot]) == 0 && fdatasync(out) == 0 ? nil : errno
                } else if length > 0 && !ring.zeros[slot] {
                    failed = writeSparse(out, ring.block(slot), length, at: ring.offsets[slot], zeros: ring.zeroBlock)
                    // Written back while the rest is copied, so the sync at the end waits
                    // only for the last blocks.
                    if failed == nil { _ = mv_start_writeback(out, Int64(ring.offsets[slot]), Int64(length)) }
                } else {
                    failed = nil
                }
                if let failed { writeError.set(failed) }
            }
            consumers.append(writer)
        }

        var failure: Error?
        var offset: off_t = 0
        var slot = 0
        var pacer = CopyPacer(rate)
        while true {
            for consumer in consumers { consumer.free.wait() }
            ring.offsets[slot] = offset
            ring.zeros[slot] = false
            if stop.isSet {
                failure = CancellationError()
                ring.lengths[slot] = -1
            } else if writeError.value != 0 {
                ring.lengths[slot] = -1
            } else if let hole = holes.hole(at: offset, upTo: ring.blockSize) {
                ring.zeros[slot] = true
                ring.lengths[slot] = hole
                offset += off_t(hole)
            } else {
                var count: Int
                repeat { count = pread(fd, ring.block(slot), ring.blockSize, offset) } while count < 0 && errno == EINTR
                if count < 0 {
                    failure = SystemError.io("cannot read \(path) at offset \(offset) \(purpose): \(String(cString: strerror(errno)))")
                    ring.lengths[slot] = -1
                } else {
                    ring.lengths[slot] = count
                    offset += off_t(count)
                    pacer.read(count) { stop.isSet }
                }
            }
            let last = ring.lengths[slot] <= 0
            for consumer in consumers { consumer.filled.signal() }
            if last { break }
            slot = (slot + 1) % ring.depth
        }
        for consumer in consumers { consumer.finished.wait() }
        if let failure { throw failure }
        if cloned && fsync(out) != 0 { writeError.set(errno) }
        let written = writeError.value
        if written != 0, let destination {
            throw SystemError.io("cannot write \(destination): \(String(cString: strerror(written)))")
        }
        guard !hashFailed.isSet else { throw SystemError.io("libcrypto failed while hashing \(path)") }
        guard let context else { return "" }

        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var size: UInt32 = 0
        guard EVP_DigestFinal_ex(context, &digest, &size) == 1, size == 32 else {
            throw SystemError.io("libcrypto failed to finish the checksum of \(path)")
        }
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(64)
        for byte in digest.prefix(32) {
            text.append(hex[Int(byte >> 4)])
            text.append(hex[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// Writes the `length` bytes at `block` to `fd` at `offset`, leaving out every 4 KiB
    /// page that is all zeros (a hole of the file); consecutive non-zero pages go out in one
    /// `pwrite`. Returns the errno of a failed write, nil when all went out.
    static func writeSparse(_ fd: Int32, _ block: UnsafeRawPointer, _ length: Int, at offset: off_t, zeros: UnsafeRawPointer) -> Int32? {
        var position = 0
        var runStart = -1
        while position <= length {
            let page = min(sparsePage, length - position)
            let isData = page > 0 && memcmp(block + position, zeros, page) != 0
            if isData {
                if runStart < 0 { runStart = position }
            } else if runStart >= 0 {
                var done = runStart
                while done < position {
                    let n = pwrite(fd, block + done, min(position - done, writeSize), offset + off_t(done))
                    if n < 0 {
                        if errno == EINTR { continue }
                        return errno
                    }
                    done += n
                }
                runStart = -1
            }
            if page == 0 { break }
            position += page
        }
        return nil
    }

    /// Where a file's holes are (`SEEK_DATA`/`SEEK_HOLE`), so they are hashed as zeros
    /// without reading them: reading a hole makes the kernel fill the page cache with zero
    /// pages (measured: a 16 GiB empty raw image took 42 s to hash by reading, ~10 s like
    /// this). Where the filesystem cannot tell, everything counts as data.
    struct HoleMap {
        let fd: Int32
        /// The size when hashing began: beyond it, reads decide (and end at EOF).
        let size: off_t
        private var dataStart: off_t = 0
        private var dataEnd: off_t = 0
        private var supported = true
        /// `SEEK_DATA` and `SEEK_HOLE` of Linux's <unistd.h> (visible there only with
        /// _GNU_SOURCE, so not imported into Swift).
        static let seekData: Int32 = 3
        static let seekHole: Int32 = 4

        init(fd: Int32) {
            self.fd = fd
            var st = stat()
            size = fstat(fd, &st) == 0 ? st.st_size : 0
        }

        /// The length of the hole at `offset` (at most `limit`), or nil where there is data.
        mutating func hole(at offset: off_t, upTo limit: Int) -> Int? {
            guard supported, offset < size else { return nil }
            if offset >= dataEnd {
                let data = lseek(fd, offset, Self.seekData)
                if data < 0 {
                    guard errno == ENXIO else { supported = false; return nil }
                    (dataStart, dataEnd) = (size, size)   // only a hole up to the end
                } else {
                    let hole = lseek(fd, data, Self.seekHole)
                    (dataStart, dataEnd) = (data, hole > data ? hole : off_t.max)
                }
            }
            guard offset < dataStart else { return nil }
            return Int(min(off_t(limit), dataStart - offset))
        }
    }

    /// The first errno of a failed write, set by the writing thread, read by the others.
    final class ErrorNumber: Sendable {
        private let number = Atomic<Int32>(0)
        func set(_ value: Int32) { number.store(value, ordering: .relaxed) }
        var value: Int32 { number.load(ordering: .relaxed) }
    }

    /// A flag set once by one thread and read by another (cancellation; a hashing failure).
    final class Flag: Sendable {
        private let flag = Atomic<Bool>(false)
        func set() { flag.store(true, ordering: .relaxed) }
        var isSet: Bool { flag.load(ordering: .relaxed) }
    }

    /// The blocks passed from the reading thread to the hashing and the writing thread, their
    /// offsets and lengths (0 = end of file, -1 = stop) and the digest context.
    ///
    /// `@unchecked Sendable` is safe because a slot (its block, offset, length and zero
    /// flag) is written only by the reading thread while no consumer holds it, and only read
    /// by the consumers while they hold it; it changes hands through `DispatchSemaphore`
    /// signal/wait pairs, which order the stores before the loads: the reading thread writes
    /// slot i after every consumer's `free.wait()` and hands it over with each consumer's
    /// `filled.signal()`; a consumer reads it after its `filled.wait()` and gives it back
    /// with its `free.signal()`. Both consumers may read a slot at the same time; neither
    /// writes it. The context is used only by the hashing thread until it signals
    /// `finished`, and only by the reading thread after waiting for that. `deallocate()`
    /// runs after every consumer's `finished`, when no other thread holds the ring.
    final class BlockRing: @unchecked Sendable {
        let depth: Int
        let blockSize: Int
        /// The digest context; nil for a copy without a hash.
        let context: OpaquePointer?
        let lengths: UnsafeMutablePointer<Int>
        /// Per slot: where in the file the block starts (for the end of file: its size).
        let offsets: UnsafeMutablePointer<off_t>
        /// Per slot: the block is a hole of the file, hashed from `zeroBlock`, not read.
        let zeros: UnsafeMutablePointer<Bool>
        /// A block of zeros: an anonymous mapping never written, so every page of it is the
        /// kernel's shared zero page (no memory used).
        let zeroBlock: UnsafeRawPointer
        private let storage: UnsafeMutableRawPointer

        /// The blocks are mapped, not taken from malloc: glibc would raise its mmap
        /// threshold after freeing them and keep later large buffers in the heap, where
        /// they stay resident after use.
        init(depth: Int, blockSize: Int, context: OpaquePointer?) throws {
            let bytes = (depth + 1) * blockSize
            guard let mapped = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                  mapped != MAP_FAILED else {
                throw SystemError.io("cannot map \(bytes) bytes for a checksum: \(String(cString: strerror(errno)))")
            }
            self.depth = depth
            self.blockSize = blockSize
            self.context = context
            lengths = .allocate(capacity: depth)
            lengths.initialize(repeating: 0, count: depth)
            offsets = .allocate(capacity: depth)
            offsets.initialize(repeating: 0, count: depth)
            zeros = .allocate(capacity: depth)
            zeros.initialize(repeating: false, count: depth)
            storage = mapped
            zeroBlock = UnsafeRawPointer(mapped + depth * blockSize)
        }

        func block(_ slot: Int) -> UnsafeMutableRawPointer { storage + slot * blockSize }

        func deallocate() {
            lengths.deallocate()
            offsets.deallocate()
            zeros.deallocate()
            munmap(storage, (depth + 1) * blockSize)
        }
    }
}

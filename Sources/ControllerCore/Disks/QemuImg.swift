import FoundationEssentials
import HostSystem

/// What `qemu-img info` says about an image.
public struct ImageInfo: Sendable, Equatable {
    public var format: String
    public var virtualSize: UInt64
    public var allocatedSize: UInt64
    /// The backing file name as the image's header has it (may be relative).
    public var backingFile: String?
    /// The backing file's format as the header has it (nil: qemu would probe it).
    public var backingFormat: String?
    /// A qcow2 image's external data file (`data-file`), if it has one.
    public var dataFile: String?
    /// Internal snapshots (qcow2): name and creation time (seconds since the epoch).
    public var snapshots: [(name: String, created: UInt64)] = []
    /// A qcow2 image's version (`0.10` for v2, `1.1` for v3; nil for raw).
    public var compat: String?
    /// A qcow2 image's persistent dirty bitmaps: name and flags (`auto`, `in-use`: a qemu
    /// that had it open did not close the image cleanly, so it is unusable).
    public var bitmaps: [(name: String, flags: [String])] = []

    public static func == (a: ImageInfo, b: ImageInfo) -> Bool {
        a.format == b.format && a.virtualSize == b.virtualSize && a.allocatedSize == b.allocatedSize
            && a.backingFile == b.backingFile && a.backingFormat == b.backingFormat && a.dataFile == b.dataFile
            && a.snapshots.map(\.name) == b.snapshots.map(\.name)
    }
}

/// The `qemu-img` tool.
public struct QemuImg: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// Creates an image. `options` become `-o key=value` pairs.
    public func create(path imagePath: String, format: String, size: UInt64,
                       backing: (path: String, format: String)? = nil, options: [String: String] = [:]) async throws {
        var args = ["create", "-q", "-f", format]
        for (k, v) in options.sorted(by: { $0.key < $1.key }) { args += ["-o", "\(k)=\(v)"] }
        if let backing { args += ["-b", backing.path, "-F", backing.format] }
        args += [imagePath, String(size)]
        let r = try await ChildProcess.run(path, args)
        guard r.status == 0 else {
            throw ControllerError.io("qemu-img create of \(imagePath) failed (exit \(r.status)): \(r.stderrExcerpt)")
        }
    }

    /// Reads the header of an image of the known `format` (never probed): sizes, backing
    /// file, data file, snapshots. qemu-img opens neither the backing file nor the data
    /// file for this. `-U` lets it read images a running VM holds locked.
    public func info(path imagePath: String, format: String) async throws -> ImageInfo {
        let r = try await ChildProcess.run(path, ["info", "-U", "-f", format, "--output=json", imagePath])
        guard r.status == 0 else {
            throw ControllerError.io("qemu-img info of \(imagePath) failed (exit \(r.status)): \(r.stderrExcerpt)")
        }
        guard let json = try? JSONDecoder().decode(InfoOutput.self, from: Data(r.stdout.utf8)) else {
            throw ControllerError.io("qemu-img info of \(imagePath) printed unexpected output")
        }
        return ImageInfo(format: json.format, virtualSize: json.virtualSize, allocatedSize: json.actualSize ?? 0,
                         backingFile: json.backingFilename, backingFormat: json.backingFilenameFormat,
                         dataFile: json.formatSpecific?.data?.dataFile,
                         snapshots: (json.snapshots ?? []).map { (name: $0.name, created: $0.dateSec ?? 0) },
                         compat: json.formatSpecific?.data?.compat,
                         bitmaps: (json.formatSpecific?.data?.bitmaps ?? []).map { (name: $0.name, flags: $0.flags ?? []) })
    }

    /// Full copy keeping sparseness (`-U`: the source may be in use by a running VM, the
    /// copy is then crash-consistent), at most at `rate` (`-r`). With `progress`, qemu-img
    /// reports its own (`-p`) and each report is handed on as it arrives (0...1). Task
    /// cancellation kills qemu-img.
    public func convert(source: String, format: String, outputFormat: String? = nil, compress: Bool = false,
                        rate: CopyRate = .unlimited, to destination: String,
                        progress: (@Sendable (Double) -> Void)? = nil) async throws {
        var args = ["convert", "-U", "-f", format, "-O", outputFormat ?? format] + rate.qemuImgArguments
        if compress { args.append("-c") }
        let r: ChildResult
        if let progress {
            var reader = ProgressReader()
            r = try await ChildProcess.run(path, args + ["-p", source, destination]) { chunk in
                if let fraction = reader.read(chunk) { progress(fraction) }
            }
        } else {
            r = try await ChildProcess.run(path, args + [source, destination])
        }
        try Task.checkCancellation()
        guard r.status == 0 else {
            throw ControllerError.io("qemu-img convert of \(source) failed (exit \(r.status)): \(r.stderrExcerpt)")
        }
    }

    /// Reads qemu-img's `-p` reports, `    (12.34/100%)` each ended by a carriage return,
    /// from output that arrives in arbitrary chunks.
    struct ProgressReader {
        private var pending = ""

        /// The latest whole report in what arrived so far, as a fraction (nil: none yet).
        mutating func read(_ chunk: String) -> Double? {
            pending += chunk
            // "\r\n" is one Character in Swift: every line end counts.
            var reports = pending.split(omittingEmptySubsequences: false) { $0 == "\r" || $0 == "\r\n" || $0 == "\n" }
            pending = String(reports.removeLast())
            if pending.utf8.count > 256 { pending = "" }
            for report in reports.reversed() {
                let text = report.drop { $0 == " " }
                guard text.hasPrefix("("), text.hasSuffix("/100%)"),
                      let percent = Double(text.dropFirst().dropLast(6)), (0...100).contains(percent) else { continue }
                return percent / 100
            }
            return nil
        }
    }

    /// `qemu-img snapshot -c|-a|-d NAME` (create, apply, delete an internal snapshot) of
    /// the qcow2 image at `imagePath`, opened as qcow2 (`snapshot` has no `-f`: the format
    /// goes in `--image-opts`).
    public func snapshot(_ action: SnapshotAction, _ name: String, path imagePath: String) async throws {
        let r = try await ChildProcess.run(path, ["snapshot", "--image-opts", action.rawValue, name, Self.imageOptions(imagePath, format: "qcow2")])
        guard r.status == 0 else {
            throw ControllerError.io("qemu-img snapshot \(action.rawValue) \(name) on \(imagePath) failed (exit \(r.status)): \(r.stderrExcerpt)")
        }
    }

    /// `driver=FORMAT,file.filename=PATH` for `--image-opts`, commas in the path doubled.
    static func imageOptions(_ imagePath: String, format: String) -> String {
        "driver=\(format),file.filename=" + imagePath.split(separator: ",", omittingEmptySubsequences: false).joined(separator: ",,")
    }

    public enum SnapshotAction: String, Sendable {
        case create = "-c", apply = "-a", delete = "-d"
    }
}

/// One run of `qemu-img map --output=json`: where `length` bytes from `start` of the
/// guest-visible content are.
public struct ImageMapRange: Sendable, Equatable, Decodable {
    public var start: UInt64
    public var length: UInt64
    /// 0: the image itself; 1: its backing file; and so on down the chain.
    public var depth: Int
    /// Reads as zeros.
    public var zero: Bool
    /// Has data (false: reads as zeros).
    public var data: Bool
    /// Where the data is in the file at `depth` (absent for compressed clusters).
    public var offset: UInt64?
}

extension QemuImg {
    /// `qemu-img map --output=json` of an image of the known `format`: its backing chain is
    /// opened as the headers record it (each with its explicit backing format).
    public func map(path imagePath: String, format: String) async throws -> [ImageMapRange] {
        let r = try await ChildProcess.run(path, ["map", "-f", format, "--output=json", imagePath], limit: 256 << 20)
        guard r.status == 0 else {
            throw ControllerError.io("qemu-img map of \(imagePath) failed (exit \(r.status)): \(r.stderrExcerpt)")
        }
        guard let ranges = try? JSONDecoder().decode([ImageMapRange].self, from: Data(r.stdout.utf8)) else {
            throw ControllerError.io("qemu-img map of \(imagePath) printed unexpected output")
        }
        return ranges
    }

    /// Reverts a qcow2 image to internal snapshot `name`. qemu refuses to apply a snapshot
    /// while the image has persistent dirty bitmaps (they could not say what the revert
    /// changed), so the service's change tracking (`mv-` bitmaps) is removed first, on
    /// purpose: the next backup point of the disk is full, and says why. Returns the bitmaps
    /// removed.
    @discardableResult
    public func revert(toSnapshot name: String, path imagePath: String) async throws -> [String] {
        let tracking = try await info(path: imagePath, format: "qcow2").bitmaps.map(\.name).filter { $0.hasPrefix(BackupChain.bitmapPrefix) }
        for bitmap in tracking { try await removeBitmap(bitmap, path: imagePath) }
        try await snapshot(.apply, name, path: imagePath)
        return tracking
    }

    /// `qemu-img commit -d -f qcow2 IMAGE`: writes the overlay's clusters into its backing
    /// file (the overlay is left as it was).
    public func commit(_ imagePath: String) async throws {
        let r = try await ChildProcess.run(path, ["commit", "-q", "-d", "-f", "qcow2", imagePath])
        guard r.status == 0 else {
            throw ControllerError.io("qemu-img commit of \(imagePath) failed (exit \(r.status)): \(r.stderrExcerpt)")
        }
    }

    /// `qemu-img rebase -f qcow2 -b BACKING -F FORMAT IMAGE` (safe mode): the overlay keeps
    /// its guest-visible content, taking from its old backing chain whatever differs in the
    /// new one. `backing` may be relative to the image's directory.
    public func rebase(_ imagePath: String, backing: String, backingFormat: String) async throws {
        let r = try await ChildProcess.run(path, ["rebase", "-q", "-f", "qcow2", "-b", backing, "-F", backingFormat, imagePath])
        guard r.status == 0 else {
            throw ControllerError.io("qemu-img rebase of \(imagePath) onto \(backing) failed (exit \(r.status)): \(r.stderrExcerpt)")
        }
    }

    /// `qemu-img bitmap --remove`: deletes a persistent dirty bitmap of a qcow2 image
    /// (an `in-use` one too).
    public func removeBitmap(_ name: String, path imagePath: String) async throws {
        let r = try await ChildProcess.run(path, ["bitmap", "--remove", "-f", "qcow2", imagePath, name])
        guard r.status == 0 else {
            throw ControllerError.io("qemu-img bitmap --remove \(name) on \(imagePath) failed (exit \(r.status)): \(r.stderrExcerpt)")
        }
    }

    /// `qemu-img rebase -u -f qcow2 -b BACKING -F FORMAT IMAGE`: rewrites the header's
    /// backing reference only (the backing file keeps its contents).
    public func rebaseUnsafe(_ imagePath: String, backing: String, backingFormat: String) async throws {
        let r = try await ChildProcess.run(path, ["rebase", "-u", "-f", "qcow2", "-b", backing, "-F", backingFormat, imagePath])
        guard r.status == 0 else {
            throw ControllerError.io("qemu-img rebase of \(imagePath) failed (exit \(r.status)): \(r.stderrExcerpt)")
        }
    }

    /// `qemu-img resize [--shrink] -f FORMAT IMAGE SIZE`.
    public func resize(_ imagePath: String, format: String, size: UInt64, shrink: Bool) async throws {
        var args = ["resize", "-q", "-f", format]
        if shrink { args.append("--shrink") }
        let r = try await ChildProcess.run(path, args + [imagePath, String(size)])
        try Task.checkCancellation()
        guard r.status == 0 else {
            throw ControllerError.io("qemu-img resize of \(imagePath) to \(size) failed (exit \(r.status)): \(r.stderrExcerpt)")
        }
    }
}

/// The part of `qemu-img info --output=json` the service reads.
private struct InfoOutput: Decodable {
    struct Snapshot: Decodable {
        let name: String
        let dateSec: UInt64?
        enum CodingKeys: String, CodingKey { case name, dateSec = "date-sec" }
    }
    let format: String
    let virtualSize: UInt64
    let actualSize: UInt64?
    let backingFilename: String?
    let backingFilenameFormat: String?
    let formatSpecific: FormatSpecific?
    let snapshots: [Snapshot]?
    struct FormatSpecific: Decodable {
        struct Data: Decodable {
            struct Bitmap: Decodable {
                let name: String
                let flags: [String]?
            }
            let dataFile: String?
            let compat: String?
            let bitmaps: [Bitmap]?
            enum CodingKeys: String, CodingKey { case dataFile = "data-file", compat, bitmaps }
        }
        let data: Data?
    }
    enum CodingKeys: String, CodingKey {
        case format, snapshots
        case virtualSize = "virtual-size", actualSize = "actual-size"
        case backingFilename = "backing-filename", backingFilenameFormat = "backing-filename-format"
        case formatSpecific = "format-specific"
    }
}

import HostSystem

/// The rules a managed image and its backing chain must meet before the service opens it.
///
/// Every backing file of a managed image is a managed disk: a plain name in the image
/// directory (a relative name or `DIRECTORY/NAME`), never a `json:` or protocol name or a
/// path elsewhere, with its recorded format written in the header (so qemu never probes
/// it), no deeper than ``maxDepth``. A qcow2 image with an external data file is refused.
/// A disk that breaks a rule lists the problem in `Problems` and every operation on it but
/// Delete answers `InvalidState` naming it.
public enum DiskChain {
    /// The most images below a disk (its backing disk, that one's, …).
    public static let maxDepth = 8

    /// The problem of an image without a format record.
    public static func notAdopted(_ name: String) -> String {
        "disk \(name) has no recorded format: adopt it with Manager.AdoptDisk (raw or qcow2) before it is used"
    }

    /// What the header's backing file name refers to: the managed disk's name, or why not one.
    public static func backingName(_ backing: String, directory: String) -> Result<String, ChainError> {
        if backing.hasPrefix("json:") { return .failure(ChainError("backing file \(CallerText.quoted(backing)) is a json: name")) }
        if let colon = backing.firstIndex(of: ":"), !backing[..<colon].contains("/") {
            return .failure(ChainError("backing file \(CallerText.quoted(backing)) is a protocol name"))
        }
        var name = backing
        if backing.hasPrefix("/") {
            guard backing.hasPrefix(directory + "/") else {
                return .failure(ChainError("backing file \(CallerText.quoted(backing)) is outside the image directory \(directory)"))
            }
            name = String(backing.dropFirst(directory.count + 1))
        }
        guard DiskName.isValid(name) else {
            return .failure(ChainError("backing file \(CallerText.quoted(backing)) is not a managed disk of \(directory)"))
        }
        return .success(name)
    }

    /// A broken rule, as the message `Problems` and `InvalidState` show.
    public struct ChainError: Error, Sendable, Equatable {
        public let message: String
        public init(_ message: String) { self.message = message }
    }

    /// How many images lie below disk `name` (0 for a standalone one), following managed names.
    public static func depth(of name: String, in disks: [String: DiskInfo], directory: String) -> Int {
        var depth = 0
        var current = disks[name]
        var seen: Set<String> = [name]
        while let backing = current?.backingHeader, case .success(let below) = backingName(backing, directory: directory),
              seen.insert(below).inserted, depth <= maxDepth {
            depth += 1
            current = disks[below]
        }
        return depth
    }

    /// The problems of disk `name` among `disks` (by name; formats "" when not recorded),
    /// all in `directory`. Empty when the disk may be used.
    public static func problems(of name: String, in disks: [String: DiskInfo], directory: String) -> [String] {
        guard let disk = disks[name] else { return [] }
        var problems: [String] = []
        if disk.format.isEmpty { return [notAdopted(name)] }
        guard ImageFormatRecord.managed.contains(disk.format) else {
            return ["disk \(name) is recorded as \(CallerText.quoted(disk.format)); only raw and qcow2 are managed"]
        }
        if let dataFile = disk.dataFile {
            problems.append("disk \(name) has an external data file \(CallerText.quoted(dataFile)); such qcow2 images are refused")
        }
        var current = disk
        var seen: Set<String> = [name]
        var depth = 0
        while let backing = current.backingHeader {
            depth += 1
            guard depth <= maxDepth else {
                problems.append("the backing chain of disk \(name) is deeper than \(maxDepth) images")
                break
            }
            let below: String
            switch backingName(backing, directory: directory) {
            case .failure(let e):
                problems.append(current.name == name ? "disk \(name): \(e.message)" : "disk \(name) is built on \(current.name), whose \(e.message)")
                return problems
            case .success(let n): below = n
            }
            guard !seen.contains(below) else {
                problems.append("the backing chain of disk \(name) loops back to \(below)")
                break
            }
            seen.insert(below)
            guard let base = disks[below] else {
                problems.append("backing disk \(below) of \(current.name) does not exist")
                break
            }
            guard !base.format.isEmpty else {
                problems.append("backing disk \(below) of \(current.name) has no recorded format (adopt it first)")
                break
            }
            guard let headerFormat = current.backingFormat else {
                problems.append("the header of \(current.name) names no format for its backing disk \(below) (qemu would probe it)")
                break
            }
            guard headerFormat == base.format else {
                problems.append("the header of \(current.name) says its backing disk \(below) is \(CallerText.quoted(headerFormat)), but \(below) is recorded as \(base.format)")
                break
            }
            if base.dataFile != nil { problems.append("backing disk \(below) of \(name) has an external data file") }
            current = base
        }
        return problems
    }
}

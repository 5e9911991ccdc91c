import FoundationEssentials
import HostSystem

/// Which overlay disk the service made for which VM (by UUID): the only thing that lets it
/// delete a disk when an ephemeral VM stops. Kept in `state_dir/overlays.json` (written
/// atomically), never read from the domain's metadata, which anyone with libvirt access
/// can rewrite: a VM whose metadata names another disk as its overlay cannot make the
/// service delete that disk.
public actor OverlayOwners {
    private let file: String?
    private var owners: [String: String] = [:]

    /// `stateDirectory` nil: kept in memory only (tests).
    public init(stateDirectory: String?) {
        file = stateDirectory.map { $0 + "/overlays.json" }
    }

    /// Reads the file; a missing one is empty, an unreadable one an `Io` error naming it.
    public func load() throws {
        guard let file, FileManager.default.fileExists(atPath: file) else { return }
        do {
            owners = try JSONDecoder().decode([String: String].self, from: Data(contentsOf: URL(fileURLWithPath: file)))
        } catch {
            throw ControllerError.io("cannot read \(file): \(error)")
        }
    }

    /// The overlay the service made for the VM `uuid`, if any.
    public func overlay(of uuid: String) -> String? { owners[uuid] }

    /// Every VM UUID with the overlay made for it.
    public func all() -> [String: String] { owners }

    /// Records that `overlay` was made for the VM `uuid`.
    public func record(_ overlay: String, for uuid: String) throws {
        owners[uuid] = overlay
        try save()
    }

    /// Forgets the VM `uuid` (undefined, its overlay deleted or kept).
    public func forget(_ uuid: String) throws {
        guard owners.removeValue(forKey: uuid) != nil else { return }
        try save()
    }

    private func save() throws {
        guard let file else { return }
        try? FileManager.default.createDirectory(atPath: parentDirectory(of: file), withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try HostRoot("/").write(file, String(decoding: try encoder.encode(owners), as: UTF8.self) + "\n", newFileMode: 0o600)
    }
}

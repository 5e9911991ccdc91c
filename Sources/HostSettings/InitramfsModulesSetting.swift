import FoundationEssentials
import HostSystem
import Synchronization

/// `initramfs-modules`: the configured modules are listed in the initramfs-tools modules
/// file and the built initramfs contains them (or a rebuild is pending). Hosts without
/// initramfs-tools use the boot-time list (`/etc/modules-load.d/`, else `/etc/modules`).
public struct InitramfsModulesSetting: HostSetting {
    public let id = "initramfs-modules"
    public let description = "9p modules load at boot so 9p shares mount"
    public static let lsinitramfs = "/usr/bin/lsinitramfs"
    private let images = ImageContents()

    public init() {}

    /// Where the modules are listed on this host, detected at run time.
    enum Layout: Equatable {
        /// initramfs-tools: the file, then a rebuild.
        case initramfs(file: String)
        /// systemd's modules-load.d: our own file; every `*.conf` and `/etc/modules` count.
        case modulesLoadD
        /// `/etc/modules` (Debian without initramfs-tools, Alpine).
        case etcModules
    }

    static let ownModulesLoadFile = "/etc/modules-load.d/multiverse.conf"

    func layout(_ context: SettingsContext) -> Layout {
        let file = context.config.initramfsModulesFile
        if file != SettingsConfig().initramfsModulesFile || context.root.kind("/etc/initramfs-tools") == .directory {
            return .initramfs(file: file)
        }
        if context.root.kind("/etc/modules-load.d") == .directory { return .modulesLoadD }
        return .etcModules
    }

    public func watchedPaths(_ context: SettingsContext) -> [String] {
        switch layout(context) {
        case .initramfs(let file): return [file]
        case .modulesLoadD: return ["/etc/modules-load.d/*", "/etc/modules"]
        case .etcModules: return ["/etc/modules"]
        }
    }

    public func check(_ context: SettingsContext) async -> SettingCheck {
        let wanted = context.config.initramfsModules
        do {
            switch layout(context) {
            case .initramfs(let file):
                guard let text = try context.root.read(file) else {
                    return SettingCheck(false, "\(file) does not exist")
                }
                let missing = ModulesList(text).missing(wanted)
                guard missing.isEmpty else {
                    return SettingCheck(false, "\(missing.joined(separator: ", ")) not listed in \(file)")
                }
                if await context.rebuilder.isPending {
                    return SettingCheck(true, "listed in \(file); initramfs rebuild pending")
                }
                return await checkImage(context, wanted: wanted, listedIn: file)
            case .modulesLoadD:
                var listed = Set<String>()
                for name in context.root.list("/etc/modules-load.d") where name.hasSuffix(".conf") {
                    if let text = try? context.root.read("/etc/modules-load.d/" + name) { listed.formUnion(ModulesList(text).modules) }
                }
                if let text = try? context.root.read("/etc/modules") { listed.formUnion(ModulesList(text).modules) }
                let missing = wanted.filter { !listed.contains(ModulesList.canonical($0)) }
                return missing.isEmpty
                    ? SettingCheck(true, "listed in /etc/modules-load.d (no initramfs-tools on this host)")
                    : SettingCheck(false, "\(missing.joined(separator: ", ")) not loaded at boot (no entry in /etc/modules-load.d or /etc/modules)")
            case .etcModules:
                let missing = ModulesList((try context.root.read("/etc/modules")) ?? "").missing(wanted)
                return missing.isEmpty
                    ? SettingCheck(true, "listed in /etc/modules (no initramfs-tools on this host)")
                    : SettingCheck(false, "\(missing.joined(separator: ", ")) not listed in /etc/modules")
            }
        } catch {
            return SettingCheck(false, "\(error)")
        }
    }

    public func apply(_ context: SettingsContext) async throws -> SettingChange {
        let wanted = context.config.initramfsModules
        switch layout(context) {
        case .initramfs(let file):
            var list = ModulesList(try context.root.read(file) ?? "")
            let added = list.add(wanted)
            if !added.isEmpty { try context.root.write(file, list.text) }
            let imageOK: Bool
            if added.isEmpty {
                imageOK = await checkImage(context, wanted: wanted, listedIn: file).compliant
            } else {
                imageOK = false
            }
            guard !imageOK else { return SettingChange(changed: false, "already listed in \(file) and in the initramfs") }
            let outcome = await context.rebuilder.rebuild()
            let what = added.isEmpty ? "initramfs lacked \(wanted.joined(separator: ", "))" : "added \(added.joined(separator: ", ")) to \(file)"
            guard outcome.success else {
                throw SystemError.io("\(what), but \(outcome.detail)")
            }
            return SettingChange(changed: true, "\(what); \(outcome.detail)")
        case .modulesLoadD:
            let file = Self.ownModulesLoadFile
            var list = ModulesList(try context.root.read(file) ?? "# Modules Multiverse controllers need at boot (9p shares).\n")
            let current = await check(context)
            guard !current.compliant else { return SettingChange(changed: false, current.detail) }
            let added = list.add(wanted)
            try context.root.write(file, list.text)
            return SettingChange(changed: true, "added \(added.joined(separator: ", ")) to \(file)")
        case .etcModules:
            var list = ModulesList(try context.root.read("/etc/modules") ?? "")
            let added = list.add(wanted)
            guard !added.isEmpty else { return SettingChange(changed: false, "already listed in /etc/modules") }
            try context.root.write("/etc/modules", list.text)
            return SettingChange(changed: true, "added \(added.joined(separator: ", ")) to /etc/modules")
        }
    }

    /// Looks inside the newest readable initramfs image (cached by path, size and mtime).
    private func checkImage(_ context: SettingsContext, wanted: [String], listedIn file: String) async -> SettingCheck {
        guard let image = Self.currentImage(context.root) else {
            return SettingCheck(true, "listed in \(file) (no readable initramfs image under /boot to inspect)")
        }
        guard context.root.exists(Self.lsinitramfs) || FileManager.default.isExecutableFile(atPath: Self.lsinitramfs) else {
            return SettingCheck(true, "listed in \(file) (lsinitramfs not installed; image not inspected)")
        }
        guard let contained = await images.modules(in: image, root: context.root) else {
            return SettingCheck(true, "listed in \(file) (\(image.path) could not be listed)")
        }
        let builtin = ModulesList((try? context.root.read("/lib/modules/\(image.version)/modules.builtin")) ?? "")
            .modules.map { ModulesList.canonical(Self.moduleName(fromPath: $0) ?? $0) }
        let have = contained.union(builtin)
        let missing = wanted.filter { !have.contains(ModulesList.canonical($0)) }
        if missing.isEmpty { return SettingCheck(true, "listed in \(file) and present in \(image.path)") }
        return SettingCheck(false, "listed in \(file), but \(image.path) lacks \(missing.joined(separator: ", ")); Apply rebuilds it")
    }

    struct Image: Sendable, Hashable {
        let path: String
        let version: String
        let size: Int64
        let mtime: Int
    }

    /// The running kernel's image when present, else the newest `initrd.img-*`.
    static func currentImage(_ root: HostRoot) -> Image? {
        let release = HostFacts.kernelRelease
        var candidates: [Image] = []
        for name in root.list("/boot") where name.hasPrefix("initrd.img-") {
            let hostPath = "/boot/" + name
            guard let st = Files.status(root.real(hostPath), followingLinks: true), Files.isReadable(root.real(hostPath)) else { continue }
            candidates.append(Image(path: hostPath, version: String(name.dropFirst("initrd.img-".count)),
                                    size: Int64(st.size), mtime: st.modifiedSeconds))
        }
        return candidates.first { $0.version == release } ?? candidates.max { $0.mtime < $1.mtime }
    }

    /// `9p` from `…/fs/9p/9p.ko.xz`.
    static func moduleName(fromPath path: String) -> String? {
        guard let base = path.split(separator: "/").last else { return nil }
        for suffix in [".ko", ".ko.xz", ".ko.zst", ".ko.gz"] where base.hasSuffix(suffix) {
            return String(base.dropLast(suffix.count))
        }
        return nil
    }
}

/// Caches the module names found in initramfs images; listing one takes seconds.
final class ImageContents: Sendable {
    private let cache = Mutex<[InitramfsModulesSetting.Image: Set<String>]>([:])

    func modules(in image: InitramfsModulesSetting.Image, root: HostRoot) async -> Set<String>? {
        if let hit = cache.withLock({ $0[image] }) { return hit }
        guard let result = try? await ChildProcess.run(InitramfsModulesSetting.lsinitramfs, [root.real(image.path)], limit: 64 << 20),
              result.status == 0 else { return nil }
        var names = Set<String>()
        for line in result.stdout.split(separator: "\n") {
            if let name = InitramfsModulesSetting.moduleName(fromPath: String(line)) { names.insert(ModulesList.canonical(name)) }
        }
        cache.withLock { $0 = [image: names] }
        return names
    }
}

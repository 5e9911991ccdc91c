import FoundationEssentials
import Logging

/// The built-in profiles, overridden or extended by `NAME.toml` files (one `[profile]`
/// table each) in the profiles directory. A broken file is reported by name and line and
/// skipped; the others still load.
public enum ProfileStore {
    /// Loads the profiles; returns them sorted by boot order then name, and the problems.
    public static func load(directory: String, logger: Logger) -> (profiles: [VMProfile], problems: [String]) {
        var byName: [String: VMProfile] = [:]
        for p in VMProfile.builtIn { byName[p.name] = p }
        var problems: [String] = []
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".toml") }.sorted()
        for file in files {
            let path = directory + "/" + file
            let name = String(file.dropLast(5))
            do {
                guard VMName.isValid(name) else { throw ConfigError(file: path, line: nil, key: nil, problem: "'\(name)' is not a valid profile name") }
                let text = try String(contentsOfFile: path, encoding: .utf8)
                var document = try ConfigDocument(file: path, text: text)
                var section = try document.section("profile")
                var profile = byName[name] ?? VMProfile(name: name, description: "", role: .app, memoryMiB: 1024, vcpus: 1,
                                                        graphics: false, serialConsole: true, shares: [], bootOrder: 2)
                if let v = try section.string("description") { profile.description = v }
                if let v = try section.int("memory_mib", in: 16...(16 << 20)) { profile.memoryMiB = UInt64(v) }
                if let v = try section.int("vcpus", in: 1...4096) { profile.vcpus = UInt32(v) }
                if let v = try section.string("role") {
                    guard let role = VMRole(rawValue: v) else {
                        throw section.error("role", "'\(v)' is not one of \(VMRole.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))")
                    }
                    profile.role = role
                }
                if let v = try section.stringArray("networks") {
                    for n in v {
                        do { _ = try NICSource(parsing: n) } catch let error as ControllerError { throw section.error("networks", error.message) }
                    }
                    profile.networks = v
                }
                if let v = try section.bool("graphics") { profile.graphics = v }
                if let v = try section.bool("serial_console") { profile.serialConsole = v }
                if let v = try section.int("boot_order", in: 0...100) { profile.bootOrder = v }
                if let v = try section.stringArray("shares") {
                    // "HOST_PATH:TAG" entries.
                    profile.shares = try v.map { entry in
                        let parts = entry.split(separator: ":", maxSplits: 1).map(String.init)
                        guard parts.count == 2, parts[0].hasPrefix("/") else { throw section.error("shares", "'\(entry)' is not HOST_PATH:TAG") }
                        do { try VMName.validateTag(parts[1]) } catch { throw section.error("shares", "\(error)") }
                        return VMShare(hostPath: parts[0], tag: parts[1], readonly: false)
                    }
                }
                try section.finish()
                try document.finish()
                byName[name] = profile
                logger.info("profile \(name) loaded from \(path)")
            } catch {
                problems.append("\(error)")
                logger.error("profile file skipped: \(error)")
            }
        }
        let sorted = byName.values.sorted { ($0.bootOrder, $0.name) < ($1.bootOrder, $1.name) }
        return (sorted, problems)
    }
}

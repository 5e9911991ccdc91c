import HostSettings

extension SettingsConfig {
    /// Reads `[settings]` over the defaults.
    mutating func read(_ section: inout ConfigSectionReader) throws {
        func names(_ key: String, _ values: [String]) throws -> [String] {
            for v in values where !Self.isValidName(v) {
                throw section.error(key, "'\(v)' is not a valid user or group name")
            }
            return values
        }
        if let v = try section.string("user") { user = try names("user", [v])[0] }
        if let v = try section.stringArray("groups") { groups = try names("groups", v) }
        if let v = try section.stringArray("allowed_groups") { allowedGroups = try names("allowed_groups", v) }
        if let v = try section.stringArray("initramfs_modules") {
            for m in v where !Self.isToken(m, extra: "_-", max: 64) {
                throw section.error("initramfs_modules", "'\(m)' is not a kernel module name")
            }
            initramfsModules = v
        }
        if let v = try section.absolutePath("initramfs_modules_file") { initramfsModulesFile = v }
        if let v = try section.stringArray("initramfs_update_command") {
            guard let first = v.first, first.hasPrefix("/") else {
                throw section.error("initramfs_update_command", "the first element must be an absolute program path")
            }
            initramfsUpdateCommand = v
        }
        if let v = try section.absolutePath("rng_device") { rngDevice = v }
        if let v = try section.string("libvirtd_service") {
            guard Self.isToken(v, extra: "_.@-", max: 128) else {
                throw section.error("libvirtd_service", "'\(v)' is not a service name")
            }
            libvirtdService = v
        }
        if let v = try section.bool("enforcing") { enforcing = v }
        if let v = try section.int("check_interval_s", in: 1...86_400) { checkIntervalSeconds = v }
        if let v = try section.int("flap_limit_per_minute", in: 1...100_000) { flapLimitPerMinute = v }
    }
}

import Foundation
import Logging
import XCTest
@testable import HostSystem
@testable import HostSettings
@testable import ControllerCore

/// The settings' file logic on temporary directories used as host roots (no bus).
final class SettingsCoreTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("mvcore-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    var root: HostRoot { HostRoot(dir.path) }

    /// usermod waits while another tool holds shadow's lock: the wait ends when the lock
    /// file goes (inotify), and with the lock kept it gives up at its deadline naming it.
    func testAddingAUserWaitsForShadowsLockToGo() async throws {
        try put("/etc/group.lock", "")
        let lock = dir.path + "/etc/group.lock"
        let clock = ContinuousClock()
        let started = clock.now
        Task {
            try await Task.sleep(for: .milliseconds(300))
            try FileManager.default.removeItem(atPath: lock)
        }
        try await UserGroupsSetting.waitForShadowLocks(root, timeout: .seconds(20))
        let waited = clock.now - started
        XCTAssertGreaterThanOrEqual(waited, .milliseconds(300), "the wait ended while the lock was held")
        XCTAssertLessThan(waited, .seconds(10), "the lock's removal did not end the wait")

        try put("/etc/gshadow.lock", "")
        do {
            try await UserGroupsSetting.waitForShadowLocks(root, timeout: .milliseconds(200))
            XCTFail("the wait ended with gshadow.lock held")
        } catch {
            let mapped = ControllerError.mapped(error) as? ControllerError
            XCTAssertEqual(mapped?.kind, "Busy", "\(error)")
            XCTAssertTrue(mapped?.message.contains("/etc/gshadow.lock") == true, "\(error)")
        }
    }

    func put(_ hostPath: String, _ text: String) throws {
        let url = URL(fileURLWithPath: dir.path + hostPath)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: false, encoding: .utf8)
    }

    func context(_ configure: (inout SettingsConfig) -> Void = { _ in }) -> SettingsContext {
        var config = SettingsConfig()
        configure(&config)
        let logger = Logger(label: "test")
        return SettingsContext(root: root, config: config,
                               rebuilder: InitramfsRebuilder(command: ["/bin/true"], settleDelay: .zero, logger: logger), logger: logger)
    }

    func testModulesListAddsOnlyMissingAndKeepsEveryLine() {
        var list = ModulesList("# comment\n9p\nvirtio-net  debug=1\n; other\n9pnet_virtio # trailing")
        XCTAssertEqual(list.missing(["9p", "9pnet", "9pnet_virtio", "virtio_net"]), ["9pnet"])
        XCTAssertEqual(list.add(["9p", "9pnet", "9pnet_virtio"]), ["9pnet"])
        XCTAssertEqual(list.text, "# comment\n9p\nvirtio-net  debug=1\n; other\n9pnet_virtio # trailing\n9pnet\n")
        XCTAssertEqual(list.add(["9pnet"]), [])
        XCTAssertFalse(ModulesList("#9p\n  # 9pnet\n").modules.contains("9p"))
    }

    func testShellVariablesAreReadAndReplacedInPlace() {
        let text = "# c\n#HRNGDEVICE=/dev/hwrng\nHRNGDEVICE=\"/dev/urandom\"  \nRNGDOPTIONS=\"-x\"\n"
        XCTAssertEqual(EntropyRngdSetting.shellVariable("HRNGDEVICE", in: text), "/dev/urandom")
        XCTAssertNil(EntropyRngdSetting.shellVariable("HRNGDEVICE", in: "#HRNGDEVICE=/dev/hwrng\n"))
        XCTAssertEqual(EntropyRngdSetting.settingVariable("HRNGDEVICE", to: "/dev/hwrng", in: text),
                       "# c\n#HRNGDEVICE=/dev/hwrng\nHRNGDEVICE=/dev/hwrng\nRNGDOPTIONS=\"-x\"\n")
        XCTAssertEqual(EntropyRngdSetting.settingVariable("HRNGDEVICE", to: "/dev/hwrng", in: "# only a comment"),
                       "# only a comment\n# Set by multiverse-controllerd (setting entropy-rngd)\nHRNGDEVICE=/dev/hwrng\n")
    }

    func testAtomicWriteKeepsModeAndOwnerAndRefusesSymlinks() throws {
        try XCTSkipUnless(geteuid() == 0, "giving a file another owner needs root (scripts/test runs this as root; --fast does not)")
        try put("/etc/modules", "a\n")
        let real = dir.path + "/etc/modules"
        XCTAssertEqual(chmod(real, 0o640), 0)
        XCTAssertEqual(chown(real, 0, 4), 0)
        XCTAssertTrue(try root.write("/etc/modules", "a\nb\n"))
        var st = stat()
        XCTAssertEqual(lstat(real, &st), 0)
        XCTAssertEqual(st.st_mode & 0o7777, 0o640)
        XCTAssertEqual(st.st_gid, 4)
        XCTAssertEqual(try String(contentsOfFile: real, encoding: .utf8), "a\nb\n")
        // Same contents: nothing written (the inode stays).
        let inode = st.st_ino
        XCTAssertFalse(try root.write("/etc/modules", "a\nb\n"))
        XCTAssertEqual(lstat(real, &st), 0)
        XCTAssertEqual(st.st_ino, inode)
        // A symlink in the last component or in a directory is never written through.
        try put("/outside/target", "keep\n")
        XCTAssertEqual(symlink(dir.path + "/outside/target", dir.path + "/etc/link"), 0)
        XCTAssertThrowsError(try root.write("/etc/link", "x\n"))
        XCTAssertEqual(symlink(dir.path + "/outside", dir.path + "/etc/dirlink"), 0)
        XCTAssertThrowsError(try root.write("/etc/dirlink/target", "x\n"))
        XCTAssertEqual(try String(contentsOfFile: dir.path + "/outside/target", encoding: .utf8), "keep\n")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/etc").filter { $0.contains("mvtmp") }, [])
    }

    func testOpenRCEnablementIsTheRunlevelLink() async throws {
        try put("/sbin/openrc", "")
        try put("/etc/init.d/libvirtd", "#!/sbin/openrc-run\n")
        try FileManager.default.createDirectory(atPath: dir.path + "/etc/runlevels/default", withIntermediateDirectories: true)
        XCTAssertEqual(InitSystem.detect(root), .openrc)
        let setting = LibvirtdEnabledSetting()
        let before = await setting.check(context())
        XCTAssertFalse(before.compliant)
        XCTAssertEqual(before.detail, "openrc: libvirtd is not in runlevel default (rc-update add libvirtd default)")
        let change = try await setting.apply(context())
        XCTAssertTrue(change.changed)
        XCTAssertEqual(root.linkTarget("/etc/runlevels/default/libvirtd"), "/etc/init.d/libvirtd")
        let after = await setting.check(context())
        XCTAssertTrue(after.compliant, after.detail)
        let again = try await setting.apply(context())
        XCTAssertFalse(again.changed)
    }

    func testSystemdSocketOnlyAndMaskedAreNotEnabled() async throws {
        try FileManager.default.createDirectory(atPath: dir.path + "/sbin", withIntermediateDirectories: true)
        XCTAssertEqual(symlink("/lib/systemd/systemd", dir.path + "/sbin/init"), 0)
        try put("/lib/systemd/system/libvirtd.service", "[Service]\nExecStart=/usr/sbin/libvirtd\n[Install]\nWantedBy=multi-user.target\n")
        try FileManager.default.createDirectory(atPath: dir.path + "/etc/systemd/system/sockets.target.wants", withIntermediateDirectories: true)
        XCTAssertEqual(symlink("/lib/systemd/system/libvirtd.socket", dir.path + "/etc/systemd/system/sockets.target.wants/libvirtd.socket"), 0)
        let setting = LibvirtdEnabledSetting()
        let socketOnly = await setting.check(context())
        XCTAssertFalse(socketOnly.compliant)
        XCTAssertTrue(socketOnly.detail.contains("only libvirtd.socket is enabled"), socketOnly.detail)
        XCTAssertEqual(symlink("/dev/null", dir.path + "/etc/systemd/system/libvirtd.service"), 0)
        let masked = await setting.check(context())
        XCTAssertEqual(masked.detail, "systemd: libvirtd.service is masked")
        // Apply unmasks and enables through systemctl --root.
        let change = try await setting.apply(context())
        XCTAssertTrue(change.changed)
        XCTAssertEqual(root.kind("/etc/systemd/system/libvirtd.service"), .missing)
        XCTAssertEqual(root.linkTarget("/etc/systemd/system/multi-user.target.wants/libvirtd.service"), "/lib/systemd/system/libvirtd.service")
        let after = await setting.check(context())
        XCTAssertTrue(after.compliant, after.detail)
    }

    func testRngTools5SourceIsChangedWithADropIn() async throws {
        try FileManager.default.createDirectory(atPath: dir.path + "/sbin", withIntermediateDirectories: true)
        XCTAssertEqual(symlink("/lib/systemd/systemd", dir.path + "/sbin/init"), 0)
        try put("/lib/systemd/system/rngd.service", "[Service]\nExecStart=/usr/sbin/rngd -f\n[Install]\nWantedBy=multi-user.target\n")
        let setting = EntropyRngdSetting()
        let disabled = await setting.check(context())
        XCTAssertEqual(disabled.detail, "rngd.service is not enabled")
        let other = await setting.check(context { $0.rngDevice = "/dev/tpm0" })
        XCTAssertEqual(other.detail, "rngd.service reads /dev/hwrng, not /dev/tpm0")
        let change = try await setting.apply(context { $0.rngDevice = "/dev/tpm0" })
        XCTAssertEqual(change.detail, "wrote /etc/systemd/system/rngd.service.d/zz-multiverse.conf; enabled rngd")
        XCTAssertEqual(EntropyRngdSetting.rngd5Devices(root).source, "/dev/tpm0")
        let after = await setting.check(context { $0.rngDevice = "/dev/tpm0" })
        XCTAssertTrue(after.compliant, after.detail)
        // Nothing installed at all: a clear detail.
        let empty = HostRoot(dir.path + "/nothing")
        XCTAssertEqual(EntropyRngdSetting.packaging(empty), .none)
    }

    func testModulesLoadDIsUsedWithoutInitramfsTools() async throws {
        try FileManager.default.createDirectory(atPath: dir.path + "/etc/modules-load.d", withIntermediateDirectories: true)
        try put("/etc/modules-load.d/other.conf", "# other\n9p\n")
        let setting = InitramfsModulesSetting()
        let before = await setting.check(context())
        XCTAssertEqual(before.detail, "9pnet, 9pnet_virtio not loaded at boot (no entry in /etc/modules-load.d or /etc/modules)")
        let change = try await setting.apply(context())
        XCTAssertTrue(change.changed)
        let own = try String(contentsOfFile: dir.path + "/etc/modules-load.d/multiverse.conf", encoding: .utf8)
        XCTAssertTrue(own.hasSuffix("9p\n9pnet\n9pnet_virtio\n"), own)
        let after = await setting.check(context())
        XCTAssertTrue(after.compliant, after.detail)
    }

    func testRebuildRequestsCloseTogetherAreCoalesced() async throws {
        let log = dir.path + "/runs"
        let script = dir.path + "/rebuild"
        try "#!/bin/sh\necho run >> \(log)\nsleep 0.2\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let rebuilder = InitramfsRebuilder(command: [script], settleDelay: .milliseconds(100), logger: Logger(label: "test"))
        // Five requests at once: one run. Then, while it runs, three more: one more run.
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<5 { group.addTask { _ = await rebuilder.rebuild() } }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(200))
                await withTaskGroup(of: Void.self) { more in
                    for _ in 0..<3 { more.addTask { _ = await rebuilder.rebuild() } }
                }
            }
        }
        let runs = await rebuilder.runs
        XCTAssertEqual(runs, 2)
        XCTAssertEqual(try String(contentsOfFile: log, encoding: .utf8), "run\nrun\n")
        let pending = await rebuilder.isPending
        XCTAssertFalse(pending)
    }

    func testSettingsConfigReadsEveryKeyAndRejectsBadValues() throws {
        var config = ControllerConfig()
        try config.apply(ConfigDocument(file: "t.toml", text: """
            [settings]
            user = "alice"
            groups = ["kvm"]
            allowed_groups = ["kvm", "libvirt"]
            initramfs_modules = ["9p"]
            initramfs_modules_file = "/etc/modules"
            initramfs_update_command = ["/usr/sbin/mkinitfs"]
            rng_device = "/dev/tpm0"
            libvirtd_service = "libvirt-daemon"
            enforcing = false
            check_interval_s = 5
            flap_limit_per_minute = 50
            """))
        XCTAssertEqual(config.settings.user, "alice")
        XCTAssertEqual(config.settings.groups, ["kvm"])
        XCTAssertEqual(config.settings.initramfsUpdateCommand, ["/usr/sbin/mkinitfs"])
        XCTAssertEqual(config.settings.enforcing, false)
        XCTAssertEqual(config.settings.flapLimitPerMinute, 50)
        XCTAssertEqual(ControllerConfig().settings, SettingsConfig())
        for (text, message) in [
            ("[settings]\nuser = \"Root Admin\"", "t.toml:2: [settings] user: 'Root Admin' is not a valid user or group name"),
            ("[settings]\ncheck_interval_s = 0", "t.toml:2: [settings] check_interval_s: 0 is out of range"),
            ("[settings]\nenforcing = \"yes\"", "t.toml:2: [settings] enforcing: expected true or false"),
        ] {
            var c = ControllerConfig()
            XCTAssertThrowsError(try c.apply(ConfigDocument(file: "t.toml", text: text))) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
    }
}

/// controller.toml.example documents every key: uncommented, it must load as it is.
final class ConfigExampleTests: XCTestCase {
    func testEveryDocumentedKeyLoads() throws {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        let example = try String(contentsOf: url.appendingPathComponent("controller.toml.example"), encoding: .utf8)
        var keys = 0
        let uncommented = example.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            guard line.hasPrefix("#"), let eq = line.firstIndex(of: "="), !line.dropFirst().hasPrefix(" "),
                  line[line.index(after: line.startIndex)..<eq].allSatisfy({ $0.isLetter || $0 == "_" || $0 == " " }) else { return String(line) }
            keys += 1
            return String(line.dropFirst())
        }.joined(separator: "\n")
        var config = ControllerConfig()
        try config.apply(ConfigDocument(file: "controller.toml.example", text: uncommented))
        XCTAssertEqual(keys, 57, "documented keys (9 daemon, 5 polkit, 4 disks, 19 vms, 2 jobs, 7 guestfs, 11 settings)")
        // The documented values are the defaults.
        XCTAssertEqual(config.settings, SettingsConfig())
        XCTAssertEqual(config.vms, VMConfig())
        XCTAssertEqual(config.maxConcurrentJobs, ControllerConfig().maxConcurrentJobs)
        XCTAssertEqual(config.jobRetentionSeconds, ControllerConfig().jobRetentionSeconds)
        XCTAssertEqual(config.trackingIntervalSeconds, ControllerConfig().trackingIntervalSeconds)
        XCTAssertEqual(config.stateDirectory, ControllerConfig().stateDirectory)
    }
}

import Foundation
import SDBus
import XCTest

/// Real guests on `qemu:///system`: libvirtd (and virtlogd) are started here when not
/// running (no systemd on these machines), guests are `type='qemu'` (TCG; nested KVM is
/// broken here) booting the host's kernel and initrd directly. `virsh` sees these VMs, so
/// the checks use it, including changes made behind the daemon's back.
final class QemuSystemTests: XCTestCase {
    static let uri = "qemu:///system"
    /// The suite's internal network ([vms] internal_network), not the installed default.
    static let internalNetwork = "mvt-internal"

    override class func setUp() {
        SharedStacks.start(self) {
            try startLibvirtd()
            // The host's kernel boots the test guests (a test machine only: never a kernel root on a real host).
            // Copies paced at 4 MiB/s: an offline Resize of 16 MiB of data lasts ~4 s.
            return try TestStack(config: "[vms]\ndomain_type = \"qemu\"\ninternal_network = \"\(internalNetwork)\"\nkernel_roots = [\"/boot\"]\n"
                                     + "[disks]\ncopy_rate_mib_s = 4\n", libvirtURI: uri)
        }
    }

    override class func tearDown() { SharedStacks.stop(self) }

    var stack: TestStack { get throws { try SharedStacks.stack(Self.self) } }

    /// Starts virtlogd and libvirtd as daemons unless running; waits until virsh answers.
    /// (A second daemon of either kind exits at once on the first one's pid file lock, so
    /// starting them when they run is harmless; pgrep is no guide here, it also matches a
    /// killed daemon that PID 1 has not reaped yet.)
    static func startLibvirtd() throws {
        if virsh(["list", "--all"]).ok { return }
        _ = Command.run("/usr/sbin/virtlogd", ["-d"])
        _ = Command.run("/usr/sbin/libvirtd", ["-d"])
        for _ in 0..<200 {
            if virsh(["list", "--all"]).ok { return }
            usleep(100_000)
        }
        throw StackError("libvirtd did not answer on \(uri): \(virsh(["list"]).all)")
    }

    @discardableResult
    static func virsh(_ args: [String]) -> CommandResult { Command.run("/usr/bin/virsh", ["-c", uri] + args) }

    /// The targets (vda, vdb, …) in the table of a `virsh domblklist`; nil when virsh failed
    /// or printed no table.
    static func blockTargets(_ r: CommandResult) -> [String]? {
        let lines = r.stdout.split(separator: "\n")
        guard r.ok, lines.count >= 2, lines[0].contains("Target"), lines[1].hasPrefix("---") else { return nil }
        return lines.dropFirst(2).compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    /// Whether libvirtd answers and has no domain `name`: `virsh dominfo` fails with libvirt's
    /// "failed to get domain" (not, say, with a failed connection), and `virsh list --all`
    /// succeeds without it.
    static func domainIsGone(_ name: String) -> Bool {
        let info = virsh(["dominfo", name])
        let list = virsh(["list", "--all", "--name"])
        return !info.ok && info.stderr.contains("failed to get domain '\(name)'")
            && list.ok && !list.stdout.split(separator: "\n").contains { $0 == name }
    }

    // MARK: helpers

    /// Kernel and initrd of the host, for direct kernel boot.
    func bootFiles() throws -> (kernel: String, initrd: String) {
        let boot = (try? FileManager.default.contentsOfDirectory(atPath: "/boot")) ?? []
        guard let initrd = boot.filter({ $0.hasPrefix("initrd.img-") }).sorted().last else { throw XCTSkip("no /boot/initrd.img-*") }
        let version = initrd.dropFirst("initrd.img-".count)
        guard boot.contains("vmlinuz-\(version)") else { throw XCTSkip("no /boot/vmlinuz-\(version)") }
        return ("/boot/vmlinuz-\(version)", "/boot/\(initrd)")
    }

    /// The guest's domain XML; its serial console logs where DefineVMFromXML's console_log
    /// option places it (`/var/log/libvirt/qemu/NAME-console.log`).
    func guestXML(_ name: String) throws -> String {
        let (kernel, initrd) = try bootFiles()
        return """
            <domain type='qemu'>
              <name>\(name)</name>
              <memory unit='MiB'>768</memory>
              <vcpu>1</vcpu>
              <os><type arch='x86_64' machine='pc'>hvm</type><kernel>\(kernel)</kernel><initrd>\(initrd)</initrd><cmdline>console=ttyS0</cmdline></os>
              <features><acpi/><apic/></features>
              <cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model></cpu>
              <on_poweroff>destroy</on_poweroff>
              <devices>
                <serial type='pty'/>
                <console type='pty'/>
                <memballoon model='none'/>
              </devices>
            </domain>
            """
    }

    // MARK: tests

    func testRealGuestStartsTakesAndReleasesADiskLiveAndIsForcedOff() async throws {
        let s = try stack
        let name = "mvt-guest-\(UUID().uuidString.prefix(6))"
        let consoleLog = "/var/log/libvirt/qemu/\(name)-console.log"
        XCTAssertTrue(s.createDisk("hot.qcow2", size: 16 << 20, as: TestStack.grantedUser).ok)
        let defined = s.manager("DefineVMFromXML", ["sa{sv}", try guestXML(name), "1", "console_log", "b", "true"], as: TestStack.grantedUser)
        XCTAssertTrue(defined.ok, defined.all)
        defer { Self.virsh(["destroy", name]); Self.virsh(["undefine", name]) }
        XCTAssertTrue(Self.virsh(["dominfo", name]).ok, "virsh does not see \(name)")
        guard let path = s.vmPath(name) else { return XCTFail("no object for \(name)") }
        let signals = try await SignalCollector(stack: s, match: "type='signal',path='\(path)',interface='\(TestStack.vmInterface)',member='StateChanged'")
        defer { Task { await signals.close() } }

        let start = try stack.vmCall(name, "Start")
        XCTAssertTrue(start.ok, start.all)
        let running = await signals.wait(timeout: 20) { $0.arguments.first?.string == "running" }
        XCTAssertEqual(running?.arguments.last?.string, "booted", signals.summary)
        XCTAssertEqual(Self.virsh(["domstate", name]).stdout.trimmingCharacters(in: .whitespacesAndNewlines), "running")

        // Live attach needs nothing from the guest.
        let attach = try stack.vmCall(name, "AttachDisk", ["ssa{sv}", "hot.qcow2", "vdb", "0"])
        XCTAssertTrue(attach.ok, attach.all)
        XCTAssertTrue(Self.virsh(["domblklist", name]).stdout.contains("vdb"), Self.virsh(["domblklist", name]).all)
        XCTAssertTrue(s.vmProperty(name, "Disks").firstFields.contains("vdb"), s.vmProperty(name, "Disks").shown)

        // Resize of a disk the running guest uses: grow is live (libvirt block resize, image
        // only); shrink and writes are Busy.
        let hot = "/org/multiverse/Controller/disk/hot_2eqcow2"
        let grow = s.call(hot, TestStack.diskInterface, "Resize", ["ta{sv}", String(32 << 20), "0"], as: TestStack.grantedUser)
        XCTAssertTrue(grow.ok, grow.all)
        let job = grow.replyPath
        XCTAssertTrue(waitFor(30, interval: 0.2) { s.jobProperty(job, "State") == .string("succeeded") },
                      "timed out after 30 s waiting for the live resize job")
        let result = s.jobProperty(job, "Result")
        XCTAssertTrue(result["live"] == .boolean(true) && result["filesystem_grown"] == .boolean(false), result.shown)
        let info = Command.run("/usr/bin/qemu-img", ["info", "-U", s.imageDir.appendingPathComponent("hot.qcow2").path]).stdout
        XCTAssertTrue(info.contains("virtual size: 32 MiB"), info)
        let shrink = s.call(hot, TestStack.diskInterface, "Resize", ["ta{sv}", String(16 << 20), "1", "shrink", "b", "true"], as: TestStack.grantedUser)
        XCTAssertTrue(shrink.stderr.contains("cannot shrink disk hot.qcow2: VM \(name) is using it"), shrink.all)
        let write = s.call(hot, TestStack.diskInterface, "WriteFile", ["saya{sv}", "/x", "1", "65", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(write.stderr.contains("cannot write /x in disk hot.qcow2: disk hot.qcow2 is held by VM \(name) (vm)"), write.all)
        XCTAssertEqual(s.diskProperty("hot.qcow2", "HeldBy"), .array(elementSignature: "(so)", [.structure([.string("vm"), .objectPath(path)])]))

        // A live detach needs the guest's ACPI hotplug: wait until its kernel is up.
        XCTAssertTrue(waitFor(120, interval: 0.2) {
            let log = (try? String(contentsOfFile: consoleLog, encoding: .utf8)) ?? ""
            return log.contains("Run /init as init process")
        }, "timed out after 120 s waiting for the guest kernel to finish booting (\(consoleLog))")
        let bootLog = (try? String(contentsOfFile: consoleLog, encoding: .utf8)) ?? ""
        XCTAssertFalse(bootLog.contains("Kernel panic"), "the guest kernel panicked: \(bootLog.suffix(600))")
        sleep(3)
        let detach = try stack.vmCall(name, "DetachDisk", ["sa{sv}", "vdb", "1", "timeout_s", "u", "90"])
        XCTAssertTrue(detach.ok, detach.all)
        let blocks = Self.virsh(["domblklist", name])
        XCTAssertEqual(blocks.status, 0, blocks.all)
        XCTAssertEqual(Self.blockTargets(blocks), [], "vdb was the guest's only disk: \(blocks.all)")
        XCTAssertFalse(blocks.stdout.contains("vdb"), blocks.all)
        XCTAssertFalse(s.vmProperty(name, "Disks").firstFields.contains("vdb"), s.vmProperty(name, "Disks").shown)
        // The device-removed event gave the VM's lease on the disk back.
        XCTAssertTrue(waitFor(10, interval: 0.1) { s.diskProperty("hot.qcow2", "HeldBy") == .array(elementSignature: "(so)", []) },
                      s.diskProperty("hot.qcow2", "HeldBy").shown)

        // The initramfs shell does not power off on ACPI: force after a short timeout.
        let stop = try stack.vmCall(name, "Shutdown", ["a{sv}", "2", "timeout_s", "u", "3", "force", "b", "true"])
        XCTAssertTrue(stop.ok, stop.all)
        XCTAssertEqual(Self.virsh(["domstate", name]).stdout.trimmingCharacters(in: .whitespacesAndNewlines), "shut off")
        let off = await signals.wait(timeout: 10) { $0.arguments.first?.string == "shutoff" }
        XCTAssertEqual(off?.arguments.last?.string, "destroyed", signals.summary)
        XCTAssertTrue(try stack.vmCall(name, "Undefine").ok)
        XCTAssertTrue(Self.domainIsGone(name), Self.virsh(["dominfo", name]).all)
        XCTAssertNil(s.vmPath(name))
    }

    /// A VM started with virsh while the service rewrites its disk (an offline Resize, its
    /// copy paced by [disks] copy_rate_mib_s) fails on qemu's image lock instead of writing
    /// into the file about to be replaced; after the job it starts on the new image, and its
    /// lease (from libvirt's event) shows in HeldBy.
    func testVirshStartDuringAnOfflineResizeFailsOnTheImageLock() async throws {
        let s = try stack
        let name = "mvt-locked-\(UUID().uuidString.prefix(6))"
        XCTAssertTrue(s.createDisk("locked.qcow2", size: 64 << 20, as: TestStack.grantedUser).ok)
        let image = s.imageDir.appendingPathComponent("locked.qcow2").path
        XCTAssertTrue(qemuIO("write -P 0x61 0 16M", image).ok)
        var xml = try guestXML(name)
        xml = xml.replacingOccurrences(of: "<devices>", with: """
            <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='\(image)'/>\
            <target dev='vda' bus='virtio'/></disk>
            """)
        let file = s.dir.appendingPathComponent("\(name).xml")
        try xml.write(to: file, atomically: true, encoding: .utf8)
        XCTAssertTrue(Self.virsh(["define", file.path]).ok)
        defer { Self.virsh(["destroy", name]); Self.virsh(["undefine", name]) }
        // The image only (no appliance): the copy is what takes the time.
        let resize = s.call(TestStack.diskPath("locked.qcow2"), TestStack.diskInterface, "Resize",
                            ["ta{sv}", String(128 << 20), "1", "filesystem", "b", "false"], as: TestStack.grantedUser)
        XCTAssertTrue(resize.ok, resize.all)
        let job = resize.replyPath
        let started = Self.virsh(["start", name])
        XCTAssertFalse(started.ok, "virsh started \(name) on an image being replaced: \(started.all)")
        XCTAssertTrue(started.all.contains("Failed to get \"write\" lock"), started.all)
        XCTAssertEqual(s.jobProperty(job, "State"), .string("running"), "the start came too late to prove anything")
        XCTAssertTrue(waitFor(60, interval: 0.2) { s.jobProperty(job, "State") == .string("succeeded") }, s.jobProperty(job, "Error").shown)
        // Now it starts, on the resized image, and holds it.
        let again = Self.virsh(["start", name])
        XCTAssertTrue(again.ok, again.all)
        XCTAssertTrue(Self.virsh(["domblkinfo", name, "vda"]).stdout.contains("Capacity:       \(128 << 20)"), Self.virsh(["domblkinfo", name, "vda"]).all)
        guard let path = s.vmPath(name) else { return XCTFail("no object for \(name)") }
        XCTAssertTrue(waitFor(10, interval: 0.1) {
            s.diskProperty("locked.qcow2", "HeldBy") == .array(elementSignature: "(so)", [.structure([.string("vm"), .objectPath(path)])])
        }, s.diskProperty("locked.qcow2", "HeldBy").shown)
    }

    func testChangesMadeWithVirshAppearAndEphemeralLaunchLeavesNothing() async throws {
        let s = try stack
        let signals = try await SignalCollector(stack: s, match: "type='signal',sender='\(TestStack.busName)'")
        defer { Task { await signals.close() } }
        let name = "mvt-outside-\(UUID().uuidString.prefix(6))"
        let file = s.dir.appendingPathComponent("\(name).xml").path
        try (try guestXML(name)).write(toFile: file, atomically: true, encoding: .utf8)
        defer { Self.virsh(["destroy", name]); Self.virsh(["undefine", name]) }
        XCTAssertTrue(Self.virsh(["define", file]).ok)
        let added = await signals.wait(timeout: 10) { $0.member == "InterfacesAdded" && ($0.arguments.first?.string ?? "").hasPrefix("/org/multiverse/Controller/vm/") }
        XCTAssertNotNil(added, signals.summary)
        XCTAssertEqual(s.vmProperty(name, "Profile"), .string(""))
        XCTAssertTrue(Self.virsh(["start", name]).ok)
        let started = await signals.wait(timeout: 20) { $0.member == "StateChanged" && $0.arguments.first?.string == "running" }
        XCTAssertNotNil(started, signals.summary)
        XCTAssertTrue(Self.virsh(["destroy", name]).ok)
        let stopped = await signals.wait(timeout: 10) { $0.member == "StateChanged" && $0.arguments.first?.string == "shutoff" }
        XCTAssertEqual(stopped?.arguments.last?.string, "destroyed", signals.summary)
        let path = s.vmPath(name) ?? ""
        XCTAssertTrue(Self.virsh(["undefine", name]).ok)
        let removed = await signals.wait(timeout: 10) { $0.member == "InterfacesRemoved" && $0.arguments.first?.string == path }
        XCTAssertNotNil(removed, signals.summary)

        // Ephemeral launch of the app profile (no NICs here) on an overlay of a base disk.
        let eph = "mvt-eph-\(UUID().uuidString.prefix(6))"
        XCTAssertTrue(s.createDisk("qbase.qcow2", size: 32 << 20, as: TestStack.grantedUser).ok)
        let define = s.manager("DefineVM", ["ssa{sv}", eph, "app", "4", "base_disk", "s", "qbase.qcow2", "ephemeral", "b", "true",
                                            "networks", "as", "0", "memory_mib", "t", "128"], as: TestStack.grantedUser)
        XCTAssertTrue(define.ok, define.all)
        defer { Self.virsh(["destroy", eph]); Self.virsh(["undefine", eph]) }
        XCTAssertTrue(Self.virsh(["dumpxml", eph]).stdout.contains("https://multiverse-os.org/controller/1"))
        let start = try stack.vmCall(eph, "Start")
        XCTAssertTrue(start.ok, start.all)
        XCTAssertEqual(Self.virsh(["domstate", eph]).stdout.trimmingCharacters(in: .whitespacesAndNewlines), "running")
        XCTAssertTrue(try stack.vmCall(eph, "Destroy").ok)
        XCTAssertTrue(waitFor(15, interval: 0.2) {
            Self.domainIsGone(eph) && !s.imageFiles().contains("\(eph)-root.qcow2")
        }, "timed out after 15 s waiting for the ephemeral VM and its overlay to go")
        XCTAssertTrue(s.imageFiles().contains("qbase.qcow2"))

        // An ephemeral VM that stops while the daemon is down is discarded when it comes back.
        let late = "mvt-late-\(UUID().uuidString.prefix(6))"
        XCTAssertTrue(s.manager("DefineVM", ["ssa{sv}", late, "app", "4", "base_disk", "s", "qbase.qcow2", "ephemeral", "b", "true",
                                             "networks", "as", "0", "memory_mib", "t", "128"], as: TestStack.grantedUser).ok)
        defer { Self.virsh(["destroy", late]); Self.virsh(["undefine", late]) }
        XCTAssertTrue(try stack.vmCall(late, "Start").ok)
        // An upgrade from a version without format records: the images lose theirs; the
        // VMs' definitions say what they are, and an ephemeral overlay whose VM is gone goes.
        XCTAssertTrue(s.createDisk("legacy.qcow2", size: 1 << 20, as: TestStack.grantedUser).ok)
        let legacyVM = "mvt-legacy-\(UUID().uuidString.prefix(6))", gone = "mvt-gone-\(UUID().uuidString.prefix(6))"
        XCTAssertTrue(s.manager("DefineVM", ["ssa{sv}", legacyVM, "app", "3", "disks", "as", "1", "legacy.qcow2", "networks", "as", "0",
                                             "memory_mib", "t", "128"], as: TestStack.grantedUser).ok)
        defer { Self.virsh(["undefine", legacyVM]) }
        XCTAssertTrue(s.manager("DefineVM", ["ssa{sv}", gone, "app", "4", "base_disk", "s", "qbase.qcow2", "ephemeral", "b", "true",
                                             "networks", "as", "0", "memory_mib", "t", "128"], as: TestStack.grantedUser).ok)
        XCTAssertEqual(s.stopDaemon(), 0)
        XCTAssertTrue(Self.virsh(["destroy", late]).ok)
        XCTAssertTrue(Self.virsh(["undefine", gone]).ok)
        XCTAssertTrue(s.imageFiles().contains("\(late)-root.qcow2"))
        for image in ["legacy.qcow2", "\(gone)-root.qcow2"] {
            XCTAssertTrue(Command.run("/usr/bin/setfattr", ["-x", "trusted.multiverse.format", s.imageDir.appendingPathComponent(image).path]).ok)
        }
        try s.startDaemon()
        XCTAssertTrue(waitFor(15, interval: 0.2) { s.diskProperty("legacy.qcow2", "ImageFormat") == .string("qcow2") }, s.log(tail: 20))
        XCTAssertEqual(s.diskProperty("legacy.qcow2", "Problems"), .strings([]))
        XCTAssertTrue(s.log(tail: 200).contains("recorded format qcow2 of disk legacy.qcow2 from the definition of VM \(legacyVM)"), s.log(tail: 30))
        XCTAssertTrue(waitFor(15, interval: 0.2) { !s.imageFiles().contains("\(gone)-root.qcow2") }, s.log(tail: 30))
        XCTAssertTrue(waitFor(15, interval: 0.2) {
            Self.domainIsGone(late) && !s.imageFiles().contains("\(late)-root.qcow2")
        }, "timed out after 15 s waiting for the stopped ephemeral VM to be discarded at start-up")
        XCTAssertTrue(s.log(tail: 100).contains("ephemeral VM \(late) stopped (destroyed): discarding it"), s.log(tail: 30))
    }

    func testReconnectsAfterLibvirtdRestart() throws {
        let s = try stack
        let name = "mvt-survivor-\(UUID().uuidString.prefix(6))"
        XCTAssertTrue(s.manager("DefineVMFromXML", ["sa{sv}", try guestXML(name), "0"],
                                as: TestStack.grantedUser).ok)
        defer { Self.virsh(["undefine", name]) }
        let connected = { s.property(TestStack.root, TestStack.managerInterface, "LibvirtConnected") }
        XCTAssertEqual(connected(), .boolean(true))
        XCTAssertEqual(Command.run("/usr/bin/pkill", ["-KILL", "-x", "libvirtd"]).status, 0)
        XCTAssertTrue(waitFor(30, interval: 0.2) { connected() == .boolean(false) }, "timed out after 30 s waiting for LibvirtConnected to become false")
        // While disconnected, calls fail at once with a clear error.
        let t0 = Date()
        let during = s.manager("DefineVMFromXML", ["sa{sv}", try guestXML("mvt-never"), "0"], as: TestStack.grantedUser)
        XCTAssertTrue(during.stderr.contains("not connected to libvirt at qemu:///system"), during.all)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 10)
        try Self.startLibvirtd()
        XCTAssertTrue(waitFor(60, interval: 0.2) { connected() == .boolean(true) }, "timed out after 60 s waiting for LibvirtConnected to become true again")
        // Objects resynchronised; calls work again.
        XCTAssertNotNil(s.vmPath(name))
        let list = s.manager("ListVMs", ["a{sv}", "0"])
        XCTAssertTrue(list.ok, list.all)
        XCTAssertTrue(try stack.vmCall(name, "SetAutostart", ["ba{sv}", "true", "0"]).ok)
        XCTAssertTrue(Self.virsh(["dumpxml", name]).stdout.contains("<mv:autostart>true</mv:autostart>"))
        XCTAssertTrue(s.log(tail: 200).contains("libvirt connection to qemu:///system lost"), s.log(tail: 50))
    }

    func testStartAllFailsNamingTheVMThatCannotStart() async throws {
        let s = try stack
        let name = "mvt-broken-\(UUID().uuidString.prefix(6))"
        // Defined with virsh: the service refuses a kernel outside [vms] kernel_roots itself.
        let xml = try guestXML(name).replacingOccurrences(of: try bootFiles().kernel, with: "/nonexistent/vmlinuz")
        let file = s.dir.appendingPathComponent("\(name).xml").path
        try xml.write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertTrue(Self.virsh(["define", file]).ok)
        defer { Self.virsh(["undefine", name]) }
        XCTAssertTrue(waitFor(10, interval: 0.1) { s.vmPath(name) != nil }, "timed out after 10 s waiting for the service to see \(name)")
        XCTAssertTrue(try stack.vmCall(name, "SetAutostart", ["ba{sv}", "true", "0"]).ok)
        let signals = try await SignalCollector(stack: s, match: "type='signal',sender='\(TestStack.busName)',member='Completed'")
        defer { Task { await signals.close() } }
        let r = s.manager("StartAll", ["a{sv}", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(r.ok, r.all)
        let done = await signals.wait(timeout: 60) { _ in true }
        XCTAssertEqual(done?.arguments.first, .boolean(false), signals.summary)
        let message = done?.arguments.last?.string ?? ""
        XCTAssertTrue(message.contains("StartAll: \(name) failed to start:") && message.contains("/nonexistent/vmlinuz"), message)
        XCTAssertEqual(Self.virsh(["domstate", name]).stdout.trimmingCharacters(in: .whitespacesAndNewlines), "shut off")
    }

    /// An isolated network is what libvirtd holds (virsh net-dumpxml: no forward, no ip), and
    /// a net-destroy behind the service's back reaches its Active property by libvirt's event.
    func testIsolatedNetworkAsVirshSeesItAndChangesBehindTheServicesBack() throws {
        let s = try stack
        let name = "mvtest-isolated"
        _ = Self.virsh(["net-destroy", name])
        _ = Self.virsh(["net-undefine", name])
        let path = ObjectPath.encode(prefix: "/org/multiverse/Controller/network", name)
        let iface = "org.multiverse.Controller.Network"
        let r = s.manager("DefineNetwork", ["ssa{sv}", name, "isolated", "1", "bridge", "s", "mvbr-iso0"])
        XCTAssertTrue(r.ok, r.all)
        defer {
            _ = Self.virsh(["net-destroy", name])
            _ = Self.virsh(["net-undefine", name])
        }
        let dump = Self.virsh(["net-dumpxml", name])
        XCTAssertTrue(dump.ok, dump.all)
        XCTAssertFalse(dump.stdout.contains("<forward"), dump.stdout)
        XCTAssertFalse(dump.stdout.contains("<ip"), dump.stdout)
        XCTAssertTrue(dump.stdout.contains("<bridge name='mvbr-iso0'"), dump.stdout)
        XCTAssertTrue(Self.virsh(["net-info", name]).stdout.contains("Active:         yes"), Self.virsh(["net-info", name]).all)
        XCTAssertEqual(s.property(path, iface, "Active"), .boolean(true))
        // The host is kept out of the bridge: its sysctls and the service's nftables tables
        // (input and ARP dropped from the bridge, forwarding only within it).
        XCTAssertEqual(s.property(path, iface, "HostIsolated"), .boolean(true))
        let nft = { (family: String) in Command.run("/usr/sbin/nft", ["list", "table", family, "multiverse_isolation"]) }
        XCTAssertTrue(nft("inet").stdout.contains("iifname \"mvbr-iso0\" drop"), nft("inet").all)
        XCTAssertTrue(nft("inet").stdout.contains("iifname \"mvbr-iso0\" oifname != \"mvbr-iso0\" drop"), nft("inet").all)
        XCTAssertTrue(nft("arp").stdout.contains("iifname \"mvbr-iso0\" drop"), nft("arp").all)
        // Removed behind the service's back (what `systemctl restart nftables` does): written again.
        XCTAssertTrue(Command.run("/usr/sbin/nft", ["delete", "table", "inet", "multiverse_isolation"]).ok)
        XCTAssertTrue(waitFor(25, interval: 0.5) { nft("inet").stdout.contains("iifname \"mvbr-iso0\" drop") },
                      "the table was not written again: \(s.log(tail: 10))")
        XCTAssertTrue(s.log(tail: 100).contains("was changed behind the service's back; written again for mvbr-iso0"), s.log(tail: 20))

        XCTAssertTrue(Self.virsh(["net-destroy", name]).ok)
        for _ in 0..<100 where s.property(path, iface, "Active") != .boolean(false) { usleep(100_000) }
        XCTAssertEqual(s.property(path, iface, "Active"), .boolean(false))
        // Its rules go with it (the tables stay while another isolated network runs).
        XCTAssertTrue(waitFor(10, interval: 0.2) { !nft("inet").stdout.contains("mvbr-iso0") && !nft("arp").stdout.contains("mvbr-iso0") },
                      "the rules stayed after the network stopped: \(nft("inet").all)")
        XCTAssertTrue(Self.virsh(["net-undefine", name]).ok)
        for _ in 0..<100 where s.manager("GetNetworkByName", ["sa{sv}", name, "0"]).ok { usleep(100_000) }
        XCTAssertFalse(s.manager("GetNetworkByName", ["sa{sv}", name, "0"]).ok)

        let nat = s.manager("DefineNetwork", ["ssa{sv}", "mvtest-nat", "nat", "2", "ipv4", "s", "10.93.0.1/24", "bridge", "s", "mvbr-nat0"])
        defer {
            _ = Self.virsh(["net-destroy", "mvtest-nat"])
            _ = Self.virsh(["net-undefine", "mvtest-nat"])
        }
        XCTAssertTrue(nat.ok, nat.all)
        let natXML = Self.virsh(["net-dumpxml", "mvtest-nat"]).stdout
        XCTAssertTrue(natXML.contains("<forward mode='nat'"), natXML)
        XCTAssertTrue(natXML.contains("<ip address='10.93.0.1' prefix='24'>") || natXML.contains("<ip address='10.93.0.1' netmask='255.255.255.0'>"), natXML)
        XCTAssertTrue(natXML.contains("<range start='10.93.0.2' end='10.93.0.254'"), natXML)
    }
}

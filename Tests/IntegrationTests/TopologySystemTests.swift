import Foundation
import SDBus
import FoundationXML
import XCTest

/// The profiles' wiring on `qemu:///system`, judged by what libvirtd holds (`virsh dumpxml`,
/// `net-dumpxml`, `nwfilter-binding-list`), in QemuSystemTests' stack and libvirtd.
extension QemuSystemTests {
    /// The NICs of `name` as libvirtd has them: (type, source, filter) of each.
    static func nics(_ name: String, inactive: Bool = true) throws -> [(type: String, source: String, filter: String)] {
        let dump = virsh(["dumpxml", name] + (inactive ? ["--inactive"] : []))
        guard dump.ok else { throw StackError("virsh dumpxml \(name): \(dump.all)") }
        let doc = try XMLDocument(xmlString: dump.stdout)
        return try doc.nodes(forXPath: "/domain/devices/interface").compactMap { node in
            guard let nic = node as? XMLElement else { return nil }
            let source = nic.elements(forName: "source").first
            let value = source?.attribute(forName: "network")?.stringValue ?? source?.attribute(forName: "bridge")?.stringValue ?? ""
            return (nic.attribute(forName: "type")?.stringValue ?? "", value,
                    nic.elements(forName: "filterref").first?.attribute(forName: "filter")?.stringValue ?? "")
        }
    }

    func testProfilesWireRouterAndControllerAndTheFilterHoldsAtStart() throws {
        let s = try stack
        let inside = Self.internalNetwork
        let (router, desk, leak) = ("mvt-router", "mvt-desk", "mvt-leak")
        let cleanup = {
            for vm in [router, desk, leak] { Self.virsh(["destroy", vm]); Self.virsh(["undefine", vm]) }
            Self.virsh(["net-destroy", inside])
            Self.virsh(["net-undefine", inside])
        }
        cleanup()
        defer { cleanup() }
        let small = ["memory_mib", "t", "128", "vcpus", "u", "1"]

        // The first VM on the internal network creates it: vm.configure alone may not.
        let refused = s.manager("DefineVM", ["ssa{sv}", desk, "interface-controller", "2"] + small, as: TestStack.vmOnlyUser, interactive: false)
        XCTAssertFalse(refused.ok, refused.all)
        XCTAssertTrue(Self.domainIsGone(desk), "a refused DefineVM left a VM")
        XCTAssertFalse(Self.virsh(["net-info", inside]).ok, "a refused DefineVM created \(inside)")

        let defined = s.manager("DefineVM", ["ssa{sv}", router, "network-controller", "2"] + small, as: TestStack.grantedUser)
        XCTAssertTrue(defined.ok, defined.all)
        let log = s.log(tail: 40)
        XCTAssertTrue(log.contains("action=\"org.multiverse.controller.network.manage\" kind=\"isolated\" network=\"\(inside)\" operation=\"define\" vm=\"\(router)\" decision=allowed"), log)
        let netXML = Self.virsh(["net-dumpxml", inside])
        XCTAssertTrue(netXML.ok, netXML.all)
        XCTAssertFalse(netXML.stdout.contains("<forward"), netXML.stdout)
        XCTAssertFalse(netXML.stdout.contains("<ip"), netXML.stdout)
        let routerNICs = try Self.nics(router)
        XCTAssertEqual(routerNICs.map(\.type), ["network", "network"])
        XCTAssertEqual(routerNICs.map(\.source), ["default", inside])
        XCTAssertEqual(routerNICs.map(\.filter), ["clean-traffic", "clean-traffic"])

        // Now that it exists, vm.configure is enough for a controller on it.
        let deskDefined = s.manager("DefineVM", ["ssa{sv}", desk, "interface-controller", "2"] + small, as: TestStack.vmOnlyUser)
        XCTAssertTrue(deskDefined.ok, deskDefined.all)
        let deskNICs = try Self.nics(desk)
        XCTAssertEqual(deskNICs.map(\.source), [inside])
        XCTAssertEqual(deskNICs.map(\.filter), ["clean-traffic"])
        XCTAssertTrue(s.vmProperty(desk, "Interfaces").rows.contains { Array($0.dropFirst().compactMap(\.string)) == [inside, "virtio"] }, s.vmProperty(desk, "Interfaces").shown)

        // enforce_topology: an app VM on the uplink, or on a host bridge through caller XML.
        let onUplink = s.manager("DefineVM", ["ssa{sv}", leak, "app", "1", "networks", "as", "1", "default"], as: TestStack.grantedUser)
        XCTAssertFalse(onUplink.ok)
        XCTAssertTrue(onUplink.stderr.contains("NIC 1 (network:default) of app VM \(leak): default is the uplink"), onUplink.all)
        let bridged = """
            <domain type='qemu'><name>\(leak)</name><memory unit='MiB'>128</memory><os><type arch='x86_64'>hvm</type></os>
            <devices><interface type='bridge'><source bridge='virbr0'/></interface></devices></domain>
            """
        let fromXML = s.manager("DefineVMFromXML", ["sa{sv}", bridged, "0"], as: TestStack.grantedUser)
        XCTAssertFalse(fromXML.ok)
        XCTAssertTrue(fromXML.stderr.contains("cannot have a bridge or direct interface"), fromXML.all)
        XCTAssertTrue(Self.domainIsGone(leak), "a refused define left \(leak)")

        // Started, libvirtd binds the filter to each of the router's taps (with the inactive
        // default network started first).
        let start = try s.vmCall(router, "Start")
        XCTAssertTrue(start.ok, start.all)
        let bindings = Self.virsh(["nwfilter-binding-list"])
        XCTAssertTrue(bindings.ok, bindings.all)
        let bound = bindings.stdout.split(separator: "\n").filter { $0.contains("clean-traffic") }
        let taps = try Self.nics(router, inactive: false).count
        XCTAssertEqual(taps, 2)
        XCTAssertGreaterThanOrEqual(bound.count, 2, bindings.stdout)
        // The readiness channel: libvirt made the socket (qemu listens on it) at a path of its own.
        let live = try XMLDocument(xmlString: Self.virsh(["dumpxml", router]).stdout)
        let channel = try live.nodes(forXPath: "/domain/devices/channel[target/@name='org.multiverse.ready.0']/source/@path").first?.stringValue
        let socketPath = try XCTUnwrap(channel, "no readiness channel path in the live XML")
        XCTAssertTrue(socketPath.hasPrefix("/var/lib/libvirt/qemu/channel/target/"), socketPath)
        var st = stat()
        XCTAssertEqual(lstat(socketPath, &st), 0, socketPath)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFSOCK, "\(socketPath) is not a socket")
        XCTAssertTrue(try s.vmCall(router, "Destroy").ok)
    }
}

/// What qemu's libvirt driver writes for a VM the service made passes DefineVMFromXML's
/// allowlist again: `virsh dumpxml --inactive`, the service's metadata element removed, a
/// new name (and no uuid or MACs: those belong to the first VM).
extension QemuSystemTests {
    func testLibvirtsOwnXMLOfEachProfileDefinesAgain() throws {
        let s = try stack
        XCTAssertTrue(s.createDisk("rt-q.qcow2", size: 1 << 20, as: TestStack.grantedUser).ok)
        defer { _ = s.call(TestStack.diskPath("rt-q.qcow2"), TestStack.diskInterface, "Delete", ["a{sv}", "0"]) }
        for profile in ["network-controller", "interface-controller", "app"] {
            let (first, second) = ("mvt-rt-\(profile)", "mvt-rt-\(profile)-2")
            defer { for vm in [first, second] { Self.virsh(["undefine", vm]) } }
            let made = s.manager("DefineVM", ["ssa{sv}", first, profile, "3", "disks", "as", "1", "rt-q.qcow2",
                                              "memory_mib", "t", "128", "networks", "as", "0"], as: TestStack.grantedUser)
            XCTAssertTrue(made.ok, made.all)
            var xml = Self.virsh(["dumpxml", "--inactive", first]).stdout
            XCTAssertTrue(xml.contains("<emulator>"), "libvirt names its emulator: \(xml)")
            xml = xml.replacingOccurrences(of: #"<mv:controller[\s\S]*</mv:controller>"#, with: "", options: .regularExpression)
                .replacingOccurrences(of: #"<uuid>[^<]*</uuid>"#, with: "", options: .regularExpression)
                .replacingOccurrences(of: #"<mac address=['"][^'"]*['"]/>"#, with: "", options: .regularExpression)
                .replacingOccurrences(of: "<name>\(first)</name>", with: "<name>\(second)</name>")
                // The interface controller's /var/multiverse share does not exist on these machines.
                .replacingOccurrences(of: #"<filesystem[\s\S]*</filesystem>"#, with: "", options: .regularExpression)
            let again = s.manager("DefineVMFromXML", ["sa{sv}", xml, "1", "profile", "s", profile], as: TestStack.grantedUser)
            XCTAssertTrue(again.ok, "\(profile): \(again.stderr)\n\(xml)")
            XCTAssertTrue(Self.virsh(["dominfo", second]).ok, "virsh does not see \(second)")
        }
    }
}

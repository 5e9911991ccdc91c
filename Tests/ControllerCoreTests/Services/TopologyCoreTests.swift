@testable import HostSystem
@testable import ControllerCore
import Foundation
import Libvirt
import XCTest

/// The profiles' wiring, the topology rules and the host's budget, on libvirt's test driver
/// (the test host file: 32 GiB, 16 CPUs, the running "test" VM holding 8 GiB and 2 vCPUs).
final class TopologyCoreTests: XCTestCase {
    var core: CoreHarness!

    override func tearDown() async throws { await core?.close() }

    func define(_ name: String, _ profile: String, _ change: (inout VMService.DefineRequest) -> Void = { _ in }) async throws -> VMInfo {
        var request = VMService.DefineRequest(name: name, profile: profile)
        change(&request)
        return try await core.vms.runDefine(try await core.vms.checkDefine(request))
    }

    /// The domain XML as libvirt has it, asked of libvirt.
    func libvirtXML(_ vm: VMInfo) async throws -> XElement { try XElement.parse(try await core.vms.xml(vm.uuid, inactive: true)) }

    func testProfilesWireRouterAndControllersOnTheInternalNetworkWithTheFilter() async throws {
        core = try await CoreHarness()
        let first = try await core.vms.checkDefine(VMService.DefineRequest(name: "router", profile: "network-controller"))
        XCTAssertEqual(first.spec.nics.map(\.source), [.network("default"), .network("multiverse")])
        XCTAssertEqual(first.internalNetwork?.spec.kind, .isolated, "the missing internal network is planned, isolated")
        XCTAssertEqual(first.networkDetails["network"], "multiverse")
        let missing = await core.networkManager.network(named: "multiverse")
        XCTAssertNil(missing, "the check created the network")
        let router = try await core.vms.runDefine(first)

        // libvirt's own view: the internal network is isolated (no forward, no ip) and active.
        let net = await core.networkManager.refresh("multiverse")
        XCTAssertEqual(net?.kind, "isolated")
        XCTAssertEqual(net?.active, true)
        let netXML = try XElement.parse(try await core.vmManager.call("read network") { try $0.network(named: "multiverse")!.xml() })
        XCTAssertNil(netXML.first("forward"))
        XCTAssertNil(netXML.first("ip"))

        let nics = try await libvirtXML(router).first("devices")!.elements("interface")
        XCTAssertEqual(nics.map { $0.first("source")?.attribute("network") }, ["default", "multiverse"])
        XCTAssertEqual(nics.map { $0.first("filterref")?.attribute("filter") }, ["clean-traffic", "clean-traffic"])
        XCTAssertEqual(nics.map { $0.first("model")?.attribute("type") }, ["virtio", "virtio"])
        XCTAssertEqual(router.interfaces.map(\.source), ["default", "multiverse"])

        for (name, profile) in [("desk", "interface-controller"), ("web", "app")] {
            let plan = try await core.vms.checkDefine(VMService.DefineRequest(name: name, profile: profile))
            XCTAssertNil(plan.internalNetwork, "the internal network exists now")
            let vm = try await core.vms.runDefine(plan)
            let sources = try await libvirtXML(vm).first("devices")!.elements("interface").map { $0.first("source")?.attribute("network") }
            XCTAssertEqual(sources, ["multiverse"], name)
        }
    }

    func testPrecedenceDefineOptionOverProfileFileOverTheVMsKeys() async throws {
        core = try await CoreHarness(profiles: [
            "edge": "[profile]\nrole = \"network-controller\"\nnetworks = [\"network:default\", \"lan\"]\n",
            "kiosk": "[profile]\nrole = \"interface-controller\"\n",
        ]) { $0.internalNetwork = "inside"; $0.uplink = .bridge("br-up") }
        let profiles = await core.vms.profiles()
        XCTAssertEqual(profiles.first { $0.name == "kiosk" }?.role, .interfaceController)
        // [vms] keys: the built-in router on the configured uplink and internal network.
        let router = try await core.vms.checkDefine(VMService.DefineRequest(name: "r", profile: "network-controller"))
        XCTAssertEqual(router.spec.nics.map(\.source), [.bridge("br-up"), .network("inside")])
        XCTAssertEqual(DomainXML.build(router.spec).contains("<source bridge=\"br-up\"/>"), true)
        // A profile file's networks beat them; a network it names must exist.
        await assertError("InvalidArgs", naming: "'lan'") {
            try await self.core.vms.checkDefine(VMService.DefineRequest(name: "e", profile: "edge"))
        }
        // The DefineVM option beats the profile file.
        var request = VMService.DefineRequest(name: "e", profile: "edge")
        request.networks = ["default", "bridge:br-up"]
        let edge = try await core.vms.checkDefine(request)
        XCTAssertEqual(edge.spec.nics.map(\.source), [.network("default"), .bridge("br-up")])
        // A host device other than the uplink is refused, to a router too.
        request.networks = ["default", "direct:eth0"]
        await assertError("InvalidArgs", naming: "direct:eth0") { try await self.core.vms.checkDefine(request) }
        let kiosk = try await core.vms.checkDefine(VMService.DefineRequest(name: "k", profile: "kiosk"))
        XCTAssertEqual(kiosk.spec.nics.map(\.source), [.network("inside")])
    }

    func testEnforceTopologyKeepsControllersAndAppsInside() async throws {
        core = try await CoreHarness()
        _ = try await core.vms.networks.runDefine(try await core.vms.networks.checkDefine({
            var r = NetworkService.DefineRequest(name: "outside", kind: "nat")
            r.ipv4 = "10.77.0.1/24"
            return r
        }()))
        for (networks, naming) in [(["default"], "default is the uplink"), (["network:outside"], "outside is of kind nat"),
                                   (["bridge:br0"], "bridge:br0"), (["direct:eth0"], "direct:eth0"),
                                   (["multiverse", "default"], "NIC 2 (network:default)")] {
            for profile in ["interface-controller", "app"] {
                await assertError("InvalidArgs", naming: naming) {
                    var r = VMService.DefineRequest(name: "x", profile: profile)
                    r.networks = networks
                    return try await self.core.vms.checkDefine(r)
                }
            }
        }
        await assertError("InvalidArgs", naming: "'bogus:x'") {
            var r = VMService.DefineRequest(name: "x", profile: "app")
            r.networks = ["bogus:x"]
            return try await self.core.vms.checkDefine(r)
        }
        // Caller XML: by the role of its profile option; none is an app VM.
        let foreign = { (profile: String, nic: String) in
            var r = VMService.ForeignDefineRequest(xml: "<domain type='test'><name>f</name><memory>65536</memory><os><type>hvm</type></os><devices>\(nic)</devices></domain>")
            r.profile = profile
            return r
        }
        let onDefault = "<interface type='network'><source network='default'/></interface>"
        await assertError("InvalidArgs", naming: "default is the uplink") { try await self.core.vms.checkDefine(foreign("", onDefault)) }
        await assertError("InvalidArgs", naming: "'user'") {
            try await self.core.vms.checkDefine(foreign("", "<interface type='user'/>"))
        }
        await assertError("InvalidArgs", naming: "'ethernet'") {
            try await self.core.vms.checkDefine(foreign("", "<interface type='ethernet'><target dev='tap9'/></interface>"))
        }
        _ = try await core.vms.checkDefine(foreign("network-controller", onDefault))
        // A router may be on any network, but on no host device other than the uplink.
        var router = VMService.DefineRequest(name: "r", profile: "network-controller")
        router.networks = ["outside", "default"]
        _ = try await core.vms.checkDefine(router)
        router.networks = ["outside", "bridge:br0"]
        await assertError("InvalidArgs", naming: "bridge:br0") { try await self.core.vms.checkDefine(router) }
        let left = await core.vmManager.list().map(\.name)
        XCTAssertEqual(left, ["test"], "a refused define left a VM behind")

        await core.close()
        core = try await CoreHarness { $0.enforceTopology = false }
        var free = VMService.DefineRequest(name: "x", profile: "app")
        free.networks = ["default"]
        _ = try await core.vms.checkDefine(free)
    }

    func testMACsAreGivenInOrderAndChecked() async throws {
        core = try await CoreHarness()
        let router = try await define("r", "network-controller") { $0.macs = ["52:54:00:AA:00:01"] }
        XCTAssertEqual(router.interfaces.first?.mac, "52:54:00:aa:00:01")
        XCTAssertNotEqual(router.interfaces.last?.mac, "", "libvirt picks the others")
        for (macs, naming) in [(["52:54:00:aa:00:01"], "already a NIC of VM r"), (["01:00:5e:00:00:01"], "multicast"),
                               (["00:00:00:00:00:00"], "zero"), (["52:54:00:aa:00"], "'52:54:00:aa:00'"),
                               (["52:54:00:aa:00:0g"], "'52:54:00:aa:00:0g'"), (["52:54:00:aa:00:02", "52:54:00:aa:00:03"], "2 MACs for 1 NIC")] {
            await assertError("InvalidArgs", naming: naming) {
                var r = VMService.DefineRequest(name: "x", profile: "app")
                r.macs = macs
                return try await self.core.vms.checkDefine(r)
            }
        }
    }

    func testStartRefusesToOvercommitTheHostNamingTheFigures() async throws {
        core = try await CoreHarness()
        let big = try await define("big", "app") { $0.memoryMiB = 24 * 1024 }
        await assertError("LimitsExceeded", naming: "it needs 24576 MiB and the running VMs (test) hold 8192 MiB") {
            try await self.core.vms.checkLifecycle(big.uuid, .start)
        }
        await assertError("LimitsExceeded", naming: "host_reserve_mib = 1024") { try await self.core.vms.checkLifecycle(big.uuid, .start) }
        let wide = try await define("wide", "app") { $0.vcpus = 15 }
        await assertError("LimitsExceeded", naming: "it has 15 vCPU(s) and the running VMs (test) hold 2, but the host has 16 CPUs") {
            try await self.core.vms.checkLifecycle(wide.uuid, .start)
        }
        // Two starts at once that each fit alone: exactly one is let through.
        let a = try await define("a", "app") { $0.memoryMiB = 12 * 1024 }
        let b = try await define("b", "app") { $0.memoryMiB = 12 * 1024 }
        let plans = (try await core.vms.checkLifecycle(a.uuid, .start), try await core.vms.checkLifecycle(b.uuid, .start))
        let vms: VMService = core.vms
        let tasks = [Task { try await vms.runLifecycle(plans.0, .start) }, Task { try await vms.runLifecycle(plans.1, .start) }]
        var outcomes: [Result<Void, Error>] = []
        for task in tasks { outcomes.append(await task.result) }
        XCTAssertEqual(outcomes.filter { if case .success = $0 { true } else { false } }.count, 1, "\(outcomes)")
        let refusal = outcomes.compactMap { if case .failure(let e) = $0 { e as? ControllerError } else { nil } }.first
        XCTAssertEqual(refusal?.kind, "LimitsExceeded", "\(outcomes)")
        let running = await core.vmManager.list().filter { $0.state == .running }.map(\.name)
        XCTAssertEqual(running.count, 2, "test and one of a, b: \(running)")

        await core.close()
        core = try await CoreHarness { $0.allowCPUOvercommit = true }
        let many = try await define("many", "app") { $0.vcpus = 16 }
        try await core.vms.runLifecycle(try await core.vms.checkLifecycle(many.uuid, .start), .start)
        let state = try await core.vms.existing(many.uuid).state
        XCTAssertEqual(state, .running)
    }

    /// libvirt's built-in test host reports 3 GiB while its "test" VM holds 8 GiB: every
    /// start is refused there, which is why the tests and the demo use the test host file.
    func testTheDefaultTestHostRefusesEveryStart() async throws {
        core = try await CoreHarness(uri: "test:///default")
        let small = try await define("small", "app") { $0.memoryMiB = 64 }
        await assertError("LimitsExceeded", naming: "the running VMs (test) hold 8192 MiB, but the host has 3072 MiB") {
            try await self.core.vms.checkLifecycle(small.uuid, .start)
        }
        var request = VMService.DefineRequest(name: "small2", profile: "app")
        request.autostart = true
        _ = try await core.vms.runDefine(try await core.vms.checkDefine(request))
        let job = try await core.finished(try await core.vms.runStartAll(try await core.vms.checkStartAll(), uid: 0))
        XCTAssertEqual(job.state, "failed")
        XCTAssertTrue(job.error.contains("StartAll: cannot start small2"), job.error)
        let state = try await core.vms.find("small2").state
        XCTAssertEqual(state, .shutoff)
    }
}


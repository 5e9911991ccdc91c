import Foundation
import SDBus
import XCTest

/// Networks through the real stack on libvirt's test driver (its networks live in the
/// daemon's process, so virsh cannot see them; QemuSystemTests checks them with virsh on
/// a real libvirtd): real bus policy, real polkitd, real users.
final class NetworkTests: XCTestCase {
    override class func setUp() {
        SharedStacks.start(self) { try TestStack(config: "") }
    }

    override class func tearDown() { SharedStacks.stop(self) }

    var stack: TestStack { get throws { try SharedStacks.stack(Self.self) } }

    static let networkInterface = "org.multiverse.Controller.Network"
    static func path(_ name: String) -> String { ObjectPath.encode(prefix: "/org/multiverse/Controller/network", name) }

    func define(_ name: String, _ kind: String, _ options: [String] = ["0"], as user: String? = TestStack.grantedUser,
                interactive: Bool = true) throws -> CommandResult {
        try stack.manager("DefineNetwork", ["ssa{sv}", name, kind] + options, as: user, interactive: interactive)
    }

    func networkCall(_ name: String, _ method: String, _ args: [String] = ["a{sv}", "0"], as user: String? = TestStack.grantedUser,
                     interactive: Bool = true) throws -> CommandResult {
        try stack.call(Self.path(name), Self.networkInterface, method, args, as: user, interactive: interactive)
    }

    func property(_ name: String, _ property: String) throws -> DBusValue? {
        try stack.property(Self.path(name), Self.networkInterface, property)
    }

    /// ListNetworks as busctl prints it; a failed call fails the test (an empty listing would
    /// pass every "not listed" assertion).
    func listed(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let r = try stack.manager("ListNetworks", ["a{sv}", "0"])
        XCTAssertTrue(r.ok, "ListNetworks failed: \(r.all)", file: file, line: line)
        return r.ok ? r.stdout : "<ListNetworks failed>"
    }

    func testDefineListStartStopAutostartUndefine() throws {
        let initial = try listed()
        XCTAssertTrue(initial.contains("\"/org/multiverse/Controller/network/default\""), initial)
        let isolated = try define("internal-a", "isolated")
        XCTAssertTrue(isolated.ok, isolated.all)
        XCTAssertEqual(isolated.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "o \"\(Self.path("internal-a"))\"")
        XCTAssertEqual(try property("internal-a", "Kind"), .string("isolated"))
        XCTAssertEqual(try property("internal-a", "Active"), .boolean(true))
        XCTAssertEqual(try property("internal-a", "Autostart"), .boolean(true))
        let nat = try define("outside-a", "nat", ["3", "ipv4", "s", "10.91.0.1/24", "autostart", "b", "false", "bridge", "s", "mvbr-test0"])
        XCTAssertTrue(nat.ok, nat.all)
        XCTAssertEqual(try property("outside-a", "Kind"), .string("nat"))
        XCTAssertEqual(try property("outside-a", "Bridge"), .string("mvbr-test0"))
        XCTAssertEqual(try property("outside-a", "Autostart"), .boolean(false))
        XCTAssertTrue(try listed().contains("\"\(Self.path("outside-a"))\""))
        XCTAssertEqual(try stack.manager("GetNetworkByName", ["sa{sv}", "outside-a", "0"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                       "o \"\(Self.path("outside-a"))\"")

        XCTAssertTrue(try networkCall("outside-a", "Stop").ok)
        XCTAssertEqual(try property("outside-a", "Active"), .boolean(false))
        let again = try networkCall("outside-a", "Stop")
        XCTAssertFalse(again.ok)
        XCTAssertTrue(again.stderr.contains("not active"), again.all)
        XCTAssertTrue(try networkCall("outside-a", "Start").ok)
        XCTAssertEqual(try property("outside-a", "Active"), .boolean(true))
        XCTAssertTrue(try networkCall("outside-a", "SetAutostart", ["ba{sv}", "true", "0"]).ok)
        XCTAssertEqual(try property("outside-a", "Autostart"), .boolean(true))

        let taken = try define("outside-a", "isolated")
        XCTAssertFalse(taken.ok)
        XCTAssertTrue(taken.stderr.contains("exists"), taken.all)

        for name in ["internal-a", "outside-a"] {
            let r = try networkCall(name, "Undefine")
            XCTAssertTrue(r.ok, r.all)
            let gone = try stack.manager("GetNetworkByName", ["sa{sv}", name, "0"])
            XCTAssertFalse(gone.ok)
            XCTAssertTrue(gone.stderr.contains("no network named \(name)"), gone.all)
            XCTAssertFalse(try listed().contains("\"\(Self.path(name))\""))
        }
    }

    func testARunningVMKeepsItsNetworkAndIsListedAsConnected() throws {
        let s = try stack
        XCTAssertTrue(try define("link-b", "isolated").ok)
        let vm = try stack.manager("DefineVM", ["ssa{sv}", "net-user", "app", "1", "networks", "as", "1", "link-b"], as: TestStack.grantedUser)
        XCTAssertTrue(vm.ok, vm.all)
        let vmPath = try XCTUnwrap(try stack.vmPath("net-user"))
        XCTAssertEqual(try property("link-b", "ConnectedVMs"), .objectPaths(["\(vmPath)"]))
        // The VM lists its NIC: MAC (libvirt's), the network, the model.
        let nics = s.property(vmPath, TestStack.vmInterface, "Interfaces")
        let nic = nics.rows.first?.compactMap(\.string) ?? []
        XCTAssertEqual(nics.rows.count, 1, nics.shown)
        XCTAssertTrue(nic.first?.hasPrefix("52:54:00:") == true && Array(nic.dropFirst()) == ["link-b", "virtio"], nics.shown)
        let unknown = try stack.manager("DefineVM", ["ssa{sv}", "net-lost", "app", "1", "networks", "as", "2", "link-b", "nowhere"],
                                        as: TestStack.grantedUser)
        XCTAssertFalse(unknown.ok, unknown.all)
        XCTAssertTrue(unknown.stderr.contains("no network named 'nowhere'"), unknown.all)
        XCTAssertNil(s.vmPath("net-lost"))
        XCTAssertTrue(try stack.call(vmPath, TestStack.vmInterface, "Start", ["a{sv}", "0"], as: TestStack.grantedUser).ok)
        for method in ["Stop", "Undefine"] {
            let busy = try networkCall("link-b", method)
            XCTAssertFalse(busy.ok, "\(method) \(busy.all)")
            XCTAssertTrue(busy.stderr.contains("Busy") || busy.stderr.contains("running VMs use it"), busy.all)
            XCTAssertTrue(busy.stderr.contains("net-user"), busy.all)
        }
        XCTAssertEqual(try property("link-b", "Active"), .boolean(true))
        XCTAssertTrue(try stack.call(vmPath, TestStack.vmInterface, "Destroy", ["a{sv}", "0"], as: TestStack.grantedUser).ok)
        XCTAssertTrue(try networkCall("link-b", "Stop").ok)
        XCTAssertTrue(try stack.call(vmPath, TestStack.vmInterface, "Undefine", ["a{sv}", "0"], as: TestStack.grantedUser).ok)
        for _ in 0..<50 where try property("link-b", "ConnectedVMs") != .objectPaths([]) { usleep(100_000) }
        XCTAssertEqual(try property("link-b", "ConnectedVMs"), .objectPaths([]))
        XCTAssertTrue(try networkCall("link-b", "Undefine").ok)
    }

    func testUnauthorizedAndHostileCallsChangeNothing() throws {
        let s = try stack
        XCTAssertTrue(try define("guarded-c", "isolated").ok)
        let quiet = try define("intruder-c", "isolated", as: TestStack.otherUser, interactive: false)
        XCTAssertFalse(quiet.ok, quiet.all)
        XCTAssertTrue(quiet.stderr.contains("needs authentication") || quiet.stderr.contains("Interactive authentication"), quiet.all)
        XCTAssertFalse(try define("intruder-c", "isolated", as: TestStack.otherUser).ok)
        XCTAssertFalse(try listed().contains("intruder"))
        for method in ["Stop", "Undefine"] {
            XCTAssertFalse(try networkCall("guarded-c", method, as: TestStack.otherUser).ok, method)
        }
        XCTAssertFalse(try networkCall("guarded-c", "SetAutostart", ["ba{sv}", "false", "0"], as: TestStack.otherUser).ok)
        XCTAssertEqual(try property("guarded-c", "Active"), .boolean(true))
        XCTAssertEqual(try property("guarded-c", "Autostart"), .boolean(true))
        XCTAssertTrue(s.log(tail: 80).contains("action=\"org.multiverse.controller.network.manage\""), s.log(tail: 80))

        let hostile: [([String], String)] = [
            (["ssa{sv}", "../etc", "isolated", "0"], "invalid network name '../etc'"),
            (["ssa{sv}", "n1", "bridged", "0"], "unknown network kind 'bridged'"),
            (["ssa{sv}", "n1", "nat", "0"], "needs ipv4"),
            (["ssa{sv}", "n1", "nat", "1", "ipv4", "s", "10.0.0.0/24"], "ipv4 '10.0.0.0/24'"),
            (["ssa{sv}", "n1", "nat", "1", "ipv4", "s", "300.1.1.1/24"], "ipv4 '300.1.1.1/24'"),
            (["ssa{sv}", "n1", "nat", "1", "ipv4", "s", "10.0.0.1/31"], "ipv4 '10.0.0.1/31'"),
            (["ssa{sv}", "n1", "isolated", "1", "ipv4", "s", "10.0.0.1/24"], "not allowed on an isolated network"),
            (["ssa{sv}", "n1", "isolated", "1", "dhcp", "b", "true"], "dhcp is not allowed"),
            (["ssa{sv}", "n1", "isolated", "1", "bridge", "s", "a-bridge-name-too-long"], "invalid bridge name 'a-bridge-name-too-long'"),
            (["ssa{sv}", "n1", "isolated", "1", "color", "s", "red"], "color"),
        ]
        for (args, message) in hostile {
            let r = try stack.manager("DefineNetwork", args, as: TestStack.grantedUser)
            XCTAssertFalse(r.ok, "\(args) \(r.all)")
            XCTAssertTrue(r.stderr.contains(message), "\(args): \(r.all)")
        }
        let after = try listed()
        XCTAssertFalse(after.contains("/n1\""), after)
    }

    func testMvctlNetworkCommands() throws {
        let s = try stack
        let define = s.mvctl(["network", "define", "mv-d", "nat", "--ipv4", "10.92.0.1/24", "--no-autostart"])
        XCTAssertTrue(define.ok, define.all)
        let list = s.mvctl(["network", "list"])
        XCTAssertTrue(list.ok, list.all)
        let row = list.stdout.split(separator: "\n").first { $0.hasPrefix("mv-d ") }.map { $0.split(separator: " ").map(String.init) }
        XCTAssertEqual(row, ["mv-d", "nat", "yes", "no", "-"], list.stdout)
        let json = s.mvctl(["network", "show", "mv-d", "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(object?["Kind"] as? String, "nat", json.all)
        XCTAssertEqual(object?["Autostart"] as? Bool, false, json.all)
        XCTAssertTrue(s.mvctl(["network", "stop", "mv-d"]).ok)
        XCTAssertEqual(try property("mv-d", "Active"), .boolean(false))
        let missing = s.mvctl(["network", "start", "nope"])
        XCTAssertEqual(missing.status, 3, missing.all)
        XCTAssertTrue(s.mvctl(["network", "undefine", "mv-d"]).ok)
        XCTAssertFalse(try listed().contains("mv-d"))
    }

    /// Debian leaves libvirt's default network defined but inactive: Start (and StartAll)
    /// starts a VM's inactive networks first, asking network.manage for it too.
    func testStartingAVMStartsItsInactiveNetworkFirst() throws {
        let s = try stack
        XCTAssertTrue(try define("sleepy-e", "isolated", ["1", "start", "b", "false"]).ok)
        XCTAssertEqual(try property("sleepy-e", "Active"), .boolean(false))
        XCTAssertTrue(try stack.manager("DefineVM", ["ssa{sv}", "wakes-e", "app", "1", "networks", "as", "1", "sleepy-e"], as: TestStack.grantedUser).ok)
        let vmPath = try XCTUnwrap(s.vmPath("wakes-e"))
        let refused = s.call(vmPath, TestStack.vmInterface, "Start", ["a{sv}", "0"], as: TestStack.otherUser, interactive: false)
        XCTAssertFalse(refused.ok, refused.all)
        XCTAssertEqual(try property("sleepy-e", "Active"), .boolean(false), "a refused Start started the network")
        let start = s.call(vmPath, TestStack.vmInterface, "Start", ["a{sv}", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(start.ok, start.all)
        XCTAssertEqual(try property("sleepy-e", "Active"), .boolean(true))
        XCTAssertEqual(s.vmProperty("wakes-e", "State"), .string("running"))
        let log = s.log(tail: 40)
        XCTAssertTrue(log.contains("action=\"org.multiverse.controller.network.manage\" network=\"sleepy-e\" operation=\"start\" vm=\"wakes-e\" decision=allowed"), log)
        XCTAssertTrue(log.contains("starting network sleepy-e for VM wakes-e"), log)
        XCTAssertTrue(s.call(vmPath, TestStack.vmInterface, "Destroy", ["a{sv}", "0"], as: TestStack.grantedUser).ok)
        XCTAssertTrue(try networkCall("sleepy-e", "Stop").ok)

        // StartAll: the same, before the VM's turn.
        XCTAssertTrue(s.call(vmPath, TestStack.vmInterface, "SetAutostart", ["ba{sv}", "true", "0"], as: TestStack.grantedUser).ok)
        let startAll = s.manager("StartAll", ["a{sv}", "0"], as: TestStack.grantedUser)
        XCTAssertTrue(startAll.ok, startAll.all)
        for _ in 0..<100 where s.vmProperty("wakes-e", "State") != .string("running") { usleep(100_000) }
        XCTAssertEqual(s.vmProperty("wakes-e", "State"), .string("running"))
        XCTAssertEqual(try property("sleepy-e", "Active"), .boolean(true))
        XCTAssertTrue(s.log(tail: 40).contains("action=\"org.multiverse.controller.network.manage\" network=\"sleepy-e\" operation=\"start\" decision=allowed"),
                      s.log(tail: 40))
        XCTAssertTrue(s.call(vmPath, TestStack.vmInterface, "Destroy", ["a{sv}", "0"], as: TestStack.grantedUser).ok)
        XCTAssertTrue(s.call(vmPath, TestStack.vmInterface, "Undefine", ["a{sv}", "0"], as: TestStack.grantedUser).ok)
        XCTAssertTrue(try networkCall("sleepy-e", "Undefine").ok)
    }
}

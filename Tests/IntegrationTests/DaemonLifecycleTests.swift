import ControllerAPI
import Foundation
import XCTest

/// Start-up checks, checked-in introspection, and SIGTERM.
final class DaemonLifecycleTests: XCTestCase {
    func testSigtermReleasesNameAndExitsZero() throws {
        let stack = try TestStack()
        defer { stack.stop() }
        XCTAssertTrue(stack.busctl(["status", TestStack.busName]).ok)
        let status = stack.stopDaemon(signal: SIGTERM)
        XCTAssertEqual(status, 0, stack.log(tail: 20))
        XCTAssertFalse(stack.busctl(["list"]).stdout.contains(TestStack.busName))
        XCTAssertTrue(stack.log(tail: 5).contains("stopped"), stack.log(tail: 5))
    }

    /// The daemon's threads carry their names in the kernel (what `top -H`, `ps -L` and gdb
    /// show an operator): the bus thread, the libvirt pool, the libvirt event loop, the
    /// settings watcher. A privileged call first: it makes no polkit thread (checks are
    /// asynchronous calls on the bus connection and hold no thread).
    func testThreadsAreNamed() throws {
        let stack = try TestStack()
        defer { stack.stop() }
        XCTAssertTrue(stack.createDisk("named", as: nil).ok)
        let pid = try XCTUnwrap(stack.daemon?.pid)
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")
        let names = Set(tasks.compactMap { try? String(contentsOfFile: "/proc/\(pid)/task/\($0)/comm", encoding: .utf8) }
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        for expected in ["sd-bus", "libvirt-call-0", "libvirt-call-3", "libvirt-events", "inotify"] {
            XCTAssertTrue(names.contains(expected), "no thread named \(expected) among \(names.sorted())")
        }
        XCTAssertFalse(names.contains { $0.hasPrefix("polkit") }, "a thread for polkit checks: \(names.sorted())")
    }

    func testBadConfigNamesFileLineAndKey() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mvcfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("controller.toml")
        try "# comment\n[daemon]\nlibvirt_uri = \"test:///default\"\nimage_dri = \"/x\"\n".write(to: file, atomically: true, encoding: .utf8)
        let r = Command.run(TestStack.daemonPath, ["--config", file.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("\(file.path):4: [daemon] image_dri: unknown key"), r.all)
        try "[polkit]\nworkers = \"four\"\n".write(to: file, atomically: true, encoding: .utf8)
        let typed = Command.run(TestStack.daemonPath, ["--config", file.path])
        XCTAssertTrue(typed.stderr.contains("\(file.path):2: [polkit] workers: expected an integer"), typed.all)
        // [settings]: unknown keys and wrong types stop start-up with file, line and key.
        try "[settings]\nuser = \"alice\"\nenforce = true\n".write(to: file, atomically: true, encoding: .utf8)
        let unknownSetting = Command.run(TestStack.daemonPath, ["--config", file.path])
        XCTAssertNotEqual(unknownSetting.status, 0)
        XCTAssertTrue(unknownSetting.stderr.contains("\(file.path):3: [settings] enforce: unknown key"), unknownSetting.all)
        try "[settings]\n\ngroups = \"kvm\"\n".write(to: file, atomically: true, encoding: .utf8)
        let wrongType = Command.run(TestStack.daemonPath, ["--config", file.path])
        XCTAssertTrue(wrongType.stderr.contains("\(file.path):3: [settings] groups: expected an array of strings"), wrongType.all)
        try "[settings]\ninitramfs_update_command = [\"update-initramfs\", \"-u\"]\n".write(to: file, atomically: true, encoding: .utf8)
        let relative = Command.run(TestStack.daemonPath, ["--config", file.path])
        XCTAssertTrue(relative.stderr.contains("\(file.path):2: [settings] initramfs_update_command: the first element must be an absolute program path"), relative.all)
        let flag = Command.run(TestStack.daemonPath, ["--image-dir", "relative/dir"])
        XCTAssertNotEqual(flag.status, 0)
        XCTAssertTrue(flag.stderr.contains("--image-dir 'relative/dir' must be an absolute path"), flag.all)
    }

    /// The API reference is generated from the interface declarations (every member must be
    /// documented), the checked-in page is what the daemon generates, and it renders cleanly.
    func testCheckedInAPIReferenceMatchesAndRenders() throws {
        let page = TestStack.repo.appendingPathComponent("man/org.multiverse.Controller.5").path
        let generated = Command.run(TestStack.daemonPath, ["--print-api-reference"])
        XCTAssertTrue(generated.ok, generated.all)
        XCTAssertEqual(generated.stdout, try String(contentsOfFile: page, encoding: .utf8),
                       "man/org.multiverse.Controller.5 is stale: run scripts/update-introspection")
        let groff = Command.run("/usr/bin/groff", ["-man", "-ww", "-z", page])
        XCTAssertTrue(groff.ok && groff.stderr.isEmpty, groff.all)
        var env = ProcessInfo.processInfo.environment
        env["MANWIDTH"] = "80"
        let man = Command.run("/usr/bin/man", ["--warnings", "-l", page], environment: env)
        XCTAssertTrue(man.ok && man.stderr.isEmpty, man.all)
        XCTAssertTrue(man.stdout.contains(PolkitAction.settingsModify.rawValue), man.stdout)
    }

    /// mvctl(1), multiverse-controllerd(8) and controller.toml(5) render without warnings and
    /// cover every command and every configuration key; controller.toml(5) is what
    /// scripts/generate-man makes from controller.toml.example.
    func testManPagesRenderAndCoverEveryCommandAndKey() throws {
        let man = TestStack.repo.appendingPathComponent("man")
        var env = ProcessInfo.processInfo.environment
        env["MANWIDTH"] = "100"
        var rendered: [String: String] = [:]
        for page in ["mvctl.1", "multiverse-controllerd.8", "controller.toml.5", "org.multiverse.Controller.5"] {
            let path = man.appendingPathComponent(page).path
            let r = Command.run("/usr/bin/man", ["--warnings", "-l", path], environment: env)
            XCTAssertTrue(r.ok && r.stderr.isEmpty, "\(page): \(r.all.prefix(500))")
            rendered[page] = r.stdout
        }
        // Every mvctl command, from the command tree itself.
        let dump = Command.run(TestStack.mvctlPath, ["--experimental-dump-help"])
        let tree = try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any]
        func names(_ command: [String: Any]) -> [String] {
            [command["commandName"] as? String ?? ""] + ((command["subcommands"] as? [[String: Any]]) ?? []).flatMap(names)
        }
        let commands = names(tree?["command"] as? [String: Any] ?? [:])
        XCTAssertGreaterThan(commands.count, 40)
        for command in Set(commands) where !(rendered["mvctl.1"] ?? "").contains(command) {
            XCTFail("mvctl.1 does not mention \(command) (run scripts/generate-man)")
        }
        // Every key of the example, and the page is current.
        let example = TestStack.repo.appendingPathComponent("controller.toml.example").path
        let generated = Command.run("/usr/bin/python3", ["-I", TestStack.repo.appendingPathComponent("scripts/lib/toml-example-to-man.py").path, example])
        XCTAssertEqual(generated.stdout, try String(contentsOf: man.appendingPathComponent("controller.toml.5"), encoding: .utf8) ,
                       "man/controller.toml.5 is stale: run scripts/generate-man")
        let keys = try String(contentsOfFile: example, encoding: .utf8).split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("#"), let eq = line.range(of: " = ") else { return nil }
            let key = line[line.index(after: line.startIndex)..<eq.lowerBound]
            return key.allSatisfy({ $0.isLetter || $0 == "_" }) ? String(key) : nil
        }
        XCTAssertEqual(keys.count, 57, "the keys of controller.toml.example")
        for key in keys where !(rendered["controller.toml.5"] ?? "").contains(key) { XCTFail("controller.toml.5 lacks \(key)") }
        // The daemon's page lists its flags.
        for flag in ["--config", "--host-root", "--state-dir", "--print-api-reference"] {
            XCTAssertTrue((rendered["multiverse-controllerd.8"] ?? "").contains(flag), flag)
        }
    }

    func testCheckedInIntrospectionMatchesTheDaemon() throws {
        let dbusDir = TestStack.repo.appendingPathComponent("dbus")
        let files = try FileManager.default.contentsOfDirectory(atPath: dbusDir.path).filter { $0.hasSuffix(".xml") }.sorted()
        XCTAssertEqual(files, ["org.multiverse.Controller.Disk.xml", "org.multiverse.Controller.Job.xml", "org.multiverse.Controller.Manager.xml",
                               "org.multiverse.Controller.Network.xml",
                               "org.multiverse.Controller.Settings.xml", "org.multiverse.Controller.VM.xml"])
        for file in files {
            let interface = String(file.dropLast(4))
            let generated = Command.run(TestStack.daemonPath, ["--print-introspection", "--interface", interface])
            XCTAssertTrue(generated.ok, generated.all)
            let checkedIn = try String(contentsOf: dbusDir.appendingPathComponent(file), encoding: .utf8)
            XCTAssertEqual(checkedIn, generated.stdout, "\(file) is stale: run scripts/update-introspection")
        }
    }

    func testServedIntrospectionMatchesDescriptions() throws {
        // What sd-bus serves (from the vtables) and what --print-introspection writes come from
        // the same description; compare their methods, arguments and properties.
        let stack = try TestStack { images in
            _ = Command.run("/usr/bin/qemu-img", ["create", "-q", "-f", "raw", images.appendingPathComponent("d").path, "1M"])
        }
        defer { stack.stop() }
        for (interface, path) in [(ManagerInterface.name, TestStack.root),
                                  (DiskInterface.name, TestStack.root + "/disk/d")] {
            let served = stack.busctl(["call", TestStack.busName, path, "org.freedesktop.DBus.Introspectable", "Introspect", "--json=short"])
            XCTAssertTrue(served.ok, served.all)
            let servedXML = try extractXML(served.stdout)
            let generated = Command.run(TestStack.daemonPath, ["--print-introspection", "--interface", interface]).stdout
            XCTAssertEqual(try members(servedXML, interface), try members(generated, interface), interface)
        }
    }

    private func extractXML(_ json: String) throws -> String {
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        return ((object?["data"] as? [Any])?.first as? String) ?? ""
    }

    /// Methods with typed, named, directed arguments; properties with type, access and annotation.
    private func members(_ xml: String, _ interface: String) throws -> [String] {
        let doc = try XMLDocument(xmlString: xml, options: [])
        let nodes = try doc.nodes(forXPath: "/node/interface[@name='\(interface)']/*")
        var out = [String]()
        for case let element as XMLElement in nodes {
            let name = element.attribute(forName: "name")?.stringValue ?? ""
            let args = (element.elements(forName: "arg")).map {
                "\($0.attribute(forName: "name")?.stringValue ?? "")" + ":\($0.attribute(forName: "type")?.stringValue ?? "")"
                    + ":\($0.attribute(forName: "direction")?.stringValue ?? (element.name == "signal" ? "" : "in"))"
            }
            let annotations = element.elements(forName: "annotation")
                .filter { $0.attribute(forName: "name")?.stringValue == "org.freedesktop.DBus.Property.EmitsChangedSignal" }
                .map { $0.attribute(forName: "value")?.stringValue ?? "" }
            let type = element.attribute(forName: "type")?.stringValue ?? ""
            let access = element.attribute(forName: "access")?.stringValue ?? ""
            out.append("\(element.name ?? "") \(name) \(type) \(access) \(args.joined(separator: ",")) \(annotations.joined())")
        }
        return out.sorted()
    }
}

#if canImport(FoundationXML)
import FoundationXML
#endif

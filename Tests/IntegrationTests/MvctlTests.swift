import Foundation
import XCTest

/// mvctl against the real stack: tables, JSON, exit codes, polkit.
final class MvctlTests: XCTestCase {
    func testCommandsOutputsAndExitCodes() throws {
        let s = try TestStack()
        defer { s.stop() }
        let status = s.mvctl(["status"])
        XCTAssertTrue(status.ok, status.all)
        XCTAssertTrue(status.stdout.contains("libvirt URI        \(TestStack.testHostURI)"), status.stdout)

        let create = s.mvctl(["disk", "create", "web", "3M", "--format", "raw"], as: TestStack.grantedUser)
        XCTAssertTrue(create.ok, create.all)
        XCTAssertTrue(s.imageFiles().contains("web"))
        let size = Command.run("/usr/bin/qemu-img", ["info", "--output=json", s.imageDir.appendingPathComponent("web").path])
        XCTAssertTrue(size.stdout.contains("\"virtual-size\": 3145728"), size.all)

        let list = s.mvctl(["disk", "list"])
        XCTAssertTrue(list.stdout.contains("web   raw     3.0 MiB"), list.stdout)
        let json = s.mvctl(["disk", "list", "--json"])
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
        XCTAssertEqual(parsed?.first?["Name"] as? String, "web")
        XCTAssertEqual((parsed?.first?["VirtualSize"] as? NSNumber)?.uint64Value, 3 << 20)

        // Not authorized: exit 4, one clear line naming the D-Bus error, nothing created.
        let denied = s.mvctl(["disk", "create", "nope", "1M", "--no-ask-password"], as: TestStack.otherUser)
        XCTAssertEqual(denied.status, 4, denied.all)
        XCTAssertTrue(denied.stderr.hasPrefix("mvctl: org.freedesktop.DBus.Error.InteractiveAuthorizationRequired: "), denied.stderr)
        XCTAssertFalse(s.imageFiles().contains("nope"))
        // No such object: exit 3; service error: exit 1; usage error: exit 64 (EX_USAGE).
        XCTAssertEqual(s.mvctl(["disk", "show", "missing"]).status, 3)
        XCTAssertEqual(s.mvctl(["disk", "create", "../x", "1M"]).status, 1)
        XCTAssertEqual(s.mvctl(["disk", "create", "x", "12Q"]).status, 64)
        XCTAssertEqual(Command.run(TestStack.mvctlPath, ["status", "--bus-address", "unix:path=/nonexistent/bus"]).status, 5)

        let delete = s.mvctl(["disk", "delete", "web"], as: TestStack.grantedUser)
        XCTAssertTrue(delete.ok, delete.all)
        XCTAssertFalse(s.imageFiles().contains("web"))
    }

    /// `show` reads like `systemctl show`: text as it is (no JSON, no `\/`), yes/no, an
    /// a{sv} as key=value, one line per structure, a final newline; `--json` stays exact.
    /// `--help` paragraphs are wrapped once, by the help formatter (no short broken lines).
    func testShowAndHelpReadLikeSystemdTools() throws {
        let s = try TestStack()
        defer { s.stop() }
        XCTAssertTrue(s.mvctl(["disk", "create", "shown", "1M"], as: TestStack.grantedUser).ok)
        let define = s.mvctl(["vm", "define", "showvm", "interface-controller", "--disk", "shown"], as: TestStack.grantedUser)
        XCTAssertTrue(define.ok, define.all)
        let vm = s.mvctl(["vm", "show", "showvm"])
        XCTAssertTrue(vm.ok, vm.all)
        let lines = vm.stdout.components(separatedBy: "\n")
        XCTAssertTrue(lines.contains("Shares             /var/multiverse Multiverse"), vm.stdout)
        XCTAssertTrue(lines.contains("Persistent         yes"), vm.stdout)
        XCTAssertTrue(lines.contains("Ephemeral          no"), vm.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("Disks              vda \(s.imageDir.path)/shown qcow2 /org/multiverse/Controller/disk/shown") }, vm.stdout)
        XCTAssertFalse(vm.stdout.contains("\\/"), vm.stdout)
        XCTAssertTrue(vm.stdout.hasSuffix("\n"), vm.stdout)
        let disk = s.mvctl(["disk", "show", "shown"])
        XCTAssertTrue(disk.stdout.contains("AutoGrow           enabled=no max=0 step=1073741824 threshold=0.9\n"), disk.stdout)
        let json = s.mvctl(["vm", "show", "showvm", "--json"])
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        XCTAssertEqual((parsed?["Shares"] as? [[String]])?.first, ["/var/multiverse", "Multiverse"], json.stdout)
        XCTAssertEqual(parsed?["Persistent"] as? Bool, true, json.stdout)

        for command in [[String](), ["settings"]] {
            let help = Command.run(TestStack.mvctlPath, command + ["--help"])
            XCTAssertTrue(help.ok, help.all)
            let overview = help.stdout.components(separatedBy: "USAGE:").first ?? ""
            XCTAssertTrue(overview.contains("OVERVIEW:"), help.stdout)
            // A line the formatter did not fill ends its paragraph (".", ")" or ":").
            let short = overview.components(separatedBy: "\n").filter { $0.count > 0 && $0.count < 50 && !($0.hasSuffix(".") || $0.hasSuffix(":") || $0.hasSuffix(")")) }
            XCTAssertEqual(short, [], "broken lines in mvctl \(command.joined(separator: " ")) --help:\n\(overview)")
        }
    }

    /// Completion scripts for bash, zsh and fish come from the command definitions; VM and
    /// disk names are completed by asking the service (checked by running bash's completion).
    func testShellCompletionsAskTheServiceForNames() throws {
        let s = try TestStack()
        defer { s.stop() }
        for (shell, marker) in [("bash", "-F _mvctl mvctl"), ("zsh", "#compdef mvctl"), ("fish", "complete -c 'mvctl'")] {
            let r = Command.run(TestStack.mvctlPath, ["--generate-completion-script", shell])
            XCTAssertTrue(r.ok && r.stdout.contains(marker), "\(shell): \(r.all.prefix(300))")
        }
        XCTAssertTrue(s.mvctl(["disk", "create", "completeme", "1M"], as: TestStack.grantedUser).ok)
        let script = s.dir.appendingPathComponent("mvctl.bash")
        try Command.run(TestStack.mvctlPath, ["--generate-completion-script", "bash"]).stdout.write(to: script, atomically: true, encoding: .utf8)
        var env = s.environment
        env["PATH"] = URL(fileURLWithPath: TestStack.mvctlPath).deletingLastPathComponent().path + ":" + (env["PATH"] ?? "/usr/bin:/bin")
        func complete(_ words: [String]) -> String {
            let quoted = words.map { "'\($0)'" }.joined(separator: " ")
            let line = words.joined(separator: " ")
            let r = Command.run("/bin/bash", ["-c", "source '\(script.path)'; COMP_WORDS=(\(quoted)); COMP_CWORD=\(words.count - 1); COMP_LINE='\(line)'; COMP_POINT=${#COMP_LINE}; _mvctl; echo \"${COMPREPLY[*]}\""],
                                environment: env)
            return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        XCTAssertEqual(complete(["mvctl", "vm", "start", ""]), "test")
        XCTAssertEqual(complete(["mvctl", "disk", "delete", "comp"]), "completeme")
        XCTAssertTrue(complete(["mvctl", "vm", "sn"]).contains("snapshot"))
    }
}

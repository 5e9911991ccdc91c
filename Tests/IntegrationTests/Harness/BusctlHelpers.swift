import ControllerAPI
import Foundation
import SDBus
import XCTest

/// Reading busctl's output and our objects' properties, for every suite.
extension TestStack {
    static let vmInterface = VMInterface.name
    static let jobInterface = JobInterface.name

    /// The object path of the disk named `disk`.
    static func diskPath(_ disk: String) -> String { ObjectPath.encode(prefix: "/org/multiverse/Controller/disk", disk) }

    /// A property as `busctl get-property` prints it (`s "running"`, `t 512`), trimmed; ""
    /// when busctl fails.
    func property(_ path: String, _ interface: String, _ name: String) -> String {
        busctl(["get-property", Self.busName, path, interface, name]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A property of the disk named `disk`.
    func diskProperty(_ disk: String, _ name: String) -> String { property(Self.diskPath(disk), Self.diskInterface, name) }

    /// A property of the job at `job`.
    func jobProperty(_ job: String, _ name: String) -> String { property(job, Self.jobInterface, name) }

    /// `busctl call` of a method of the VM named `name` as `user` (the granted test user
    /// unless said), waiting up to five minutes for the reply (a shutdown, a live detach);
    /// `StackError` when there is no such VM.
    func vmCall(_ name: String, _ method: String, _ args: [String] = ["a{sv}", "0"], as user: String? = TestStack.grantedUser,
                interactive: Bool = true) throws -> CommandResult {
        guard let path = vmPath(name) else { throw StackError("no VM \(name)") }
        return call(path, Self.vmInterface, method, args, as: user, interactive: interactive)
    }

    /// `busctl call` of a method of the disk named `disk` as `user` (the granted test user
    /// unless said), waiting up to five minutes for the reply (an appliance's work).
    func diskCall(_ disk: String, _ method: String, _ args: [String], as user: String? = TestStack.grantedUser) -> CommandResult {
        call(Self.diskPath(disk), Self.diskInterface, method, args, as: user)
    }

    /// The object path of the VM named `name` (GetVMByName); nil when there is no such VM.
    func vmPath(_ name: String) -> String? {
        let r = manager("GetVMByName", ["sa{sv}", name, "0"])
        return r.ok ? r.firstQuoted : nil
    }

    /// A property of the VM named `name`. A missing VM or a failed read is a test failure
    /// (at the caller's line), never an empty value an assertion could take for an answer.
    func vmProperty(_ name: String, _ property: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        guard vmPath(name) != nil else {
            XCTFail("no VM named \(name) (reading its \(property))", file: file, line: line)
            return "<no VM named \(name)>"
        }
        guard let value = vmPropertyIfPresent(name, property) else {
            XCTFail("cannot read \(property) of VM \(name)", file: file, line: line)
            return "<\(property) of \(name) unreadable>"
        }
        return value
    }

    /// A property of the VM named `name`, or nil while there is no such VM (yet) or it cannot
    /// be read: for polls that wait for a VM's object to appear, as after a daemon restart.
    func vmPropertyIfPresent(_ name: String, _ property: String) -> String? {
        guard let path = vmPath(name) else { return nil }
        let r = busctl(["get-property", Self.busName, path, Self.vmInterface, property])
        return r.ok ? r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) : nil
    }
}

extension CommandResult {
    /// The first quoted string busctl printed: the path of a reply `o "/org/…/job/7"`; nil
    /// when there is none.
    var firstQuoted: String? { stdout.split(separator: "\"").dropFirst().first.map(String.init) }

    /// The object path a call returned (a job's, a VM's); "" when there is none.
    var replyPath: String { firstQuoted ?? "" }
}

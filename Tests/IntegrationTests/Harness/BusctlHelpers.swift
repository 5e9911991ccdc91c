import ControllerAPI
import Foundation
import SDBus
import XCTest

/// Calls through busctl as the test users (real users through `runuser`), for every suite.
extension TestStack {
    static let vmInterface = VMInterface.name
    static let jobInterface = JobInterface.name

    /// The object path of the disk named `disk`.
    static func diskPath(_ disk: String) -> String { ObjectPath.encode(prefix: "/org/multiverse/Controller/disk", disk) }

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
}

extension CommandResult {
    /// The first quoted string busctl printed: the path of a reply `o "/org/…/job/7"`; nil
    /// when there is none.
    var firstQuoted: String? { stdout.split(separator: "\"").dropFirst().first.map(String.init) }

    /// The object path a call returned (a job's, a VM's); "" when there is none.
    var replyPath: String { firstQuoted ?? "" }
}

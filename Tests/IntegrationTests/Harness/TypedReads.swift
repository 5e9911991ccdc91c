import ControllerAPI
import Dispatch
import Foundation
import SDBus
import Synchronization
import XCTest

/// What the tests read of the service, as typed values through the SDBus client (root's
/// connection to the stack's bus): properties and object paths compared as `DBusValue`s,
/// never as busctl's text. Calls made as the test users still go through busctl and
/// `runuser` (BusctlHelpers.swift): polkit must see real users.
extension TestStack {
    /// Runs `body` on the stack's reading connection (opened on first use) and waits for its
    /// result. The connection's work runs on its own bus thread, so blocking the test's
    /// thread meanwhile is safe.
    func typed<T: Sendable>(_ body: @escaping @Sendable (BusConnection) async throws -> T) throws -> T {
        let connection: BusConnection
        if let reader {
            connection = reader
        } else {
            let address = self.address
            connection = try Self.waitFor { try await BusConnection.openSystemBus(address: address) }
            reader = connection
        }
        return try Self.waitFor { try await body(connection) }
    }

    /// Waits on the calling thread for `body`, run as a task.
    static func waitFor<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let outcome = Mutex<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            outcome.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        return try outcome.withLock { $0! }.get()
    }

    /// A property of the object at `path`; nil when it cannot be read (no such object).
    func property(_ path: String, _ interface: String, _ name: String) -> DBusValue? {
        try? typed { try await $0.getProperty(destination: Self.busName, path: path, interface: interface, name: name) }
    }

    /// A property of the disk named `disk`.
    func diskProperty(_ disk: String, _ name: String) -> DBusValue? { property(Self.diskPath(disk), Self.diskInterface, name) }

    /// A property of the job at `job`.
    func jobProperty(_ job: String, _ name: String) -> DBusValue? { property(job, Self.jobInterface, name) }

    /// The object path of the VM named `name` (GetVMByName); nil when there is no such VM.
    func vmPath(_ name: String) -> String? {
        let reply = try? typed {
            try await $0.call(destination: Self.busName, path: Self.root, interface: Self.managerInterface, member: "GetVMByName",
                              [.string(name), .emptyOptions])
        }
        guard case .objectPath(let path)? = reply?.first else { return nil }
        return path
    }

    /// A property of the VM named `name`. A missing VM or a failed read is a test failure
    /// (at the caller's line), never a value an assertion could take for an answer.
    func vmProperty(_ name: String, _ property: String, file: StaticString = #filePath, line: UInt = #line) -> DBusValue? {
        guard vmPath(name) != nil else {
            XCTFail("no VM named \(name) (reading its \(property))", file: file, line: line)
            return nil
        }
        guard let value = vmPropertyIfPresent(name, property) else {
            XCTFail("cannot read \(property) of VM \(name)", file: file, line: line)
            return nil
        }
        return value
    }

    /// The disk's chain points (Disk.ListBackupPoints), oldest first: id, kind and parent
    /// ("" for a full point); [] when the call fails.
    func backupPoints(_ disk: String) -> [(id: String, kind: String, parent: String)] {
        let reply = try? typed {
            try await $0.call(destination: Self.busName, path: Self.diskPath(disk), interface: Self.diskInterface, member: "ListBackupPoints",
                              [.emptyOptions])
        }
        return reply?.first.rows.compactMap { row in
            guard row.count > 2, let id = row[0].string, let kind = row[1].string, let parent = row[2].string else { return nil }
            return (id, kind, parent)
        } ?? []
    }

    /// A property of the VM named `name`, or nil while there is no such VM (yet) or it cannot
    /// be read: for polls that wait for a VM's object to appear, as after a daemon restart.
    func vmPropertyIfPresent(_ name: String, _ property: String) -> DBusValue? {
        guard let path = vmPath(name) else { return nil }
        return self.property(path, Self.vmInterface, property)
    }
}

extension Optional where Wrapped == DBusValue {
    /// The value as the test read it, for failure messages.
    var shown: String { map { "\($0)" } ?? "nil (not readable)" }

    /// The entry `key` of an `a{sv}` value (a job's Result, AutoGrow), unwrapped.
    subscript(key: String) -> DBusValue? { self?.stringKeyedDictionary?[key]?.unwrapped }

    /// The fields of each element of an array of structures (`a(ss)`, `a(st)`).
    var rows: [[DBusValue]] { (self?.arrayElements ?? []).compactMap(\.structFields) }

    /// The strings of an `as` value (a disk's Problems); [] when it is none.
    var strings: [String] { self?.stringArray ?? [] }

    /// Whether one of the strings of an `as` value contains `text`.
    func mentions(_ text: String) -> Bool { strings.contains { $0.contains(text) } }

    /// The first field of each row, as strings (the names of `a(st)` snapshots, the targets of `a(ssso)` disks).
    var firstFields: [String] { rows.compactMap { $0.first?.string } }
}

extension DBusValue {
    /// A VM's `Disks` (`a(ssso)`): target, image, format and disk object of each.
    static func vmDisks(_ disks: [(target: String, image: String, format: String, object: String)]) -> DBusValue {
        .array(elementSignature: "(ssso)", disks.map { .structure([.string($0.target), .string($0.image), .string($0.format), .objectPath($0.object)]) })
    }

    /// An array of structures of strings (`a(ss)`, `a(sss)`) as D-Bus carries it.
    static func rows(_ signature: String, _ rows: [[String]]) -> DBusValue {
        .array(elementSignature: signature, rows.map { .structure($0.map { .string($0) }) })
    }
}

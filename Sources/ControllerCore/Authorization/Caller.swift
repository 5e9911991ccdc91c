/// Who made a D-Bus call: the polkit subject and what the audit log records.
public struct Caller: Sendable, Equatable {
    /// Unique bus name (`:1.42`): the polkit subject.
    public let busName: String
    public let uid: UInt32
    public let pid: UInt32
    /// The call carried the allow-interactive-authorization flag.
    public let allowInteraction: Bool

    public init(busName: String, uid: UInt32, pid: UInt32, allowInteraction: Bool) {
        self.busName = busName
        self.uid = uid
        self.pid = pid
        self.allowInteraction = allowInteraction
    }
}
